"""The shipped pretrained CNN: it matches the universe it claims, loads only when intact and of
the right shape, and starts fine-tuning with its own weights."""

import json
import shutil

import numpy as np
import pytest

from zoolib import files, paths
from zoolib.cnn import cards, models, pretrained


@pytest.fixture(scope="module")
def shipped():
    return pretrained.load(64, 1)


def test_shipped_weights_match_the_universe_they_claim(shipped):
    """Fails when the simulation changes after the weights were made: regenerate them then."""
    _, manifest = shipped
    pretrained.check_universe(manifest)
    assert manifest["sha256"] == files.sha256(paths.PRETRAINED_DIR / manifest["file"])
    assert manifest["universe"]["seed"] == pretrained.UNIVERSE_SEED


def test_a_changed_universe_is_detected(shipped):
    _, manifest = shipped
    changed = json.loads(json.dumps(manifest))
    changed["universe"]["fingerprint"]["pixel mean"] *= 1.001
    with pytest.raises(ValueError, match=r"(?s)universe changed.*make pretrain.*pixel mean"):
        pretrained.check_universe(changed)
    other = pretrained.universe_fingerprint("decals", 64, 1)  # another survey: other votes
    assert pretrained.fingerprint_differences(manifest["universe"]["fingerprint"], other)


def test_load_refuses_a_damaged_file_the_wrong_size_or_no_manifest(tmp_path, shipped):
    folder = tmp_path / "pretrained"
    shutil.copytree(paths.PRETRAINED_DIR, folder)
    with pytest.raises(ValueError, match="takes 64 px images with 1 channel.*not 32 px"):
        pretrained.load(32, 1, folder)
    with pytest.raises(ValueError, match="not 64 px with 3"):
        pretrained.load(64, 3, folder)
    model_file = folder / shipped[1]["file"]
    model_file.write_bytes(model_file.read_bytes() + b"\0")
    with pytest.raises(ValueError, match="does not match the sha256"):
        pretrained.load(64, 1, folder)
    (folder / pretrained.MANIFEST_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="make pretrain.*scratch"):
        pretrained.load(64, 1, folder)


def test_fine_tuning_starts_from_the_pretrained_trunk_and_head_columns(shipped):
    source, manifest = shipped
    order = manifest["architecture"]["questions"]
    wanted = [order[2], order[0]]
    model, _ = pretrained.initial_model(wanted, seed=0)
    (src_trunk, src_head), (trunk, head) = (
        models.split_trunk_head(source),
        models.split_trunk_head(model),
    )
    for a, b in zip(src_trunk.get_weights(), trunk.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    src_kernel, src_bias = src_head.get_layer("logits").get_weights()
    kernel, bias = head.get_layer("logits").get_weights()
    np.testing.assert_array_equal(kernel, src_kernel[:, [2, 0]])
    np.testing.assert_array_equal(bias, src_bias[[2, 0]])
    images = np.random.default_rng(0).integers(0, 255, (4, 64, 64, 1)).astype(np.uint8)
    from zoolib.cnn import posteriors

    np.testing.assert_allclose(
        posteriors.deterministic_rho(model, images),
        posteriors.deterministic_rho(source, images)[:, [2, 0]],
        rtol=1e-6,
    )


@pytest.mark.slow
def test_pretrain_writes_a_model_and_a_manifest_that_load(tmp_path):
    settings = pretrained.Settings(n_galaxies=300, epochs=1, eval_samples=3)
    manifest = pretrained.pretrain(settings, tmp_path, tmp_path / "work", verbose=0)
    written = {p.name for p in tmp_path.iterdir()} - {"work"}
    assert written == {pretrained.MANIFEST_FILE, pretrained.MODEL_FILE}
    model, loaded = pretrained.load(64, 1, tmp_path)
    assert loaded == json.loads(json.dumps(manifest))
    assert set(manifest["test"]["cnn"]) == set(manifest["architecture"]["questions"])
    assert manifest["code_version"]["zoolib"] and manifest["training"]["epochs_run"] == 1
    assert 0 <= manifest["dead_features"] <= 128
    assert manifest["bytes"] < 3_000_000  # no optimizer state


def test_a_colour_start_sees_an_rgb_image_as_the_grey_model_sees_its_mean():
    grey, _ = pretrained.initial_model(["smooth-or-featured"], 64, 1, seed=0)
    colour, _ = pretrained.initial_model(["smooth-or-featured"], 64, 3, seed=0)
    assert colour.input_shape == (None, 64, 64, 3)
    rgb = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3)).astype(np.float32)
    rgb[..., 0] *= 0.5  # unequal bands: the mean is not any one band
    features = [models.split_trunk_head(m)[0] for m in (grey, colour)]
    want = features[0](rgb.mean(axis=-1, keepdims=True)).numpy()
    np.testing.assert_allclose(features[1](rgb).numpy(), want, rtol=1e-4, atol=1e-5)
    assert np.abs(want).max() > 0.01  # features are not trivially zero
    with pytest.raises(ValueError, match="cannot start a 2-channel one"):
        pretrained.initial_model(["bar"], 64, 2)


def test_notebook_02s_init_names_its_start():
    assert pretrained.start_folder("auto", "synthetic") == paths.PRETRAINED_DIR
    assert pretrained.start_folder("auto", "data/raw/sdss/catalog.csv") == (
        paths.PRETRAINED_REAL_DIR if pretrained.AUTO_START["real"] == "real"
        else paths.PRETRAINED_DIR)  # fmt: skip
    assert pretrained.start_folder("real", "synthetic") == paths.PRETRAINED_REAL_DIR
    assert pretrained.start_folder("scratch", "synthetic") is None
    with pytest.raises(ValueError, match=r"init must be one of \('auto', 'pretrained'"):
        pretrained.start_folder("zoobot", "synthetic")
    assert pretrained.describe(pretrained.read_manifest()).startswith(
        "pretrained on 60,000 simulated galaxies")


def test_the_real_image_model_ships_with_its_manifest_and_card():
    folder = paths.PRETRAINED_REAL_DIR
    manifest = pretrained.read_manifest(folder)
    assert manifest["sha256"] == files.sha256(folder / manifest["file"])
    assert manifest["training_images"] == "real"
    for survey in ("sdss", "sdss_more", "gz2"):  # the yardstick's galaxies, never trained on
        record = manifest["data"][survey]
        assert record["kept_out"] == len(record["kept_out_ids"]) > 0
    held_out = {s: manifest["data"][s]["kept_out"] for s in ("sdss", "sdss_more", "gz2")}
    assert held_out == {"sdss": 72, "sdss_more": 1922, "gz2": 401}
    more = manifest["data"]["sdss_more"]
    assert more["trained_on"] + more["kept_out"] == 3845  # each elliptical on one side
    assert "gz_decals_rings" not in str(manifest["data"])  # rings test a new label
    assert any("gz_decals_rings" in entry for entry in manifest["never_trained_on"])
    questions = manifest["architecture"]["questions"]
    assert questions == ["smooth-or-featured", "disk-edge-on"]
    model, _ = pretrained.load(64, 1, folder)
    assert model.output_shape == (None, len(questions))
    card = cards.ModelCard.read(folder / manifest["file"])
    assert card.questions == questions and card.crop_fraction == 0.4
    assert card.precision == manifest["precision"]
    assert pretrained.describe(manifest).startswith("pretrained on simulated galaxies, then")
    start, _ = pretrained.initial_model(["smooth-or-featured", "bar"], 64, 1, seed=0,
                                        folder=folder)  # fmt: skip
    assert start.output_shape == (None, 2)
