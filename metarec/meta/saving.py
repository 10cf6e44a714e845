"""Saving and loading learners, and the registry of learner classes that makes loading work.

A saved learner is a folder: ``model.keras`` (the Keras model), ``learner.json`` (class name,
hyper-parameters, encoder fingerprint) and ``learner_variables.npz`` (the learner's own
variables, e.g. Meta-SGD's learning rates). :func:`~metarec.meta.load_learner` finds the
class by name among those decorated with :func:`~metarec.meta.register_learner`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras
import numpy as np

__all__ = ["Saveable", "load_learner", "register_learner"]

_REGISTRY: dict[str, type] = {}


def register_learner(cls: type) -> type:
    """Class decorator: make a learner class loadable by :func:`load_learner`.

    Examples
    --------
    >>> @register_learner                                   # doctest: +SKIP
    ... class MyMAML(MAML):
    ...     display_name = "my MAML"
    """
    _REGISTRY[cls.__name__] = cls
    return cls


class Saveable:
    """Saving (mixed into :class:`~metarec.meta.MetaLearner`)."""

    def save(self, path: str | Path) -> Path:
        """Save model, hyper-parameters and learner variables into folder ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        config = self.get_config()
        if config["adapt"] == "__selected__":
            # Indices into model.trainable_variables: paths can change when a model that
            # creates its variables lazily is reloaded, the variable order does not.
            config["adapt"] = list(self._adapt_idx)
        self.model.save(path / "model.keras")
        extras = {f"extra_{i}": np.asarray(v) for i, v in enumerate(self.extra_variables)}
        np.savez(path / "learner_variables.npz", **extras)
        (path / "learner.json").write_text(
            json.dumps({"class": type(self).__name__, "config": config,
                        "encoder_fingerprint": self.encoder_fingerprint}, indent=2)
        )
        return path


def load_learner(path: str | Path) -> Any:
    """Load a learner saved with :meth:`~metarec.meta.saving.Saveable.save`; same predictions.

    A damaged save (missing or unreadable file, bad JSON, unknown class, truncated archive,
    variables that do not fit) raises one :class:`ValueError` or :class:`FileNotFoundError`
    naming the file and what is wrong with it.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder holding a saved learner; save one "
                                "with learner.save(path) and pass that folder.")
    meta_path = path / "learner.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"{path} holds no saved learner (learner.json is missing); "
                                "save one with learner.save(path).")
    try:
        meta = json.loads(meta_path.read_text())
        cls_name, config = meta["class"], dict(meta["config"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{meta_path} is damaged ({type(err).__name__}: {err}); it must be the "
                         "JSON written by learner.save with keys 'class' and 'config'. Save "
                         "the learner again.") from None
    import metarec.models  # noqa: F401  (registers the package's Keras model classes)

    if cls_name not in _REGISTRY:
        raise ValueError(f"{meta_path} names the learner class {cls_name!r}, which is not "
                         f"registered; known: {sorted(_REGISTRY)}. Import the module that "
                         "defines it (decorated with @metarec.meta.register_learner) before "
                         "loading.")
    cls = _REGISTRY[cls_name]
    model_path = path / "model.keras"
    if not model_path.exists():
        raise FileNotFoundError(f"{model_path} is missing, so the saved learner in {path} is "
                                "incomplete; save the learner again.")
    try:
        model = keras.saving.load_model(model_path)
    except Exception as err:  # Keras raises many types for a damaged archive
        raise ValueError(f"{model_path} exists but cannot be loaded as a Keras model "
                         f"({type(err).__name__}: {str(err)[:300]}); the file is truncated or "
                         "damaged, or a custom model class is not imported. Save the learner "
                         "again.") from None
    try:
        if isinstance(config.get("adapt"), list):
            config["adapt"] = [model.trainable_variables[i] for i in config["adapt"]]
        learner = cls(model, **config)
        learner._adapt_idx = learner._select(learner.adapt_spec)
    except (TypeError, ValueError, IndexError) as err:
        raise ValueError(f"{meta_path} holds a configuration that does not fit {cls_name} or "
                         f"its model ({err}); save the learner again.") from None
    learner._build_extra()
    learner.encoder_fingerprint = meta.get("encoder_fingerprint")
    extras_path = path / "learner_variables.npz"
    if not extras_path.exists():
        raise FileNotFoundError(f"{extras_path} is missing, so the saved learner in {path} is "
                                "incomplete; save the learner again.")
    try:
        with np.load(extras_path) as extras:
            for i, var in enumerate(learner.extra_variables):
                var.assign(extras[f"extra_{i}"])
    except Exception as err:  # zipfile, KeyError, shape mismatch: all mean a damaged file
        raise ValueError(f"{extras_path} exists but does not hold the learner's "
                         f"{len(learner.extra_variables)} variable(s) ({type(err).__name__}: "
                         f"{err}); it is truncated or damaged. Save the learner again.") from None
    return learner
