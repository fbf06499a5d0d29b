"""Build processed datasets (:mod:`zoolib.data`) from a simulated universe or a real catalogue.

:func:`prepare_synthetic` simulates galaxies, images and votes (:mod:`zoolib.synthetic`);
:func:`prepare_catalog` reads a Galaxy Zoo catalogue (:mod:`zoolib.catalogs`) and its image
files (:mod:`zoolib.images`), dropping and listing bad rows and images when asked to.
Both write through :func:`zoolib.data.write_processed`, which is atomic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zoolib import catalogs, images, synthetic, volunteers
from zoolib.data import write_processed
from zoolib.schema import FILE_COLUMN, ID_COLUMN


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
    """Simulate a universe (:func:`zoolib.synthetic.simulate`) and write it as dataset ``name``.

    ``preset`` names the survey imitated (:func:`zoolib.volunteers.preset`).
    """
    images, catalog = synthetic.simulate(n_galaxies, image_size, channels, seed=seed, preset=preset)
    params = dict(
        n_galaxies=n_galaxies, image_size=image_size, channels=channels, seed=seed, preset=preset
    )
    return write_processed(
        name, images, catalog, "synthetic", split_fractions, seed,
        extra={"parameters": params}, root=root,
    )  # fmt: skip


def prepare_catalog(
    name: str,
    catalog_path: str | Path,
    catalog_format: str = "auto",
    images_root: str | Path | None = None,
    image_size: int = 64,
    channels: int = 1,
    crop_fraction: float = 1.0,
    split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    seed: int = 0,
    on_error: str = "raise",
    root: Path | None = None,
) -> Path:
    """Read a real catalogue and its images and write them as dataset ``name``.

    Image paths are the catalogue's ``file_loc`` relative to ``images_root`` (default: the
    catalogue's folder). With ``on_error="raise"`` the first bad row or image raises an error
    naming it; with ``"skip"`` bad rows and unreadable images are dropped and listed in the
    manifest under ``skipped``. Nothing is written unless the whole dataset is good.
    """
    catalog_path = Path(catalog_path)
    catalog, skipped = catalogs.read_catalog(catalog_path, catalog_format, on_error=on_error)
    if FILE_COLUMN not in catalog.columns:
        raise ValueError(
            f"{catalog_path}: the catalogue names no image files (no file_loc/file column); "
            "it can be explored but not turned into an image dataset"
        )
    root_dir = Path(images_root) if images_root else catalog_path.parent
    named = catalog[FILE_COLUMN].fillna("").astype(str).str.strip() != ""
    if not named.all():
        rows = [f"{r} ({catalog[ID_COLUMN].iloc[r]!r})" for r in np.flatnonzero(~named)[:10]]
        if on_error == "raise":
            raise ValueError(f"{catalog_path}: no image file named in row(s) {', '.join(rows)}")
        skipped = skipped + [
            {"id_str": i, "reason": "no image file named"} for i in catalog[ID_COLUMN][~named]
        ]
        catalog = catalog[named].reset_index(drop=True)
    files = [root_dir / f for f in catalog[FILE_COLUMN]]
    pixels, failures = images.load_images(files, image_size, channels, crop_fraction, on_error)
    if len(failures) == len(catalog):
        raise ValueError(
            f"{catalog_path}: none of the {len(catalog)} images could be loaded; "
            f"first failure: {failures[0]['file']}: {failures[0]['reason']}"
        )
    if failures:
        bad = [f["index"] for f in failures]
        skipped = skipped + [
            {
                "id_str": catalog[ID_COLUMN].iloc[f["index"]],
                "file": f["file"],
                "reason": f["reason"],
            }
            for f in failures
        ]
        catalog = catalog.drop(index=catalog.index[bad]).reset_index(drop=True)
    params = dict(
        catalog_format=catalog_format, images_root=str(root_dir), image_size=image_size,
        channels=channels, crop_fraction=crop_fraction, on_error=on_error, seed=seed,
    )  # fmt: skip
    return write_processed(
        name, pixels, catalog, str(catalog_path), split_fractions, seed, skipped,
        extra={"parameters": params}, root=root,
    )  # fmt: skip
