r"""Acquisition strategies: which pool galaxies to label next (small and separate, as in BaaL).

* ``random``: uniform, the baseline; ``random_null``: the same rule on a disjoint random stream,
  measured by the same code as a strategy, so its gap to ``random`` is the noise floor;
* ``bald``: the top-k mutual information between votes and weights (the paper's choice), from
  MC-dropout samples; ``bald_views``: the same on samples that each see a random flip or
  rotation of the image (as the paper's code drew them);
* ``bald_ensemble``: BALD with a second kind of posterior: the deterministic predictions of K
  heads trained on bootstrap resamples of the labelled set, in place of the dropout samples
  (fine-tuning regime). Beside ``bald`` it tells whether MC dropout or the rule is the weak part;
* ``entropy``: the top-k predictive entropy;
* ``power_bald``: sample k ids without replacement with probability proportional to
  :math:`\mathrm{MI}^\beta` (Kirsch et al. 2023), by Gumbel-top-k on
  :math:`\beta\log\mathrm{MI} + G`, :math:`G\sim\mathrm{Gumbel}(0,1)`. :math:`\beta = 0` is
  uniform and :math:`\beta\to\infty` is ``bald``;
* ``kmeans``: the galaxies nearest the centres of a k-means clustering of the pool's features
  (k = the batch size): typical, diverse galaxies and no model at all (Hacohen et al. 2022 find
  such "typical" picks beat uncertainty at small budgets);
* ``diverse_bald``: the ``prefilter`` x k highest-MI galaxies, clustered by k-means into k
  groups, and the highest-MI galaxy of each group (Zhdanov 2019, "diverse mini-batch active
  learning"): BALD without a batch of near-duplicates;
* ``epig``: the top expected predictive information gain about the votes on target galaxies
  drawn from the unlabelled pool (Bickford Smith et al. 2023; :mod:`zoolib.active.targeted`), from
  dropout samples whose masks are shared by every galaxy; ``power_epig``: the same sampled by
  Gumbel-top-k, as ``power_bald``;
* ``variance``: a greedy joint batch by expected reduction of the targets' variance of rho
  (BAIT-like, a Gaussian approximation on the same shared-mask samples;
  :mod:`zoolib.active.targeted`);
* ``oracle`` (simulations only) is not a rule of this module: it looks ahead with the truth
  (see :mod:`zoolib.active.heads_regime`), a bound on what any rule could reach.

One table, :data:`TABLE`, says of each strategy which posterior it needs (``dropout``: a mask
per galaxy and sample; ``shared``: one mask per sample for all galaxies; ``views``; ``ensemble``;
none), what it scores, how it picks, which regimes run it and which random stream it draws.
The reference of every comparison is the mean of ``random`` and its extra streams
``random_2``, ``random_3``, ... (:func:`reference_names`), the same rule on independent streams.

The pool's votes are unknown before labelling, so scores use an expected N per question
(:func:`expected_votes`, or per galaxy from the decision tree: :func:`tree_votes`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from zoolib.active import acquisition, targeted
from zoolib.votes.schema import QUESTIONS, answer_probability, question

BOTH = ("finetune", "scratch")
FINETUNE = ("finetune",)
PREFILTER = 10  # diverse_bald clusters the PREFILTER x k highest-MI galaxies


@dataclass(frozen=True)
class Strategy:
    """One acquisition rule: the posterior it needs, its score, how it picks, where it runs."""

    name: str
    posterior: str | None  # None, "dropout", "shared", "views" or "ensemble"
    score: str | None  # None, "mi", "entropy" or "epig"
    pick: str  # "uniform", "top", "gumbel", "kmeans", "diverse" or "variance"
    regimes: tuple[str, ...] = BOTH
    stream: str = "acquire"  # the random stream of its picks (zoolib.active.runs.stream)
    index: int = 0  # which of that stream's repeats (random's extra reference streams)
    lure: bool = False  # train on LURE weights of the picks (zoolib.active.loop.lure_weights)

    @property
    def needs_features(self) -> bool:
        return self.pick in ("kmeans", "diverse")

    @property
    def random_like(self) -> bool:
        return self.pick == "uniform"


TABLE: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy("random", None, None, "uniform"),
        Strategy("random_null", None, None, "uniform", stream="null_acquire"),
        Strategy("bald", "dropout", "mi", "top"),
        Strategy("bald_views", "views", "mi", "top"),
        Strategy("power_bald", "dropout", "mi", "gumbel"),
        Strategy("entropy", "dropout", "entropy", "top"),
        Strategy("diverse_bald", "dropout", "mi", "diverse", FINETUNE),
        Strategy("bald_ensemble", "ensemble", "mi", "top", FINETUNE),
        Strategy("kmeans", None, None, "kmeans", FINETUNE),
        Strategy("epig", "shared", "epig", "top", FINETUNE),
        Strategy("power_epig", "shared", "epig", "gumbel", FINETUNE),
        Strategy("variance", "shared", None, "variance", FINETUNE),
        Strategy("power_bald_lure", "dropout", "mi", "gumbel", FINETUNE, lure=True),
        Strategy("power_epig_lure", "shared", "epig", "gumbel", FINETUNE, lure=True),
    )
}
STRATEGIES = tuple(TABLE)
REFERENCE = "random"


def reference_names(count: int) -> tuple[str, ...]:
    """The ``count`` random runs averaged into the reference: random, random_2, ..."""
    return (REFERENCE,) + tuple(f"{REFERENCE}_{i}" for i in range(2, count + 1))


def lookup(name: str) -> Strategy:
    """The table's entry for ``name`` (random_2, random_3, ...: random on stream repeat 1, 2...)."""
    if name in TABLE:
        return TABLE[name]
    extra = re.fullmatch(rf"{REFERENCE}_(\d+)", name)
    if extra and int(extra.group(1)) >= 2:
        return Strategy(name, None, None, "uniform", index=int(extra.group(1)) - 1)
    raise ValueError(f"unknown strategy {name!r}; choose from {STRATEGIES}")


class Joint(NamedTuple):
    """Shared-mask samples of the pool and its targets, for ``epig`` and ``variance``."""

    rho: np.ndarray  # (P, Q, T) the pool
    n: np.ndarray  # (P, Q) whole expected votes of the pool
    targets: np.ndarray  # (M, Q, T) the targets, from the same T networks
    weights: np.ndarray  # (M, Q) the targets' chance of being asked each question


def scores(strategy: str, rho_samples: np.ndarray | None, expected_n,
           joint: Joint | None = None) -> np.ndarray | None:  # fmt: skip
    """Per-galaxy scores, summed over questions; None for strategies that need none.

    Args:
        rho_samples: (pool, Q, T) MC-dropout samples.
        expected_n: (Q,) expected number of votes per question, or (pool, Q) per galaxy
            (whole numbers).
        joint: the targets, for ``epig`` (``rho_samples`` must then be shared-mask samples).
    """
    spec = lookup(strategy)
    if spec.score is None:
        return None
    if rho_samples is None:
        raise ValueError(f"strategy {strategy!r} needs MC-dropout samples of the pool")
    n = np.broadcast_to(np.asarray(expected_n, dtype=np.float64), rho_samples.shape[:-1])
    if spec.score == "mi":
        per_question = acquisition.mutual_information(rho_samples, n)
    elif spec.score == "entropy":
        per_question = acquisition.predictive_entropy(rho_samples, n)
    else:
        if joint is None:
            raise ValueError(f"strategy {strategy!r} needs target samples (joint=)")
        per_question = targeted.epig(rho_samples, n, joint.targets, joint.weights)
    return acquisition.sum_over_questions(per_question)


def select(
    strategy: str,
    n_pool: int,
    k: int,
    score: np.ndarray | None,
    seed,
    beta: float = 1.0,
    features: np.ndarray | None = None,
    joint: Joint | None = None,
) -> np.ndarray:
    """Positions (into the pool) of the k galaxies to acquire, best first. ``seed``: an int or
    a ``numpy.random.Generator``; ``features`` (pool, F) for ``kmeans`` and ``diverse_bald``;
    ``joint`` for ``variance``."""
    spec = lookup(strategy)
    rng = np.random.default_rng(seed)
    if spec.needs_features and features is None:
        raise ValueError(f"strategy {strategy!r} needs the pool's features (regime 'finetune')")
    if spec.pick == "kmeans":
        return nearest_to_centres(features, k, rng)
    if spec.pick == "diverse":
        return diverse_top(score, features, k, rng)
    if spec.pick == "uniform":  # the caller gives each random run its own stream
        return acquisition.select_top(rng.random(n_pool), k)
    if spec.pick == "top":
        return acquisition.select_top(score, k)
    if spec.pick == "variance":
        if joint is None:
            raise ValueError(f"strategy {strategy!r} needs shared-mask samples (joint=)")
        return targeted.variance_batch(joint.rho, joint.n, joint.targets, k, joint.weights)[0]
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta!r}")
    gumbel = rng.gumbel(size=n_pool)
    if beta == 0:
        return acquisition.select_top(gumbel, k)
    return acquisition.select_top(_log_weights(score, beta) + gumbel, k)


def _log_weights(score, beta: float) -> np.ndarray:
    """beta log(score), the log sampling weights of ``gumbel`` (zero scores floored)."""
    return beta * np.log(np.maximum(np.asarray(score, dtype=np.float64), np.finfo(float).tiny))


def sequential_probabilities(score: np.ndarray, picks: np.ndarray, beta: float) -> np.ndarray:
    r"""The probability with which each of ``picks`` (in pick order) was drawn by ``gumbel``.

    Top-k of :math:`\beta \log s_i + G_i` (Gumbel noise) is a draw of k galaxies one at a time
    without replacement, each with probability proportional to :math:`s_i^\beta` among those
    not yet drawn (Kool et al. 2019), so the m-th pick's probability is
    :math:`s_{p_m}^\beta / (\sum_i s_i^\beta - \sum_{j<m} s_{p_j}^\beta)`.
    """
    log_w = _log_weights(score, beta)
    w = np.exp(log_w - log_w.max())
    taken = np.concatenate([[0.0], np.cumsum(w[picks])[:-1]])
    return w[picks] / (w.sum() - taken)


def expected_votes(labelled: pd.DataFrame, total_columns: list[str]) -> np.ndarray:
    """(Q,) mean N of the labelled set per question, rounded to whole votes (at least 1)."""
    return np.maximum(1, np.rint(labelled[total_columns].mean().to_numpy()))


def pool_n(rho, labelled: pd.DataFrame, questions: list[str], expected=None, tree=True):
    """(pool, Q) whole N to score the pool's samples rho (pool, Q, T) with: ``expected``
    (see :func:`expected_n`) or the labelled set's mean N, shared down the decision tree by
    the model's own predictions when ``tree`` (:func:`pool_votes`)."""
    totals = [question(q).total_column for q in questions]
    n_exp = expected_n(expected or None, expected_votes(labelled, totals), list(questions))
    return pool_votes(rho, list(questions), n_exp, tree)


def tree_votes(mean_rho: np.ndarray, questions: list[str], n_flat) -> np.ndarray:
    r"""Expected N per galaxy and question, following the Galaxy Zoo decision tree.

    Volunteers reach a question only through its parent's answer (``Question.asked_if``), so
    a galaxy's expected N for it is its parent's expected N times the model's probability of
    that answer: :math:`N_\text{edge-on} = N\,(1 - \rho_\text{smooth})` and
    :math:`N_\text{bar} = N_\text{edge-on}\,(1 - \rho_\text{edge-on})` (the "not yes"
    answer of smooth-or-featured lumps featured with artifact, so this slightly overstates
    N for the later questions). Questions without a parent among ``questions`` keep
    ``n_flat``. Results are rounded to whole votes; 0 means nobody would be asked.

    Args:
        mean_rho: (G, Q) predicted probabilities of "yes" (e.g. the MC-dropout mean).
        questions: the Q question names, in column order.
        n_flat: (Q,) expected N of each question with no parent here (e.g. the labelled mean).

    Returns:
        float64 (G, Q) whole numbers.
    """
    return np.rint(_down_the_tree(mean_rho, questions, n_flat))  # rounded once at the end


def tree_share(mean_rho: np.ndarray, questions: list[str]) -> np.ndarray:
    """(G, Q) share of a galaxy's volunteers who reach each question, from the model's
    probabilities of the answers leading there (:func:`tree_votes` before N and rounding; 1 for
    questions with no parent among ``questions``): the targets' weights of ``epig`` and
    ``variance``."""
    return _down_the_tree(mean_rho, questions, np.ones(len(questions)))


def _down_the_tree(mean_rho, questions: list[str], start) -> np.ndarray:
    """``start`` (Q,) multiplied down the decision tree by the answers' probabilities."""
    mean_rho = np.asarray(mean_rho, dtype=np.float64)
    if mean_rho.ndim != 2 or mean_rho.shape[1] != len(questions):
        raise ValueError(f"mean_rho must be (galaxies, {len(questions)}); got {mean_rho.shape}")
    exact = np.broadcast_to(np.asarray(start, dtype=np.float64), mean_rho.shape).copy()
    for name in sorted(questions, key=list(QUESTIONS).index):  # parents before children
        j, parent = questions.index(name), question(name).asked_if
        if parent is None or parent[0] not in questions:
            continue
        p = questions.index(parent[0])
        exact[:, j] = exact[:, p] * answer_probability(*parent, mean_rho[:, p])
    return exact


def pool_votes(rho: np.ndarray, questions: list[str], n_exp: np.ndarray, tree: bool):
    """(pool, Q) N to score the pool's samples rho (pool, Q, T) with: ``n_exp`` for every
    galaxy, or per galaxy from the decision tree (:func:`tree_votes`) when ``tree``."""
    n = tree_votes(rho.mean(axis=-1), questions, n_exp) if tree else n_exp
    return np.broadcast_to(n, rho.shape[:-1])


def expected_n(expected_n, labelled_mean: np.ndarray, questions: list[str]) -> np.ndarray:
    """(Q,) N assumed for the pool: ``expected_n`` (scalar, (Q,) or {question: N}, the
    missing questions taking the labelled mean) or, when None, the labelled mean itself."""
    if expected_n is None:
        return labelled_mean
    if isinstance(expected_n, dict):
        unknown = sorted(set(expected_n) - set(questions))
        if unknown:
            raise ValueError(f"expected_n names questions the model does not learn: {unknown}")
        out = labelled_mean.astype(np.float64)
        out[[questions.index(q) for q in expected_n]] = list(expected_n.values())
    else:
        out = np.broadcast_to(np.asarray(expected_n, dtype=np.float64), labelled_mean.shape)
    if np.any(out < 1) or np.any(out != np.rint(out)):
        raise ValueError(f"expected_n must be whole numbers of votes >= 1; got {expected_n!r}")
    return out.copy()


def _kmeans(x: np.ndarray, k: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """(centres (k, F), labels) of k-means++ then Lloyd iterations (scipy) on standardised x."""
    import warnings

    from scipy.cluster.vq import kmeans2

    z = (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-12)
    with warnings.catch_warnings():  # an emptied cluster keeps its centre; callers handle it
        warnings.filterwarnings("ignore", "One of the clusters is empty")
        return kmeans2(z, k, minit="++", seed=rng, missing="warn") + (z,)


def nearest_to_centres(features: np.ndarray, k: int, rng) -> np.ndarray:
    """Positions of the k rows nearest the centres of a k-means clustering of ``features``."""
    x = np.asarray(features, dtype=np.float64)
    if len(x) <= k:
        return np.arange(len(x))
    centres, _, z = _kmeans(x, k, rng)
    dist = ((z[:, None, :] - centres[None]) ** 2).sum(axis=-1)  # (rows, k)
    picks: list[int] = []
    for c in range(k):  # nearest row not already taken, centre by centre
        order = np.argsort(dist[:, c])
        picks.append(int(next(i for i in order if i not in picks)))
    return np.array(picks)


def diverse_top(score: np.ndarray, features: np.ndarray, k: int, rng) -> np.ndarray:
    """Zhdanov (2019): cluster the ``PREFILTER`` x k best-scored rows into k groups by k-means
    and take each group's best; groups that come out empty are filled by the next best rows."""
    top = acquisition.select_top(score, min(len(score), PREFILTER * k))
    if len(top) <= k:
        return top
    _, labels, _ = _kmeans(np.asarray(features, dtype=np.float64)[top], k, rng)
    best = [top[labels == c][np.argmax(score[top[labels == c]])] for c in np.unique(labels)]
    best.sort(key=lambda i: -score[i])  # best first, as select promises
    rest = [i for i in top if i not in set(best)]  # top is best first
    return np.array(best + rest[: k - len(best)], dtype=int)
