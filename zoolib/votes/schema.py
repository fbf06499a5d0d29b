"""The Galaxy Zoo questions this project models, in galaxy-datasets/Zoobot column naming.

A canonical catalogue has one row per galaxy with ``id_str`` (unique), optionally ``file_loc``
(image path, relative to an images root), and for each question ``q`` the integer vote columns
``q_<answer>`` for its answers plus ``q_total-votes`` (= N, the volunteers asked that question).

For the binomial model each question is reduced to k "yes" votes out of N:
``k = catalog[question.yes_column]`` and ``N = catalog[question.total_column]``. Answers other
than "yes" count as "no" (e.g. artifact votes count against "smooth").

Decision tree (as in GZ2 and GZ DECaLS): everyone answers smooth-or-featured; only volunteers who
answered featured-or-disk are asked disk-edge-on; only those who then answered "no" (not edge-on)
are asked bar. So N_bar <= N_edge-on <= N_smooth-or-featured.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Question:
    """One Galaxy Zoo question: its name, its answers, and which answer is "yes"."""

    name: str
    answers: tuple[str, ...]
    yes: str
    asked_if: tuple[str, str] | None = None  # (question, answer) that leads here

    @property
    def yes_column(self) -> str:
        return f"{self.name}_{self.yes}"

    @property
    def total_column(self) -> str:
        return f"{self.name}_total-votes"

    @property
    def answer_columns(self) -> list[str]:
        return [f"{self.name}_{a}" for a in self.answers]


QUESTIONS: dict[str, Question] = {
    q.name: q
    for q in (
        Question("smooth-or-featured", ("smooth", "featured-or-disk", "artifact"), yes="smooth"),
        Question(
            "disk-edge-on",
            ("yes", "no"),
            yes="yes",
            asked_if=("smooth-or-featured", "featured-or-disk"),
        ),
        Question("bar", ("yes", "no"), yes="yes", asked_if=("disk-edge-on", "no")),
    )
}

ID_COLUMN = "id_str"
FILE_COLUMN = "file_loc"
SPLIT_COLUMN = "split"
ROW_COLUMN = "row"  # a real catalogue's data row in its file, counted from 0 (header excluded)


def question(name: str) -> Question:
    """Look up a question by name, with an error listing the known ones."""
    try:
        return QUESTIONS[name]
    except KeyError:
        raise ValueError(f"unknown question {name!r}; known: {sorted(QUESTIONS)}") from None


def ancestors(name: str) -> list[tuple[str, str]]:
    """The (question, answer) pairs that lead volunteers to ``name``, nearest first ([] for a
    question everyone is asked)."""
    out, here = [], question(name).asked_if
    while here is not None:
        out.append(here)
        here = question(here[0]).asked_if
    return out


def share_asked(name: str, yes_probability) -> np.ndarray:
    r"""Share of a galaxy's volunteers who are asked ``name``: the product, over the answers
    leading to it, of each answer's probability,
    :math:`w_\text{bar} = (1 - p_\text{smooth})(1 - p_\text{edge-on})` (1 for the first
    question). ``yes_probability(q)`` gives the (G,) probabilities of question q's "yes"; a
    leading answer other than "yes" takes 1 - p (for smooth-or-featured this lumps artifact
    with featured, as :func:`zoolib.active.strategies.tree_votes` does)."""
    share = np.float64(1.0)
    for parent, answer in ancestors(name):
        share = share * answer_probability(parent, answer, yes_probability(parent))
    return share


def answer_probability(name: str, answer: str, yes_probability) -> np.ndarray:
    """Probability of ``answer`` to question ``name`` given the probability of its "yes": p
    itself, or 1 - p for any other answer (the binary reduction of the module docstring)."""
    p = np.asarray(yes_probability, dtype=np.float64)
    return p if question(name).yes == answer else 1.0 - p


def vote_columns(names: list[str] | None = None) -> list[str]:
    """All answer and total columns of the named questions (default: all), in schema order."""
    cols = []
    for q in QUESTIONS.values():
        if names is None or q.name in names:
            cols += q.answer_columns + [q.total_column]
    return cols


def counts(catalog, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Yes votes k and totals N of the named questions: two (galaxies, Q) arrays, as stored."""
    k = np.stack([catalog[question(q).yes_column].to_numpy() for q in names], axis=1)
    n = np.stack([catalog[question(q).total_column].to_numpy() for q in names], axis=1)
    return k, n


def count_problems(values) -> list[tuple[np.ndarray, str]]:
    """Where ``values`` are not vote counts, and why: boolean masks (shape of ``values``) for
    "is missing or not finite", "is negative" and "is not a whole number", in that order.

    The one definition of a valid count, used by :func:`validate_counts`, the catalogue readers
    and :func:`zoolib.votes.binomial.as_counts`.
    """
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    with np.errstate(invalid="ignore"):
        return [
            (~finite, "is missing or not finite"),
            (v < 0, "is negative"),
            (finite & (v != np.round(v)), "is not a whole number"),
        ]


def validate_counts(k, n, row_labels=None) -> None:
    """Raise ``ValueError`` naming the first index where (k, n) are not valid vote counts.

    Valid means finite, whole, ``k >= 0``, ``n >= 0`` and ``k <= n``. ``k`` and ``n`` are
    array-likes of the same (broadcastable) shape. ``row_labels`` (one per row of the first axis,
    e.g. galaxy ids) are quoted in the message too.
    """
    k, n = np.broadcast_arrays(np.asarray(k, np.float64), np.asarray(n, np.float64))
    checks = [(mask, f"k (yes votes) {what}") for mask, what in count_problems(k)]
    checks += [(mask, f"n (total votes) {what}") for mask, what in count_problems(n)]
    with np.errstate(invalid="ignore"):
        checks.append((k > n, "k (yes votes) exceeds n (total votes)"))
    for mask, what in checks:
        if mask.any():
            at = tuple(int(i) for i in np.argwhere(mask)[0])
            where = at[0] if len(at) == 1 else at
            label = "" if row_labels is None else f" ({row_labels[at[0]]!r})"
            raise ValueError(f"{what} at index {where}{label}: k={k[at]:g}, n={n[at]:g}")
