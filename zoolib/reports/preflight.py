"""A run's parameter values checked before any notebook starts: ranges, choices, trees, files,
and the datasets and models that later notebooks read.

The runner (:mod:`zoolib.reports.runner`) checks each parameter's name and type against its
notebook's parameter cell; this module checks what the values mean, so that a run does not
spend minutes in notebook 01 before notebook 02 finds its dataset missing:

* **values**: every rule of :data:`RULES` (``image_size`` of notebook 01 a positive number of
  pixels, ``epochs`` at least 1, ``precision`` one of its choices, ...);
* **trees**: notebook 01's ``tree`` names a shipped tree, a YAML file or ``label:<column>``
  (:func:`zoolib.votes.trees.named`, with "did you mean" for a typo); a simulation has zoo's
  three questions only; a label's column is in the catalogue (read before anything runs);
* **files**: catalogues and folders named by parameters exist (relative to the project root);
* **the flow of files**: a ``dataset`` read by notebooks 02-04 is written by notebook 01 in
  this run or is already in ``data/processed/``; a ``model_name`` read by notebook 03 is written
  by notebook 02 in this run or is already in ``models/``.

Every problem is listed at once, each naming its notebook and parameter. Values are the
notebook's defaults (its parameter cell) updated by the run's parameter set.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

from zoolib import paths
from zoolib.active import runs
from zoolib.cnn import precision, pretrained
from zoolib.data import catalogs
from zoolib.votes import multinomial, trees

Rule = Callable[[object], str | None]


def at_least(low: float, what: str = "") -> Rule:
    return lambda v: None if v >= low else f"must be at least {low}{what}"


def inside(low: float, high: float, closed_high: bool = True) -> Rule:
    bracket = "]" if closed_high else ")"

    def rule(v):
        ok = low < v <= high if closed_high else low <= v < high
        return None if ok else f"must be in {'(' if closed_high else '['}{low}, {high}{bracket}"

    return rule


def one_of(*choices) -> Rule:
    return lambda v: None if v in choices else f"must be one of {list(choices)}"


def fractions(v) -> str | None:
    if len(v) != 3 or min(v) < 0 or abs(sum(v) - 1) > 1e-6:
        return "must be three fractions (train, validation, test), each >= 0, adding up to 1"
    return None


def zero_or_at_least(low: int) -> Rule:
    return lambda v: None if v == 0 or v >= low else f"must be 0 (keep the dataset's) or >= {low}"


PRECISION = one_of(*precision.PRECISIONS)
POSITIVE = at_least(1)
MIN_SIDE = 16  # the paper's CNN halves an image four times (valid pooling): 15 px leaves nothing
RULES: dict[str, dict[str, Rule]] = {
    "01_data_prep": {
        "image_size": at_least(MIN_SIDE, " pixels (the CNN halves the image four times)"),
        "channels": one_of(1, 3),
        "crop_fraction": inside(0, 1),
        "n_galaxies": at_least(10),
        "split_fractions": fractions,
        "catalog_format": one_of(*catalogs.FORMATS),
        "on_error": one_of(*catalogs.ON_ERROR),
    },
    "02_train": {
        "epochs": POSITIVE, "batch_size": POSITIVE, "learning_rate": inside(0, 10),
        "fine_tune_learning_rate": inside(0, 10), "dropout_rate": inside(0, 1, closed_high=False),
        "image_size": zero_or_at_least(MIN_SIDE), "eval_samples": POSITIVE,
        "patience": at_least(0), "precision": PRECISION, "init": one_of(*pretrained.INITS),
        "likelihood": one_of(*multinomial.LIKELIHOODS),
    },
    "03_dropout_posteriors": {
        "n_samples": at_least(2), "n_show": POSITIVE, "n_neighbours": POSITIVE,
        "precision": PRECISION,
    },
    "04_active_learning": {
        "regime": one_of(*runs.REGIMES), "metric": one_of(*runs.METRICS),
        "strategies": runs.strategies_problem,
        "n_initial": POSITIVE, "acquire_per_round": POSITIVE, "n_rounds": POSITIVE,
        "n_seeds": POSITIVE, "random_streams": POSITIVE, "n_samples": at_least(2),
        "head_steps": POSITIVE, "head_learning_rate": inside(0, 10), "head_l2": at_least(0),
        "oracle_candidates": POSITIVE, "gate_margin": inside(0, 1, closed_high=False),
        "likelihood": one_of("auto", "binomial", "multinomial"), "beta": at_least(0),
        "n_targets": POSITIVE, "min_votes": at_least(0), "image_size": zero_or_at_least(MIN_SIDE),
        "precision": PRECISION,
    },
    "05_campaign": {
        "metric": one_of("rmse", "nll"), "strategies": runs.strategies_problem,
        "n_initial": POSITIVE, "acquire_per_round": POSITIVE, "n_rounds": POSITIVE,
        "n_seeds": POSITIVE, "random_streams": POSITIVE, "n_samples": at_least(2),
        "head_steps": POSITIVE, "head_learning_rate": inside(0, 10), "head_l2": at_least(0),
        "gate_margin": inside(0, 1, closed_high=False),
    },
}  # fmt: skip


def values(notebook: Path, overrides: dict) -> dict:
    """The notebook's parameter values for a run: its parameter cell's defaults (as papermill
    reads them) updated by ``overrides``."""
    import papermill as pm

    out = {}
    for name, declared in pm.inspect_notebook(str(notebook)).items():
        try:
            out[name] = ast.literal_eval(declared["default"])
        except (ValueError, SyntaxError):
            continue  # not a plain value: not checked here
    return out | overrides


def value_problems(stem: str, given: dict) -> list[str]:
    """``name is value: why`` for each value that breaks a rule of :data:`RULES`."""
    problems = []
    for name, rule in RULES.get(stem, {}).items():
        if name not in given:
            continue
        try:
            why = rule(given[name])
        except TypeError:  # a value of another type: the runner's type check names it
            continue
        if why:
            problems.append(f"{name} is {given[name]!r}: {why}")
    return problems


def tree_problems(given: dict) -> list[str]:
    """Notebook 01's ``tree``: a known tree, zoo's three questions on a simulation, and a
    label's column in the catalogue."""
    spec, source = given.get("tree", "three"), given.get("source", "synthetic")
    try:
        tree = trees.named(spec)
    except (ValueError, FileNotFoundError) as err:
        return [f"tree is {spec!r}: {err}"]
    if source == "synthetic":
        if tree.questions != trees.THREE.questions:
            return [f"tree is {spec!r}: a simulation has zoo's three questions (tree 'three'); "
                    "tree applies to a real catalogue (source)"]  # fmt: skip
        return []
    if catalogs.label_question(tree) is None or not spec.startswith(trees.LABEL_PREFIX):
        return []
    path = paths.resolve(source)
    try:
        columns = catalogs.read_columns(path)
    except (FileNotFoundError, ValueError):
        return []  # the source's own problem, named by file_problems
    if any(c in columns for c in tree.columns()):
        return []  # <label>_yes / _no counts
    try:
        found = catalogs.label_column(columns, tree)
    except ValueError as err:
        return [f"tree is {spec!r}: {err}"]
    if found is None:
        return [f"tree is {spec!r}: {path} has no column {tree.name!r} (its columns: "
                f"{columns[:12]}{' ...' if len(columns) > 12 else ''})"]  # fmt: skip
    return []


def file_problems(stem: str, given: dict) -> list[str]:
    """Files and folders the parameters name that do not exist."""
    wanted = []
    if stem == "01_data_prep" and given.get("source", "synthetic") != "synthetic":
        wanted.append(("source", given["source"], "file"))
        if given.get("images_root"):
            wanted.append(("images_root", given["images_root"], "folder"))
    if stem == "03_dropout_posteriors" and given.get("similarity_catalog"):
        wanted.append(("similarity_catalog", given["similarity_catalog"], "file"))
    if stem == "05_campaign":
        for pair in given.get("sources", []):
            wanted.append(("sources", pair[0] if isinstance(pair, list) and pair else pair, "file"))
    problems = []
    for name, value, kind in wanted:
        path = paths.resolve(str(value))
        if not (path.is_file() if kind == "file" else path.is_dir()):
            hint = ("; without the shared images, run the other notebooks: --only 01 02 03 04"
                    if stem == "05_campaign" else "")  # fmt: skip
            problems.append(f"{name}: no {kind} {path} (relative paths are relative to the "
                            f"project root, {paths.PROJECT_ROOT}){hint}")  # fmt: skip
    return problems


def _names(folder: Path, pattern: str) -> str:
    """What ``folder`` holds of ``pattern`` (dataset folders, model files), for an error."""
    found = sorted(p.parent.name if p.name == "manifest.json" else p.stem
                   for p in folder.glob(pattern))  # fmt: skip
    return ", ".join(found) if found else "none yet"


# what later notebooks read and which notebook writes it: (parameter, writer, the writer's
# parameter naming it, folder under the outputs root, file of one in that folder)
FLOWS = (
    ("dataset", "01", "name", paths.PROCESSED_DIR, "{}/manifest.json"),
    ("model_name", "02", "model_name", paths.MODELS_DIR, "{}.keras"),
)


def flow_problems(given_by_stem: dict[str, dict]) -> list[tuple[str, str]]:
    """(stem, problem) for each dataset or model a notebook reads that neither an earlier
    notebook of this run writes nor is on disk (under the outputs root as set now).
    ``given_by_stem``: values by notebook stem, in run order."""
    problems = []
    for name, writer, written_as, folder, pattern in FLOWS:
        folder, made = paths.under_output_root(folder), set()
        for stem, given in given_by_stem.items():
            if stem.startswith(writer):
                made.update([given[written_as]] if written_as in given else [])
                continue
            value = given.get(name)
            if value is None or value in made or (folder / pattern.format(value)).is_file():
                continue
            written = sorted(made) or "none: it is not in this run"
            have = _names(folder, pattern.format("*"))
            problems.append((stem, f"{name} is {value!r}, which notebook {writer} of this run "
                             f"does not write (it writes {written}) and {folder} does not "
                             f"hold: run notebook {writer} too, or name one it has ({have})"))
    return problems


def problems(notebooks: list[Path], sets: dict[str, dict]) -> list[str]:
    """Every problem of the run's values, each prefixed by its notebook's file name."""
    given_by_stem = {nb.stem: values(nb, sets.get(nb.stem, {})) for nb in notebooks}
    names = {nb.stem: nb.name for nb in notebooks}
    out = []
    for stem, given in given_by_stem.items():
        found = value_problems(stem, given) + file_problems(stem, given)
        if stem == "01_data_prep":
            found += tree_problems(given)
        out += [f"{names[stem]}: {p}" for p in found]
    return out + [f"{names[stem]}: {p}" for stem, p in flow_problems(given_by_stem)]
