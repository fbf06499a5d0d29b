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


def question(name: str) -> Question:
    """Look up a question by name, with an error listing the known ones."""
    try:
        return QUESTIONS[name]
    except KeyError:
        raise ValueError(f"unknown question {name!r}; known: {sorted(QUESTIONS)}") from None


def vote_columns(names: list[str] | None = None) -> list[str]:
    """All answer and total columns of the named questions (default: all), in schema order."""
    cols = []
    for q in QUESTIONS.values():
        if names is None or q.name in names:
            cols += q.answer_columns + [q.total_column]
    return cols
