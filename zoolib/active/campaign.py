r"""Which galaxies should volunteers see next? Scores and picks on a real catalogue, every
question of the model's tree (``python -m zoolib acquire``; notebook 05).

A model here is the paper's CNN cut into its deterministic trunk and its MC-dropout head
(:func:`zoolib.cnn.models.split_trunk_head`): the trunk's features :math:`x` (G, F) of the
unlabelled galaxies are computed once, and the head, dropout then one dense layer (:class:`Head`:
weights (F, A), bias (A,), rate r), is sampled T times with :mod:`zoolib.active.heads`, exactly
as notebook 04 scores its pool. Two kinds of head:

* **binomial** (the paper's; zoo's shipped models): one output per question, :math:`\rho_q`, the
  chance a volunteer gives its "yes" answer. Rules score each question's vote count out of
  :math:`N_q` volunteers with :func:`zoolib.active.strategies.scores`, as notebook 04 does (a
  label of one's own, outside zoo's questions, at the flat N);
* **tree** (``likelihood: multinomial`` in notebook 02): a softmax over each question's answers.
  BALD is over each question's vote *vector* (:func:`zoolib.votes.multinomial.mutual_information`,
  exact), for every question of the tree.

**Every question counts by its volunteers.** :math:`N_q` is the galaxy's expected number of
volunteers asked question q: ``expected_votes`` (N, asked the first question) times the
question's expected share of volunteers asked, from the model's own mean answer
probabilities down the decision tree (:meth:`zoolib.votes.trees.Tree.asked_share`;
:func:`zoolib.active.strategies.tree_votes` for zoo's yes/no questions), rounded to whole
votes. The galaxy's score is the sum over questions. So a bar question counts for a smooth
galaxy only by the few volunteers who would be asked it: a question's weight is its share of
volunteers, through N (BALD grows with N, sublinearly), not a multiplied-in factor, which is
notebook 04's ``tree_votes`` and what its measurements are of.

Rules (:data:`RULES`): ``random``; ``bald`` (top-k); ``power_bald`` (k galaxies drawn with
probability :math:`\propto \mathrm{BALD}^\beta` without replacement, Kirsch et al. 2023: the
default, the best rule notebook 04 measures on the simulation); ``entropy``; and, for binomial
heads, ``epig`` and ``power_epig`` (EPIG with targets drawn from the unlabelled catalogue).
The same seed gives the same picks: every draw comes from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zoolib.active import heads, strategies
from zoolib.votes import multinomial, trees
from zoolib.votes.schema import QUESTIONS

RULES = ("random", "bald", "power_bald", "entropy", "epig", "power_epig")
TREE_RULES = ("random", "bald", "power_bald")  # vote-vector BALD: no entropy or EPIG yet
DEFAULT_RULE = "power_bald"


@dataclass(frozen=True)
class Head:
    """An MC-dropout head: ``weights`` (F, A), ``bias`` (A,), dropout ``rate``; ``questions``
    its binomial outputs in order, or ``tree`` (a softmax per question, A = every answer)."""

    weights: np.ndarray
    bias: np.ndarray
    rate: float
    questions: tuple[str, ...] = ()
    tree: trees.Tree | None = None

    def __post_init__(self):
        outputs = self.tree.n_answers if self.tree is not None else len(self.questions)
        if np.shape(self.weights)[-1] != outputs or np.shape(self.bias) != (outputs,):
            raise ValueError(f"head weights {np.shape(self.weights)} and bias "
                             f"{np.shape(self.bias)} do not give {outputs} outputs")  # fmt: skip


def check_rule(rule: str, head: Head) -> None:
    """Refuse a rule the head cannot be scored with, naming the ones it can."""
    allowed = TREE_RULES if head.tree is not None else RULES
    if rule not in allowed:
        kind = "a tree (softmax) model" if head.tree is not None else "a binomial model"
        raise ValueError(f"--strategy {rule!r}: for {kind} choose from {allowed}")


def tree_scores(head: Head, features, expected_votes: int, n_samples: int, rng) -> np.ndarray:
    """(G,) vote-vector BALD summed over the tree's questions, each at its galaxy's N_q."""
    p = heads.sample_probabilities(features, head.weights, head.bias, n_samples, head.rate, rng,
                                   head.tree.sizes())  # (G, A, T)  # fmt: skip
    return vote_vector_bald(p, head.tree, expected_votes)


def vote_vector_bald(p: np.ndarray, tree: trees.Tree, expected_votes) -> np.ndarray:
    """(G,) exact BALD over each question's vote vector, summed over ``tree``'s questions, from
    (G, A, T) samples of answer probabilities (answers in tree order). A question's N is
    ``expected_votes`` times its expected share of volunteers asked (from the samples' mean
    answer probabilities down the tree), rounded."""
    parts = np.split(p, np.cumsum(tree.sizes())[:-1], axis=1)
    named = dict(zip(tree.questions, parts, strict=True))
    share = tree.asked_share({q: v.mean(-1) for q, v in named.items()})
    total = np.zeros(len(p))
    for q, part in named.items():
        n_q = np.rint(expected_votes * share[q])
        samples = np.moveaxis(part, 1, 2)  # (G, T, K)
        for n in np.unique(n_q):
            rows = n_q == n
            total[rows] += multinomial.mutual_information(samples[rows], int(n))
    return total


def binomial_scores(rule: str, head: Head, features, expected_votes: int, n_samples: int,
                    rng, n_targets: int = 256) -> np.ndarray:  # fmt: skip
    """(G,) notebook 04's score of ``rule`` for a binomial head, N_q down the decision tree."""
    questions = list(head.questions)
    flat = np.full(len(questions), float(expected_votes))
    tree = set(questions) <= set(QUESTIONS)  # zoo's questions: down their tree; a label: flat N
    spec = strategies.lookup(rule)
    if spec.posterior != "shared":
        rho = heads.sample_rho(features, head.weights, head.bias, n_samples, head.rate, rng)
        n = strategies.pool_votes(rho, questions, flat, tree=tree)
        return strategies.scores(rule, rho, n)
    targets = rng.choice(len(features), size=min(n_targets, len(features)), replace=False)
    both = np.concatenate([features, features[targets]])  # one mask per sample for all
    rho = heads.sample_rho_shared(both, head.weights, head.bias, n_samples, head.rate, rng)
    pool, aims = rho[: len(features)], rho[len(features) :]
    n = strategies.pool_votes(pool, questions, flat, tree=tree)
    weights = strategies.tree_share(aims.mean(-1), questions) if tree else np.ones(aims.shape[:2])
    return strategies.scores(rule, pool, n, strategies.Joint(pool, n, aims, weights))


def choose(
    rule: str, head: Head, features, k: int, seed: int, expected_votes: int = 40,
    n_samples: int = 30, beta: float = 1.0,
) -> tuple[np.ndarray, np.ndarray | None]:  # fmt: skip
    """(positions of the k galaxies to show, best first; every galaxy's score or None for
    random) of ``features`` (G, F) under ``rule``, all draws from ``seed``."""
    check_rule(rule, head)
    features = np.asarray(features, dtype=np.float32)
    if not 1 <= k <= len(features):
        raise ValueError(f"--n {k}: choose between 1 and the {len(features)} unlabelled galaxies")
    if expected_votes < 1 or n_samples < 2:
        raise ValueError(f"expected_votes >= 1 and n_samples >= 2 needed, got "
                         f"{expected_votes} and {n_samples}")  # fmt: skip
    rng = np.random.default_rng(seed)
    score = None
    if rule != "random" and head.tree is not None:
        score = tree_scores(head, features, expected_votes, n_samples, rng)
    elif rule != "random":
        score = binomial_scores(rule, head, features, expected_votes, n_samples, rng)
    picks = strategies.select(rule, len(features), k, score, rng, beta=beta)
    return picks, score
