"""Named recipes of the earlier chapters: a model, a learner and fixed hyper-parameters.

These recipes (:data:`METHODS`) are the hand-set configurations the teaching chapters use; they
are **not tuned** and not a fair comparison: the baselines take ``FINE_TUNE_STEPS`` test-time
steps, most meta-learners one, and every inner learning rate is 1e-3. The fair, tuned
comparison of chapter 8 is :mod:`metarec.experiments.grid` (every model trained conventionally
and meta-trained, each cell tuned with the same budget on validation users).

Every network built here starts its output bias at the mean training rating (``global_mean``,
passed by :func:`~metarec.experiments.train_method`).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field, replace
from typing import Any

import keras

from metarec import meta
from metarec._validate import check_int, check_positive
from metarec.models import MODELS, build_model


@dataclass(frozen=True)
class Method:
    """A named recipe: ``model`` (a :data:`metarec.models.MODELS` key) + ``learner`` class.

    ``adapt=None`` means the model's own ``ADAPT`` regex (its per-user variables).
    ``epochs=0`` skips gradient training (closed-form baselines). ``eval_steps`` is the number
    of inner steps taken on a test user's support set (``None``: ``inner_steps``).
    """

    name: str
    label: str
    model: str
    learner: str
    inner_lr: float
    inner_steps: int
    outer_lr: float = 1e-3
    epochs: int = 20
    adapt: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    learner_kwargs: dict[str, Any] = field(default_factory=dict)
    paper_optimizer: bool = False
    eval_steps: int | None = None

    def __post_init__(self) -> None:
        # A bad recipe is refused when it is written, not after minutes of training.
        where = f"Method {self.name!r}"
        check_positive(where, "inner_lr", self.inner_lr)
        check_positive(where, "outer_lr", self.outer_lr)
        check_int(where, "inner_steps", self.inner_steps, 0)
        check_int(where, "epochs", self.epochs, 0)
        if self.eval_steps is not None:
            check_int(where, "eval_steps", self.eval_steps, 0)

    def with_(self, **changes: Any) -> Method:
        """A copy with some fields changed (e.g. ``inner_steps`` for a sweep)."""
        return replace(self, **changes)

    @property
    def test_steps(self) -> int:
        """Inner steps taken on a test user's support set."""
        return self.inner_steps if self.eval_steps is None else self.eval_steps

    def build(self, spec, seed: int = 0, global_mean: float | None = None) -> meta.MetaLearner:
        """A fresh, compiled learner; ``seed`` fixes the initial weights.

        ``global_mean`` (the mean training rating) initialises the model's intercept or output
        bias, for every model class that has one (``global_mean`` hyper-parameter).
        """
        keras.utils.set_random_seed(seed)
        kwargs = dict(self.model_kwargs)
        if global_mean is not None and "global_mean" in inspect.signature(
                MODELS[self.model].__init__).parameters:
            kwargs.setdefault("global_mean", float(global_mean))
        model = build_model(self.model, spec, **kwargs)
        adapt = self.adapt if self.adapt is not None else model.ADAPT
        cls = getattr(meta, self.learner)
        kwargs = dict(self.learner_kwargs)
        if "inner_lr" in inspect.signature(cls.__init__).parameters:  # not a neural process
            kwargs["inner_lr"] = self.inner_lr
        learner = cls(model, inner_steps=self.inner_steps, adapt=adapt, seed=seed, **kwargs)
        if self.paper_optimizer:
            learner.compile()  # the class's own default (MeLU: the paper's Adam 5e-5)
        elif self.learner == "Reptile":
            learner.compile(keras.optimizers.SGD(self.outer_lr))
        else:
            learner.compile(keras.optimizers.Adam(self.outer_lr))
        return learner


#: Step budget of per-user adaptation at test time for the non-meta baselines (MeLU-5's).
FINE_TUNE_STEPS = 5

METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method("popularity", "Popularity (item mean)", "item_mean", "FineTune",
               inner_lr=0.1, inner_steps=FINE_TUNE_STEPS, epochs=0),
        Method("mf", "Matrix factorisation", "mf", "FineTune",
               inner_lr=0.1, inner_steps=FINE_TUNE_STEPS),
        Method("neumf", "NeuMF", "neumf", "FineTune",
               inner_lr=0.1, inner_steps=FINE_TUNE_STEPS),
        Method("wide_deep", "Wide & Deep", "wide_deep", "FineTune",
               inner_lr=1e-3, inner_steps=FINE_TUNE_STEPS),
        Method("melu_finetune", "MeLU net, fine-tuned", "melu", "FineTune",
               inner_lr=1e-3, inner_steps=FINE_TUNE_STEPS),
        Method("maml", "MAML", "melu", "MAML", inner_lr=1e-3, inner_steps=1, adapt="all"),
        Method("fomaml", "First-order MAML", "melu", "FOMAML", inner_lr=1e-3, inner_steps=1,
               adapt="all"),
        Method("reptile", "Reptile", "melu", "Reptile", inner_lr=1e-3, inner_steps=5,
               outer_lr=1.0, adapt="all"),
        Method("metasgd", "Meta-SGD", "melu", "MetaSGD", inner_lr=1e-3, inner_steps=1,
               adapt="all"),
        Method("melu1", "MeLU-1", "melu", "MeLU", inner_lr=1e-3, inner_steps=1),
        Method("melu5", "MeLU-5", "melu", "MeLU", inner_lr=1e-3, inner_steps=5),
        Method("melu5_paper", "MeLU-5 (paper learning rates)", "melu", "MeLU",
               inner_lr=5e-6, inner_steps=5, paper_optimizer=True),
    ]
}


def get_method(name: str) -> Method:
    """The :class:`Method` called ``name`` (a key of :data:`METHODS`)."""
    if name not in METHODS:
        raise ValueError(f"Unknown method {name!r}; choose from {', '.join(METHODS)}.")
    return METHODS[name]
