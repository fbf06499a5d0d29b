import json

import numpy as np
import pandas as pd
import pytest

from zoolib import data, synthetic


@pytest.fixture(scope="module")
def small():
    return synthetic.simulate(120, size=32, seed=2)


def test_write_and_load_round_trip(tmp_path, small):
    images, cat = small
    folder = data.write_processed("demo", images, cat, "synthetic", seed=5, root=tmp_path)
    ds = data.load_processed("demo", root=tmp_path, verify=True)
    assert isinstance(ds.images, np.memmap)
    np.testing.assert_array_equal(ds.images, images)
    pd.testing.assert_frame_equal(ds.catalog.drop(columns="split"), cat.reset_index(drop=True))
    assert ds.manifest["split_counts"] == {"train": 84, "val": 12, "test": 24}
    assert ds.questions == ["smooth-or-featured", "disk-edge-on", "bar"]
    assert ds.manifest["image_size"] == 32 and ds.manifest["n_galaxies"] == 120
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # no temporary leftovers
    x, rows = ds.split("test")
    assert len(x) == len(rows) == 24 and (rows["split"] == "test").all()
    votes = data.votes_array(rows, ds.questions)
    assert votes.shape == (24, 3, 2)
    np.testing.assert_array_equal(votes[:, 2, 1], rows["bar_total-votes"])
    # a tampered file is caught by verify
    (folder / "catalog.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="does not match the hash"):
        data.load_processed("demo", root=tmp_path, verify=True)


def test_splits_are_seeded_and_sized():
    a = data.assign_splits(1000, (0.7, 0.1, 0.2), seed=1)
    assert (a == "train").sum() == 700 and (a == "val").sum() == 100
    np.testing.assert_array_equal(a, data.assign_splits(1000, (0.7, 0.1, 0.2), seed=1))
    assert not np.array_equal(a, data.assign_splits(1000, (0.7, 0.1, 0.2), seed=2))
    with pytest.raises(ValueError, match="split_fractions"):
        data.assign_splits(10, (0.7, 0.2, 0.2), seed=0)


@pytest.mark.parametrize(
    "break_it, message",
    [
        (
            lambda c: c.assign(id_str=["dup"] * 2 + list(c.id_str[2:])),
            r"duplicate id_str values: \['dup'\]",
        ),
        (
            lambda c: c.assign(**{"bar_yes": c["bar_total-votes"] + 1}),
            r"question 'bar': .*index 0 \('synth-2-0000000'\)",
        ),
        (lambda c: c.assign(**{"smooth-or-featured_smooth": -1}), "negative at index 0"),
        (lambda c: c.assign(**{"disk-edge-on_total-votes": np.nan}), "not finite"),
        (lambda c: c.drop(columns="id_str"), "required column 'id_str' is missing"),
        (lambda c: c.iloc[:0], "the catalogue is empty"),
        (lambda c: c.iloc[:-1], "119 catalogue rows but 120 images"),
    ],
)
def test_bad_catalogue_is_refused_and_nothing_is_written(tmp_path, small, break_it, message):
    images, cat = small
    data.write_processed("keep", images, cat, "synthetic", root=tmp_path)
    with pytest.raises(ValueError, match=message):
        data.write_processed("keep", images, break_it(cat.copy()), "synthetic", root=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]
    assert data.load_processed("keep", root=tmp_path, verify=True).manifest["n_galaxies"] == 120


def test_failure_while_writing_leaves_old_dataset_intact(tmp_path, small, monkeypatch):
    images, cat = small
    data.write_processed("keep", images, cat, "first", root=tmp_path)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", boom)
    with pytest.raises(OSError, match="disk full"):
        data.write_processed("keep", images, cat, "second", root=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]
    manifest = json.loads((tmp_path / "keep" / "manifest.json").read_text())
    assert manifest["source"] == "first"


def test_missing_dataset_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="01_data_prep"):
        data.load_processed("nothing", root=tmp_path)


def test_tf_dataset_batches_and_augments(small):
    images, cat = small
    votes = data.votes_array(cat, ["smooth-or-featured", "bar"])
    plain = data.make_tf_dataset(images, votes, batch_size=16, shuffle=False, augment_images=False)
    x, y = next(iter(plain))
    assert x.shape == (16, 32, 32, 1) and x.dtype.name == "float32" and y.shape == (16, 2, 2)
    np.testing.assert_array_equal(x.numpy(), images[:16].astype(np.float32))
    np.testing.assert_array_equal(y.numpy(), votes[:16])
    aug1 = data.make_tf_dataset(images, votes, batch_size=16, shuffle=True, seed=3)
    aug2 = data.make_tf_dataset(images, votes, batch_size=16, shuffle=True, seed=3)
    (a, ya), (b, yb) = next(iter(aug1)), next(iter(aug2))
    np.testing.assert_array_equal(a.numpy(), b.numpy())  # reproducible for a seed
    np.testing.assert_array_equal(ya.numpy(), yb.numpy())
    assert a.numpy().min() >= 0 and a.numpy().max() <= 255
    # each augmented image is a transformed copy of its own galaxy: same brightness, roughly
    idx = [int(np.flatnonzero((votes == v).all(axis=(1, 2)))[0]) for v in ya.numpy()]
    orig_mean = images[idx].reshape(16, -1).mean(axis=1)
    aug_mean = a.numpy().reshape(16, -1).mean(axis=1)
    assert np.all(np.abs(aug_mean - orig_mean) < 0.15 * orig_mean + 12)
    assert not np.array_equal(a.numpy(), images[idx].astype(np.float32))
    # a second epoch is shuffled and augmented differently
    epochs = [next(iter(aug1))[0].numpy() for _ in range(2)]
    assert not np.array_equal(epochs[0], epochs[1])


def test_augment_keeps_a_symmetric_galaxy_in_place():
    import tensorflow as tf

    yy, xx = np.mgrid[:32, :32] - 15.5
    blob = (200 * np.exp(-(xx**2 + yy**2) / 30.0) + 10)[..., None].astype(np.float32)
    out = data.augment(tf.constant(blob), tf.constant([1, 2], tf.int64)).numpy()
    assert out.shape == blob.shape
    # flips and rotations leave a centred round blob in place; the zoom-crop (at most 12% of
    # the width, off-centre by at most 6%) moves it by at most 2 px
    peak = np.array(np.unravel_index(out[..., 0].argmax(), (32, 32)))
    assert np.all(np.abs(peak - 15.5) <= 2.5)
    assert 150 < out.max() < 260 and out.min() < 30
