"""The methods compared in the experiments: a model, a learner and their hyper-parameters.

Every method is trained on the same meta-training tasks and evaluated the same way: on each
test user's support set it takes ``eval_steps`` gradient steps of size ``inner_lr`` on its
per-user variables (``adapt``), then predicts the query set. For the non-meta baselines
(:class:`~metarec.meta.FineTune`) this is fine-tuning with the step budget of MeLU-5 (5 steps);
for the meta-learners it is their own inner loop. So methods differ only in how their starting
weights were learned, which is the question the book asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import keras

from metarec import meta
from metarec.models import build_model


@dataclass(frozen=True)
class Method:
    """A named recipe: ``model`` (a :data:`metarec.models.MODELS` key) + ``learner`` class.

    ``adapt=None`` means the model's own ``ADAPT`` regex (its per-user variables).
    ``epochs=0`` skips gradient training (closed-form baselines).
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

    def with_(self, **changes: Any) -> Method:
        """A copy with some fields changed (e.g. ``inner_steps`` for a sweep)."""
        return replace(self, **changes)

    def build(self, spec, seed: int = 0) -> meta.MetaLearner:
        """A fresh, compiled learner; ``seed`` fixes the initial weights."""
        keras.utils.set_random_seed(seed)
        model = build_model(self.model, spec, **self.model_kwargs)
        adapt = self.adapt if self.adapt is not None else model.ADAPT
        cls = getattr(meta, self.learner)
        learner = cls(model, inner_lr=self.inner_lr, inner_steps=self.inner_steps, adapt=adapt,
                      seed=seed, **self.learner_kwargs)
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
