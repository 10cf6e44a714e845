"""Meta-training under a ``tf.distribute.Strategy``: several GPUs, CPU devices or machines.

Every meta-learner trains data-parallel with TensorFlow's own distribution engine; this module
holds no communication code. One training step of a global meta-batch of ``T`` tasks is:

1. the ``T`` tasks are cut into ``R`` contiguous chunks, one per replica (``R`` =
   ``strategy.num_replicas_in_sync``), fed by ``strategy.distribute_datasets_from_function``
   from a ``tf.data`` pipeline that prefetches the next meta-batch while this one trains;
2. ``strategy.run`` makes each replica adapt its tasks and compute the meta-gradient of its
   chunk, weighted by its share ``w_r`` of the batch (its tasks over all tasks, or its rating
   rows for the pooled loss of :class:`~metarec.meta.FineTune`), so that the weighted chunk
   gradients sum to the single-device gradient of the whole batch;
3. the Keras optimizer, called inside the replica context, all-reduces (sums) the gradients
   with the replica context's ``all_reduce`` and applies one update to the mirrored
   variables; ``strategy.reduce`` sums the weighted losses into the logged meta-loss.

Per step a replica therefore *computes* ``T / R`` tasks times ``inner_steps`` inner gradient
steps (and the outer gradient through them), and *communicates* one all-reduce of the outer
gradients: as many numbers as the learner has trainable variables
(:func:`communicated_bytes`), independent of ``T`` and of the number of inner steps.

Use it in one of two ways::

    strategy = metarec.distribute.make_strategy("mirrored")   # or "multi-worker" (TF_CONFIG)
    with strategy.scope():                                    # variables become mirrored
        learner = MAML(MeLUNetwork(spec), inner_lr=5e-3)
        learner.compile(keras.optimizers.Adam(1e-3))
        learner.fit(train_tasks, epochs=10, batch_size=32)    # uses the scope's strategy

or ``learner.fit(..., strategy=strategy)`` with a learner whose model is not built yet (it is
then built inside ``strategy.scope()``). From the shell: ``python -m metarec train``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

from metarec.data.buckets import bucketed_batches

# Strategy names accepted by make_strategy and ``python -m metarec train --strategy``: defined
# beside the command line, which must not import TensorFlow.
from metarec.train import STRATEGIES

if TYPE_CHECKING:  # pragma: no cover
    from metarec.data.tasks import TaskBatch, TaskSet
    from metarec.meta.base import MetaLearner

__all__ = [
    "STRATEGIES",
    "DistributedTrainer",
    "communicated_bytes",
    "configure_logical_cpus",
    "make_strategy",
    "split_batch",
]



def configure_logical_cpus(n: int) -> None:
    """Split the host CPU into ``n`` logical devices, so ``MirroredStrategy`` has ``n`` replicas.

    For tests and demonstrations on a machine without GPUs (the replicas share the same cores:
    no speed-up is to be expected). Must run before TensorFlow initialises its devices, i.e.
    before the first tensor is created.
    """
    if n < 1:
        raise ValueError(f"configure_logical_cpus: n must be >= 1, got {n}.")
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == n:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
    except RuntimeError as err:
        raise RuntimeError(
            f"configure_logical_cpus({n}): TensorFlow has already initialised its devices "
            f"({err}). Call it at the start of the program, before any tensor is created "
            "(e.g. right after `import metarec`)."
        ) from err


def make_strategy(name: str = "mirrored", devices: int | None = None) -> tf.distribute.Strategy:
    """Create a distribution strategy by name.

    Parameters
    ----------
    name : {"default", "mirrored", "multi-worker"}
        ``"default"``: no distribution (the default strategy, one device). ``"mirrored"``:
        ``MirroredStrategy`` over every GPU, or over the logical CPU devices when there is no
        GPU. ``"multi-worker"``: ``MultiWorkerMirroredStrategy``; each process reads its
        cluster and its own role from the ``TF_CONFIG`` environment variable (one worker per
        machine, every worker runs the same command).
    devices : int, optional
        ``"mirrored"`` on a machine without GPUs: first split the CPU into this many logical
        devices (:func:`configure_logical_cpus`; must happen before TensorFlow starts).

    Examples
    --------
    >>> strategy = make_strategy("default")
    >>> strategy.num_replicas_in_sync
    1
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}.")
    if devices is not None:
        if name != "mirrored":
            raise ValueError("devices= splits the CPU for the 'mirrored' strategy only; "
                             f"got strategy {name!r}.")
        configure_logical_cpus(devices)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        names = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(names)
    config = os.environ.get("TF_CONFIG")
    if not config:
        raise ValueError(
            "The 'multi-worker' strategy needs the environment variable TF_CONFIG naming the "
            "cluster and this worker, e.g. TF_CONFIG='{\"cluster\": {\"worker\": "
            "[\"host1:12345\", \"host2:12345\"]}, \"task\": {\"type\": \"worker\", "
            "\"index\": 0}}' (index 1 on the second machine).")
    try:
        json.loads(config)
    except json.JSONDecodeError as err:
        raise ValueError(f"TF_CONFIG is not valid JSON ({err}): {config!r}.") from err
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker that writes files (worker 0, or the only process)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type in (None, "chief") or (task_type == "worker" and task_id == 0)


def communicated_bytes(learner: MetaLearner) -> int:
    """Bytes all-reduced per training step: one gradient per trainable number.

    The model's trainable variables plus the learner's own (Meta-SGD's learning rates). The
    number does not depend on the meta-batch size nor on the inner steps.
    """
    variables = list(learner.model.trainable_variables) + list(learner.extra_variables)
    return int(sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables))


def split_batch(batch: TaskBatch, parts: int) -> list[tuple[Any, ...]]:
    """Cut a meta-batch into ``parts`` contiguous chunks of tasks (sizes differ by at most 1).

    Each chunk is ``batch.as_tuple()`` restricted to its tasks (numpy arrays).
    """
    if len(batch) < parts:
        raise ValueError(f"split_batch: {len(batch)} tasks cannot feed {parts} replicas; use "
                         f"a meta-batch of at least {parts} tasks.")
    bounds = np.linspace(0, len(batch), parts + 1).round().astype(int)
    whole = batch.as_tuple()
    return [tf.nest.map_structure(lambda a, lo=lo, hi=hi: a[lo:hi], whole)
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]


def _element_spec(batch: TaskBatch) -> tuple[Any, ...]:
    def spec(a: np.ndarray) -> tf.TensorSpec:
        # Task and padded-length axes vary from step to step (buckets, remainder batches).
        return tf.TensorSpec([None, None, *a.shape[2:]], tf.as_dtype(a.dtype))

    return tf.nest.map_structure(spec, batch.as_tuple())


def _tf_variable(v: Any) -> tf.Variable:
    # A Keras 3 variable wraps the TensorFlow (possibly mirrored) variable in `.value`.
    inner = getattr(v, "value", v)
    return inner if isinstance(inner, tf.Variable) else v


def _to_dense(g: Any) -> Any:
    # Embedding gradients arrive as IndexedSlices; all-reduce them as the dense tensor they are.
    return None if g is None else tf.convert_to_tensor(g)


class DistributedTrainer:
    """Runs a learner's training steps under ``strategy`` (used by ``MetaLearner.fit``).

    Parameters
    ----------
    learner : MetaLearner
        Compiled learner; its variables must be created under ``strategy.scope()`` (an
        unbuilt model is built there by :meth:`build`).
    strategy : tf.distribute.Strategy
        The strategy; ``strategy.num_replicas_in_sync`` replicas share every meta-batch.
    bucket : bool
        Group tasks by support size so each meta-batch pads to its own longest support set
        (:func:`metarec.data.buckets.bucketed_batches`).
    """

    def __init__(self, learner: MetaLearner, strategy: tf.distribute.Strategy,
                 bucket: bool = False):
        self.learner = learner
        self.strategy = strategy
        self.bucket = bool(bucket)
        self.replicas = int(strategy.num_replicas_in_sync)
        self._step = None

    # ------------------------------------------------------------------ variables
    def build(self, tasks: TaskSet) -> None:
        """Create model, learner and optimizer variables under the strategy's scope."""
        learner = self.learner
        if learner.optimizer is None:
            with self.strategy.scope():
                learner.compile()
        with self.strategy.scope():
            learner._prepare(tasks.batch(np.arange(min(len(tasks), 2))))
            variables = list(learner.model.trainable_variables) + learner.extra_variables
            foreign = [v.path for v in variables + list(learner.model.non_trainable_variables)
                       if not self.strategy.extended.variable_created_in_scope(_tf_variable(v))]
            if foreign:
                raise ValueError(
                    f"{learner.display_name}: the variables {foreign[:3]} were created outside "
                    f"the scope of {type(self.strategy).__name__}, so they are not mirrored. "
                    "Create the model and the learner inside `with strategy.scope():` (or "
                    "pass fit(strategy=...) a learner whose model is not built yet).")
            owner = getattr(learner.optimizer, "_distribution_strategy", self.strategy)
            if owner is not self.strategy:
                raise ValueError(
                    f"{learner.display_name}: the optimizer was created outside the scope of "
                    f"{type(self.strategy).__name__}; call learner.compile(...) inside "
                    "`with strategy.scope():`.")
            if not learner.optimizer.built:
                learner.optimizer.build(variables)

    # ------------------------------------------------------------------ input pipeline
    def _global_batches(self, tasks: TaskSet, batch_size: int, shuffle: bool,
                        seed: int) -> Iterator[TaskBatch]:
        if self.bucket and hasattr(tasks, "tasks"):  # a TaskStream buckets its own batches
            batches = bucketed_batches(tasks, batch_size, shuffle=shuffle, seed=seed, multiple=8)
        else:
            batches = tasks.batches(batch_size, shuffle=shuffle, seed=seed)
        for batch in batches:
            # Every replica needs at least one task; a smaller last meta-batch is dropped.
            if len(batch) >= self.replicas:
                yield batch

    def batches(self, tasks: TaskSet, batch_size: int, shuffle: bool = True,
                seed: int = 0) -> Iterator[Any]:
        """One epoch of distributed meta-batches (``PerReplica`` values), prefetched.

        Every worker draws the same global meta-batches (same ``seed``) and its input
        pipeline yields the chunks of its own replicas, in replica order.
        """
        if batch_size < self.replicas:
            raise ValueError(f"batch_size={batch_size} is smaller than the "
                             f"{self.replicas} replicas; every replica needs at least one task.")
        spec = _element_spec(tasks.batch([0]))

        def dataset_fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
            local = self.replicas // ctx.num_input_pipelines
            first = ctx.input_pipeline_id * local

            def chunks() -> Iterator[tuple[Any, ...]]:
                for batch in self._global_batches(tasks, batch_size, shuffle, seed):
                    yield from split_batch(batch, self.replicas)[first:first + local]

            data = tf.data.Dataset.from_generator(chunks, output_signature=spec)
            return data.prefetch(tf.data.AUTOTUNE)

        options = tf.distribute.InputOptions(experimental_fetch_to_device=True)
        dist = self.strategy.distribute_datasets_from_function(dataset_fn, options)
        return iter(dist)

    def steps_per_epoch(self, tasks: TaskSet, batch_size: int) -> int:
        """Training steps of one epoch (the last meta-batch counts if it feeds every replica)."""
        full, rest = divmod(len(tasks), batch_size)
        return full + int(rest >= self.replicas)

    # ------------------------------------------------------------------ training step
    def _replica_step(self, batch: tuple[Any, ...]) -> tf.Tensor:
        learner = self.learner
        ctx = tf.distribute.get_replica_context()
        local = learner._replica_share(batch)
        weight = local / ctx.all_reduce(tf.distribute.ReduceOp.SUM, local)
        variables = learner.model.trainable_variables
        extra_vars = learner.extra_variables
        theta = [tf.convert_to_tensor(v) for v in variables]
        extra = [tf.convert_to_tensor(v) for v in extra_vars]
        nt = [tf.convert_to_tensor(v) for v in learner.model.non_trainable_variables]
        loss, grads, extra_grads = learner._meta_loss_and_grads(theta, extra, nt, batch)
        pairs = [(_to_dense(g), v) for g, v in zip(grads, variables, strict=True)
                 if g is not None]
        pairs += [(_to_dense(g), v) for g, v in zip(extra_grads, extra_vars, strict=True)
                  if g is not None]
        # The weighted chunk gradients sum to the whole batch's gradient; the optimizer sums
        # them over the replicas (replica context all-reduce) and applies one update.
        scaled = [g * tf.cast(weight, g.dtype) for g, _ in pairs]
        learner.optimizer.apply(scaled, [v for _, v in pairs])
        return tf.cast(loss, tf.float32) * weight

    def step(self, dist_batch: Any) -> tf.Tensor:
        """One optimizer step on a distributed meta-batch; returns the global meta-loss."""
        if self._step is None:
            def step(inputs):
                per_replica = self.strategy.run(self._replica_step, args=(inputs,))
                return self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

            self._step = tf.function(step, reduce_retracing=True)
        return self._step(dist_batch)


def resolve_strategy(strategy: tf.distribute.Strategy | None,
                     learner: MetaLearner | None = None) -> tf.distribute.Strategy | None:
    """The strategy ``fit`` trains under, or None (one device).

    ``strategy`` if given; else the strategy whose scope is active; else the strategy that
    created the learner's (already built) variables, so that a learner built inside
    ``strategy.scope()`` trains distributed when ``fit`` is called outside it.
    """
    if strategy is not None:
        return strategy
    if tf.distribute.has_strategy():
        return tf.distribute.get_strategy()
    built = learner.model.trainable_variables if learner is not None else []
    if built and isinstance(_tf_variable(built[0]), tf.distribute.DistributedValues):
        return _tf_variable(built[0]).distribute_strategy
    return None
