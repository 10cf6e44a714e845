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

A worker of ``TF_CONFIG`` that never comes would make ``MultiWorkerMirroredStrategy()`` wait
forever, inside TensorFlow, deaf to Ctrl-C and SIGTERM (its coordination service waits for
every task to register). :func:`make_strategy` therefore first waits in Python
(:func:`wait_for_peers`): every other worker must accept a TCP connection on its port within
``peer_timeout`` seconds, else :class:`~metarec.train.PeersMissing` names those that did not
come; the strategy is created once all are there.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

from metarec._validate import check_int, check_positive

# Strategy names accepted by make_strategy and ``python -m metarec train --strategy``, the peer
# timeout and its error: defined beside the command line, which must not import TensorFlow.
from metarec.train import DEFAULT_PEER_TIMEOUT, STRATEGIES, PeersMissing

if TYPE_CHECKING:  # pragma: no cover
    from metarec.data.tasks import TaskBatch

__all__ = [
    "DEFAULT_PEER_TIMEOUT",
    "STRATEGIES",
    "PeersMissing",
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
    "wait_for_peers",
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


def make_strategy(name: str = "mirrored", devices: int | None = None, *,
                  peer_timeout: float | None = DEFAULT_PEER_TIMEOUT) -> tf.distribute.Strategy:
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
    peer_timeout : float or None, default 300
        ``"multi-worker"``: seconds to wait for the other workers of ``TF_CONFIG`` before the
        strategy is created (:func:`wait_for_peers`); one that does not come raises
        :class:`~metarec.train.PeersMissing` naming it. ``None`` waits without limit (still
        interruptible).

    Examples
    --------
    >>> strategy = make_strategy("default")
    >>> strategy.num_replicas_in_sync
    1
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}.")
    if peer_timeout is not None:
        check_positive("make_strategy", "peer_timeout", peer_timeout, why="(seconds)")
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
    # Once per process: a second strategy finds the cluster already joined (and this worker's
    # port held by its own server).
    from tensorflow.python.eager import context

    if getattr(context.context(), "_collective_ops_server_def", None) is None:
        wait_for_peers(peer_timeout, tf_config=config)
    else:
        _read_tf_config(config)
    return tf.distribute.MultiWorkerMirroredStrategy()


#: The jobs of ``TF_CONFIG`` whose tasks join the collectives (an evaluator does not).
_COLLECTIVE_JOBS = ("chief", "worker")


def _read_tf_config(config: str) -> tuple[dict[str, list[str]], str, int]:
    """``TF_CONFIG``'s cluster (job -> addresses), this task's type and index; checked."""
    example = ('e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": '
               '{"type": "worker", "index": 0}}')
    try:
        parsed = json.loads(config)
    except json.JSONDecodeError as err:
        raise ValueError(f"TF_CONFIG is not valid JSON ({err}): {config!r}.") from err
    cluster = parsed.get("cluster") if isinstance(parsed, dict) else None
    task = parsed.get("task") if isinstance(parsed, dict) else None
    if (not isinstance(cluster, dict) or not isinstance(task, dict)
            or not all(isinstance(a, list) and all(isinstance(x, str) for x in a)
                       for a in cluster.values())):
        raise ValueError(f"TF_CONFIG must name the cluster (each job a list of 'host:port' "
                         f"addresses) and this task, {example}; got {config!r}.")
    kind, index = task.get("type"), task.get("index", 0)
    if not isinstance(kind, str) or isinstance(index, bool) or not isinstance(index, int):
        raise ValueError(f"TF_CONFIG's task must have a 'type' (e.g. \"worker\") and an "
                         f"integer 'index', {example}; got {task!r}.")
    if kind in _COLLECTIVE_JOBS and not 0 <= index < len(cluster.get(kind, [])):
        raise ValueError(f"TF_CONFIG's task is {kind} {index}, but its cluster lists "
                         f"{len(cluster.get(kind, []))} {kind} address(es): index from 0 to "
                         f"{len(cluster.get(kind, [])) - 1}; got {config!r}.")
    for job in _COLLECTIVE_JOBS:
        for address in cluster.get(job, []):
            _host_port(address)
    return cluster, kind, index


def _host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"TF_CONFIG: {address!r} is not a 'host:port' address (e.g. "
                         "'host1:12345').")
    return host.strip("[]"), int(port)


def _open_own_port(port: int) -> socket.socket:
    """Listen on this worker's port until the strategy takes it over, so that the other
    workers, waiting for this one the same way, see it (else each would wait for the other)."""
    if socket.has_dualstack_ipv6():
        return socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True)
    return socket.create_server(("", port))


def _refusal(host: str, port: int, timeout: float) -> str | None:
    """None when ``host:port`` accepts a TCP connection, else why not (one phrase)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.gaierror:
        return f"unknown host {host!r}"
    except TimeoutError:
        return "no answer"
    except OSError as err:
        return (err.strerror or str(err)).lower()


def wait_for_peers(timeout: float | None = DEFAULT_PEER_TIMEOUT, *,
                   tf_config: str | None = None, poll: float = 0.2) -> None:
    """Wait until every other worker of ``TF_CONFIG``'s cluster accepts connections.

    While it waits, this worker listens on its own port (which the strategy takes over
    next), so workers that start in any order see each other; a wait prints one line on
    stderr saying for whom. Called by
    :func:`make_strategy` before ``MultiWorkerMirroredStrategy()``, whose own wait cannot be
    bounded nor interrupted.

    Parameters
    ----------
    timeout : float or None, default 300
        Seconds to wait; ``None``: no limit. Ctrl-C (``KeyboardInterrupt``) or a SIGTERM
        handler that raises end the wait within ``poll`` seconds.
    tf_config : str, optional
        The ``TF_CONFIG`` JSON; default: the environment variable.
    poll : float
        Seconds between two attempts to reach a missing worker; once all are there, this
        worker stays visible ``max(1, 5 * poll)`` seconds more (for those that have not seen
        it yet) before it returns.

    Raises
    ------
    metarec.train.PeersMissing
        A worker did not come within ``timeout`` (the message names each one, its address
        and what answered there, and the fix), or this worker's own port is taken.
    ValueError
        ``TF_CONFIG`` is missing or malformed.
    """
    if timeout is not None:
        check_positive("wait_for_peers", "timeout", timeout, why="(seconds)")
    config = os.environ.get("TF_CONFIG", "") if tf_config is None else tf_config
    if not config:
        raise ValueError("wait_for_peers: TF_CONFIG is not set.")
    cluster, kind, index = _read_tf_config(config)
    if kind not in _COLLECTIVE_JOBS:  # an evaluator: it joins no collective
        return
    missing = {(job, i): address for job in _COLLECTIVE_JOBS
               for i, address in enumerate(cluster.get(job, [])) if (job, i) != (kind, index)}
    if not missing:
        return
    own = cluster[kind][index]
    try:
        listener = _open_own_port(_host_port(own)[1])
    except OSError as err:
        raise PeersMissing(
            f"multi-worker: this worker ({kind} {index} of TF_CONFIG, {own}) cannot listen on "
            f"its port ({(err.strerror or str(err)).lower()}): another process holds it. End "
            "that process (an earlier run?) or give this worker a free port in TF_CONFIG, the "
            "same on every machine.") from None
    deadline = None if timeout is None else time.monotonic() + timeout
    why: dict[tuple[str, int], str] = {}
    told = False
    with listener:
        while True:
            for key, address in list(missing.items()):
                left = 2.0 if deadline is None else deadline - time.monotonic()
                reason = _refusal(*_host_port(address), timeout=min(2.0, max(0.1, left)))
                if reason is None:
                    del missing[key]
                else:
                    why[key] = reason
            if missing and not told:  # one line, so that a wait is never silent
                told = True
                limit = "without limit" if timeout is None else f"up to {timeout:g} s"
                print(f"multi-worker: waiting {limit} for {len(missing)} other worker(s) of "
                      f"TF_CONFIG ({', '.join(missing.values())})", file=sys.stderr,
                      flush=True)
            if not missing:
                # A worker that found this one on its first look may not have been seen by the
                # others yet: stay visible a little longer (the strategy's server takes the
                # port over right after, so a late look finds it anyway).
                time.sleep(max(1.0, 5 * poll))
                return
            if deadline is not None and time.monotonic() >= deadline:
                break
            time.sleep(poll)
    peers = ", ".join(f"{job} {i} at {address} ({why[(job, i)]})"
                      for (job, i), address in missing.items())
    others = sum(len(cluster.get(job, [])) for job in _COLLECTIVE_JOBS) - 1
    raise PeersMissing(
        f"multi-worker: {len(missing)} of the {others} other worker(s) of TF_CONFIG did not "
        f"come within {timeout:g} s: {peers}. Start the same command there with TF_CONFIG's "
        "task set to that job and index (the same cluster on every machine), check the host "
        "names and ports in TF_CONFIG and that no firewall blocks them, or wait longer "
        "(--peer-timeout SECONDS; make_strategy(peer_timeout=...)).")


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
