"""Decision trees as data: which questions volunteers are asked, with which answers, after which.

A :class:`Tree` is a tuple of :class:`Node` questions: a name, its answers, and the (question,
answer) pairs any of which leads a volunteer to it (``asked_if``; empty for a question everyone
is asked). Its count columns follow the galaxy-datasets / Zoobot naming of
:mod:`zoolib.votes.schema`: ``<question>_<answer>`` per answer and ``<question>_total-votes`` (N,
the volunteers asked it).

Shipped trees (:data:`TREES`):

* ``gz2``: Galaxy Zoo 2 (Willett et al. 2013, their Table 2 and Fig. 1): 11 tasks, 37 answers,
  mapped from the shipped GZ2 table's raw count columns (:data:`GZ2_COLUMNS`). Task 06 ("is
  there anything odd?") is asked after every path that does not end at star or artifact, so it
  has two parents (smooth, featured-or-disk).
* ``decals``: Galaxy Zoo DECaLS DR5 (Walmsley et al. 2022, their Fig. 4; the ``gz_decals_dr5``
  schema of Zoobot's label metadata): 10 questions, 34 answers. Its ``bar`` has three answers
  (strong, weak, no), unlike GZ2's.
* ``three``: the three yes/no questions zoo's models have learned so far (smooth-or-featured,
  disk-edge-on, bar, as :data:`zoolib.votes.schema.QUESTIONS` defines them), a subset of ``gz2``.

A user's tree comes from a small YAML file (:func:`from_yaml`: ``{question: {answers: [...],
asked_if: [[question, answer], ...]}}``) or from a catalogue's count columns
(:func:`from_columns`); a single new label (``ring`` 0/1, or ``ring_yes`` / ``ring_no`` counts)
is a one-question tree. :meth:`Tree.check` refuses unknown parents or answers, repeated names
and cycles, naming what is wrong.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoolib import paths
from zoolib.votes.schema import QUESTIONS

QUESTION_NAME = r"[a-z0-9][a-z0-9-]*"  # a question's name: lower case letters, digits and '-'

TOTAL = "total-votes"
NOT_COUNTS = re.compile(r"(fraction|frac|debiased|weighted)$")  # columns beside counts, not answers


@dataclass(frozen=True)
class Node:
    """One question of a tree: its answers, and the (question, answer) pairs leading to it."""

    name: str
    answers: tuple[str, ...]
    asked_if: tuple[tuple[str, str], ...] = ()

    @property
    def answer_columns(self) -> list[str]:
        return [f"{self.name}_{a}" for a in self.answers]

    @property
    def total_column(self) -> str:
        return f"{self.name}_{TOTAL}"


@dataclass(frozen=True)
class Tree:
    """A named decision tree: its questions, parents before children (checked)."""

    name: str
    nodes: tuple[Node, ...]

    def __post_init__(self):
        self.check()

    @property
    def questions(self) -> list[str]:
        return [n.name for n in self.nodes]

    @property
    def n_answers(self) -> int:
        return sum(len(n.answers) for n in self.nodes)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise ValueError(f"tree {self.name!r} has no question {name!r}; it has {self.questions}")

    def columns(self) -> list[str]:
        """Every count column: each question's answers, then its total."""
        return [c for n in self.nodes for c in [*n.answer_columns, n.total_column]]

    def answer_columns(self) -> list[str]:
        """Every answer's column ``<question>_<answer>``, in tree order: the names of a tree
        model's outputs, and of its per-answer posteriors (each a yes/no question: this answer
        or another)."""
        return [c for n in self.nodes for c in n.answer_columns]

    def sizes(self) -> list[int]:
        """The number of answers of each question, in tree order."""
        return [len(n.answers) for n in self.nodes]

    def answer_counts(self, catalog) -> tuple[np.ndarray, np.ndarray]:
        """(k, N), each (galaxies, A) float64: every answer's votes and its question's total,
        so each answer reads as a yes/no question (its marginal is binomial)."""
        k = np.stack([catalog[c].to_numpy(np.float64) for c in self.answer_columns()], axis=1)
        n = np.stack([catalog[node.total_column].to_numpy(np.float64)
                      for node in self.nodes for _ in node.answers], axis=1)  # fmt: skip
        return k, n

    def to_mapping(self) -> dict:
        """``{question: {"answers": [...], "asked_if": [[q, a], ...]}}`` (:func:`from_mapping`)."""
        return {n.name: {"answers": list(n.answers), "asked_if": [list(p) for p in n.asked_if]}
                for n in self.nodes}  # fmt: skip

    def subset(self, name: str, questions: list[str]) -> Tree:
        """The tree of ``questions`` only; a parent left out must not be needed (checked)."""
        return Tree(name, tuple(self.node(q) for q in questions))

    def present(self, columns) -> Tree:
        """The questions whose count columns are all in ``columns``; links to a parent that is
        not there are dropped (a catalogue with only ``bar`` columns has a one-question tree)."""
        have = set(columns)
        kept = [n for n in self.nodes if set(n.answer_columns) | {n.total_column} <= have]
        names = {n.name for n in kept}
        return Tree(self.name, tuple(
            Node(n.name, n.answers, tuple(p for p in n.asked_if if p[0] in names)) for n in kept
        ))  # fmt: skip

    def part(self, questions) -> Tree:
        """The tree of ``questions`` in tree order, links to a parent left out dropped (unlike
        :meth:`subset`, which needs the parents): what a model of those questions predicts."""
        nodes = [self.node(q) for q in questions]
        return self.present([c for n in nodes for c in [*n.answer_columns, n.total_column]])

    def asked_share(self, probabilities: dict) -> dict:
        r"""Each question's expected share of a galaxy's volunteers who are asked it: 1 for a
        question everyone is asked, else the sum over its parents (question, answer) of the
        parent's share times that answer's probability,
        :math:`w_q = \sum_{(r, a)} w_r\, p_{r,a}`. ``probabilities`` maps each question to
        (..., K) answer probabilities in its answers' order; returns {question: (...,)}."""
        out: dict = {}
        for n in self.nodes:
            p = np.asarray(probabilities[n.name], dtype=np.float64)
            if not n.asked_if:
                out[n.name] = np.ones(p.shape[:-1])
                continue
            out[n.name] = sum(
                out[r] * np.asarray(probabilities[r])[..., self.node(r).answers.index(a)]
                for r, a in n.asked_if
            )
        return out

    def check(self) -> None:
        """Raise ValueError naming the first problem: a repeated question or answer, a question
        without two answers, a parent that is not an earlier question, or an answer it lacks."""
        seen: dict[str, Node] = {}
        for n in self.nodes:
            where = f"tree {self.name!r}, question {n.name!r}"
            if not re.fullmatch(QUESTION_NAME, n.name or ""):
                raise ValueError(f"{where}: names are lower case letters, digits and '-'")
            if n.name in seen:
                raise ValueError(f"{where} appears twice")
            if len(n.answers) < 2 or len(set(n.answers)) != len(n.answers):
                raise ValueError(f"{where}: needs two or more distinct answers, has {n.answers}")
            for parent, answer in n.asked_if:
                if parent not in seen:
                    raise ValueError(f"{where}: asked after {parent!r}, which is not an earlier "
                                     "question (parents come first; no cycles)")  # fmt: skip
                if answer not in seen[parent].answers:
                    raise ValueError(f"{where}: {parent!r} has no answer {answer!r}; its answers "
                                     f"are {seen[parent].answers}")  # fmt: skip
            seen[n.name] = n


def _node(name: str, answers: str, *asked_if: str) -> Node:
    """Compact builder: answers space-separated, parents as 'question:answer'."""
    return Node(name, tuple(answers.split()), tuple(tuple(p.split(":")) for p in asked_if))


FACE_ON = "disk-edge-on:no"
FIRST = (  # the two questions GZ2 and GZ DECaLS share, word for word
    _node("smooth-or-featured", "smooth featured-or-disk artifact"),
    _node("disk-edge-on", "yes no", "smooth-or-featured:featured-or-disk"),
)
GZ2 = Tree("gz2", (
    *FIRST,
    _node("bar", "yes no", FACE_ON),
    _node("has-spiral-arms", "yes no", FACE_ON),
    _node("bulge-prominence", "none just-noticeable obvious dominant", FACE_ON),
    _node("anything-odd", "yes no", "smooth-or-featured:smooth",
          "smooth-or-featured:featured-or-disk"),
    _node("how-rounded", "completely-round in-between cigar-shaped", "smooth-or-featured:smooth"),
    _node("odd-feature", "ring lens-or-arc disturbed irregular other merger dust-lane",
          "anything-odd:yes"),
    _node("bulge-shape", "rounded boxy none", "disk-edge-on:yes"),
    _node("spiral-winding", "tight medium loose", "has-spiral-arms:yes"),
    _node("spiral-arm-count", "1 2 3 4 more-than-4 cant-tell", "has-spiral-arms:yes"),
))  # fmt: skip
GZ2_TASKS = {  # canonical question -> the GZ2 table's task prefix
    "smooth-or-featured": "t01_smooth_or_features", "disk-edge-on": "t02_edgeon",
    "bar": "t03_bar", "has-spiral-arms": "t04_spiral", "bulge-prominence": "t05_bulge_prominence",
    "anything-odd": "t06_odd", "how-rounded": "t07_rounded", "odd-feature": "t08_odd_feature",
    "bulge-shape": "t09_bulge_shape", "spiral-winding": "t10_arms_winding",
    "spiral-arm-count": "t11_arms_number",
}  # fmt: skip
GZ2_ANSWERS = (  # the GZ2 answer codes in tree order, one per canonical answer
    "a01_smooth a02_features_or_disk a03_star_or_artifact a04_yes a05_no a06_bar a07_no_bar "
    "a08_spiral a09_no_spiral a10_no_bulge a11_just_noticeable a12_obvious a13_dominant a14_yes "
    "a15_no a16_completely_round a17_in_between a18_cigar_shaped a19_ring a20_lens_or_arc "
    "a21_disturbed a22_irregular a23_other a24_merger a38_dust_lane a25_rounded a26_boxy "
    "a27_no_bulge a28_tight a29_medium a30_loose a31_1 a32_2 a33_3 a34_4 a36_more_than_4 "
    "a37_cant_tell"
).split()


def _gz2_columns() -> dict[str, str]:
    """Canonical answer column -> the GZ2 table's raw count column, in tree order."""
    codes = iter(GZ2_ANSWERS)
    return {column: f"{GZ2_TASKS[n.name]}_{next(codes)}_count"
            for n in GZ2.nodes for column in n.answer_columns}  # fmt: skip


GZ2_COLUMNS: dict[str, str] = _gz2_columns()

DECALS = Tree("decals", (
    *FIRST,
    _node("has-spiral-arms", "yes no", FACE_ON),
    _node("bar", "strong weak no", FACE_ON),
    _node("bulge-size", "dominant large moderate small none", FACE_ON),
    _node("how-rounded", "round in-between cigar-shaped", "smooth-or-featured:smooth"),
    _node("edge-on-bulge", "boxy none rounded", "disk-edge-on:yes"),
    _node("spiral-winding", "tight medium loose", "has-spiral-arms:yes"),
    _node("spiral-arm-count", "1 2 3 4 more-than-4 cant-tell", "has-spiral-arms:yes"),
    _node("merging", "none minor-disturbance major-disturbance merger",
          "smooth-or-featured:smooth", "smooth-or-featured:featured-or-disk"),
))  # fmt: skip

THREE = Tree("three", tuple(
    Node(q.name, q.answers, (q.asked_if,) if q.asked_if else ()) for q in QUESTIONS.values()
))  # fmt: skip
TREES: dict[str, Tree] = {t.name: t for t in (GZ2, DECALS, THREE)}


def zoos_questions(tree: Tree, questions) -> bool:
    """Whether every one of ``questions`` of ``tree`` is one of zoo's three with zoo's answers
    (GZ DECaLS's ``bar`` has three answers, so it is not zoo's yes/no bar)."""
    return all(q in THREE.questions and tree.node(q).answers == THREE.node(q).answers
               for q in questions)  # fmt: skip


def tree(name: str) -> Tree:
    """A shipped tree by name, with an error listing them (and the closest, for a typo)."""
    try:
        return TREES[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), TREES, n=1)
        guess = f"; did you mean {close[0]!r}?" if close else ";"
        raise ValueError(f"unknown tree {name!r}{guess} shipped: {sorted(TREES)}, a YAML file "
                         f"of your own or {LABEL_PREFIX}<column>") from None  # fmt: skip


LABEL_PREFIX = "label:"  # notebook 01's tree "label:ring": a new yes/no label


def named(spec: str) -> Tree:
    """The tree notebook 01's ``tree`` parameter names: a shipped tree by name, a user's from
    a YAML file (a path ending .yaml or .yml, relative to the project root), or
    ``"label:<column>"``: the one-question tree of a new label (:func:`one_label`)."""
    if str(spec).startswith(LABEL_PREFIX):
        return one_label(str(spec).removeprefix(LABEL_PREFIX))
    if str(spec).endswith((".yaml", ".yml")):
        return from_yaml(paths.resolve(spec))
    return tree(spec)


def _text(value) -> str:
    """An answer's name; YAML reads unquoted yes / no as booleans, which mean "yes" / "no"."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def from_mapping(name: str, entries: dict, source: str = "the tree") -> Tree:
    """A tree from ``{question: {"answers": [...], "asked_if": [[question, answer], ...]}}``."""
    if not isinstance(entries, dict) or not entries:
        raise ValueError(f"{source}: expected a mapping of question -> {{answers, asked_if}}")
    nodes = []
    for q, spec in entries.items():
        if not isinstance(spec, dict) or "answers" not in spec:
            raise ValueError(f"{source}: question {q!r} needs 'answers: [...]'")
        unknown = sorted(set(spec) - {"answers", "asked_if"})
        if unknown:
            raise ValueError(f"{source}: question {q!r} has unknown entries {unknown}")
        parents = spec.get("asked_if") or []
        if not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in parents):
            raise ValueError(f"{source}: question {q!r}: asked_if is a list of [question, answer]")
        nodes.append(Node(str(q), tuple(_text(a) for a in spec["answers"]),
                          tuple((str(p), _text(a)) for p, a in parents)))  # fmt: skip
    try:
        return Tree(name, tuple(nodes))
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from None


def from_yaml(path: str | Path) -> Tree:
    """A user's tree from a YAML file (see :func:`from_mapping`), named after the file."""
    import yaml

    path = Path(path)
    try:
        entries = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"cannot read the tree {path}: {err}") from None
    return from_mapping(path.stem, entries, str(path))


def from_columns(columns, name: str = "catalogue") -> Tree:
    """A tree read off a catalogue's count columns: every ``<question>_total-votes`` column with
    two or more ``<question>_<answer>`` columns beside it is a question (answers in column
    order; no parents: a catalogue does not say who was asked what, N does). Raises ValueError
    when there is none."""
    columns = [str(c) for c in columns]
    nodes = []
    for c in columns:
        if c.endswith(f"_{TOTAL}"):
            q = c[: -len(TOTAL) - 1]
            rest = [a[len(q) + 1 :] for a in columns if a.startswith(f"{q}_") and a != c]
            answers = tuple(a for a in rest if "_" not in a and not NOT_COUNTS.search(a))
            if len(answers) >= 2:
                nodes.append(Node(q, answers))
    if not nodes:
        raise ValueError(f"{name}: no '<question>_<answer>' count columns beside a "
                         f"'<question>_{TOTAL}' column")  # fmt: skip
    return Tree(name, tuple(nodes))


def question_name(text: str) -> str:
    """A column's name as a question's: lower case, with ``_`` and spaces as ``-`` (GZ1's
    ``edge_on`` is question ``edge-on``). Other characters stay, for the tree to refuse."""
    return re.sub(r"[_\s]+", "-", str(text).strip().lower())


def one_label(label: str) -> Tree:
    """The one-question tree of a new label read from the 0/1 column ``label``: answers yes
    and no. The question is the column's :func:`question_name` (column ``edge_on``: question
    ``edge-on``, answer columns ``edge-on_yes``, ``edge-on_no``); the tree keeps the column's
    name."""
    name = question_name(label)
    if not re.fullmatch(QUESTION_NAME, name):
        raise ValueError(
            f"label column {label!r} cannot name a question (as {name!r}): question names are "
            "lower case letters, digits and '-'; rename the column, e.g. to "
            f"{re.sub(r'[^a-z0-9-]+', '-', name).strip('-') or 'my-label'!r}"
        )
    return Tree(label, (Node(name, ("yes", "no")),))
