r"""Biased matrix factorisation (Koren, Bell and Volinsky, 2009) and the id embedding it uses.

A rating is predicted as

.. math:: \hat r_{ui} = \mu + b_u + b_i + \langle p_u, q_i \rangle

with a global mean :math:`\mu`, user and item biases and ``n_factors``-dimensional user and
item factors. The model holds no regulariser: the meta-learners minimise the masked MSE of
:mod:`metarec.meta.base` only (a weight penalty inside ``stateless_call`` would be ignored), so
the training budget (epochs, few inner steps) is the regulariser.

Cold users and items
--------------------
New users and items encode to id 0 (the OOV bucket of :class:`metarec.data.FeatureEncoder`).
An :class:`IdEmbedding` maps id 0 to *the mean of the known rows plus row 0*; row 0 starts at
zero and no training rating ever reaches it, so an unseen user is, before adaptation, the
average training user (and an unseen item the average training item). Per-user fine-tuning
(``FineTune.evaluate`` / ``MAML`` with ``adapt=BiasedMF.ADAPT``) then moves row 0 -- the new
user's own vector -- at the full inner learning rate.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers, ops

from metarec.data.features import FeatureSpec
from metarec.models.baselines import _SpecModel
from metarec.models.spec import spec_from_config

__all__ = ["BiasedMF", "IdEmbedding"]


def _zero_first_row(base: Any):
    """Initializer: ``base`` everywhere, zeros in row 0 (the OOV offset starts at 0)."""
    base = keras.initializers.get(base)

    def init(shape, dtype=None):
        values = base(shape, dtype=dtype)
        mask = ops.concatenate([ops.zeros((1, *shape[1:]), dtype=values.dtype),
                                ops.ones((shape[0] - 1, *shape[1:]), dtype=values.dtype)])
        return values * mask

    return init


@keras.saving.register_keras_serializable(package="metarec")
class IdEmbedding(layers.Layer):
    """Embedding of user or item ids whose id 0 (unseen) is the average known row plus an offset.

    ``IdEmbedding(n, d)(ids)`` returns ``table[ids]`` for ``ids >= 1`` and
    ``mean(table[1:]) + table[0]`` for ``ids == 0``. Row 0 is initialised to zero, so before
    any adaptation an unseen id is the average of the trained rows. The mean is a constant for
    the gradient (``stop_gradient``): adapting to a new user moves only row 0.

    Parameters
    ----------
    input_dim : int
        Vocabulary size including the OOV id 0 (``spec.n_users`` or ``spec.n_items``).
    output_dim : int
        Embedding size ``d``.
    embeddings_initializer : str or keras.initializers.Initializer
        Initializer of rows ``1..input_dim-1``.

    Call
    ----
    ids : int ``[N]`` -> float32 ``[N, d]``.

    Examples
    --------
    >>> emb = IdEmbedding(5, 2, embeddings_initializer="ones")
    >>> emb.build()
    >>> emb(np.array([0, 3])).shape                           # doctest: +SKIP
    (2, 2)
    """

    def __init__(self, input_dim: int, output_dim: int,
                 embeddings_initializer: Any = "random_normal", **kwargs: Any):
        super().__init__(**kwargs)
        if input_dim < 1:
            raise ValueError(f"IdEmbedding needs input_dim >= 1 (the OOV id 0), got {input_dim}.")
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)

    def build(self, input_shape=None):
        self.embeddings = self.add_weight(
            shape=(self.input_dim, self.output_dim), name="embeddings",
            initializer=_zero_first_row(self.embeddings_initializer))
        self.built = True

    def call(self, ids):
        ids = ops.cast(ids, "int32")
        rows = ops.take(self.embeddings, ids, axis=0)
        if self.input_dim == 1:  # no known row to average over: the offset alone
            return rows
        known = ops.stop_gradient(ops.mean(self.embeddings[1:], axis=0))
        return ops.where(ops.expand_dims(ops.equal(ids, 0), -1), rows + known, rows)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(input_dim=self.input_dim, output_dim=self.output_dim,
                      embeddings_initializer=keras.initializers.serialize(
                          self.embeddings_initializer))
        return config


@keras.saving.register_keras_serializable(package="metarec")
class BiasedMF(_SpecModel):
    """Biased matrix factorisation ``mu + b_u + b_i + <p_u, q_i>`` (Koren et al., 2009).

    Parameters
    ----------
    spec : FeatureSpec
        Vocabulary sizes from a fitted :class:`metarec.data.FeatureEncoder`.
    n_factors : int
        Latent dimension of ``p_u`` and ``q_i``.
    global_mean : float
        Initial value of the trainable global mean ``mu`` (the training-rating mean is a good
        start; 3.5 is close for MovieLens).
    factor_stddev : float
        Standard deviation of the normal initialisation of the factors.

    Call
    ----
    inputs : dict with ``user_id`` int32 ``[N]`` and ``item_id`` int32 ``[N]``
        (other keys are ignored). Returns predictions ``[N]``.

    Notes
    -----
    ``ADAPT = "/user_"``: per user, fine-tuning adapts ``user_embedding`` (``p_u``) and
    ``user_bias`` (``b_u``), the parameters that belong to the user in the model; items and
    ``mu`` are shared. The leading ``/`` skips the model's own name (the first component of
    ``variable.path``). The tables are adapted whole (dense gradients, one copy per task in a
    vectorised meta-batch), but only the rows of the task's user change.

    Examples
    --------
    >>> model = BiasedMF(encoder.spec, n_factors=16)                  # doctest: +SKIP
    >>> model.build()                                                 # doctest: +SKIP
    >>> model(encoder.transform(ratings.head(5))).shape               # doctest: +SKIP
    TensorShape([5])
    """

    #: Regex (on ``variable.path``) of the per-user parameters fine-tuned on a support set.
    ADAPT: str = "/user_"
    _hyper = ("n_factors", "global_mean", "factor_stddev")

    def __init__(self, spec: FeatureSpec, n_factors: int = 16, global_mean: float = 3.5,
                 factor_stddev: float = 0.05, **kwargs: Any):
        super().__init__(**kwargs)
        self.spec = spec_from_config(spec)
        self.n_factors = int(n_factors)
        self.global_mean = float(global_mean)
        self.factor_stddev = float(factor_stddev)
        factor_init = keras.initializers.RandomNormal(stddev=self.factor_stddev)
        self.user_embedding = IdEmbedding(self.spec.n_users, self.n_factors, factor_init,
                                          name="user_embedding")
        self.item_embedding = IdEmbedding(self.spec.n_items, self.n_factors, factor_init,
                                          name="item_embedding")
        self.user_bias = IdEmbedding(self.spec.n_users, 1, "zeros", name="user_bias")
        self.item_bias = IdEmbedding(self.spec.n_items, 1, "zeros", name="item_bias")

    def build(self, input_shape=None):
        self.mu = self.add_weight(shape=(), name="global_bias",
                                  initializer=keras.initializers.Constant(self.global_mean))
        for layer in (self.user_embedding, self.item_embedding, self.user_bias, self.item_bias):
            layer.build((None,))
        self.built = True

    def call(self, inputs):
        users, items = inputs["user_id"], inputs["item_id"]
        dot = ops.sum(self.user_embedding(users) * self.item_embedding(items), axis=-1)
        biases = ops.squeeze(self.user_bias(users), -1) + ops.squeeze(self.item_bias(items), -1)
        return self.mu + biases + dot
