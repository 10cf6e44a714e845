"""A neural process: amortized meta-learning, adaptation in one forward pass (no inner loop).

The gradient-based learners adapt to a user by gradient steps on the support set. A
*conditional neural process* (Garnelo et al., 2018) instead learns a function that reads the
support set and returns a task representation; TaNP (Lin et al., WWW 2021) does this for
cold-start recommendation and modulates the rating predictor with it. ``NeuralProcess`` is the
deterministic (conditional) variant with TaNP's FiLM modulation, on the MeLU network's body:

1. **encode** every support rating: ``c_ui = e([embed(x_ui); r_ui])``, an MLP on the MeLU
   network's feature embeddings and the rating;
2. **aggregate** with a masked mean that counts a learned prior vector ``c_0`` as one extra
   observation: ``c_u = (c_0 + sum_i m_ui c_ui) / (1 + sum_i m_ui)`` (``m``: the support mask,
   so padding rows never count, and the order of the ratings does not matter); a user without
   support ratings gets ``c_u = c_0``;
3. **decode** a query item with the network's decision layers, each hidden layer modulated by
   FiLM: ``h <- h * (1 + gamma_l(c_u)) + delta_l(c_u)``, where ``gamma_l`` and ``delta_l`` are
   linear maps of ``c_u`` initialised to zero (so the untrained learner is exactly its network).

Everything (the network, ``e``, ``c_0`` and the FiLM maps) is trained by the outer optimizer on
the query loss given the support set, as MAML's query loss after adaptation; there is no
inner learning rate and no inner step. TaNP's latent (stochastic) path, its KL term and its
gating variant of the modulation are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from metarec._validate import check_int
from metarec.data.tasks import Task
from metarec.meta.adaptation import AdaptedModel
from metarec.meta.base import MetaLearner
from metarec.meta.saving import register_learner

__all__ = ["ConditionedModel", "NeuralProcess"]


def _rows(x: tf.Tensor) -> tf.Tensor:
    """``[T, N, ...]`` -> ``[T * N, ...]``."""
    return tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], axis=0))


class ConditionedModel(AdaptedModel):
    """The network conditioned on one user's task representation (``NeuralProcess.adapt``).

    ``representation`` is ``c_u`` (``[representation_dim]``); ``predict(x)`` gives ratings
    ``[N]`` for feature dict ``x`` (``[N, ...]`` per key). It holds no fast weights: the
    weights are the learner's, shared by every user.
    """

    def __init__(self, learner: NeuralProcess, representation: tf.Tensor):
        super().__init__(learner, [], [])
        self.representation = representation

    def predict(self, x: dict[str, np.ndarray]) -> np.ndarray:
        xt = {k: tf.convert_to_tensor(v)[None] for k, v in x.items()}
        return self.learner._decode(xt, self.representation[None])[0].numpy()


@register_learner
class NeuralProcess(MetaLearner):
    """Conditional neural process with FiLM modulation (TaNP-style), on a MeLU network.

    Parameters
    ----------
    model : MeLUNetwork
        The rating predictor: its feature embeddings feed the encoder and the decoder, its
        decision layers (at least one hidden layer) are the decoder, modulated per user.
        :class:`~metarec.models.MeLUWithIds` works too.
    representation_dim : int
        Size ``d`` of the task representation ``c_u``.
    encoder_units : tuple of int
        Hidden widths of the encoder MLP ``e`` (ReLU), before its linear output of size ``d``.
    inner_steps : int
        Only the default ``steps`` of ``evaluate``/``predict_query``/``adapt``: 0 predicts with
        the prior representation ``c_0`` (the support set is not read, like MAML's un-adapted
        model); any value >= 1 conditions on the support set, and every value >= 1 gives the
        same predictions (adaptation is one forward pass). Training always conditions on the
        support set.
    adapt : "all"
        Kept for the common interface: every variable is trained in the outer loop, none is
        adapted per user (``adapted_variables`` is empty).
    seed : int
        Seeds the task order of every epoch and the initial values of the learner's own
        variables (encoder, FiLM maps); the network's are set when it is built (use
        ``keras.utils.set_random_seed`` before building it for a reproducible run).
    vectorize, jit_compile : bool
        As for :class:`~metarec.meta.base.MetaLearner`; ``vectorize`` has no effect (a
        meta-batch is computed as one batch of rows, there is no per-task computation to map).

    Notes
    -----
    The learner's own variables (``extra_variables``: ``c_0``, the encoder's and the FiLM
    maps' weights) are saved and loaded with the network (``save``/``load_learner``). The
    network is called layer by layer (``embed``, ``decision``, ``decision_out``) with its
    current weights, not statelessly as the gradient-based learners do.

    Examples
    --------
    >>> learner = NeuralProcess(MeLUNetwork(spec, global_mean=3.5))      # doctest: +SKIP
    >>> learner.compile(keras.optimizers.Adam(1e-3))                      # doctest: +SKIP
    >>> history = learner.fit(train_tasks, epochs=10, batch_size=32)      # doctest: +SKIP
    >>> learner.evaluate(test_tasks)                                      # doctest: +SKIP
    {'mae': ..., 'rmse': ..., 'ndcg@1': ..., 'ndcg@3': ...}
    >>> learner.adapt(test_tasks[0]).predict(test_tasks[0].query_x)       # doctest: +SKIP
    """

    display_name = "Neural process"

    def __init__(self, model: keras.Model, representation_dim: int = 32,
                 encoder_units: Sequence[int] = (64,), inner_steps: int = 1,
                 adapt: str = "all", seed: int = 0, vectorize: bool = True,
                 jit_compile: bool = False):
        from metarec.models import MeLUNetwork

        where = self.display_name
        if not isinstance(model, MeLUNetwork):
            raise TypeError(f"{where}: model must be a MeLUNetwork (or MeLUWithIds), whose "
                            "feature embeddings and decision layers the neural process uses, "
                            f"e.g. metarec.models.MeLUNetwork(encoder.spec); got "
                            f"{type(model).__name__}.")
        if not model.hidden_units:
            raise ValueError(f"{where}: the MeLUNetwork has no hidden decision layer to "
                             "modulate (hidden_units=()); give it at least one, e.g. "
                             "hidden_units=(64, 64).")
        if adapt != "all":
            raise ValueError(f"{where}: adapt={adapt!r} has no meaning for a neural process "
                             "(no weight is adapted per user; all are meta-trained); leave it "
                             "at 'all'.")
        self.representation_dim = check_int(where, "representation_dim", representation_dim, 1)
        if isinstance(encoder_units, int | str) or not all(
                isinstance(u, int | np.integer) and not isinstance(u, bool) and u >= 1
                for u in encoder_units):
            raise ValueError(f"{where}: encoder_units must be a sequence of positive integers "
                             f"(hidden widths of the encoder, e.g. (64,)); got "
                             f"{encoder_units!r}.")
        self.encoder_units = tuple(int(u) for u in encoder_units)
        # inner_lr has no meaning here; the base class requires a positive value.
        super().__init__(model, inner_lr=1.0, inner_steps=inner_steps, adapt="all", seed=seed,
                         vectorize=vectorize, jit_compile=jit_compile)

    def get_config(self) -> dict[str, Any]:
        """Hyper-parameters, JSON-able (used by ``save``)."""
        return {
            "representation_dim": self.representation_dim,
            "encoder_units": list(self.encoder_units),
            "inner_steps": self.inner_steps,
            "adapt": "all",
            "seed": self.seed,
            "vectorize": self.vectorize,
            "jit_compile": self.jit_compile,
        }

    # ------------------------------------------------------------------ variables
    def _build_extra(self) -> None:
        """Create ``c_0``, the encoder and the FiLM maps (seeded by ``seed``)."""
        model, d = self.model, self.representation_dim
        width = model._n_fields() * model.embedding_dim + 1  # embeddings and the rating
        seeds = iter(range(self.seed * 1000, self.seed * 1000 + 1000))

        def glorot() -> keras.initializers.Initializer:
            return keras.initializers.GlorotUniform(seed=next(seeds))

        self._prior = keras.Variable(np.zeros(d, np.float32), name="np_prior")
        self._encoder = []
        for i, units in enumerate(self.encoder_units):
            layer = keras.layers.Dense(units, activation="relu", kernel_initializer=glorot(),
                                       name=f"np_encoder_{i}")
            layer.build((None, width))
            self._encoder.append(layer)
            width = units
        out = keras.layers.Dense(d, kernel_initializer=glorot(), name="np_encoder_out")
        out.build((None, width))
        self._encoder.append(out)
        # Zero-initialised FiLM maps: the untrained learner predicts exactly as its network.
        self._film = []
        for i, dense in enumerate(model.decision):
            layer = keras.layers.Dense(2 * dense.units, kernel_initializer="zeros",
                                       name=f"np_film_{i}")
            layer.build((None, d))
            self._film.append(layer)

    @property
    def extra_variables(self) -> list[Any]:
        """``c_0``, then the encoder's and the FiLM maps' weights (empty before building)."""
        if not hasattr(self, "_prior"):
            return []
        layers = self._encoder + self._film
        return [self._prior] + [v for layer in layers for v in layer.trainable_variables]

    @property
    def adapted_variables(self) -> list[Any]:
        """None: a neural process adapts no weight (the task representation does the work)."""
        return []

    # ------------------------------------------------------------------ the computation
    def _represent(self, sx: dict[str, tf.Tensor], sy: tf.Tensor, sm: tf.Tensor) -> tf.Tensor:
        """Task representations ``c_u``, ``[T, d]``, from support sets ``[T, S, ...]``.

        The masked mean of the encoded ratings with ``c_0`` counted as one more observation;
        padding rows are replaced by zeros before they are summed, so nothing in them counts.
        """
        t, s = tf.shape(sy)[0], tf.shape(sy)[1]
        h = self.model.embed({k: _rows(v) for k, v in sx.items()})
        h = tf.concat([h, tf.cast(tf.reshape(sy, [-1, 1]), h.dtype)], axis=-1)
        for layer in self._encoder:
            h = layer(h)
        codes = tf.reshape(h, [t, s, self.representation_dim])
        mask = tf.cast(sm, codes.dtype)[..., None]
        total = tf.reduce_sum(tf.where(mask > 0, codes, tf.zeros_like(codes)), axis=1)
        prior = tf.cast(self._prior, codes.dtype)
        return (prior[None] + total) / (1.0 + tf.reduce_sum(mask, axis=1))

    def _prior_batch(self, sy: tf.Tensor) -> tf.Tensor:
        """``c_0`` for each of the ``T`` tasks of a batch: ``[T, d]``."""
        return tf.tile(tf.convert_to_tensor(self._prior)[None], [tf.shape(sy)[0], 1])

    def _decode(self, qx: dict[str, tf.Tensor], c: tf.Tensor) -> tf.Tensor:
        """Predictions ``[T, Q]`` for query rows ``[T, Q, ...]`` given representations ``c``."""
        first = next(iter(qx.values()))
        t, q = tf.shape(first)[0], tf.shape(first)[1]
        h = self.model.embed({k: _rows(v) for k, v in qx.items()})
        for dense, film in zip(self.model.decision, self._film, strict=True):
            h = dense(h)
            gamma, delta = tf.split(tf.repeat(film(c), q, axis=0), 2, axis=-1)
            h = h * (1.0 + gamma) + delta
        return tf.reshape(self.model.decision_out(h), [t, q])

    def _meta_loss_and_grads(self, theta, extra, nt, batch):
        # theta/extra (the variables' values) are not needed: the layers read their variables.
        sx, sy, sm, qx, qy, qm = batch
        variables = list(self.model.trainable_variables) + self.extra_variables
        with tf.GradientTape() as tape:
            pred = self._decode(qx, self._represent(sx, sy, sm))
            qm = tf.cast(qm, pred.dtype)
            per_task = tf.reduce_sum(qm * tf.square(pred - tf.cast(qy, pred.dtype)), axis=1) \
                / tf.maximum(tf.reduce_sum(qm, axis=1), 1.0)
            meta_loss = tf.reduce_mean(per_task)
        grads = tape.gradient(meta_loss, variables)
        n = len(self.model.trainable_variables)
        return meta_loss, grads[:n], grads[n:]

    # ------------------------------------------------------------------ evaluation
    def check_batch(self, batch: Any) -> None:
        """Build the model on the first call; an empty support set is allowed (prior ``c_0``)."""
        self._build({k: v[0] for k, v in batch.support_x.items()})

    def test_step(self, batch: tuple[Any, ...], steps: int | None = None) -> tf.Tensor:
        """Query predictions ``[T, Q]``: with ``c_0`` if ``steps`` is 0, else conditioned on
        each support set (one forward pass; every ``steps >= 1`` is the same)."""
        steps = self.inner_steps if steps is None else steps
        sx, sy, sm, qx, _, _ = batch
        c = self._prior_batch(sy) if steps == 0 else self._represent(sx, sy, sm)
        return self._decode(qx, c)

    def _curve_step(self, batch: tuple[Any, ...], max_steps: int) -> tf.Tensor:
        """``[T, max_steps + 1, Q]``: the prior's predictions, then the conditioned ones
        repeated (the "curve" of a one-pass learner is flat after step 1)."""
        sx, sy, sm, qx, _, _ = batch
        preds = [self._decode(qx, self._prior_batch(sy))]
        if max_steps > 0:
            preds += [self._decode(qx, self._represent(sx, sy, sm))] * max_steps
        return tf.stack(preds, axis=1)

    def adapt(self, support: Task | tuple[dict[str, np.ndarray], np.ndarray],
              steps: int | None = None) -> ConditionedModel:
        """Condition on one user's support ratings: one forward pass of the encoder.

        ``support`` is a :class:`~metarec.data.Task` or ``(x, y)`` as for the other learners,
        but may be empty: a user without ratings gets the prior ``c_0`` (as does
        ``steps=0``). Returns a :class:`ConditionedModel` holding the user's representation.
        """
        where = f"{self.display_name}.adapt"
        x, y = self._support_arrays(support, where, allow_empty=True)
        if steps is not None:
            steps = check_int(where, "steps", steps, 0)
        steps = self.inner_steps if steps is None else steps
        if len(y) == 0 and not hasattr(self, "_prior"):
            raise ValueError(f"{where}: the learner is not built yet and an empty support set "
                             "cannot build it; train it (fit) or adapt to a user with ratings "
                             "first.")
        if len(y):
            self._build(x)
        if steps == 0 or len(y) == 0:
            return ConditionedModel(self, tf.convert_to_tensor(self._prior))
        sx = {k: tf.convert_to_tensor(v)[None] for k, v in x.items()}
        sy = tf.constant(y)[None]
        return ConditionedModel(self, self._represent(sx, sy, tf.ones_like(sy))[0])
