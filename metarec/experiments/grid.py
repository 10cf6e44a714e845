"""The fair comparison: every base model trained conventionally *and* meta-trained.

MAML is model-agnostic, so the question "does meta-learning help?" is asked per model. A
**cell** of the grid is one base model (rows of :data:`GRID_MODELS`) trained with one scheme
(:data:`SCHEMES`):

* ``finetune``: conventional training on the pooled training ratings, then fine-tuning on each
  test user's support set (:class:`~metarec.meta.FineTune`);
* ``maml``, ``fomaml``, ``reptile``, ``metasgd``: meta-training of the same model;
* ``melu``: MAML on the MeLU network adapting its decision layers only, the MeLU recipe of Lee
  et al. (2019), kept as a named row (only for the ``melu`` model);
* ``np``: a neural process (:class:`~metarec.meta.NeuralProcess`) on the MeLU network, the
  black-box meta-learner: no inner gradient step, the support set is encoded into a
  representation that modulates the decision layers (only for the ``melu`` model).

Every cell is adapted to a test user the same way: ``test_steps`` gradient steps (0 to
:data:`MAX_TEST_STEPS`, chosen on the validation users) on the cell's adapted variables (one of
the model's :data:`ADAPT_SETS`) with its inner learning rate (Meta-SGD: its learned rates). The
neural process reads the same support set in one forward pass instead (0 steps: its prior, any
other count: conditioned on the support set, all with the same predictions). The
search space of each scheme is :data:`SEARCH_SPACE` (sampled by :func:`suggest_params`); every
cell gets the same number of Optuna trials (:mod:`metarec.experiments.tuning`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from metarec.experiments.methods import Method

#: The most inner steps any cell may take on a test user's support set.
MAX_TEST_STEPS = 10
#: Largest number of epochs of (meta-)training; early stopping on validation MAE stops sooner.
MAX_EPOCHS = 30
#: Epochs without improvement of the validation MAE before training stops.
PATIENCE = 4

#: Base models of the grid and their display names.
GRID_MODELS: dict[str, str] = {
    "item_mean": "Item mean + user offset",
    "mf": "Matrix factorisation",
    "neumf": "NeuMF",
    "wide_deep": "Wide & Deep",
    "melu": "MeLU network",
    "melu_ids": "MeLU network + ids",
}

#: Per model, the documented choices of adapted variables (name -> regex on variable paths):
#: ``user`` the user's own parameters (id embedding rows, offsets), ``decision`` the decision
#: layers (MLP head), ``all`` every trainable weight.
ADAPT_SETS: dict[str, dict[str, str]] = {
    "item_mean": {"user": "/user_", "all": "all"},
    "mf": {"user": "/user_", "all": "all"},
    "neumf": {"user": "/user_", "decision": "/decision", "all": "all"},
    "wide_deep": {"decision": "/decision", "all": "all"},
    "melu": {"decision": "/decision", "all": "all"},
    "melu_ids": {"user": "/user_id", "decision": "/decision", "all": "all"},
}


@dataclass(frozen=True)
class Scheme:
    """A training scheme: the learner class and how it is shown."""

    name: str
    label: str
    learner: str
    meta: bool
    #: The only models this scheme is applied to (None: every model of the grid).
    models: tuple[str, ...] | None = None


SCHEMES: dict[str, Scheme] = {s.name: s for s in [
    Scheme("finetune", "Conventional + fine-tune", "FineTune", meta=False),
    Scheme("maml", "MAML", "MAML", meta=True),
    Scheme("fomaml", "First-order MAML", "FOMAML", meta=True),
    Scheme("reptile", "Reptile", "Reptile", meta=True),
    Scheme("metasgd", "Meta-SGD", "MetaSGD", meta=True),
    Scheme("melu", "MeLU (MAML, decision layers)", "MAML", meta=True, models=("melu",)),
    Scheme("np", "Neural process", "NeuralProcess", meta=True, models=("melu",)),
]}


@dataclass(frozen=True)
class Cell:
    """One (model, scheme) pair of the grid; ``name`` is ``"model/scheme"``."""

    model: str
    scheme: str

    @property
    def name(self) -> str:
        return f"{self.model}/{self.scheme}"

    @property
    def label(self) -> str:
        return f"{GRID_MODELS[self.model]}, {SCHEMES[self.scheme].label}"

    @property
    def adapt_choices(self) -> list[str]:
        """Names of the adapted-variable sets the tuner may choose from."""
        space = SEARCH_SPACE[self.scheme]["adapt"]
        return list(ADAPT_SETS[self.model]) if space == "ADAPT_SETS" else list(space)

    @property
    def adapt_sets(self) -> dict[str, str]:
        """The adapted-variable sets this cell may use: name -> regex on variable paths."""
        return ADAPT_SETS[self.model]

    @classmethod
    def parse(cls, name: str) -> Cell:
        model, _, scheme = name.partition("/")
        cell = cls(model, scheme)
        if cell not in grid_cells():
            raise ValueError(f"Unknown grid cell {name!r}; cells are 'model/scheme' with model "
                             f"in {list(GRID_MODELS)} and scheme in {list(SCHEMES)} ('melu' "
                             "and 'np' only for model 'melu').")
        return cell


def grid_cells(models: list[str] | None = None, schemes: list[str] | None = None) -> list[Cell]:
    """All cells of the grid (optionally only some models or schemes), in table order."""
    models = list(GRID_MODELS) if models is None else models
    schemes = list(SCHEMES) if schemes is None else schemes
    for m in models:
        if m not in GRID_MODELS:
            raise ValueError(f"Unknown grid model {m!r}; choose from {list(GRID_MODELS)}.")
    for s in schemes:
        if s not in SCHEMES:
            raise ValueError(f"Unknown scheme {s!r}; choose from {list(SCHEMES)}.")
    return [Cell(m, s) for m in models for s in schemes
            if SCHEMES[s].models is None or m in SCHEMES[s].models]


#: The search space of every scheme, as documented in chapter 8. Ranges are log-uniform for
#: learning rates and for the neural process's ``representation_dim``, uniform for inner steps;
#: ``test_steps`` is not sampled: after training, the validation MAE is computed for
#: 0..MAX_TEST_STEPS steps in one pass and the best is kept. The neural process has no inner
#: rate and no inner steps: it samples the outer rate and the size of its representation.
SEARCH_SPACE: dict[str, dict[str, Any]] = {
    "finetune": {"inner_lr": (1e-6, 1.0), "outer_lr": (1e-4, 3e-2), "adapt": "ADAPT_SETS"},
    "maml": {"inner_lr": (1e-6, 1.0), "outer_lr": (1e-4, 3e-2), "inner_steps": (1, 3),
             "adapt": "ADAPT_SETS"},
    "fomaml": {"inner_lr": (1e-6, 1.0), "outer_lr": (1e-4, 3e-2), "inner_steps": (1, 3),
               "adapt": "ADAPT_SETS"},
    "metasgd": {"inner_lr": (1e-6, 1.0), "outer_lr": (1e-4, 3e-2), "inner_steps": (1, 3),
                "adapt": "ADAPT_SETS"},
    "reptile": {"inner_lr": (1e-6, 1.0), "outer_lr": (1e-2, 1.0), "inner_steps": (2, 5),
                "adapt": "ADAPT_SETS"},
    "melu": {"inner_lr": (1e-6, 1.0), "outer_lr": (1e-5, 3e-2), "inner_steps": (1, 3),
             "adapt": ["decision"]},
    "np": {"outer_lr": (1e-4, 3e-2), "representation_dim": (8, 128), "adapt": ["all"]},
}

#: The first trial of every study (Optuna ``enqueue_trial``): a sensible hand-set start, so no
#: cell depends on random search to find the usual setting. The ``melu`` row starts from the
#: paper's rates (local 5e-6, global Adam 5e-5, 5 local steps there; 3 is our cap).
FIRST_TRIAL: dict[str, dict[str, Any]] = {
    "finetune": {"inner_lr": 1e-2, "outer_lr": 1e-3},
    "maml": {"inner_lr": 1e-2, "outer_lr": 1e-3, "inner_steps": 1},
    "fomaml": {"inner_lr": 1e-2, "outer_lr": 1e-3, "inner_steps": 1},
    "metasgd": {"inner_lr": 1e-2, "outer_lr": 1e-3, "inner_steps": 1},
    "reptile": {"inner_lr": 1e-2, "outer_lr": 0.3, "inner_steps": 3},
    "melu": {"inner_lr": 5e-6, "outer_lr": 5e-5, "inner_steps": 3, "adapt": "decision"},
    "np": {"outer_lr": 1e-3, "representation_dim": 32, "adapt": "all"},
}


def first_trial(cell: Cell) -> dict[str, Any]:
    """The enqueued first trial of ``cell`` (adapted set: the model's own ``ADAPT`` choice)."""
    params = dict(FIRST_TRIAL[cell.scheme])
    params.setdefault("adapt", _default_adapt(cell))
    return params


def _default_adapt(cell: Cell) -> str:
    return "user" if "user" in cell.adapt_choices else cell.adapt_choices[0]


def suggest_params(trial: Any, cell: Cell) -> dict[str, Any]:
    """Sample one configuration of ``cell`` from :data:`SEARCH_SPACE` with an Optuna trial."""
    space = SEARCH_SPACE[cell.scheme]
    params = {}
    if "inner_lr" in space:
        params["inner_lr"] = trial.suggest_float("inner_lr", *space["inner_lr"], log=True)
    params["outer_lr"] = trial.suggest_float("outer_lr", *space["outer_lr"], log=True)
    params["adapt"] = trial.suggest_categorical("adapt", cell.adapt_choices)
    if "inner_steps" in space:
        params["inner_steps"] = trial.suggest_int("inner_steps", *space["inner_steps"])
    if "representation_dim" in space:
        params["representation_dim"] = trial.suggest_int(
            "representation_dim", *space["representation_dim"], log=True)
    return params


def cell_method(cell: Cell, params: dict[str, Any], test_steps: int | None = None) -> Method:
    """The :class:`~metarec.experiments.Method` of ``cell`` with hyper-parameters ``params``.

    ``params`` holds ``inner_lr``, ``outer_lr``, ``adapt`` (a name of the model's
    :data:`ADAPT_SETS`) and, for meta-learners, ``inner_steps`` (training); the neural process
    takes ``outer_lr``, ``adapt`` (``"all"``) and ``representation_dim``. ``test_steps`` is
    the number of inner steps at test time (default: the training ``inner_steps``, or
    :data:`MAX_TEST_STEPS` for fine-tuning). The item-mean model is fitted in closed form
    (conventional scheme) or starts from the closed form (meta-learners).
    """
    scheme = SCHEMES[cell.scheme]
    adapt = params["adapt"]
    if adapt not in cell.adapt_sets:
        raise ValueError(f"{cell.name}: adapt={adapt!r} is not one of {cell.adapt_choices}.")
    # A meta scheme without inner steps (the neural process) conditions in one forward pass:
    # its "1 step" means "read the support set".
    train_steps = int(params.get("inner_steps", 1 if scheme.meta else 0))
    if test_steps is None:
        test_steps = MAX_TEST_STEPS if not scheme.meta else train_steps
    if not 0 <= test_steps <= MAX_TEST_STEPS:
        raise ValueError(f"test_steps must be in 0..{MAX_TEST_STEPS}, got {test_steps}.")
    epochs = 0 if (cell.model == "item_mean" and not scheme.meta) else MAX_EPOCHS
    # The neural process has no inner rate (1.0 is a placeholder it ignores).
    extra = ({"representation_dim": int(params["representation_dim"])}
             if "representation_dim" in params else {})
    return Method(
        name=cell.name, label=cell.label, model=cell.model, learner=scheme.learner,
        inner_lr=float(params.get("inner_lr", 1.0)),
        # FineTune's inner loop only runs at test time: its steps are the test steps.
        inner_steps=train_steps if scheme.meta else int(test_steps),
        outer_lr=float(params["outer_lr"]), epochs=epochs,
        adapt=cell.adapt_sets[adapt], eval_steps=int(test_steps), learner_kwargs=extra,
    )


__all__ = [
    "ADAPT_SETS",
    "Cell",
    "FIRST_TRIAL",
    "GRID_MODELS",
    "MAX_EPOCHS",
    "MAX_TEST_STEPS",
    "PATIENCE",
    "SCHEMES",
    "SEARCH_SPACE",
    "Scheme",
    "cell_method",
    "first_trial",
    "grid_cells",
    "suggest_params",
]
