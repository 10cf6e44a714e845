"""Input checks of the meta-learners: one clear message per mistake, before any computation.

Each function takes the learner first (for its display name and state) and raises a
``TypeError`` or ``ValueError`` naming the problem and the fix. :class:`InputChecks` gives the
learner its public entry points: :meth:`InputChecks.prepare` (a checked meta-batch as tensors)
and :meth:`InputChecks.check_tasks`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from metarec.data.tasks import TaskBatch, TaskSet, TaskSource


def check_adapt_spec(where: str, spec: Any) -> None:
    """Refuse an ``adapt=`` value of the wrong type or an invalid regular expression early."""
    if isinstance(spec, str):
        try:
            re.compile(spec)
        except re.error as err:
            raise ValueError(f"{where}: adapt={spec!r} is not a valid regular expression "
                             f"({err}); pass 'all', a regex searched in variable paths, a "
                             "callable or a list of the model's variables.") from None
    elif not callable(spec) and not (isinstance(spec, Sequence)
                                     and all(hasattr(v, "path") for v in spec)):
        raise TypeError(f"{where}: adapt must be 'all', a regular expression, a callable "
                        f"variable -> bool, or a list of the model's variables; got {spec!r}.")


def check_model_on(learner: Any, x: dict[str, Any]) -> None:
    """Call (and so build) the model on rows ``x`` (``[N, ...]``); check its output shape."""
    name, model = learner.display_name, learner.model
    sample = {k: np.asarray(v) for k, v in x.items()}
    try:
        out = model(sample)
    except Exception as err:  # the model's own message is kept below
        shapes = {k: tuple(v.shape) for k, v in sample.items()}
        raise ValueError(
            f"{name}: the task features {shapes} do not fit model {model.name!r}: {err}. Build "
            "the model from the FeatureSpec of the same FeatureEncoder that encoded these tasks."
        ) from err
    n = len(next(iter(sample.values())))
    if tuple(out.shape) not in ((n,), (n, 1)):
        raise ValueError(
            f"{name}: model {model.name!r} returned shape {tuple(out.shape)} for {n} ratings; "
            f"a recommender must return one rating per row, shape ({n},) or ({n}, 1)."
        )


def check_support(learner: Any, batch: TaskBatch) -> None:
    """Refuse a meta-batch with a task whose support set is empty (when there is adaptation)."""
    empty = np.flatnonzero(batch.support_mask.sum(axis=1) == 0)
    if len(empty) and learner.inner_steps > 0:
        users = batch.user_ids[empty][:10].tolist()
        raise ValueError(
            f"{learner.display_name}: the support set of {len(empty)} task(s) is empty or all "
            f"padding (users {users}); there is nothing to adapt on. Build tasks with "
            "min_ratings > n_query, or drop these users."
        )


def check_tasks(learner: Any, tasks: Any, where: str, name: str = "tasks",
                stream: bool = False) -> None:
    """A non-empty TaskSet (any :class:`~metarec.data.TaskSource` with ``stream``)
    encoded by the same FeatureEncoder as the learner's earlier tasks."""
    if not isinstance(tasks, TaskSource if stream else TaskSet):
        hint = (" (a TaskBatch: pass the TaskSet it came from)"
                if isinstance(tasks, TaskBatch) else "")
        kinds = "a TaskSet or a TaskStream" if stream else "a TaskSet"
        raise TypeError(f"{where}: {name} must be {kinds} (from build_tasks or "
                        f"scenario_tasks), got {type(tasks).__name__}{hint}.")
    if len(tasks) == 0:
        label = "" if name == "tasks" else f" {name}"
        raise ValueError(f"{where}: the {type(tasks).__name__}{label} is empty; check the "
                         "filters of build_tasks (min_ratings, max_ratings, support_size).")
    fingerprint = tasks.encoder_fingerprint
    if fingerprint is None:
        return  # hand-built tasks: nothing to compare
    if learner.encoder_fingerprint is None:
        learner.encoder_fingerprint = fingerprint
    elif fingerprint != learner.encoder_fingerprint:
        raise ValueError(
            f"{where}: {name} were encoded by another FeatureEncoder (fingerprint "
            f"{fingerprint}) than the tasks this learner was trained or evaluated on "
            f"({learner.encoder_fingerprint}); their ids and features mean other things to "
            "the model. Build them with the encoder of the training data (the one whose "
            f"encoder.fingerprint is {learner.encoder_fingerprint!r}).")


class InputChecks:
    """Checked inputs (mixed into :class:`~metarec.meta.MetaLearner`)."""

    def check_batch(self, batch: TaskBatch) -> None:
        """Refuse tasks with nothing to adapt on; build the model on the first call."""
        check_support(self, batch)
        self._build({k: v[0] for k, v in batch.support_x.items()})

    def prepare(self, batch: TaskBatch) -> tuple[Any, ...]:
        """A checked meta-batch as the tensors that ``train_step`` and ``test_step`` take.

        ``(support_x, support_y, support_mask, query_x, query_y, query_mask)``, shapes
        ``[T, S, ...]`` and ``[T, Q, ...]``. Builds the model on the first call.
        """
        self.check_batch(batch)
        return tuple(
            tf.nest.map_structure(tf.convert_to_tensor, part) for part in batch.as_tuple()
        )

    def _prepare(self, batch: TaskBatch) -> tuple[Any, ...]:
        # The former name of prepare (the book's chapter 11 builds a model with it).
        return self.prepare(batch)

    def check_tasks(self, tasks: Any, where: str, name: str = "tasks",
                    stream: bool = False) -> None:
        """A non-empty TaskSet (or, with ``stream``, any TaskSource) of this learner's encoder.

        The first tasks with an encoder fingerprint fix the learner's
        (``encoder_fingerprint``); later ones must match it. ``where`` and ``name`` say
        who checks what in the messages.
        """
        check_tasks(self, tasks, where, name, stream)
