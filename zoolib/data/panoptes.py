"""Zooniverse's Panoptes formats: classification exports in, subject manifests out.

**Votes from a classification export** (:func:`count_votes`). A project's "Request new
classification export" gives one CSV row per classification with the columns
:data:`EXPORT_COLUMNS`; ``annotations`` is a JSON list of ``{"task": "T0", "value": ...}`` and
``subject_data`` a JSON object ``{"<subject id>": {"#id_str": ..., ...}}`` holding the metadata
uploaded with the subject (:func:`write_manifest` puts the catalogue id in ``#id_str``, a
column volunteers do not see). A small YAML file (:func:`read_tasks`) names what each task asks:

.. code-block:: yaml

    T0: {question: smooth-or-featured, answers: [smooth, featured-or-disk, artifact]}
    T1: {question: disk-edge-on, answers: [yes, no], labels: ["Yes, edge on", "No"]}

``answers`` are zoo's names in the workflow's order (the value of a single-answer question task
is the index of the answer chosen); ``labels`` (optional, same order) are the texts shown, for
exports whose values are labels. Labels match after Panoptes' own normalisation (lower case,
runs of other characters as one ``-``), so ``"Features or Disk"`` matches ``features-or-disk``.

The counts follow panoptes-aggregation's ``question_extractor`` and ``question_reducer`` (which
cannot share zoo's environment: version 5.3.1 pins numpy < 2.3): per classification, the first
annotation of each task counts one vote for its answer, and votes add up per subject. zoo then
adds per question ``<question>_total-votes``, the volunteers who answered it (N of the binomial
likelihood), and sums subjects with the same ``#id_str`` (a galaxy uploaded twice). Differences,
each stated in the summary: a ``null`` value (a task skipped) is no vote, where the extractor
counts a ``"None"`` answer; a list value (a multiple-answer task) is refused, since N must be
the volunteers who answered; tasks not in the YAML are left out and named.

Kept out and counted (:class:`Summary`): a ``classification_id`` seen again (an export made
twice, or concatenated: counted once), other workflows and workflow versions (``--workflow-id``,
``--workflow-version``; a version without a dot, ``12``, keeps every ``12.x``). Refused, naming
the ``classification_id`` and its row, before anything is written: unreadable JSON, an
annotation without ``task`` and ``value``, an answer index or label not in the YAML, a subject
without ``#id_str``. With ``on_error="skip"`` such classifications are left out whole (none of
their annotations count) and listed.

**Subject manifests** (:func:`write_manifest`) are what the Panoptes command line
(``panoptes subject-set upload-subjects``) uploads: one row per subject, its image file column(s)
first, then metadata; columns whose names start with ``#`` are hidden from volunteers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from zoolib import files
from zoolib.votes.trees import TOTAL

EXPORT_COLUMNS = (  # what a Panoptes classification export has (replay_export writes them all)
    "classification_id",
    "user_name",
    "workflow_id",
    "workflow_version",
    "created_at",
    "metadata",
    "annotations",
    "subject_data",
    "subject_ids",
)
USED_COLUMNS = ("classification_id", "workflow_id", "workflow_version", "annotations",
                "subject_data", "subject_ids")  # what count_votes reads
ID_KEY = "#id_str"  # the subject metadata that carries the catalogue id
NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def slug(text) -> str:
    """Panoptes' normalisation of an answer label: lower case, every run of characters other
    than letters and digits as one ``-``, none at the ends."""
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")


class AnswerError(ValueError):
    """An annotation's value that names no answer of its task in the tasks file."""


@dataclass(frozen=True)
class TaskMap:
    """What one workflow task asks: zoo's question name and its answers in the workflow's
    order, and the answer labels shown to volunteers (optional, same order)."""

    task: str
    question: str
    answers: tuple[str, ...]
    labels: tuple[str, ...] = ()

    def answer(self, value) -> str:
        """The answer a Panoptes annotation value names: an index, or a label or answer name."""
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise AnswerError(f"task {self.task}: value {value!r} is not an answer index or label")
        if isinstance(value, int):
            if not 0 <= value < len(self.answers):
                raise AnswerError(
                    f"task {self.task}: answer index {value} is not one of its "
                    f"{len(self.answers)} answers (0-{len(self.answers) - 1})"
                )
            return self.answers[value]
        by_slug = {slug(a): a for a in self.answers}
        shown = self.labels or self.answers
        by_slug.update({slug(b): a for a, b in zip(self.answers, shown, strict=True)})
        if slug(value) not in by_slug:
            raise AnswerError(
                f"task {self.task}: answer {value!r} is not one of "
                f"{list(self.labels or self.answers)}"
            )
        return by_slug[slug(value)]


def tasks_from_mapping(entries, source: str = "tasks") -> dict[str, TaskMap]:
    """{task: :class:`TaskMap`} from ``{T0: {question: ..., answers: [...], labels: [...]}}``,
    refusing unknown keys, names zoo cannot use as columns and a question named twice."""
    if not isinstance(entries, dict) or not entries:
        raise ValueError(
            f"{source}: expected a mapping of tasks, e.g. "
            "{T0: {question: smooth-or-featured, answers: [smooth, "
            "featured-or-disk, artifact]}}"
        )
    out, seen = {}, {}
    for task, spec in entries.items():
        where = f"{source}: task {task}"
        if not isinstance(spec, dict) or not {"question", "answers"} <= set(spec):
            raise ValueError(f"{where}: give question and answers")
        unknown = sorted(set(spec) - {"question", "answers", "labels"})
        if unknown:
            raise ValueError(f"{where}: unknown entries {unknown} (question, answers, labels)")
        question = str(spec["question"])
        answers = tuple(_answer_name(a) for a in spec["answers"] or [])
        labels = tuple(str(b) for b in spec.get("labels") or [])
        for name in (question, *answers):
            if not NAME.match(name):
                raise ValueError(
                    f"{where}: {name!r}: names are lower case letters, digits and "
                    f"'-' (a column is <question>_<answer>); try {slug(name)!r}"
                )
        if len(answers) < 2 or len(set(answers)) != len(answers):
            raise ValueError(f"{where}: answers must be two or more distinct names")
        if labels and len(labels) != len(answers):
            raise ValueError(f"{where}: {len(labels)} labels for {len(answers)} answers")
        if question in seen:
            raise ValueError(f"{where}: question {question!r} is task {seen[question]} too")
        seen[question] = str(task)
        out[str(task)] = TaskMap(str(task), question, answers, labels)
    return out


def _answer_name(value) -> str:
    # YAML reads a bare yes / no as booleans
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def read_tasks(path: str | Path) -> dict[str, TaskMap]:
    """The tasks YAML (see the module docstring) as {task: :class:`TaskMap`}."""
    import yaml

    path = Path(path)
    try:
        entries = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"cannot read the tasks file {path}: {err}") from None
    return tasks_from_mapping(entries, str(path))


@dataclass
class Summary:
    """What :func:`count_votes` counted and what it left out, with the reasons."""

    rows: int = 0
    counted: int = 0  # classifications whose votes count
    duplicates: int = 0  # classification_id seen before
    other_workflows: dict = field(default_factory=dict)  # "workflow_id version" -> rows
    skipped: list = field(default_factory=list)  # (classification_id, row, reason)
    unanswered: dict = field(default_factory=dict)  # task -> null values (no vote)
    other_tasks: dict = field(default_factory=dict)  # task not in the YAML -> annotations
    repeated: dict = field(default_factory=dict)  # task -> later annotations of a task, ignored

    def lines(self) -> list[str]:
        out = [f"{self.rows} classification rows: {self.counted} counted"]
        if self.duplicates:
            out.append(f"{self.duplicates} repeated classification_id(s) counted once")
        for key, n in sorted(self.other_workflows.items()):
            out.append(f"{n} row(s) of workflow {key} left out")
        for cid, row, why in self.skipped:
            out.append(f"skipped classification {cid} (row {row}): {why}")
        for task, n in sorted(self.unanswered.items()):
            out.append(f"{n} null answer(s) to {task} (task skipped): no vote")
        for task, n in sorted(self.other_tasks.items()):
            out.append(f"{n} annotation(s) of task {task}, not in the tasks file, left out")
        for task, n in sorted(self.repeated.items()):
            out.append(f"{n} later annotation(s) of {task} within a classification, ignored")
        return out


def read_export(path: str | Path) -> pd.DataFrame:
    """A classification export as strings (ids and versions keep their text: ``12.10`` is not
    ``12.1``), refusing a file without the columns :func:`count_votes` reads."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"classification export not found: {path}")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in USED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: not a Panoptes classification export: no column(s) {missing}")
    return frame


def _keeps(row, workflow_id, workflow_version) -> bool:
    if workflow_id is not None and row["workflow_id"] != str(workflow_id):
        return False
    if workflow_version is None:
        return True
    version = str(workflow_version)
    if "." in version:
        return row["workflow_version"] == version
    return row["workflow_version"].split(".")[0] == version


def _votes_of(row, tasks: dict[str, TaskMap], summary: Summary) -> tuple[str, dict]:
    """(id_str, {question: answer}) of one classification; ValueError says what is wrong."""
    try:
        annotations = json.loads(row["annotations"])
        subjects = json.loads(row["subject_data"])
    except json.JSONDecodeError as err:
        raise ValueError(f"unreadable JSON ({err})") from None
    if not isinstance(annotations, list) or not isinstance(subjects, dict):
        raise ValueError("annotations must be a JSON list and subject_data a JSON object")
    data = subjects.get(str(row["subject_ids"])) or (
        next(iter(subjects.values()), None) if len(subjects) == 1 else None
    )
    if not isinstance(data, dict) or not str(data.get(ID_KEY, "")).strip():
        raise ValueError(
            f"subject {row['subject_ids']} has no {ID_KEY} in subject_data "
            "(upload the manifest that `python -m zoolib acquire` writes)"
        )
    answers, notes, done = {}, [], set()
    for a in annotations:
        if not isinstance(a, dict) or "task" not in a or "value" not in a:
            raise ValueError(f"annotation {a!r} has no task and value")
        task = str(a["task"])
        if task not in tasks:
            notes.append(("other_tasks", task))
        elif task in done:
            notes.append(("repeated", task))
        elif a["value"] is None:
            notes.append(("unanswered", task))
            done.add(task)
        elif isinstance(a["value"], list):
            raise ValueError(
                f"task {task}: a list of answers (a multiple-answer task); zoo "
                "counts single-answer questions"
            )
        else:
            answers[tasks[task].question] = tasks[task].answer(a["value"])
            done.add(task)
    for kind, task in notes:  # only once the classification is known to be well formed
        counter = getattr(summary, kind)
        counter[task] = counter.get(task, 0) + 1
    return str(data[ID_KEY]).strip(), answers


def count_votes(
    export: pd.DataFrame,
    tasks: dict[str, TaskMap],
    workflow_id=None,
    workflow_version=None,
    on_error: str = "raise",
) -> tuple[pd.DataFrame, Summary]:
    """zoo's vote-count table from a classification export (see the module docstring): one row
    per ``id_str`` (first-seen order), ``<question>_<answer>`` and ``<question>_total-votes`` for
    every task of ``tasks``; and the :class:`Summary`. ``on_error``: "raise" (a bad
    classification stops everything) or "skip" (left out whole, listed)."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error={on_error!r}: choose 'raise' or 'skip'")
    if workflow_id is None and export["workflow_id"].nunique() > 1:
        raise ValueError(f"the export holds several workflows, {_workflows(export)}: pass "
                         "--workflow-id (and --workflow-version) to count one")  # fmt: skip
    summary, seen, votes = Summary(rows=len(export)), set(), []
    for row_number, row in enumerate(export.to_dict(orient="records")):
        cid = row["classification_id"]
        if cid in seen:
            summary.duplicates += 1
            continue
        seen.add(cid)
        if not _keeps(row, workflow_id, workflow_version):
            key = f"{row['workflow_id']} version {row['workflow_version']}"
            summary.other_workflows[key] = summary.other_workflows.get(key, 0) + 1
            continue
        try:
            votes.append(_votes_of(row, tasks, summary))
        except ValueError as err:
            if on_error == "raise":
                fix = "the tasks file" if isinstance(err, AnswerError) else "the export row"
                raise ValueError(
                    f"classification_id {cid} (data row {row_number}, line {row_number + 2} of "
                    f"the file): {err}; fix {fix} or pass --on-error skip"
                ) from None
            summary.skipped.append((cid, row_number, str(err)))
            continue
        summary.counted += 1
    _check_counted(export, tasks, votes, summary, workflow_id, workflow_version)
    return _table(votes, tasks), summary


def _workflows(export: pd.DataFrame) -> str:
    """The export's workflows and their versions, for messages."""
    return ", ".join(sorted(f"{w} (versions {', '.join(sorted(set(v)))})" for w, v in
                            export.groupby("workflow_id")["workflow_version"]))  # fmt: skip


def _check_counted(export, tasks, votes, summary, workflow_id, workflow_version) -> None:
    """Refuse what would silently give a wrong or empty table: nothing counted (a mistyped
    workflow or version) or tasks of the tasks file that no counted classification answers (a
    mistyped task name). (Several workflows without ``workflow_id`` are refused before.)"""
    if summary.counted == 0:
        raise ValueError(f"no classification counted for workflow {workflow_id} version "
                         f"{workflow_version}; the export has workflow(s) "
                         f"{_workflows(export)}")  # fmt: skip
    answered = {q for _, answers in votes for q in answers} | {
        tasks[t].question for t in summary.unanswered}
    silent = [t for t, m in tasks.items() if m.question not in answered]
    if silent:
        found = sorted(set(summary.other_tasks) | {t for t in tasks if t not in silent})
        raise ValueError(f"task(s) {silent} of the tasks file are answered by no counted "
                         f"classification; the export's tasks are {found}: check the "
                         "tasks file's task names")  # fmt: skip


def _table(votes: list[tuple[str, dict]], tasks: dict[str, TaskMap]) -> pd.DataFrame:
    columns = [f"{t.question}_{a}" for t in tasks.values() for a in (*t.answers, TOTAL)]
    counts: dict[str, dict[str, int]] = {}
    for id_str, answers in votes:
        row = counts.setdefault(id_str, dict.fromkeys(columns, 0))
        for question, answer in answers.items():
            row[f"{question}_{answer}"] += 1
            row[f"{question}_{TOTAL}"] += 1
    table = pd.DataFrame.from_dict(counts, orient="index", columns=columns).astype("int64")
    return table.rename_axis("id_str").reset_index()


def write_votes(table: pd.DataFrame, out: str | Path) -> Path:
    """The vote table as CSV (``.csv``) or Parquet (``.parquet``), written atomically."""
    out = Path(out)
    if out.suffix not in (".csv", ".parquet"):
        raise ValueError(f"--out {out}: write .csv or .parquet")
    if out.suffix == ".csv":
        return files.write_atomic(out, lambda tmp: table.to_csv(tmp, index=False))
    return files.write_atomic(out, lambda tmp: table.to_parquet(tmp, index=False), keep_suffix=True)


def replay_export(
    manifest: pd.DataFrame, votes: pd.DataFrame, tasks: dict[str, TaskMap], workflow_id: int = 1,
    workflow_version: str = "1.1", first_id: int = 1,
) -> pd.DataFrame:
    """A classification export as volunteers would make it for a manifest's subjects, from
    votes already known (a replayed volunteer, for notebook 05 and tests): every vote in
    ``votes`` (zoo's vote table, ``id_str`` and ``<question>_<answer>`` counts) for a task of
    ``tasks`` becomes one classification answering that task by the answer's index, so
    :func:`count_votes` gives those counts back. Classification ids count from ``first_id``;
    subject ids are the manifest's row numbers + 1."""
    known = votes.set_index("id_str")
    missing = sorted(set(manifest[ID_KEY]) - set(known.index))
    if missing:
        raise ValueError(f"no known votes for {len(missing)} manifest subject(s): {missing[:5]}")
    rows, cid = [], first_id
    for subject, id_str in enumerate(manifest[ID_KEY], start=1):
        data = json.dumps({str(subject): {"retired": None, ID_KEY: str(id_str)}})
        for task in tasks.values():
            for index, answer in enumerate(task.answers):
                for _ in range(int(known.at[id_str, f"{task.question}_{answer}"])):
                    rows.append({
                        "classification_id": str(cid), "user_name": f"replayed-{cid}",
                        "workflow_id": str(workflow_id), "workflow_version": workflow_version,
                        "created_at": "", "metadata": "{}",
                        "annotations": json.dumps([{"task": task.task, "value": index}]),
                        "subject_data": data, "subject_ids": str(subject),
                    })  # fmt: skip
                    cid += 1
    return pd.DataFrame(rows, columns=list(EXPORT_COLUMNS))


def write_manifest(subjects: pd.DataFrame, out: str | Path, image_columns: list[str]) -> Path:
    """A subject manifest for the Panoptes command line: the ``image_columns`` first, then the
    rest (``#``-prefixed columns hidden from volunteers), CSV, written atomically."""
    missing = [c for c in image_columns if c not in subjects.columns]
    if missing:
        raise ValueError(f"manifest: no image column(s) {missing}")
    if ID_KEY not in subjects.columns:
        raise ValueError(f"manifest: no {ID_KEY} column (the catalogue id, read back by votes)")
    order = [*image_columns, *[c for c in subjects.columns if c not in image_columns]]
    return files.write_atomic(Path(out), lambda tmp: subjects[order].to_csv(tmp, index=False))
