"""Model names for configs and the command line: ``build_model("mf", spec)``."""

from __future__ import annotations

from typing import Any

import keras

from metarec.data.features import FeatureSpec
from metarec.models.baselines import GlobalMean, ItemMean
from metarec.models.linear import UserLinear
from metarec.models.melu import MeLUNetwork, MeLUWithIds
from metarec.models.mf import BiasedMF
from metarec.models.neumf import NeuMF
from metarec.models.spec import spec_from_config
from metarec.models.wide_deep import WideAndDeep

__all__ = ["MODELS", "build_model"]

#: Short name -> model class. Every class has an ``ADAPT`` regex (its per-user parameters).
MODELS: dict[str, type[keras.Model]] = {
    "global_mean": GlobalMean,
    "item_mean": ItemMean,
    "user_linear": UserLinear,
    "mf": BiasedMF,
    "neumf": NeuMF,
    "wide_deep": WideAndDeep,
    "melu": MeLUNetwork,
    "melu_ids": MeLUWithIds,
}


def build_model(name: str, spec: FeatureSpec | dict[str, Any], **kwargs: Any) -> keras.Model:
    """Create the model called ``name`` from a ``FeatureSpec`` and build its variables.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS`.
    spec : FeatureSpec or dict
        Vocabulary sizes (``encoder.spec``), or its ``to_dict()``.
    **kwargs
        Hyper-parameters of the model class (e.g. ``n_factors=32`` for ``"mf"``).

    Returns
    -------
    keras.Model
        Built (all variables exist), ready for ``MAML(model, adapt=model.ADAPT)``.

    Examples
    --------
    >>> from metarec.data import FeatureSpec
    >>> model = build_model("mf", FeatureSpec(10, 20, [3, 8, 22, 11], [9], 19), n_factors=4)
    >>> [v.path for v in model.trainable_variables if "user_" in v.path]
    ['biased_mf/user_embedding/embeddings', 'biased_mf/user_bias/embeddings']
    """
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; choose one of {sorted(MODELS)}.")
    model = MODELS[name](spec_from_config(spec), **kwargs)
    model.build()
    return model
