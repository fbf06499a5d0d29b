"""The ``tf.data`` input pipeline: batches of (augmented) images and their vote counts.

:func:`make_tf_dataset` reads a batch of a (memory-mapped) image array at a time, augments it
with the symmetries galaxies allow (:func:`augment`) and prefetches; :func:`dataset_fn` wraps it
for ``tf.distribute`` so that each worker reads only its own part of every global batch.
Every random draw comes from ``numpy.random.default_rng([seed, epoch])`` or TensorFlow's
stateless ops, so two pipelines with the same seed yield the same batches.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


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
    """A dataset function for ``tf.distribute`` (and :func:`zoolib.cnn.training.train`).

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
