r"""A synthetic MovieLens-like dataset with known ground truth.

:func:`make_synthetic` draws users, items and ratings from a documented latent-factor model, so
that experiments can compare what a recommender learns with the truth (true preferences,
noiseless ratings) and control how informative side information is about preferences.

Generative model (``K`` clusters, ``d`` factors, informativeness :math:`\rho`)
-------------------------------------------------------------------------------

Users :math:`u = 1..U`:

.. math::

    \pi \sim \mathrm{Dirichlet}(2 \cdot \mathbf 1_K), \quad z_u \sim \mathrm{Cat}(\pi), \quad
    c_k \sim \mathcal N(0, I_d), \quad
    p_u = \sqrt{1 - \tau^2}\, c_{z_u} + \tau\, \delta_u, \quad \delta_u \sim \mathcal N(0, I_d)

(cluster centre plus a small personal deviation, :math:`\tau` = ``user_spread``). Each user
feature :math:`f \in` {gender, age, occupation, zip_prefix} with values :math:`1..V_f` is drawn from
the mixture

.. math::

    x_{u,f} \sim \rho\, \theta_{z_u, f} + (1 - \rho)\, \beta_f, \qquad
    \theta_{k,f} \sim \mathrm{Dirichlet}(0.3 \cdot \mathbf 1_{V_f}),

where :math:`\beta_f` is a fixed MovieLens-like population distribution: with :math:`\rho = 1`
the features reveal the cluster (and so the preferences), with :math:`\rho = 0` they are noise.

Items :math:`i = 1..I`: :math:`m_i \in \{1, 2, 3\}` genres :math:`G_i` (probabilities 0.5, 0.35,
0.15), drawn without replacement with ml-1m genre frequencies; release year :math:`y_i`: with
probability ``new_item_fraction`` a "new" year (1997 or 1998, like ml-100k's newest 20%), else
:math:`y_i = \max(1920, 1996 - \lfloor E_i \rfloor)`, :math:`E_i \sim \mathrm{Exp}(10)`.
With genre and decade embeddings :math:`e_g, f_D \sim \mathcal N(0, I_d)`,

.. math::

    s_i = \tfrac{1}{\sqrt 2}\Big(\tfrac{1}{\sqrt{m_i}} \sum_{g \in G_i} e_g
          + f_{\lfloor y_i / 10 \rfloor}\Big), \qquad
    q_i = \sqrt{\rho}\, s_i + \sqrt{1 - \rho}\, \varepsilon_i, \quad
    \varepsilon_i \sim \mathcal N(0, I_d),

so :math:`\rho` is the fraction of the item-factor variance explained by genres and year.
Popularity :math:`a_i \sim \mathcal N(0, 1)` drives both exposure and bias.

Ratings: the noiseless rating and the observed rating are

.. math::

    \tilde r_{ui} = \mu + b_u + b_i + \frac{\alpha}{\sqrt d} \langle p_u, q_i \rangle, \qquad
    r_{ui} = \mathrm{clip}\big(\mathrm{round}(\tilde r_{ui} + \epsilon_{ui}), 1, 5\big),
    \quad \epsilon_{ui} \sim \mathcal N(0, \sigma^2),

with :math:`\mu = 3.6`, :math:`b_u \sim \mathcal N(0, 0.3^2)`,
:math:`b_i = 0.4\,(0.6\, a_i + 0.8\, \eta_i)`, :math:`\eta_i \sim \mathcal N(0, 1)`
(popular items are rated higher), :math:`\alpha` = ``interaction_scale`` (0.9 by default),
:math:`\sigma` = ``noise``.
User :math:`u` rates :math:`n_u` items, :math:`n_u` from a bounded Pareto distribution
(shape 1) on ``ratings_per_user = (L, H)`` (long tail: most users rate few items, a few rate
many); the items are drawn without replacement with probability :math:`\propto e^{a_i}`
(popular items are seen more; above :data:`DENSE_SAMPLING_LIMIT` user x item pairs by
successive sampling, the same law at a cost linear in the number of ratings). Timestamps:
each user starts at a uniform time between 1997-09-20 and 1998-04-22 and rates over an
exponential span (mean 20 days).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from metarec.data.dataset import RatingsDataset
from metarec.data.movielens import AGE_CODES, ML1M_GENRES, ML1M_OCCUPATIONS

__all__ = ["SyntheticTruth", "make_synthetic"]

GLOBAL_MEAN = 3.6
INTERACTION_SCALE = 0.9
USER_BIAS_STD = 0.3
ITEM_BIAS_STD = 0.4

# ml-1m genre frequencies (movies per genre), so that the synthetic genre mix looks familiar.
_GENRE_COUNTS = {
    "Action": 503, "Adventure": 283, "Animation": 105, "Children's": 251, "Comedy": 1200,
    "Crime": 211, "Documentary": 127, "Drama": 1603, "Fantasy": 68, "Film-Noir": 44,
    "Horror": 343, "Musical": 114, "Mystery": 106, "Romance": 471, "Sci-Fi": 276,
    "Thriller": 492, "War": 143, "Western": 68,
}
# Population distributions beta_f of the user features (roughly ml-100k's).
_GENDERS = ("M", "F")
_GENDER_P = (0.71, 0.29)
_AGE_P = (0.04, 0.21, 0.33, 0.21, 0.08, 0.08, 0.05)
_ZIPS = tuple("0123456789")
_T_START, _T_END = 874_724_710, 893_286_638  # ml-100k's first and last timestamp


@dataclass(repr=False, eq=False)
class SyntheticTruth:
    """Ground truth of :func:`make_synthetic` (symbols as in the module docstring).

    Attributes
    ----------
    user_ids, item_ids : int64 [U], [I]
        Ids of the rows of the arrays below (``user_ids[k]`` is row ``k``).
    user_factors : float64 [U, d]
        True preference vectors :math:`p_u`.
    item_factors : float64 [I, d]
        True item factors :math:`q_i`.
    item_content : float64 [I, d]
        The genre/year part :math:`s_i` of the item factors.
    user_bias, item_bias : float64 [U], [I]
        :math:`b_u`, :math:`b_i`.
    item_popularity : float64 [I]
        :math:`a_i` (exposure :math:`\\propto e^{a_i}`).
    user_cluster : int64 [U]
        Cluster :math:`z_u` of each user (0..K-1).
    cluster_centres : float64 [K, d]
        :math:`c_k`.
    noiseless : float64 [N]
        :math:`\\tilde r_{ui}` of each row of ``dataset.ratings`` (same order).
    global_mean, interaction_scale, noise, informative : float
        :math:`\\mu`, :math:`\\alpha`, :math:`\\sigma`, :math:`\\rho`.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    user_factors: np.ndarray
    item_factors: np.ndarray
    item_content: np.ndarray
    user_bias: np.ndarray
    item_bias: np.ndarray
    item_popularity: np.ndarray
    user_cluster: np.ndarray
    cluster_centres: np.ndarray
    noiseless: np.ndarray
    global_mean: float
    interaction_scale: float
    noise: float
    informative: float

    def __repr__(self) -> str:
        return (f"SyntheticTruth({len(self.user_ids)} users, {len(self.item_ids)} items, "
                f"{self.cluster_centres.shape[0]} clusters, {self.user_factors.shape[1]} "
                f"factors, noise={self.noise}, informative={self.informative})")

    def _rows(self, ids: np.ndarray, known: np.ndarray, what: str) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        rows = np.searchsorted(known, ids)
        rows = np.clip(rows, 0, len(known) - 1)
        if not np.array_equal(known[rows], ids):
            raise KeyError(f"unknown {what} id(s): {np.setdiff1d(ids, known)[:5].tolist()}")
        return rows

    def rating(self, user_id: np.ndarray | int, item_id: np.ndarray | int) -> np.ndarray:
        """Noiseless rating :math:`\\tilde r_{ui}` of any (user, item) pairs (broadcast).

        Parameters
        ----------
        user_id, item_id : int or int array
            Raw ids; broadcast against each other.

        Returns
        -------
        float64 array of the broadcast shape.

        Examples
        --------
        >>> ds = make_synthetic(n_users=20, n_items=30, seed=0)
        >>> ds.truth.rating([1, 2], 5).shape
        (2,)
        """
        u, i = np.broadcast_arrays(np.asarray(user_id), np.asarray(item_id))
        ur = self._rows(u.ravel(), self.user_ids, "user")
        ir = self._rows(i.ravel(), self.item_ids, "item")
        d = self.user_factors.shape[1]
        dot = np.einsum("nd,nd->n", self.user_factors[ur], self.item_factors[ir])
        out = (self.global_mean + self.user_bias[ur] + self.item_bias[ir]
               + self.interaction_scale / np.sqrt(d) * dot)
        return out.reshape(u.shape)

    def rating_matrix(self) -> np.ndarray:
        """Noiseless ratings of every user (rows, ``user_ids`` order) x item, [U, I]."""
        d = self.user_factors.shape[1]
        return (self.global_mean + self.user_bias[:, None] + self.item_bias[None, :]
                + self.interaction_scale / np.sqrt(d) * self.user_factors @ self.item_factors.T)


def _sample_categorical(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One draw per row of ``probs`` [N, V] by inverse CDF (vectorised)."""
    cdf = np.cumsum(probs, axis=1)
    u = rng.random(len(probs))[:, None] * cdf[:, -1:]
    return np.minimum((cdf < u).sum(axis=1), probs.shape[1] - 1)


def _top_k_without_replacement(rng: np.random.Generator, log_weights: np.ndarray,
                               k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gumbel-top-k: row r draws ``k[r]`` columns without replacement, P ~ exp(log_weights).

    Returns (row index, column index) of every draw, rows ascending.
    """
    keys = log_weights + rng.gumbel(size=log_weights.shape)
    order = np.argsort(-keys, axis=1, kind="stable")
    take = np.arange(log_weights.shape[1])[None, :] < k[:, None]
    rows = np.repeat(np.arange(log_weights.shape[0]), k)
    return rows, order[take]


#: Above this many (user, item) pairs the exposure draw switches from Gumbel-top-k over the
#: full [U, I] matrix (memory and time ~ U x I) to successive sampling (~ number of ratings).
#: Every dataset at or below it is drawn exactly as before the switch existed.
DENSE_SAMPLING_LIMIT = 2**26
# Rows per chunk of the per-rating arithmetic of large datasets (bounds temporary memory).
_CHUNK = 4_000_000


def _successive_sample(rng: np.random.Generator, log_weights: np.ndarray,
                       k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row r draws ``k[r]`` columns without replacement, P ~ exp(log_weights), in ~O(sum k).

    Successive sampling: draw with replacement and skip repeats, which gives exactly the law of
    Gumbel-top-k (Plackett-Luce) without touching every (row, column) pair. Draws continue
    for rows that still lack distinct columns. Returns (row, column) pairs, rows ascending,
    each row's columns in draw order.
    """
    n_cols = len(log_weights)
    cdf = np.cumsum(np.exp(log_weights - log_weights.max()))
    users = np.zeros(0, np.int64)
    items = np.zeros(0, np.int64)
    seqs = np.zeros(0, np.int64)
    pending, need = np.arange(len(k)), k.astype(np.int64)
    done_rows, done_cols, seq0 = [], [], 0
    while len(pending):
        m = np.ceil(1.25 * need[pending]).astype(np.int64) + 4
        new_users = np.repeat(pending, m)
        draws = np.searchsorted(cdf, rng.random(len(new_users)) * cdf[-1], side="right")
        users = np.concatenate([users, new_users])
        items = np.concatenate([items, np.minimum(draws, n_cols - 1)])
        seqs = np.concatenate([seqs, seq0 + np.arange(len(new_users))])
        seq0 += len(new_users)
        order = np.lexsort((seqs, items, users))  # by user, item, then draw order
        key_u, key_i = users[order], items[order]
        first = np.r_[True, (key_u[1:] != key_u[:-1]) | (key_i[1:] != key_i[:-1])]
        kept = order[first]
        kept = kept[np.lexsort((seqs[kept], users[kept]))]  # back to draw order per user
        ku = users[kept]
        starts = np.searchsorted(ku, ku, side="left")
        rank = np.arange(len(ku)) - starts
        have = np.bincount(ku, minlength=len(k))
        complete = have[ku] >= need[ku]
        take = complete & (rank < need[ku])
        done_rows.append(ku[take])
        done_cols.append(items[kept][take])
        pending = np.flatnonzero((have < need) & np.isin(np.arange(len(k)), pending))
        keep = np.isin(users, pending)  # deficient rows keep their draws and draw more
        users, items, seqs = users[keep], items[keep], seqs[keep]
    rows = np.concatenate(done_rows)
    cols = np.concatenate(done_cols)
    order = np.argsort(rows, kind="stable")
    return rows[order], cols[order]


def _interaction(p: np.ndarray, q: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """<p_row, q_col> for every rating; chunked for large datasets (bounded memory)."""
    if len(rows) <= _CHUNK:
        return np.einsum("nd,nd->n", p[rows], q[cols])
    out = np.empty(len(rows))
    for lo in range(0, len(rows), _CHUNK):
        hi = lo + _CHUNK
        out[lo:hi] = np.einsum("nd,nd->n", p[rows[lo:hi]], q[cols[lo:hi]])
    return out


def make_synthetic(
    n_users: int = 1000,
    n_items: int = 500,
    n_clusters: int = 8,
    n_factors: int = 8,
    ratings_per_user: tuple[int, int] = (15, 300),
    noise: float = 0.5,
    informative: float = 0.7,
    user_spread: float = 0.4,
    new_item_fraction: float = 0.2,
    seed: int = 0,
    interaction_scale: float = INTERACTION_SCALE,
) -> RatingsDataset:
    r"""Draw a MovieLens-like dataset from the latent-factor model of the module docstring.

    Parameters
    ----------
    n_users, n_items : int
        Table sizes ``U`` and ``I``; ids are ``1..U`` and ``1..I``.
    n_clusters : int
        Preference clusters ``K``.
    n_factors : int
        Latent dimension ``d``.
    ratings_per_user : (int, int)
        Bounds ``(L, H)`` of the long-tailed number of ratings per user (``H`` is capped at
        ``n_items``).
    noise : float
        Standard deviation :math:`\sigma` of the rating noise (before rounding).
    informative : float in [0, 1]
        :math:`\rho`: how much user features reveal the cluster and how much of the item
        factors is explained by genres and year.
    user_spread : float in [0, 1]
        :math:`\tau`: personal deviation of a user from the cluster centre.
    new_item_fraction : float in [0, 1]
        Fraction of items released in 1997-1998 ("new" items for cold-start splits).
    seed : int
        Every draw comes from ``numpy.random.default_rng(seed)``: same seed, same dataset.
    interaction_scale : float >= 0
        :math:`\alpha`: how much users' tastes differ. The user-item interaction term has a
        standard deviation of about :math:`\alpha` stars; with 0 every user ranks items alike
        (only the user bias differs), so one "average" model suits every user. The other draws
        do not depend on it: the same ``seed`` gives the same users, items and rated pairs.

    Returns
    -------
    RatingsDataset
        ``name="synthetic"``, tables shaped as for MovieLens (ml-1m genre and occupation
        names), and ``truth`` a :class:`SyntheticTruth`.

    Examples
    --------
    >>> ds = make_synthetic(n_users=100, n_items=80, ratings_per_user=(5, 40), seed=1)
    >>> ds.name, ds.n_users, ds.n_items
    ('synthetic', 100, 80)
    >>> bool(ds.ratings["rating"].between(1, 5).all())
    True
    >>> ds.truth.noiseless.shape == (ds.n_ratings,)
    True
    """
    lo, hi = (int(v) for v in ratings_per_user)
    if n_users < 1 or n_items < 1 or n_clusters < 1 or n_factors < 1:
        raise ValueError("n_users, n_items, n_clusters and n_factors must be >= 1.")
    if not 1 <= lo <= hi or lo > n_items:
        raise ValueError(f"ratings_per_user=({lo}, {hi}) must satisfy 1 <= min <= max and "
                         f"min <= n_items={n_items}.")
    hi = min(hi, n_items)  # nobody can rate more items than exist
    for label, value in (("informative", informative), ("user_spread", user_spread),
                         ("new_item_fraction", new_item_fraction)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{label} must be in [0, 1], got {value}.")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}.")
    if not np.isfinite(interaction_scale) or interaction_scale < 0:
        raise ValueError(f"interaction_scale must be a finite number >= 0, got "
                         f"{interaction_scale}.")

    rng = np.random.default_rng(seed)
    d, rho = n_factors, float(informative)

    # Users: clusters, preferences, features.
    cluster_p = rng.dirichlet(2.0 * np.ones(n_clusters))
    cluster = rng.choice(n_clusters, size=n_users, p=cluster_p)
    centres = rng.standard_normal((n_clusters, d))
    p = (np.sqrt(1 - user_spread**2) * centres[cluster]
         + user_spread * rng.standard_normal((n_users, d)))
    user_bias = USER_BIAS_STD * rng.standard_normal(n_users)
    features = {}
    for fname, values, base in (
        ("gender", _GENDERS, _GENDER_P),
        ("age", AGE_CODES, _AGE_P),
        ("occupation", ML1M_OCCUPATIONS, np.full(len(ML1M_OCCUPATIONS),
                                                 1 / len(ML1M_OCCUPATIONS))),
        ("zip_prefix", _ZIPS, np.full(len(_ZIPS), 0.1)),
    ):
        theta = rng.dirichlet(0.3 * np.ones(len(values)), size=n_clusters)
        probs = rho * theta[cluster] + (1 - rho) * np.asarray(base)[None, :]
        features[fname] = np.asarray(values)[_sample_categorical(rng, probs)]

    # Items: genres, years, content part of the factors, popularity.
    genres = list(ML1M_GENRES)
    genre_logw = np.log(np.array([_GENRE_COUNTS[g] for g in genres], dtype=float))
    n_genres = rng.choice([1, 2, 3], size=n_items, p=[0.5, 0.35, 0.15])
    g_rows, g_cols = _top_k_without_replacement(
        rng, np.broadcast_to(genre_logw, (n_items, len(genres))), n_genres)
    multi_hot = np.zeros((n_items, len(genres)), dtype=np.int8)
    multi_hot[g_rows, g_cols] = 1
    is_new = rng.random(n_items) < new_item_fraction
    old_year = np.maximum(1920, 1996 - np.floor(rng.exponential(10.0, n_items))).astype(int)
    new_year = np.where(rng.random(n_items) < 0.75, 1997, 1998)
    year = np.where(is_new, new_year, old_year)
    decade_index = (year // 10) - 192  # 1920s -> 0 ... 1990s -> 7
    genre_emb = rng.standard_normal((len(genres), d))
    decade_emb = rng.standard_normal((8, d))
    content = ((multi_hot @ genre_emb) / np.sqrt(n_genres)[:, None]
               + decade_emb[decade_index]) / np.sqrt(2.0)
    q = np.sqrt(rho) * content + np.sqrt(1 - rho) * rng.standard_normal((n_items, d))
    popularity = rng.standard_normal(n_items)
    item_bias = ITEM_BIAS_STD * (0.6 * popularity + 0.8 * rng.standard_normal(n_items))

    # Who rates what: bounded Pareto(shape 1) counts, popularity-weighted items.
    u01 = rng.random(n_users)
    counts = lo / (1 - u01 * (1 - lo / hi))
    counts = np.clip(np.floor(counts), lo, hi).astype(np.int64)
    if n_users * n_items <= DENSE_SAMPLING_LIMIT:
        rows, cols = _top_k_without_replacement(
            rng, np.broadcast_to(popularity, (n_users, n_items)), counts)
    else:  # MovieLens-25M-sized and larger: cost ~ number of ratings, not users x items
        rows, cols = _successive_sample(rng, popularity, counts)
    noiseless = (GLOBAL_MEAN + user_bias[rows] + item_bias[cols]
                 + interaction_scale / np.sqrt(d) * _interaction(p, q, rows, cols))
    observed = np.clip(np.round(noiseless + noise * rng.standard_normal(len(rows))), 1, 5)
    start = rng.integers(_T_START, _T_END, size=n_users)
    span = rng.exponential(20 * 86400.0, size=n_users)
    timestamp = (start[rows] + rng.random(len(rows)) * span[rows]).astype(np.int64)

    user_ids = np.arange(1, n_users + 1, dtype=np.int64)
    item_ids = np.arange(1, n_items + 1, dtype=np.int64)
    ratings = pd.DataFrame({
        "user_id": user_ids[rows],
        "item_id": item_ids[cols],
        "rating": observed.astype(np.float32),
        "timestamp": timestamp,
    })
    order = np.lexsort((ratings["item_id"], ratings["timestamp"], ratings["user_id"]))
    ratings = ratings.iloc[order].reset_index(drop=True)
    noiseless = noiseless[order]

    users = pd.DataFrame({
        "user_id": user_ids,
        "gender": pd.Series(features["gender"], dtype=str),
        "age": features["age"].astype(np.int64),
        "occupation": pd.Series(features["occupation"], dtype=str),
        "zip_prefix": pd.Series(features["zip_prefix"], dtype=str),
    })
    items = pd.DataFrame({
        "item_id": item_ids,
        "title": pd.Series(
            [f"Synthetic movie {i} ({y})" for i, y in zip(item_ids, year, strict=True)], dtype=str),
        "year": pd.array(year, dtype="Int64"),
    })
    items = pd.concat([items, pd.DataFrame(multi_hot, columns=genres)], axis=1)
    truth = SyntheticTruth(
        user_ids=user_ids, item_ids=item_ids, user_factors=p, item_factors=q,
        item_content=content, user_bias=user_bias, item_bias=item_bias,
        item_popularity=popularity, user_cluster=cluster.astype(np.int64),
        cluster_centres=centres, noiseless=noiseless, global_mean=GLOBAL_MEAN,
        interaction_scale=float(interaction_scale), noise=float(noise), informative=rho,
    )
    return RatingsDataset(name="synthetic", ratings=ratings, users=users, items=items,
                          genres=genres, truth=truth).validate()
