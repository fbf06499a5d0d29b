"""The processed-dataset format on disk: writing, validating and opening it.

A processed dataset ``data/processed/<name>/`` holds

* ``images.npy``: uint8 (galaxies, size, size, channels), memory-mappable;
* ``catalog.parquet``: one row per image, in the same order: canonical columns (``id_str``,
  vote columns, ...) plus ``split`` in {train, val, test};
* ``manifest.json``: source, question schema, image size, counts, content hashes (sha256) and
  any rows skipped and why.

Datasets are written to a temporary folder beside the target and renamed into place (an
existing dataset is moved aside first and put back if that fails), so a failure never leaves a
half-written dataset behind.

The ``tf.data`` input pipeline that feeds these arrays to Keras is :mod:`zoolib.data.pipeline`;
building datasets from simulations or real catalogues is :mod:`zoolib.prepare`.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from zoolib import files, paths
from zoolib.votes import trees
from zoolib.votes.schema import (
    ID_COLUMN,
    QUESTIONS,
    SPLIT_COLUMN,
    counts,
    question,
    validate_counts,
)

SPLITS = ("train", "val", "test")


@dataclass
class ProcessedDataset:
    """A processed dataset: ``images`` (memmap, uint8 (n, S, S, C)), ``catalog``, ``manifest``."""

    images: np.ndarray
    catalog: pd.DataFrame
    manifest: dict
    path: Path

    @property
    def questions(self) -> list[str]:
        """Every question of this dataset's :attr:`tree`, in the tree's order: the one list of
        its questions (a label of one's own, ``label:ring``, has ``["ring"]``)."""
        return list(self.tree.questions)

    @property
    def zoo_questions(self) -> list[str]:
        """Those of :attr:`questions` that are zoo's yes/no questions with zoo's answers: what the
        paper's binomial models, notebook 04's heads and the real catalogues' comparisons take;
        empty for a tree or label of one's own."""
        return [q for q in self.questions if trees.zoos_questions(self.tree, [q])]

    @property
    def tree(self) -> trees.Tree:
        """The decision tree whose count columns this dataset holds (:mod:`zoolib.votes.trees`);
        datasets written before trees were recorded hold zoo's three questions."""
        recorded = self.manifest.get("tree")
        if recorded is None:
            return trees.THREE.present(self.catalog.columns)
        return trees.from_mapping(recorded["name"], recorded["questions"], str(self.path))

    def split(self, name: str) -> tuple[np.ndarray, pd.DataFrame]:
        """Images and catalogue rows of one split (images are read into memory)."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        rows = np.flatnonzero(self.catalog[SPLIT_COLUMN].to_numpy() == name)
        return np.asarray(self.images[rows]), self.catalog.iloc[rows].reset_index(drop=True)


def assign_splits(n: int, fractions: tuple[float, float, float], seed: int) -> np.ndarray:
    """Random train/val/test labels for n rows, with the given fractions (summing to 1)."""
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or not np.isclose(sum(fractions), 1.0):
        raise ValueError(
            f"split_fractions must be 3 non-negative numbers summing to 1: {fractions}"
        )
    counts = np.floor(np.array(fractions) * n).astype(int)
    counts[0] += n - counts.sum()  # rounding remainder goes to train
    labels = np.repeat(np.array(SPLITS), counts)
    return np.random.default_rng(seed).permutation(labels)


def questions_in(catalog: pd.DataFrame) -> list[str]:
    """Schema questions whose yes and total columns are both present, in schema order."""
    return [
        q.name
        for q in QUESTIONS.values()
        if q.yes_column in catalog.columns and q.total_column in catalog.columns
    ]


def votes_array(catalog: pd.DataFrame, questions: list[str]) -> np.ndarray:
    """(galaxies, Q, 2) float32 array of [k, N] per question, as BinomialLoss expects."""
    return np.stack(counts(catalog, questions), axis=-1).astype(np.float32)


def validate_catalog(catalog: pd.DataFrame, n_images: int) -> None:
    """Check row count, unique ids and valid vote counts; errors name ids and columns."""
    if len(catalog) == 0:
        raise ValueError("the catalogue is empty")
    if len(catalog) != n_images:
        raise ValueError(f"{len(catalog)} catalogue rows but {n_images} images")
    if ID_COLUMN not in catalog.columns:
        raise ValueError(f"required column {ID_COLUMN!r} is missing")
    dup = catalog[ID_COLUMN][catalog[ID_COLUMN].duplicated()].unique()
    if len(dup):
        raise ValueError(f"duplicate {ID_COLUMN} values: {list(dup[:10])}")
    for name in questions_in(catalog):
        q = question(name)
        try:
            validate_counts(
                catalog[q.yes_column].to_numpy(),
                catalog[q.total_column].to_numpy(),
                row_labels=catalog[ID_COLUMN].to_numpy(),
            )
        except ValueError as err:
            raise ValueError(f"question {name!r}: {err}") from None


def write_processed(
    name: str,
    images: np.ndarray,
    catalog: pd.DataFrame,
    source: str,
    split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    seed: int = 0,
    skipped: list[dict] | None = None,
    extra: dict | None = None,
    root: Path | None = None,
    tree: trees.Tree | None = None,
) -> Path:
    """Validate and write a processed dataset atomically; return its folder.

    Args:
        name: dataset name (folder under ``root``, default ``data/processed``).
        images: uint8 (galaxies, S, S, C).
        catalog: canonical catalogue, one row per image in the same order. A ``split`` column is
            added from ``split_fractions`` and ``seed`` unless present.
        source: where the data came from (a path, or "synthetic").
        skipped: rows dropped on the way, with reasons; recorded in the manifest.
        extra: more manifest entries (e.g. the notebook's parameters).
        tree: the decision tree whose count columns the catalogue holds (recorded in the
            manifest; every one of its columns must be there); None: zoo's three questions.
    """
    images = np.asarray(images)
    if tree is not None:
        missing = [c for c in tree.columns() if c not in catalog.columns]
        if missing:
            raise ValueError(f"tree {tree.name!r}: the catalogue lacks {missing[:5]}")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] != images.shape[2]:
        raise ValueError(f"images must be uint8 (n, S, S, C); got {images.dtype} {images.shape}")
    validate_catalog(catalog, len(images))
    catalog = catalog.reset_index(drop=True).copy()
    if SPLIT_COLUMN not in catalog.columns:
        catalog[SPLIT_COLUMN] = assign_splits(len(catalog), split_fractions, seed)
    bad = ~catalog[SPLIT_COLUMN].isin(SPLITS)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"row {row}: split {catalog[SPLIT_COLUMN].iloc[row]!r} not in {SPLITS}")
    root = Path(root or paths.PROCESSED_DIR)
    root.mkdir(parents=True, exist_ok=True)
    target = root / name
    tmp = files.make_temporary_dir(target)
    try:
        np.save(tmp / "images.npy", images)
        catalog.to_parquet(tmp / "catalog.parquet", index=False)
        manifest = {
            "name": name,
            "source": str(source),
            "questions": list((tree or trees.THREE.present(catalog.columns)).questions),
            "schema": {
                q: {"yes": question(q).yes_column, "total": question(q).total_column}
                for q in questions_in(catalog)
            },
            "image_size": int(images.shape[1]),
            "channels": int(images.shape[3]),
            "n_galaxies": len(catalog),
            "split_counts": {s: int((catalog[SPLIT_COLUMN] == s).sum()) for s in SPLITS},
            "sha256": {f: files.sha256(tmp / f) for f in ("images.npy", "catalog.parquet")},
            "skipped": list(skipped or []),
            **({"tree": {"name": tree.name, "questions": tree.to_mapping()}} if tree else {}),
            **(extra or {}),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
        if target.exists():  # swap: old aside, new in (old put back on failure), old removed
            old = files.make_temporary_dir(target, "old")
            target.rename(old / name)
            try:
                tmp.rename(target)
            except BaseException:
                (old / name).rename(target)
                raise
            shutil.rmtree(old)
        else:
            tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def load_processed(name: str, root: Path | None = None, verify: bool = False) -> ProcessedDataset:
    """Open a processed dataset; images are memory-mapped. ``verify`` checks the sha256 hashes."""
    folder = Path(root or paths.PROCESSED_DIR) / name
    if not (folder / "manifest.json").is_file():
        raise FileNotFoundError(
            f"no processed dataset {name!r} at {folder}; run notebooks/01_data_prep.ipynb first"
        )
    manifest = json.loads((folder / "manifest.json").read_text())
    if verify:
        for fname, want in manifest["sha256"].items():
            if files.sha256(folder / fname) != want:
                raise ValueError(f"{folder / fname} does not match the hash in its manifest")
    images = np.load(folder / "images.npy", mmap_mode="r")
    catalog = pd.read_parquet(folder / "catalog.parquet")
    if len(images) != len(catalog):
        raise ValueError(f"{folder}: {len(images)} images but {len(catalog)} catalogue rows")
    return ProcessedDataset(images, catalog, manifest, folder)
