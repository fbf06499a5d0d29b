"""Processed datasets on disk and the tf.data input pipeline.

A processed dataset ``data/processed/<name>/`` holds

* ``images.npy``: uint8 (galaxies, size, size, channels), memory-mappable;
* ``catalog.parquet``: one row per image, in the same order: canonical columns (``id_str``,
  vote columns, ...) plus ``split`` in {train, val, test};
* ``manifest.json``: source, question schema, image size, counts, content hashes (sha256) and
  any rows skipped and why.

Datasets are written to a temporary folder beside the target and renamed into place (an
existing dataset is moved aside first and put back if that fails), so a failure never leaves a
half-written dataset behind.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from zoolib import files, paths, volunteers
from zoolib.schema import FILE_COLUMN, ID_COLUMN, QUESTIONS, SPLIT_COLUMN, question, validate_counts

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
        """Questions with vote columns in this dataset, in schema order."""
        return list(self.manifest["questions"])

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
    k = np.stack([catalog[question(q).yes_column].to_numpy() for q in questions], axis=1)
    n = np.stack([catalog[question(q).total_column].to_numpy() for q in questions], axis=1)
    return np.stack([k, n], axis=-1).astype(np.float32)


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
    """
    images = np.asarray(images)
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
            "questions": questions_in(catalog),
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


def resize(images: np.ndarray, size: int, batch_size: int = 1024) -> np.ndarray:
    """Antialiased resize of uint8 (n, S, S, C) images to (n, size, size, C); no-op if S == size."""
    if images.shape[1] == size:
        return np.asarray(images)
    import tensorflow as tf

    out = np.empty((len(images), size, size, images.shape[3]), dtype=np.uint8)
    for start in range(0, len(images), batch_size):
        batch = tf.image.resize(np.asarray(images[start : start + batch_size], np.float32),
                                [size, size], antialias=True)  # fmt: skip
        out[start : start + len(batch)] = np.clip(np.rint(batch.numpy()), 0, 255)
    return out


def augment(images, seed):
    """Augment a batch as galaxies allow: any of the 8 flips/rotations, a small zoom-crop and a
    slight brightness/contrast jitter, drawn independently for each image.

    Args:
        images: float32 (B, S, S, C) on the 0..255 scale.
        seed: shape-(2,) integer tensor for TensorFlow's stateless random ops, so the result
            depends on nothing but (images, seed).

    Returns:
        float32 (B, S, S, C), clipped to 0..255.
    """
    import tensorflow as tf

    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 5)
    b, size = tf.shape(images)[0], tf.shape(images)[1]
    flip = tf.random.stateless_uniform([b], seeds[0]) < 0.5  # mirror left-right, then
    turns = tf.random.stateless_uniform([b], seeds[1], 0, 4, dtype=tf.int32)  # rot90 k times
    # each of the 8 (flip, turns) is a permutation of the pixels: apply it to a grid of pixel
    # indices once, then move every image's pixels with one gather (exactly the values of
    # flipping and rotating the images themselves, at about half the cost)
    grid = tf.reshape(tf.range(size * size), [1, size, size, 1])
    sources = [tf.image.rot90(g, k) for g in (grid, tf.reverse(grid, axis=[2])) for k in range(4)]
    sources = tf.reshape(tf.concat(sources, axis=0), [8, size * size])
    pixels = tf.gather(sources, tf.cast(flip, tf.int32) * 4 + turns)  # (B, S * S)
    flat = tf.reshape(images, [b, size * size, tf.shape(images)[3]])  # (B, S * S, C)
    images = tf.reshape(tf.gather(flat, pixels, axis=1, batch_dims=1), tf.shape(images))
    frac = tf.random.stateless_uniform([b], seeds[2], 0.88, 1.0)  # zoom in by up to 12%
    corner = tf.random.stateless_uniform([b, 2], seeds[3]) * (1.0 - frac)[:, None]
    boxes = tf.concat([corner, corner + frac[:, None]], axis=1)  # (y1, x1, y2, x2)
    images = tf.image.crop_and_resize(images, boxes, tf.range(b), tf.stack([size, size]))
    jitter = tf.random.stateless_uniform([b, 1, 1, 2], seeds[4], -1.0, 1.0)
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    images = (images - mean) * (1.0 + 0.08 * jitter[..., :1]) + mean + 6.0 * jitter[..., 1:]
    return tf.clip_by_value(images, 0.0, 255.0)


def make_tf_dataset(
    images: np.ndarray,
    votes: np.ndarray,
    batch_size: int = 64,
    shuffle: bool = True,
    augment_images: bool = True,
    seed: int = 0,
    shard: tuple[int, int] = (0, 1),
    replicas: int = 1,
):
    """A ``tf.data`` pipeline of batches (images float32 (B, S, S, C) 0..255, votes (B, Q, 2)).

    Each pass over the dataset (each epoch) draws a new order and new augmentations from
    ``numpy.random.default_rng([seed, epoch])``, so two pipelines with the same seed yield the
    same batches whatever TensorFlow's global seed is. Only one batch of ``images`` is read at a
    time (a memmap stays on disk); augmentation runs batched, in parallel, and is prefetched.

    For training on several machines, ``shard=(i, n)`` and ``replicas=r`` make this the input
    pipeline of worker ``i`` of ``n`` with ``r`` local replicas: every global batch of
    ``batch_size`` galaxies is cut into ``n * r`` consecutive near-equal parts (``numpy.
    array_split``; a part of the last batch may be empty) and this pipeline yields only parts
    ``i * r .. i * r + r - 1``, one element per local replica. So each worker reads and
    augments only its own galaxies, the ``n`` pipelines together yield every galaxy of every
    epoch exactly once, and each part gets its own augmentation seed. With the default
    ``(0, 1)`` and ``r = 1`` the batches are the whole global batches. See :func:`dataset_fn`.
    """
    import tensorflow as tf

    if len(images) != len(votes):
        raise ValueError(f"{len(images)} images but {len(votes)} vote rows")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    index, count = shard
    if not (count >= 1 and 0 <= index < count):
        raise ValueError(f"shard must be (i, n) with 0 <= i < n, got {shard!r}")
    if replicas < 1:
        raise ValueError(f"replicas must be >= 1, got {replicas!r}")
    votes = np.asarray(votes, dtype=np.float32)
    n = len(images)
    n_parts = count * replicas
    mine = range(index * replicas, (index + 1) * replicas)
    epochs = iter(range(2**62))

    def batches():
        rng = np.random.default_rng([seed, next(epochs)])
        order = rng.permutation(n) if shuffle else np.arange(n)
        for start in range(0, n, batch_size):
            idx = np.sort(order[start : start + batch_size])  # sorted: sequential memmap reads
            # one seed per part; with one part these are the same draws as a single seed
            part_seeds = rng.integers(0, 2**62, size=(n_parts, 2))
            parts = np.array_split(idx, n_parts)
            for p in mine:
                rows = parts[p]
                yield np.asarray(images[rows], dtype=np.float32), votes[rows], part_seeds[p]

    shape = (None,) + tuple(images.shape[1:])
    ds = tf.data.Dataset.from_generator(
        batches,
        output_signature=(
            tf.TensorSpec(shape, tf.float32),
            tf.TensorSpec((None,) + votes.shape[1:], tf.float32),
            tf.TensorSpec((2,), tf.int64),
        ),
    )
    ds = ds.apply(tf.data.experimental.assert_cardinality(-(-n // batch_size) * replicas))
    if augment_images:
        ds = ds.map(lambda x, y, s: (augment(x, s), y), num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.map(lambda x, y, s: (x, y))
    return ds.prefetch(tf.data.AUTOTUNE)


def dataset_fn(
    images: np.ndarray, votes: np.ndarray, global_batch_size: int = 64, **kwargs
) -> Callable:
    """A dataset function for ``tf.distribute`` (and :func:`zoolib.training.train`).

    Returns ``fn(input_context) -> tf.data.Dataset``: the :func:`make_tf_dataset` pipeline of
    input pipeline ``input_context.input_pipeline_id`` (one per worker), which yields only that
    worker's parts of each global batch of ``global_batch_size``, one per local replica. Pass
    it to ``strategy.distribute_datasets_from_function`` or straight to ``training.train``.
    ``kwargs`` go to :func:`make_tf_dataset` (``shuffle``, ``augment_images``, ``seed``).
    """
    if global_batch_size < 1:
        raise ValueError(f"global_batch_size must be >= 1, got {global_batch_size!r}")

    def fn(input_context):
        pipelines = input_context.num_input_pipelines
        replicas, rest = divmod(input_context.num_replicas_in_sync, pipelines)
        if rest or not replicas:
            raise ValueError(
                f"{input_context.num_replicas_in_sync} replicas cannot be shared evenly by "
                f"{pipelines} input pipelines (workers)"
            )
        return make_tf_dataset(
            images, votes, global_batch_size,
            shard=(input_context.input_pipeline_id, pipelines), replicas=replicas, **kwargs,
        )  # fmt: skip

    return fn


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
    from zoolib import synthetic

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
    from zoolib import catalogs, images

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
