"""The tf.data input pipeline (zoolib.data.pipeline): order, seeds, sharding, augmentation,
resize."""

import numpy as np
import pytest

from zoolib.data import pipeline, processed
from zoolib.universe import synthetic


@pytest.fixture(scope="module")
def small():
    return synthetic.simulate(120, size=32, seed=2)


def test_tf_dataset_batches_in_order_without_shuffle(small):
    images, cat = small
    votes = processed.votes_array(cat, ["smooth-or-featured", "bar"])
    plain = pipeline.make_tf_dataset(
        images, votes, batch_size=16, shuffle=False, augment_images=False
    )
    batches = list(plain)
    assert len(batches) == 8 and batches[-1][0].shape[0] == 120 - 7 * 16
    x, y = batches[0]
    assert x.shape == (16, 32, 32, 1) and x.dtype.name == "float32" and y.shape == (16, 2, 2)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), images.astype("float32"))
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), votes)


def test_tf_dataset_reads_a_memmap(tmp_path, small):
    images, cat = small
    np.save(tmp_path / "x.npy", images)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    votes = processed.votes_array(cat, ["bar"])
    x, _ = next(iter(pipeline.make_tf_dataset(mm, votes, batch_size=8, augment_images=False)))
    assert x.shape == (8, 32, 32, 1)


def test_tf_dataset_is_seeded_whatever_the_global_seed(small):
    import tensorflow as tf

    images, cat = small
    votes = processed.votes_array(cat, ["smooth-or-featured"])
    first = next(iter(pipeline.make_tf_dataset(images, votes, batch_size=16, seed=3)))
    tf.random.set_seed(99)
    again = next(iter(pipeline.make_tf_dataset(images, votes, batch_size=16, seed=3)))
    other = next(iter(pipeline.make_tf_dataset(images, votes, batch_size=16, seed=4)))
    np.testing.assert_array_equal(first[0].numpy(), again[0].numpy())
    np.testing.assert_array_equal(first[1].numpy(), again[1].numpy())
    assert not np.array_equal(first[0].numpy(), other[0].numpy())
    # a second pass (epoch) is shuffled and augmented differently
    ds = pipeline.make_tf_dataset(images, votes, batch_size=120, seed=3)
    e1, e2 = (next(iter(ds))[0].numpy() for _ in range(2))
    assert not np.array_equal(e1, e2)


def test_sharded_pipelines_split_every_global_batch_between_workers_and_replicas(small):
    import tensorflow as tf

    images, cat = small
    votes = processed.votes_array(cat, ["smooth-or-featured", "bar"])
    kw = dict(batch_size=32, seed=5, augment_images=False)  # 120 = 3 x 32 + 24
    whole = [(x.numpy(), y.numpy()) for x, y in pipeline.make_tf_dataset(images, votes, **kw)]
    # 2 workers x 2 local replicas: each global batch is cut into 4 consecutive parts, worker i
    # yielding parts 2i and 2i + 1; dataset_fn builds the same pipeline from an InputContext
    workers = []
    for i in range(2):
        ds = pipeline.make_tf_dataset(images, votes, shard=(i, 2), replicas=2, **kw)
        ctx = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=i, num_replicas_in_sync=4
        )
        via_fn = pipeline.dataset_fn(images, votes, 32, seed=5, augment_images=False)(ctx)
        parts = [(x.numpy(), y.numpy()) for x, y in ds]
        assert int(ds.cardinality()) == len(parts) == 2 * len(whole)
        for (x, y), (fx, fy) in zip(parts, via_fn, strict=True):
            np.testing.assert_array_equal(x, fx.numpy())
            np.testing.assert_array_equal(y, fy.numpy())
        workers.append(parts)
    for step, (x, y) in enumerate(whole):
        parts = workers[0][2 * step : 2 * step + 2] + workers[1][2 * step : 2 * step + 2]
        np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), x)
        np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), y)
        assert [len(p[1]) for p in parts] == [len(a) for a in np.array_split(np.arange(len(y)), 4)]
    # a last global batch smaller than the number of parts leaves some parts empty; together
    # the workers still yield every galaxy of the epoch once
    one_left = [
        pipeline.make_tf_dataset(images, votes[:, :1], 119, shard=(i, 2), augment_images=False)
        for i in range(2)
    ]
    sizes = [[int(y.shape[0]) for _, y in ds] for ds in one_left]
    assert sizes == [[60, 1], [59, 0]]


def test_sharded_parts_are_augmented_with_their_own_seeds():
    # every galaxy is the same image, so equal parts augmented with one shared seed would be
    # identical
    images = np.repeat(synthetic.simulate(1, size=32, seed=4)[0], 64, axis=0)
    votes = np.ones((64, 1, 2), np.float32)
    x0, x1 = (
        next(iter(pipeline.make_tf_dataset(images, votes, 64, shard=(i, 2), seed=1)))[0].numpy()
        for i in range(2)
    )
    assert x0.shape == x1.shape == (32, 32, 32, 1)
    assert not np.array_equal(x0, x1)


@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(shard=(2, 2)), "shard"), (dict(shard=(0, 0)), "shard"), (dict(replicas=0), "replicas")],
)
def test_bad_sharding_is_refused(small, kwargs, message):
    images, cat = small
    with pytest.raises(ValueError, match=message):
        pipeline.make_tf_dataset(images, processed.votes_array(cat, ["bar"]), 16, **kwargs)


def test_dataset_fn_refuses_replicas_that_workers_cannot_share_evenly(small):
    import tensorflow as tf

    images, cat = small
    fn = pipeline.dataset_fn(images, processed.votes_array(cat, ["bar"]), 16)
    ctx = tf.distribute.InputContext(num_input_pipelines=2, num_replicas_in_sync=3)
    with pytest.raises(ValueError, match="3 replicas cannot be shared evenly by 2"):
        fn(ctx)


def test_augmentation_keeps_each_galaxy_and_its_votes_together(small):
    images, cat = small
    votes = processed.votes_array(cat, ["smooth-or-featured", "bar"])
    ds = pipeline.make_tf_dataset(images, votes, batch_size=120, shuffle=False, seed=1)
    x, y = next(iter(ds))
    np.testing.assert_array_equal(y.numpy(), votes)  # votes follow their images
    x = x.numpy()
    assert x.min() >= 0 and x.max() <= 255
    assert not np.array_equal(x, images.astype("float32"))
    # per galaxy, the augmented image keeps the original's total light to within the jitter
    # (+-6 levels of brightness) and the zoom (at most 12% of the width cut away)
    orig = images.reshape(120, -1).mean(axis=1)
    aug = x.reshape(120, -1).mean(axis=1)
    assert np.all(np.abs(aug - orig) <= 7 + 0.25 * orig)
    assert np.corrcoef(orig, aug)[0, 1] > 0.95


def test_augment_draws_all_orientations_and_zooms():
    import tensorflow as tf

    img = np.zeros((32, 32, 1), np.float32)
    img[6:9, 20:23] = 200.0  # an off-centre spot: its position reveals the orientation
    batch = tf.constant(np.repeat(img[None], 256, axis=0))
    out = pipeline.augment(batch, tf.constant([1, 2], tf.int64)).numpy()
    spots = {
        (int(r) // 16, int(c) // 16)
        for r, c in (np.unravel_index(o[..., 0].argmax(), (32, 32)) for o in out)
    }
    assert spots == {(0, 0), (0, 1), (1, 0), (1, 1)}  # all four quadrants are reached
    # the zoom changes the spot's apparent size from image to image
    bright = (out[..., 0] > 60).sum(axis=(1, 2))
    assert bright.max() > bright.min()
    same = pipeline.augment(batch, tf.constant([1, 2], tf.int64)).numpy()
    np.testing.assert_array_equal(out, same)  # stateless: same seed, same result


def test_resize_is_an_antialiased_mean_and_a_no_op_at_the_same_size():
    """2x downscaling of a flat image keeps its value; a checkerboard becomes its mean (not a
    sample of it, which aliasing would give); the same size returns the images unchanged."""
    flat = np.full((2, 8, 8, 1), 77, np.uint8)
    np.testing.assert_array_equal(pipeline.resize(flat, 4), np.full((2, 4, 4, 1), 77))
    board = np.indices((8, 8)).sum(axis=0) % 2 * 200
    small = pipeline.resize(board[None, :, :, None].astype(np.uint8), 4)
    assert np.all(np.abs(small[0, 1:-1, 1:-1].astype(int) - 100) <= 1)  # interior: the mean
    assert np.all(np.abs(small.astype(int) - 100) <= 5)  # edges: kernel cut; a sample: 0 or 200
    assert np.array_equal(pipeline.resize(flat, 8), flat)
