"""Build processed datasets (:mod:`zoolib.data.processed`) from a simulated universe or a real
catalogue.

:func:`prepare_synthetic` simulates galaxies, images and votes (:mod:`zoolib.universe.synthetic`);
:func:`prepare_catalog` reads a Galaxy Zoo catalogue (:mod:`zoolib.data.catalogs`) and its image
files (:mod:`zoolib.data.images`), dropping and listing bad rows and images when asked to.
Both write through :func:`zoolib.data.processed.write_processed`, which is atomic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from zoolib import paths
from zoolib.data import catalogs, images
from zoolib.data.catalogs import listed
from zoolib.data.processed import assign_splits, write_processed
from zoolib.universe import synthetic, volunteers
from zoolib.votes import trees
from zoolib.votes.schema import FILE_COLUMN, ID_COLUMN, ROW_COLUMN, SPLIT_COLUMN, question


def prepare_synthetic(
    name: str,
    n_galaxies: int,
    image_size: int = 64,
    channels: int = 1,
    split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    seed: int = 0,
    root: Path | None = None,
    preset: str = volunteers.DEFAULT_PRESET,
) -> Path:
    """Simulate a universe (:func:`zoolib.universe.synthetic.simulate`) and write it as dataset
    ``name``.

    ``preset`` names the survey imitated (:func:`zoolib.universe.volunteers.preset`).
    """
    images, catalog = synthetic.simulate(n_galaxies, image_size, channels, seed=seed, preset=preset)
    params = dict(
        n_galaxies=n_galaxies, image_size=image_size, channels=channels, seed=seed, preset=preset
    )
    return write_processed(
        name, images, catalog, "synthetic", split_fractions, seed,
        extra={"parameters": params}, root=root, tree=trees.THREE,
    )  # fmt: skip


def prepare_catalog(
    name: str,
    catalog_path: str | Path,
    *,
    catalog_format: str = "auto",
    images_root: str | Path | None = None,
    image_size: int = 64,
    channels: int = 1,
    crop_fraction: float = 1.0,
    split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    seed: int = 0,
    on_error: str = "raise",
    allow_outside_root: bool = False,
    root: Path | None = None,
    tree: str = "three",
) -> Path:
    """Read a real catalogue and its images and write them as dataset ``name``.

    ``tree`` names the questions read (:func:`zoolib.votes.trees.named`): ``"three"`` (zoo's
    models), a shipped tree (``"gz2"``, ``"decals"``), a YAML file of one's own, or
    ``"label:<column>"`` for a new yes/no label in a 0/1 column (or ``<column>_yes`` / ``_no``
    counts); the manifest
    records the part of it the catalogue has (:meth:`zoolib.votes.trees.Tree.present`).

    Relative ``catalog_path`` and ``images_root`` are relative to the project root
    (:func:`zoolib.paths.resolve`). Image paths are the catalogue's ``file_loc`` relative to
    ``images_root`` (default: the catalogue's folder); a path that leads outside it (``..`` or
    absolute) is a bad row unless ``allow_outside_root``, since the dataset would then depend
    on files its manifest does not describe. With ``on_error="raise"`` every bad row and image
    is listed in one error (row, id, file, reason) and nothing is written; with ``"skip"`` they
    are left out and listed in the manifest under ``skipped``. (The cheap checks, named, inside
    the root, present, run first: with "raise" their error comes before any image is decoded,
    and images that then fail to decode are reported by a second error.)
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    catalog_path = paths.resolve(catalog_path)
    chosen = trees.named(tree)
    catalog, skipped = catalogs.read_catalog(catalog_path, catalog_format, on_error=on_error,
                                             tree=chosen)  # fmt: skip
    id_column = catalog.attrs["id_source"]
    if FILE_COLUMN not in catalog.columns:
        raise ValueError(
            f"{catalog_path}: the catalogue names no image files (no file_loc/file column); "
            "it can be explored but not turned into an image dataset"
        )
    root_dir = paths.resolve(images_root) if images_root else catalog_path.parent
    bad = _unreadable_rows(catalog, root_dir, allow_outside_root)
    _report(bad, catalog_path, len(catalog), on_error, "image file")
    good = ~catalog.index.isin([b["position"] for b in bad])
    files = [root_dir / f for f in image_names(catalog)[good]]
    pixels, failures = images.load_images(files, image_size, channels, crop_fraction, "skip")
    kept = catalog[good].reset_index(drop=True)
    decoded = [_problem(kept, f["index"], f["file"], f["reason"]) for f in failures]
    _report(decoded, catalog_path, len(catalog), on_error, "image")
    bad += decoded
    if len(bad) == len(catalog):
        raise ValueError(
            f"{catalog_path}: none of the {len(catalog)} images could be loaded; first problem: "
            f"row {bad[0][ROW_COLUMN]}: {bad[0]['reason']}"
        )
    catalog = kept.drop(index=[f["index"] for f in failures]).reset_index(drop=True)
    skipped = skipped + [{k: v for k, v in b.items() if k != "position"} for b in bad]
    params = dict(
        catalog_format=catalog_format, images_root=str(root_dir), image_size=image_size,
        channels=channels, crop_fraction=crop_fraction, stretch=images.STRETCH, tree=str(tree),
        on_error=on_error, seed=seed, allow_outside_root=allow_outside_root,
        id_column=id_column,  # the catalogue's column that became id_str
    )  # fmt: skip
    return write_processed(
        name, pixels, catalog, str(catalog_path), split_fractions, seed, skipped,
        extra={"parameters": params}, root=root, tree=chosen.present(catalog.columns),
    )  # fmt: skip


def real_pool(
    sources: list,
    image_size: int = 64,
    channels: int = 1,
    leave_out=frozenset(),
    votes_on: str = "smooth-or-featured",
    split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    seed: int = 0,
) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, list[dict]]:
    """Several real catalogues as one pool of galaxies with known votes (notebook 05).

    Each source is ``[catalogue, crop_fraction]`` (relative paths: the project root): read as
    notebook 01 reads a catalogue (:func:`zoolib.data.catalogs.read_catalog`, image paths
    relative to its folder) and its images loaded at ``image_size`` with its own crop. Left
    out, counted per source and listed: rows the reader refuses, rows with no vote on
    ``votes_on`` (GZ1 mergers), ids in ``leave_out`` (a trunk's training images) and images
    that cannot be read. Splits are drawn per source and answer (``split_fractions`` of train,
    val, test), so every source and class is in each split in proportion.

    Returns (catalogue with ``source``, ``image_file`` (absolute) and ``split`` columns; images
    (G, S, S, C) uint8; a
    report, one row per source: ``rows``, ``no vote``, ``seen by the trunk``, ``unreadable``,
    ``kept``, ``yes share``; the left-out rows: source, id_str, reason).
    """
    total = question(votes_on).total_column
    parts, pixels, report, skipped = [], [], [], []
    for i, (path, crop) in enumerate(sources):
        path = paths.resolve(path)
        catalog, refused = catalogs.read_catalog(path, on_error="skip")
        skipped += [{"source": path.parent.name, ID_COLUMN: r.get(ID_COLUMN),
                     "reason": r.get("reason")} for r in refused]  # fmt: skip
        no_vote = catalog[total].fillna(0).to_numpy() <= 0
        seen = catalog[ID_COLUMN].isin(set(leave_out)).to_numpy() & ~no_vote
        skipped += [{"source": path.parent.name, ID_COLUMN: id_str, "reason": why}
                    for mask, why in ((no_vote, f"no vote on {votes_on}"),
                                      (seen, "seen by the trunk in training"))
                    for id_str in catalog[ID_COLUMN][mask]]  # fmt: skip
        keep = catalog[~no_vote & ~seen].reset_index(drop=True)
        x, failures = images.load_images([path.parent / f for f in image_names(keep)],
                                         image_size, channels, float(crop), "skip")  # fmt: skip
        bad = [f["index"] for f in failures]
        skipped += [{"source": path.parent.name, ID_COLUMN: keep[ID_COLUMN][f["index"]],
                     "reason": f["reason"]} for f in failures]  # fmt: skip
        keep = keep.drop(index=bad).reset_index(drop=True).assign(source=path.parent.name)
        keep["image_file"] = [str(path.parent / f) for f in image_names(keep)]
        yes = keep[question(votes_on).yes_column] * 2 > keep[total]
        keep[SPLIT_COLUMN] = ""
        for j, (_, group) in enumerate(keep.groupby(yes.to_numpy())):
            keep.loc[group.index, SPLIT_COLUMN] = assign_splits(len(group), split_fractions,
                                                                seed + 1000 * i + j)  # fmt: skip
        parts.append(keep)
        pixels.append(x)
        report.append({"source": path.parent.name, "crop": crop,
                       "rows": len(catalog) + len(refused), "no vote": int(no_vote.sum()),
                       "seen by the trunk": int(seen.sum()), "unreadable": len(bad),
                       "kept": len(keep), "yes share": float(yes.mean())})  # fmt: skip
    catalog = pd.concat(parts, ignore_index=True)
    duplicated = catalog[ID_COLUMN][catalog[ID_COLUMN].duplicated()].tolist()
    if duplicated:
        raise ValueError(f"ids in more than one source: {duplicated[:10]}")
    return catalog, np.concatenate(pixels), pd.DataFrame(report), skipped


def image_recipe(manifest: dict) -> dict:
    """How a processed dataset's images were made, as model cards record it
    (:class:`zoolib.cnn.cards.ModelCard`'s training_images, crop_fraction and stretch): simulated
    images are drawn at their size (no crop, no stretch); real ones were cropped and, if FITS,
    stretched as notebook 01's parameters say (older datasets: stretch unknown, None)."""
    if manifest["source"] == "synthetic":
        return {"training_images": "simulated", "crop_fraction": None, "stretch": None}
    params = manifest.get("parameters", {})
    return {"training_images": "real", "crop_fraction": params.get("crop_fraction", 1.0),
            "stretch": params.get("stretch")}  # fmt: skip


def _problem(catalog, position: int, file, reason: str) -> dict:
    row = catalog.iloc[position]
    return {"position": int(position), ROW_COLUMN: int(row[ROW_COLUMN]), ID_COLUMN: row[ID_COLUMN],
            "file": str(file), "reason": reason}  # fmt: skip


def image_names(catalog) -> pd.Series:
    """The catalogue's image paths as stripped text ("" where none is named)."""
    return catalog[FILE_COLUMN].fillna("").astype(str).str.strip()


def _unreadable_rows(catalog, root_dir: Path, allow_outside_root: bool) -> list[dict]:
    """Rows that name no image, an image outside ``root_dir`` or a missing file (cheap checks
    done before any image is decoded)."""
    problems = []
    for position, name in enumerate(image_names(catalog)):
        if not name:
            reason = "no image file named"
        elif not allow_outside_root and catalogs.leaves_root(name):
            reason = catalogs.outside_root(root_dir, "allow_outside_root: true")
        elif not (root_dir / name).is_file():
            reason = "image file not found"
        else:
            continue
        problems.append(_problem(catalog, position, root_dir / name if name else "", reason))
    return problems


def _report(bad: list[dict], catalog_path: Path, n_rows: int, on_error: str, what: str) -> None:
    """With on_error "raise", one error listing every bad row (the first few dozen)."""
    if not bad or on_error != "raise":
        return
    lines = [
        f"  row {b[ROW_COLUMN]} ({ID_COLUMN} {b[ID_COLUMN]!r}): "
        + (f"{b['file']}: " if b["file"] else "")
        + b["reason"]
        for b in bad
    ]
    raise ValueError(
        f"{len(bad)} bad {what} row(s) of {n_rows} in {catalog_path} (rows count data rows from "
        f'0); nothing was written. on_error "skip" (a notebook 01 parameter) leaves them out '
        "and lists them in the dataset's manifest:\n" + listed(lines)
    )
