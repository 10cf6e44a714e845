"""Meta-training under a ``tf.distribute.Strategy``: several GPUs, CPU devices or machines.

Every meta-learner trains data-parallel with TensorFlow's own distribution engine; this module
holds no communication code and no training step, only what surrounds it: choosing the
strategy (:func:`make_strategy`, :func:`resolve_strategy`, ``TF_CONFIG`` for several machines),
checking that the variables are mirrored, and the input pipeline. The step itself is
``MetaLearner.train_step``, which ``MetaLearner.fit`` runs through ``strategy.run`` on one device
too (TensorFlow's default strategy), as Keras's trainer does. One training step of a global
meta-batch of ``T`` tasks is:

1. the ``T`` tasks are cut into ``R`` contiguous chunks, one per replica (``R`` =
   ``strategy.num_replicas_in_sync``), fed by ``strategy.distribute_datasets_from_function``
   from a ``tf.data`` pipeline that prefetches the next meta-batch while this one trains
   (:func:`distribute_batches`);
2. ``strategy.run`` makes each replica adapt its tasks and compute the meta-gradient of its
   chunk, weighted by its share ``w_r`` of the batch (its tasks over all tasks, or its rating
   rows for the pooled loss of :class:`~metarec.meta.FineTune`), so that the weighted chunk
   gradients sum to the single-device gradient of the whole batch;
3. the Keras optimizer, called inside the replica context, all-reduces (sums) the gradients
   with the replica context's ``all_reduce`` and applies one update to the mirrored
   variables; ``strategy.reduce`` sums the weighted losses into the logged meta-loss.
   A non-finite loss or gradient on any replica stops the step before the update.

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
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

from metarec._validate import check_int

# Strategy names accepted by make_strategy and ``python -m metarec train --strategy``: defined
# beside the command line, which must not import TensorFlow.
from metarec.train import STRATEGIES

if TYPE_CHECKING:  # pragma: no cover
    from metarec.data.tasks import TaskBatch

__all__ = [
    "STRATEGIES",
    "check_created_in_scope",
    "communicated_bytes",
    "configure_logical_cpus",
    "distribute_batches",
    "is_chief",
    "is_default_strategy",
    "make_strategy",
    "max_logical_cpus",
    "resolve_strategy",
    "split_batch",
    "steps_per_epoch",
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


def max_logical_cpus() -> int:
    """The most logical CPU devices :func:`make_strategy` splits the CPU into: the cores of
    this machine, at least 8 (the replicas share the cores; demonstrations use 2 to 4)."""
    return max(os.cpu_count() or 1, 8)


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
        devices (:func:`configure_logical_cpus`; must happen before TensorFlow starts); at
        most :func:`max_logical_cpus`, else a ``ValueError`` before anything starts.

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
        limit = max_logical_cpus()
        check_int("make_strategy", "devices", devices, 1, limit,
                  why=f"(logical CPU devices share this machine's {os.cpu_count() or 1} "
                      "cores: more give no speed-up, and thousands make TensorFlow hang)")
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


def communicated_bytes(learner: Any) -> int:
    """Bytes all-reduced per training step: one gradient per trainable number.

    ``learner`` is a built :class:`~metarec.meta.MetaLearner`: the model's trainable variables
    plus the learner's own (Meta-SGD's learning rates). The number does not depend on the
    meta-batch size nor on the inner steps.
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


def element_spec(batch: TaskBatch) -> tuple[Any, ...]:
    """The ``tf.TensorSpec`` structure of ``batch.as_tuple()`` with free task and length axes."""
    def spec(a: np.ndarray) -> tf.TensorSpec:
        # Task and padded-length axes vary from step to step (buckets, remainder batches).
        return tf.TensorSpec([None, None, *a.shape[2:]], tf.as_dtype(a.dtype))

    return tf.nest.map_structure(spec, batch.as_tuple())


def _tf_variable(v: Any) -> tf.Variable:
    # A Keras 3 variable wraps the TensorFlow (possibly mirrored) variable in `.value`.
    inner = getattr(v, "value", v)
    return inner if isinstance(inner, tf.Variable) else v


# ---------------------------------------------------------------------------- strategies
def is_default_strategy(strategy: tf.distribute.Strategy) -> bool:
    """True for TensorFlow's default strategy (one device, nothing mirrored).

    ``tf.distribute`` names the default strategy only as what ``get_strategy()`` returns
    outside every ``strategy.scope()``.
    """
    return not tf.distribute.has_strategy() and strategy is tf.distribute.get_strategy()


def resolve_strategy(strategy: tf.distribute.Strategy | None = None,
                     variables: Sequence[Any] = ()) -> tf.distribute.Strategy:
    """The strategy ``fit`` trains under.

    ``strategy`` if given; else the strategy whose scope is active; else the strategy that
    created ``variables`` (a built model's), so that a learner built inside
    ``strategy.scope()`` trains distributed when ``fit`` is called outside it; else
    TensorFlow's default strategy (one device).
    """
    if strategy is not None:
        return strategy
    if tf.distribute.has_strategy():
        return tf.distribute.get_strategy()
    if variables and isinstance(_tf_variable(variables[0]), tf.distribute.DistributedValues):
        return _tf_variable(variables[0]).distribute_strategy
    return tf.distribute.get_strategy()


def check_created_in_scope(strategy: tf.distribute.Strategy, variables: Sequence[Any],
                           optimizer: Any, where: str) -> None:
    """Refuse variables or an optimizer created outside ``strategy.scope()`` (not mirrored).

    ``where`` names the caller in the message (e.g. ``"MAML"``).
    """
    foreign = [v.path for v in variables
               if not strategy.extended.variable_created_in_scope(_tf_variable(v))]
    if foreign:
        raise ValueError(
            f"{where}: the variables {foreign[:3]} were created outside the scope of "
            f"{type(strategy).__name__}, so they are not mirrored. Create the model and the "
            "learner inside `with strategy.scope():` (or pass fit(strategy=...) a learner "
            "whose model is not built yet).")
    owner = getattr(optimizer, "_distribution_strategy", strategy)
    if owner is not strategy:
        raise ValueError(
            f"{where}: the optimizer was created outside the scope of "
            f"{type(strategy).__name__}; call learner.compile(...) inside "
            "`with strategy.scope():`.")


# ---------------------------------------------------------------------------- input pipeline
def steps_per_epoch(n_tasks: int, batch_size: int, replicas: int = 1) -> int:
    """Training steps of one epoch: every meta-batch, the last one if it feeds every replica."""
    full, rest = divmod(n_tasks, batch_size)
    return full + int(rest >= replicas)


def distribute_batches(strategy: tf.distribute.Strategy,
                       make_batches: Callable[[], Iterable[TaskBatch]],
                       sample: TaskBatch) -> Iterator[Any]:
    """One epoch of meta-batches for ``strategy``, each cut into one chunk per replica.

    ``make_batches()`` yields the epoch's global meta-batches (the same on every worker: same
    seed); ``sample`` is any batch of the same tasks (its dtypes and trailing shapes give the
    pipeline's element spec). Each worker's ``tf.data`` pipeline yields the chunks of its own
    replicas, in replica order, prefetched; a last meta-batch with fewer tasks than replicas is
    dropped. Yields ``PerReplica`` values for ``strategy.run``. An error raised by
    ``make_batches`` (e.g. a bad task) is raised again here, with its own type and message,
    after the batches before it.
    """
    replicas = int(strategy.num_replicas_in_sync)
    spec = element_spec(sample)
    failures: list[BaseException] = []

    def dataset_fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
        local = replicas // ctx.num_input_pipelines
        first = ctx.input_pipeline_id * local

        def chunks() -> Iterator[tuple[Any, ...]]:
            try:
                for batch in make_batches():
                    # Every replica needs at least one task.
                    if len(batch) >= replicas:
                        yield from split_batch(batch, replicas)[first:first + local]
            except Exception as err:  # tf.data would turn it into an opaque InvalidArgument
                failures.append(err)

        data = tf.data.Dataset.from_generator(chunks, output_signature=spec)
        return data.prefetch(tf.data.AUTOTUNE)

    options = tf.distribute.InputOptions(experimental_fetch_to_device=True)
    yield from strategy.distribute_datasets_from_function(dataset_fn, options)
    if failures:
        raise failures[0]
