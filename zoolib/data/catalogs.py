"""Read Galaxy Zoo catalogues into one canonical table of vote counts.

:func:`read_catalog` returns one row per galaxy with ``id_str`` (str, unique), ``file_loc`` (image
path relative to the catalogue's folder; the column is absent when the source names no images),
for every schema question found in the source its answer columns and ``<question>_total-votes``
as int64 (names from :mod:`zoolib.votes.schema`), and the useful extras ``ra``, ``dec``,
``redshift``,
``iauname``, ``subject_id``, ``split`` and the class column when present. Three source formats:

* ``"gz2"``: Galaxy Zoo 2 tables (Willett et al. 2013, Hart et al. 2016). The raw ``*_count``
  columns of tasks t01 (smooth / features-or-disk / star-or-artifact), t02 (edge-on yes / no)
  and t03 (bar / no bar) become the three questions; ``id_str`` is ``objid`` (or ``dr7objid``),
  read as text so 19-digit ids keep every digit. GZ2 has no per-task total columns, so each
  total is the sum of that task's answer counts. (``total_classifications`` equals the t01 sum
  in all 19,761 rows of the Stripe 82 table; ``total_votes`` sums all 11 tasks, so it is no N.)
* ``"decals"``: galaxy-datasets / Zoobot naming, already canonical (``smooth-or-featured_smooth``
  ...). Counts stored as floats (e.g. ``40.0``) are converted to integers; a fractional count is
  a bad row. ``id_str`` comes from the first of ``id_str``, ``objid``, ``dr7objid``, ``iauname``,
  ``subject_id`` present, ``file_loc`` from a ``file_loc`` or ``file`` column, kept as given.
  ``png_loc``/``fits_loc`` are not used: in GZ DECaLS exports they are absolute paths on the
  original author's disks, not paths relative to an images root.
* ``"classes"``: one consensus class per galaxy (e.g. the SDSS Galaxy Zoo 1 sample, column
  ``gz1_class``). A consensus is treated as ONE vote (N = 1) following :data:`GZ1_CLASS_MAP`:
  elliptical -> smooth; the two spirals -> featured-or-disk, then edge-on "no"; edge_on ->
  featured-or-disk, then edge-on "yes"; dont_know -> artifact (GZ1's button was "star / don't
  know", the ancestor of GZ2's "star or artifact"); merger -> no vote on any question (all
  totals 0: a merger says nothing about smooth vs featured), so such galaxies add nothing to
  the loss but stay in the table, findable by their class column. GZ1 never asked about bars,
  so the bar columns are absent. Pass ``class_map`` to choose otherwise.

``"auto"`` picks gz2 if ``t01_smooth_or_features_a01_smooth_count`` is present, else decals if
any canonical vote column is present, else classes if a column is named ``class`` or ends in
``_class``. Files: ``.csv``, ``.csv.gz`` (any pandas compression) and ``.parquet``.

Checks (each a ValueError naming the file and the rows, ids or columns at fault): file not found
(FileNotFoundError), unreadable or empty file, required column missing, missing id, duplicate
ids (every copy is bad: we cannot tell which is right), missing / non-numeric, negative or
fractional counts, an answer count above its total (k > N), answers summing above the total.
Answers may sum to less than the total (answers outside the schema count as "no"). The decision
tree N_bar <= N_edge-on <= N_smooth-or-featured is NOT enforced: real GZ2 data breaks it (Stripe
82: 4 rows with N_edge-on > N_smooth, 53 with N_bar > N_edge-on; volunteers could go back).
With ``on_error="skip"`` bad rows are dropped and returned as ``{"row", "id_str", "reason"}``;
``row`` counts data rows from 0, header excluded (line ``row + 2`` of a one-header CSV).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from zoolib.votes import trees
from zoolib.votes.schema import (
    FILE_COLUMN,
    ID_COLUMN,
    QUESTIONS,
    ROW_COLUMN,
    count_problems,
    vote_columns,
)

FORMATS = ("auto", "gz2", "decals", "classes", "label")
LABEL_VALUES = {"1": 1, "0": 0, "yes": 1, "no": 0, "true": 1, "false": 0}  # a label column's
ON_ERROR = ("raise", "skip")
ID_SOURCES = ("id_str", "objid", "dr7objid", "iauname", "subject_id")  # first present wins
FILE_SOURCES = ("file_loc", "file")
EXTRA_COLUMNS = ("ra", "dec", "redshift", "iauname", "subject_id", "split")
GZ2_MARKER = "t01_smooth_or_features_a01_smooth_count"
GZ2_COLUMNS: dict[str, str] = {  # canonical answer column -> GZ2 raw count column
    c: trees.GZ2_COLUMNS[c] for q in QUESTIONS.values() for c in q.answer_columns
}  # the three questions zoo models; zoolib.votes.trees maps all 37 answers
_FEATURED = {"smooth-or-featured_featured-or-disk": 1}
GZ1_CLASS_MAP: dict[str, dict[str, int]] = {  # class -> votes per canonical answer column
    "elliptical": {"smooth-or-featured_smooth": 1},
    "spiral_clockwise": {**_FEATURED, "disk-edge-on_no": 1},
    "spiral_anticlockwise": {**_FEATURED, "disk-edge-on_no": 1},
    "edge_on": {**_FEATURED, "disk-edge-on_yes": 1},
    "dont_know": {"smooth-or-featured_artifact": 1},
    "merger": {},
}
MAX_LISTED = 20  # bad rows spelled out in an error message
# vote fractions (GZ DECaLS "_fraction", GZ2 "_fraction"/"_debiased", the Kaggle "Class1.1")
FRACTION_PATTERN = re.compile(r"(_fraction|_frac|_debiased)$|^Class\d+\.\d+$")


def leaves_root(name: str) -> bool:
    """Whether a catalogue's image path leads outside its images root: absolute, or up through
    "..". Judged on the text, so a symbolic link inside the root (images/sdss -> /mnt/big) is
    fine. Notebook 01 and ``predict`` refuse such rows unless told otherwise: a dataset or a
    prediction file would otherwise depend on files nobody handed over with the catalogue."""
    normal = os.path.normpath(name)
    return os.path.isabs(normal) or normal == ".." or normal.startswith(".." + os.sep)


def outside_root(root: Path, permit: str) -> str:
    """The reason given for a row :func:`leaves_root` refuses; ``permit`` says how to allow it."""
    return f"image path leads outside the images root {root} ({permit} permits it)"


def listed(lines: list[str]) -> str:
    """The first ``MAX_LISTED`` lines of an error's list, and how many more there are."""
    more = [f"  ... and {len(lines) - MAX_LISTED} more"] if len(lines) > MAX_LISTED else []
    return "\n".join(list(lines[:MAX_LISTED]) + more)


def read_catalog(
    path: str | Path,
    format: str = "auto",
    on_error: str = "raise",
    class_map: dict[str, dict[str, int]] | None = None,
    tree: str | trees.Tree = "three",
) -> tuple[pd.DataFrame, list[dict]]:
    """Read a catalogue file into the canonical frame; return it and the skipped-row records.
    The frame's ``attrs["id_source"]`` names the column its ``id_str`` was read from.

    ``tree`` (a :class:`zoolib.votes.trees.Tree` or a shipped tree's name) says which questions to
    read: ``"three"`` (the default: the three questions zoo's models learn), ``"gz2"`` (every
    GZ2 task, from a gz2-format table) or any tree whose ``<question>_<answer>`` columns a
    decals-format catalogue has. Consensus classes give the three questions only."""
    tree = trees.named(tree) if isinstance(tree, str) else tree
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    path = Path(path)
    raw = read_table(path)
    if format == "auto":  # the 0/1 columns are looked for only if no format fits
        format = detect_format(raw.columns, path, tree, lambda: zero_one_columns(raw))
    frame = pd.DataFrame(index=raw.index)
    ids = read_ids(raw, path)
    frame[ID_COLUMN] = ids
    file_col = next((c for c in FILE_SOURCES if c in raw), None)
    if file_col is not None:
        frame[FILE_COLUMN] = raw[file_col].astype(object).where(raw[file_col].notna(), None)
    problems: dict[int, list[str]] = {}
    if format == "classes" and tree.questions != trees.THREE.questions:
        raise ValueError(f"{path}: consensus classes give the three questions of tree 'three' "
                         f"only, not tree {tree.name!r}")  # fmt: skip
    if format == "label":
        votes = _votes_from_label(raw, path, tree, problems)
    elif format == "gz2":
        votes = _votes_from_gz2(raw, path, tree)
    elif format == "decals":
        votes = _votes_from_decals(raw, path, tree)
    else:
        votes = _votes_from_classes(raw, path, class_map or GZ1_CLASS_MAP, problems)
    if votes.columns.empty:
        raise ValueError(f"{path} has no vote columns of any schema question as format {format!r}")
    extras = [c for c in EXTRA_COLUMNS if c in raw]
    if _class_column(raw.columns) is not None:  # a consensus class is kept beside any votes
        extras.append(_class_column(raw.columns))
    frame = pd.concat([frame, votes, raw[extras]], axis=1)
    frame, skipped = _validate(frame, path, on_error, problems, tree)
    frame.attrs["id_source"] = str(ids.name)  # the catalogue's id column, read as id_str
    return frame, skipped


def label_text(value) -> str:
    """A label cell as :data:`LABEL_VALUES` keys it: lower case, no spaces, ``1.0`` as ``1``."""
    return str(value).strip().lower().removesuffix(".0")


def zero_one_columns(raw: pd.DataFrame) -> list[str]:
    """Columns (other than ids and image paths) whose every value is a label's (0/1, yes/no,
    true/false): candidates for ``tree: "label:<column>"``."""
    skip = {*ID_SOURCES, *FILE_SOURCES}
    return [
        str(c) for c in raw.columns if c not in skip and len(raw) and raw[c].notna().all()
        and raw[c].map(label_text).isin(LABEL_VALUES).all()
    ]  # fmt: skip


def detect_format(
    columns, path: str | Path = "the catalogue", tree: trees.Tree = trees.THREE,
    labels: Callable[[], list[str]] = list,
) -> str:  # fmt: skip
    """Name the format ("gz2", "decals", "classes" or "label") of a catalogue with these columns
    (decals: count columns of the three questions or of ``tree``; label: a one-question yes/no
    tree, :func:`zoolib.votes.trees.one_label`, whose question is a column of the catalogue).
    ``labels``: a function giving its 0/1 columns (:func:`zero_one_columns`), called only
    when no format fits, to name the first in the error as the new label it could be."""
    columns = list(columns)
    if label_column(columns, tree) is not None and not any(c in columns for c in tree.columns()):
        return "label"
    if GZ2_MARKER in columns:
        return "gz2"
    if any(c in columns for c in [*vote_columns(), *tree.columns()]):
        return "decals"
    if _class_column(columns) is not None:
        return "classes"
    fractions = [c for c in columns if FRACTION_PATTERN.search(str(c))]
    if fractions:
        shown = ", ".join(repr(c) for c in fractions[:4]) + (", ..." if len(fractions) > 4 else "")
        raise ValueError(
            f"{path} has vote fractions ({shown}) but no vote counts: the binomial likelihood "
            "needs k 'yes' votes out of N. Give counts in schema columns (for example "
            "'smooth-or-featured_smooth' and 'smooth-or-featured_total-votes'); if you know "
            "how many volunteers N answered, k = round(fraction x N) with N in the total "
            "column; or give a consensus 'class' column, which trains as one vote (N = 1)"
        )
    hint, zero_one = "", labels()
    if zero_one:
        hint = (f" Column {zero_one[0]!r} holds only 0/1 values: a new yes/no label is read "
                f"with notebook 01's tree: \"label:{zero_one[0]}\" (docs/trees.md).")  # fmt: skip
    raise ValueError(
        f"cannot tell the format of {path}: no {GZ2_MARKER!r} (gz2), no schema vote column such"
        " as 'smooth-or-featured_smooth' (decals), no 'class' or '*_class' column (classes)."
        f"{hint} Set notebook 01's catalog_format (one of {FORMATS[1:]}) and tree"
        " (read_catalog's format= and tree= in Python)"
    )


def read_columns(path: Path) -> list[str]:
    """A catalogue file's column names, reading its header only (CSV) or its schema (Parquet)."""
    if not path.is_file():
        raise FileNotFoundError(f"catalogue file not found: {path}")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        return [str(c) for c in pd.read_csv(path, nrows=0).columns]
    except Exception as err:  # parser, encoding, pyarrow errors: say which file
        raise ValueError(f"cannot read the header of {path}: {err}") from None


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV (optionally compressed) or Parquet file, ids as text, with errors naming it."""
    if not path.is_file():
        raise FileNotFoundError(f"catalogue file not found: {path}")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            raw = pd.read_parquet(path)
        else:
            raw = pd.read_csv(path, dtype={c: str for c in ID_SOURCES}, low_memory=False)
    except pd.errors.EmptyDataError:
        raise ValueError(f"catalogue {path} is empty (no header, no rows)") from None
    except Exception as err:  # parser, encoding, pyarrow errors: say which file
        raise ValueError(f"cannot read catalogue {path}: {err}") from err
    if len(raw) == 0:
        raise ValueError(f"catalogue {path} is empty (a header but no rows)")
    return raw.reset_index(drop=True)


def read_ids(raw: pd.DataFrame, path: Path) -> pd.Series:
    """The id column as str (None where missing); floats are refused as they corrupt long ids."""
    col = next((c for c in ID_SOURCES if c in raw), None)
    if col is None:
        raise ValueError(f"{path} has no id column; expected one of {ID_SOURCES}")
    if pd.api.types.is_float_dtype(raw[col]):
        raise ValueError(
            f"id column {col!r} of {path} is stored as floats, which loses digits of long ids;"
            " store it as text or int64"
        )
    ids = raw[col].astype(object).where(raw[col].notna(), None)
    return ids.map(lambda v: None if v is None or str(v).strip() == "" else str(v).strip())


def _require(raw: pd.DataFrame, columns: list[str], path: Path) -> None:
    missing = [c for c in columns if c not in raw]
    if missing:
        raise ValueError(f"{path} is missing required column(s) {missing}")


def _votes_from_gz2(raw: pd.DataFrame, path: Path, tree: trees.Tree) -> pd.DataFrame:
    """Canonical float vote columns from GZ2 raw counts; each total = sum of its answers."""
    unmapped = [c for n in tree.nodes for c in n.answer_columns if c not in trees.GZ2_COLUMNS]
    if unmapped:
        raise ValueError(f"{path}: a GZ2 table has no columns for tree {tree.name!r}'s answers "
                         f"{unmapped[:3]}...; use tree 'gz2' or a subset of it")  # fmt: skip
    votes = pd.DataFrame(index=raw.index)
    for q in tree.nodes:
        sources = [trees.GZ2_COLUMNS[c] for c in q.answer_columns]
        if not any(s in raw for s in sources):
            continue
        _require(raw, sources, path)
        for col, src in zip(q.answer_columns, sources, strict=True):
            votes[col] = pd.to_numeric(raw[src], errors="coerce")
        votes[q.total_column] = votes[q.answer_columns].sum(axis=1, skipna=False)
    return votes


def _votes_from_decals(raw: pd.DataFrame, path: Path, tree: trees.Tree) -> pd.DataFrame:
    """Canonical float vote columns of every question of ``tree`` with any column in the file."""
    votes = pd.DataFrame(index=raw.index)
    for q in tree.nodes:
        cols = q.answer_columns + [q.total_column]
        if any(c in raw for c in cols):
            _require(raw, cols, path)
            for c in cols:
                votes[c] = pd.to_numeric(raw[c], errors="coerce")
    return votes


def _class_column(columns) -> str | None:
    return next((c for c in columns if c == "class" or str(c).endswith("_class")), None)


def label_question(tree: trees.Tree) -> str | None:
    """The question of a one-question yes/no tree (a new label), else None."""
    if len(tree.nodes) == 1 and tree.nodes[0].answers == ("yes", "no"):
        return tree.nodes[0].name
    return None


def label_column(columns, tree: trees.Tree) -> str | None:
    """The catalogue column a one-question yes/no tree's label is read from: the column named
    as its question, else the one whose :func:`zoolib.votes.trees.question_name` it is (GZ1's
    ``edge_on`` for question ``edge-on``); None if there is none."""
    name = label_question(tree)
    if name is None:
        return None
    columns = [str(c) for c in columns]
    for exact in (tree.name, name):  # the column as typed (label:edge_on), then the question
        if exact in columns:
            return exact
    matches = [c for c in columns if trees.question_name(c) == name]
    if len(matches) > 1:
        raise ValueError(f"columns {matches} all read as question {name!r}: name the column "
                         "exactly, tree 'label:<column>'")  # fmt: skip
    return matches[0] if matches else None


def _votes_from_label(raw: pd.DataFrame, path: Path, tree: trees.Tree, problems: dict):
    """One vote per galaxy from a 0/1 (yes/no, true/false) column named after the label (or
    whose question name it is, :func:`label_column`): ``<label>_yes`` = 1 or 0, ``<label>_no``
    the other, total 1. Other values are bad rows."""
    column = label_column(raw.columns, tree)
    if column is None:
        raise ValueError(
            f"{path}: format 'label' needs a one-question yes/no tree (tree 'label:<column>')"
            f" and that column; tree {tree.name!r} is not"
        )
    text = raw[column].map(label_text)
    yes = text.map(LABEL_VALUES)
    for row in raw.index[yes.isna()]:
        problems.setdefault(row, []).append(
            f"{column} is {raw[column][row]!r}; a label is one of 0/1, yes/no, true/false"
        )
    node = tree.nodes[0]
    yes = yes.fillna(0.0).astype(float)
    return pd.DataFrame({node.answer_columns[0]: yes, node.answer_columns[1]: 1.0 - yes,
                         node.total_column: 1.0}, index=raw.index)  # fmt: skip


def _votes_from_classes(
    raw: pd.DataFrame, path: Path, class_map: dict[str, dict[str, int]], problems: dict
) -> pd.DataFrame:
    """One vote per galaxy from its class via ``class_map``; unknown classes are bad rows."""
    class_col = _class_column(raw.columns)
    if class_col is None:
        raise ValueError(f"{path} is missing a class column ('class' or '*_class')")
    used = {c for votes in class_map.values() for c in votes}
    unknown = used - {c for q in QUESTIONS.values() for c in q.answer_columns}
    if unknown:
        raise ValueError(f"class_map names unknown answer columns {sorted(unknown)}")
    asked = [q for q in QUESTIONS.values() if used & set(q.answer_columns)]
    table = pd.DataFrame.from_dict(class_map, orient="index", dtype=float)
    table = table.reindex(columns=[c for q in asked for c in q.answer_columns]).fillna(0.0)
    classes = raw[class_col]
    for row in raw.index[~classes.isin(list(class_map))]:
        problems.setdefault(row, []).append(
            f"class {classes[row]!r} is not in class_map (known: {sorted(class_map)})"
        )
    votes = table.reindex(classes.where(classes.isin(list(class_map)))).fillna(0.0)
    votes.index = raw.index
    for q in asked:
        votes[q.total_column] = votes[q.answer_columns].sum(axis=1)
    return votes[vote_columns([q.name for q in asked])]


def _validate(
    frame: pd.DataFrame,
    path: Path,
    on_error: str,
    problems: dict[int, list[str]],
    tree: trees.Tree = trees.THREE,
) -> tuple[pd.DataFrame, list[dict]]:
    """Find bad rows; raise naming them, or drop and list them; cast counts to int64."""

    def flag(mask: pd.Series, reason: str) -> None:
        for row in frame.index[mask.to_numpy(dtype=bool)]:
            problems.setdefault(row, []).append(reason)

    ids = frame[ID_COLUMN]
    flag(ids.isna(), f"{ID_COLUMN} is missing")
    duplicated = ids.notna() & ids.duplicated(keep=False)
    flag(duplicated, f"duplicate {ID_COLUMN}")
    present = [q for q in tree.nodes if q.total_column in frame]
    for q in present:
        total = frame[q.total_column]
        for c in q.answer_columns + [q.total_column]:
            for mask, what in count_problems(frame[c]):
                flag(pd.Series(mask, index=frame.index), f"{c} {what}")
        answers = frame[q.answer_columns]
        for c in q.answer_columns:
            flag(frame[c] > total, f"{c} > {q.total_column} (k > N)")
        flag(answers.sum(axis=1) > total, f"answers of {q.name} sum to more than its total")
    skipped = [
        {
            "row": int(row),
            ID_COLUMN: ids[row] if pd.notna(ids[row]) else None,
            "reason": "; ".join(reasons),
        }
        for row, reasons in sorted(problems.items())
    ]
    if skipped and (on_error == "raise" or len(skipped) == len(frame)):
        lines = [f"  row {s['row']} ({ID_COLUMN} {s[ID_COLUMN]!r}): {s['reason']}" for s in skipped]
        dups = sorted(ids[duplicated].unique())
        head = f"{len(skipped)} bad row(s) of {len(frame)} in {path}"
        head += f"; duplicated ids: {dups}" if dups else ""
        hint = (
            "every row is bad"
            if on_error == "skip"
            else ('on_error "skip" (a notebook 01 parameter) leaves them out and lists them')
        )
        raise ValueError(f"{head} ({hint}; rows count data rows from 0):\n" + listed(lines))
    frame[ROW_COLUMN] = np.arange(len(frame))  # the data row of the file, kept through drops
    frame = frame.drop(index=list(problems)).reset_index(drop=True)
    counts = [c for q in present for c in [*q.answer_columns, q.total_column]]
    frame[counts] = frame[counts].astype("int64")
    frame[ID_COLUMN] = frame[ID_COLUMN].astype(str)
    return frame, skipped
