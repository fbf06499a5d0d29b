r"""Vote vectors of a multi-answer question: multinomial and Dirichlet-multinomial maths (numpy).

A question with K answers asked of N volunteers gets a vote vector :math:`n = (n_1..n_K)`,
:math:`\sum_k n_k = N`. Given the answer probabilities :math:`p` (a point on the simplex),

.. math:: \log \mathrm{Mult}(n \mid N, p) = \log N! - \sum_k \log n_k! + \sum_k n_k \log p_k;

given concentrations :math:`\alpha` (Zoobot's Dirichlet-multinomial, :math:`A = \sum_k\alpha_k`),

.. math:: \log \mathrm{DirMult}(n \mid \alpha) = \log\Gamma(A) + \log N! - \log\Gamma(N + A)
          + \sum_k \big[\log\Gamma(n_k + \alpha_k) - \log\Gamma(\alpha_k) - \log n_k!\big].

For K = 2 these are exactly the binomial and the beta-binomial of :mod:`zoolib.votes.binomial` (the
paper's likelihood and the overdispersed one; tested against scipy). A question nobody was asked
(N = 0) has probability 1 (log 0) and is masked out of means. One answer's count is
:math:`\mathrm{Bin}(N, p_k)` under the multinomial and :math:`\mathrm{BetaBin}(N, \alpha_k,
A - \alpha_k)` under the Dirichlet-multinomial (:func:`answer_logpmf`).

BALD over a vote vector: with T MC-dropout samples :math:`p_t`,
:math:`I = H\big[\frac1T\sum_t \mathrm{Mult}(\cdot\mid N, p_t)\big] - \frac1T\sum_t
H[\mathrm{Mult}(\cdot \mid N, p_t)]`, summed exactly over the :math:`\binom{N + K - 1}{K - 1}`
vote vectors (:func:`vote_vectors`; 861 for N = 40 and K = 3).

Shapes: counts ``(..., K)`` with probabilities or concentrations broadcasting against them;
samples ``(G, T, K)``. Counts are checked as vote counts
(:func:`zoolib.votes.schema.count_problems`).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import special

from zoolib.votes.schema import count_problems

MAX_VECTORS = 200_000  # exact BALD enumerates at most this many vote vectors per galaxy
CONCENTRATION_RANGE = (1.0, 100.0)  # Dirichlet concentrations: lo + (hi - lo) sigmoid(x), Zoobot's
# notebook 02's likelihood choices: binomial is one sigmoid rho per yes/no question (the paper's),
# the others a softmax (or concentrations) over every answer of each question of a tree
LIKELIHOODS = ("auto", "binomial", "multinomial", "dirichlet_multinomial")


def choose_likelihood(likelihood: str, zoos: bool) -> str:
    """``likelihood`` itself, or for ``"auto"``: ``"binomial"`` when the questions are zoo's
    yes/no ones with zoo's answers (``zoos``, :func:`zoolib.votes.trees.zoos_questions`: the paper's
    model, so every result so far stays), else ``"multinomial"`` (a tree or a new label)."""
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, not {likelihood!r}")
    if likelihood != "auto":
        return likelihood
    return "binomial" if zoos else "multinomial"


def concentrations(outputs) -> np.ndarray:
    """Dirichlet-multinomial concentrations from a network's outputs, in ``CONCENTRATION_RANGE``
    (:func:`zoolib.cnn.losses.concentrations` is the same map in TensorFlow)."""
    lo, hi = CONCENTRATION_RANGE
    return lo + (hi - lo) * special.expit(np.asarray(outputs, dtype=np.float64))


def as_vote_vectors(counts, name: str = "counts") -> np.ndarray:
    """``counts`` as float64 (..., K), K >= 2, after checking they are vote counts."""
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim < 1 or c.shape[-1] < 2:
        raise ValueError(f"{name} must have a last axis of K >= 2 answers, got shape {c.shape}")
    for mask, why in count_problems(c):
        if mask.any():
            where = tuple(int(i) for i in np.argwhere(mask)[0])
            raise ValueError(f"{name}{list(where)} = {float(c[where])!r} {why}")
    return c


def _checked_probabilities(p) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if (p < 0).any() or not np.allclose(p.sum(axis=-1), 1.0, atol=1e-6):
        raise ValueError("answer probabilities must be >= 0 and sum to 1 over the last axis")
    return p


def multinomial_logpmf(counts, p) -> np.ndarray:
    """:math:`\\log\\mathrm{Mult}(n \\mid N, p)` over the last axis; 0 where N = 0."""
    n, p = as_vote_vectors(counts), _checked_probabilities(p)
    total = n.sum(axis=-1)
    out = special.gammaln(total + 1) - special.gammaln(n + 1).sum(-1) + special.xlogy(n, p).sum(-1)
    return np.where(total > 0, out, 0.0)


def dirichlet_multinomial_logpmf(counts, alpha) -> np.ndarray:
    """:math:`\\log\\mathrm{DirMult}(n \\mid \\alpha)` over the last axis; 0 where N = 0."""
    n, a = as_vote_vectors(counts), np.asarray(alpha, dtype=np.float64)
    if not (a > 0).all():
        raise ValueError("concentrations alpha must be > 0")
    total, big_a = n.sum(axis=-1), a.sum(axis=-1)
    per_answer = special.gammaln(n + a) - special.gammaln(a) - special.gammaln(n + 1)
    out = (special.gammaln(big_a) + special.gammaln(total + 1) - special.gammaln(total + big_a)
           + per_answer.sum(-1))  # fmt: skip
    return np.where(total > 0, out, 0.0)


def answer_logpmf(k, n, p=None, alpha=None) -> np.ndarray:
    """Log-probability that ``k`` of ``n`` volunteers give one answer: binomial with that
    answer's probability ``p``, or beta-binomial with its concentration ``alpha`` (an array
    (..., K), the answer's entry first: ``alpha[..., 0]`` against the sum of the others)."""
    if (p is None) == (alpha is None):
        raise ValueError("give exactly one of p (multinomial) or alpha (Dirichlet-multinomial)")
    from scipy import stats

    if p is not None:
        return stats.binom.logpmf(k, n, p)
    a = np.asarray(alpha, dtype=np.float64)
    return stats.betabinom.logpmf(k, n, a[..., 0], a[..., 1:].sum(-1))


def vote_vectors(n: int, k: int) -> np.ndarray:
    """Every vote vector of ``n`` volunteers over ``k`` answers, (C(n + k - 1, k - 1), k)."""
    size = math.comb(n + k - 1, k - 1)
    if size > MAX_VECTORS:
        raise ValueError(f"{size:,} vote vectors for N = {n}, K = {k}: more than the "
                         f"{MAX_VECTORS:,} exact BALD enumerates")  # fmt: skip
    bars = itertools.combinations(range(n + k - 1), k - 1)  # stars and bars
    cuts = np.array(list(bars), dtype=np.int64).reshape(size, k - 1)
    edges = np.concatenate([np.full((size, 1), -1), cuts, np.full((size, 1), n + k - 1)], 1)
    return np.diff(edges, axis=1) - 1


def _whole_votes(n) -> int:
    if isinstance(n, bool) or not float(n).is_integer() or n < 0:
        raise ValueError(f"n must be a whole number of volunteers >= 0, got {n!r}")
    return int(n)


def mutual_information(p_samples, n: int, chunk_elements: int = 2**24) -> np.ndarray:
    """Exact BALD over vote vectors: (G,) nats from (G, T, K) samples of answer probabilities
    and a whole number of volunteers ``n`` (0: nothing to learn, 0). Galaxies are taken in
    chunks of at most ``chunk_elements`` (galaxies x T x vectors) table entries."""
    p = _checked_probabilities(p_samples)
    if p.ndim != 3:
        raise ValueError(f"p_samples must be (galaxies, T, K), got shape {p.shape}")
    n = _whole_votes(n)
    if n == 0:
        return np.zeros(len(p))
    v = vote_vectors(n, p.shape[-1])  # (M, K)
    log_coef = special.gammaln(n + 1) - special.gammaln(v + 1).sum(-1)  # (M,)
    log_p = np.log(np.maximum(p, 1e-300))  # p = 0: 0 votes give 0 log 0 = 0, more give ~ -inf
    out = np.empty(len(p))
    step = max(1, chunk_elements // (p.shape[1] * len(v)))
    for start in range(0, len(p), step):
        pmf = np.exp(log_coef + np.einsum("mk,gtk->gtm", v, log_p[start : start + step]))
        h_mixture = special.entr(pmf.mean(axis=1)).sum(-1)
        h_each = special.entr(pmf).sum(-1).mean(-1)
        out[start : start + step] = np.maximum(h_mixture - h_each, 0.0)
    return out


def answer_probabilities(outputs, sizes, axis: int = -2, likelihood: str = "multinomial"):
    r"""Answer probabilities from a tree model's outputs: a softmax over each question's answers
    (``sizes``: answers per question, in tree order) along ``axis``, the answers' axis: -2 for
    MC samples (..., A, T), -1 for one output per galaxy (..., A). For a Dirichlet-multinomial
    model: the expected fractions :math:`\alpha_k / \sum \alpha` of its concentrations."""
    x = np.asarray(outputs, dtype=np.float64)
    if likelihood not in ("multinomial", "dirichlet_multinomial"):
        raise ValueError(f"unknown likelihood {likelihood!r}")
    if x.shape[axis] != sum(sizes):
        raise ValueError(f"{x.shape[axis]} outputs but the tree has {sum(sizes)} answers")
    parts = np.split(x, np.cumsum(sizes)[:-1], axis=axis)
    if likelihood == "dirichlet_multinomial":
        alphas = [concentrations(p) for p in parts]
        return np.concatenate([a / a.sum(axis=axis, keepdims=True) for a in alphas], axis=axis)
    return np.concatenate([special.softmax(p, axis=axis) for p in parts], axis=axis)


def mutual_information_mc(p_samples, n: int, draws: int = 256, seed: int = 0) -> tuple:
    r"""Monte Carlo BALD over vote vectors, for questions with too many vectors to enumerate:
    :math:`I = \frac1T\sum_t E_{v \sim \mathrm{Mult}(n, p_t)}[\log \mathrm{Mult}(v \mid n, p_t)
    - \log \frac1T\sum_u \mathrm{Mult}(v \mid n, p_u)]`, with ``draws`` vote vectors from each
    sample. Returns ((G,) estimates, (G,) standard errors); its error against the exact sum is
    measured in the tests."""
    p = _checked_probabilities(p_samples)
    g, t, k = p.shape
    n = _whole_votes(n)
    if n == 0:
        return np.zeros(g), np.zeros(g)
    rng = np.random.default_rng(seed)
    log_p = np.log(np.maximum(p, 1e-300))
    estimates, errors = np.empty(g), np.empty(g)
    for i in range(g):
        v = np.concatenate([rng.multinomial(n, q / q.sum(), draws) for q in p[i]])  # (T * S, K)
        log_coef = special.gammaln(n + 1) - special.gammaln(v + 1).sum(-1)
        table = log_coef[:, None] + v @ log_p[i].T  # (T * S, T): log Mult(v | p_u)
        own = table[np.arange(len(v)), np.repeat(np.arange(t), draws)]
        terms = own - (special.logsumexp(table, axis=1) - np.log(t))
        estimates[i] = terms.mean()
        # the samples p_t are given; only the draws are random: var = sum_t var_t / S / T^2
        within = terms.reshape(t, draws).var(axis=1, ddof=1)
        errors[i] = np.sqrt(within.sum() / draws) / t
    return np.maximum(estimates, 0.0), errors
