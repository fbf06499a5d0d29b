import re

import keras
import numpy as np
import pytest
from scipy import special

from zoolib.cnn import losses, models, posteriors


def test_architecture_follows_the_paper():
    model = models.build_bayesian_cnn(image_size=64, channels=3, n_questions=2)
    trunk, head = model.get_layer("trunk"), model.get_layer("head")
    convs = [lay for lay in trunk.layers if isinstance(lay, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [32, 32, 64, 64, 128, 128]
    assert all(c.kernel_size == (3, 3) and c.padding == "same" for c in convs)
    pools = [lay for lay in trunk.layers if isinstance(lay, keras.layers.MaxPooling2D)]
    assert len(pools) == 4
    assert trunk.output.shape[-1] == 128
    assert [type(lay) for lay in head.layers[1:]] == [models.MCDropout, keras.layers.Dense]
    assert head.get_layer("mc_dropout").rate == 0.5
    assert model.output.shape[1:] == (2,)
    assert models.split_trunk_head(model) == (trunk, head)


def test_mc_dropout_is_active_at_prediction_time():
    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 1)).astype("float32")
    model = models.build_bayesian_cnn(image_size=32, seed=1)
    a, b = model.predict(x, verbose=0), model.predict(x, verbose=0)
    assert not np.allclose(a, b)
    # the trunk is deterministic
    trunk = model.get_layer("trunk")
    np.testing.assert_array_equal(trunk.predict(x, verbose=0), trunk.predict(x, verbose=0))
    no_dropout = models.build_bayesian_cnn(image_size=32, dropout_rate=0.0, seed=1)
    np.testing.assert_array_equal(
        no_dropout.predict(x, verbose=0), no_dropout.predict(x, verbose=0)
    )


def toy_problem(n_galaxies, size=32, seed=0):
    """Images whose central brightness sets the probability of a yes vote."""
    rng = np.random.default_rng(seed)
    true_p = rng.random(n_galaxies)
    yy, xx = np.mgrid[:size, :size] - size / 2
    blob = np.exp(-(xx**2 + yy**2) / (2 * 4.0**2))
    images = 20 + 200 * true_p[:, None, None] * blob + rng.normal(0, 5, (n_galaxies, size, size))
    images = np.clip(images, 0, 255).astype(np.uint8)[..., None]
    n = rng.integers(5, 45, n_galaxies)
    k = rng.binomial(n, true_p)
    return images, np.stack([k, n], -1)[:, None, :].astype("float32"), true_p


@pytest.mark.slow
def test_model_learns_a_toy_problem_and_loss_falls():
    images, y, true_p = toy_problem(768)
    k, n = y[:, 0, 0], y[:, 0, 1]

    def mean_loss(p):
        return float(np.mean(losses.binomial_nll(k, n, special.logit(p)).numpy()))

    baseline = mean_loss(np.full_like(true_p, k.sum() / n.sum()))  # no image information
    oracle = mean_loss(true_p)  # the best any model can do on average
    model = models.build_bayesian_cnn(image_size=32, seed=3)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=losses.BinomialLoss())
    history = model.fit(images, y, epochs=8, batch_size=64, verbose=0)
    loss = history.history["loss"]
    assert loss[-1] < loss[0]
    rho = posteriors.sample_rho(model, images, 10, seed=0).mean(-1)[:, 0]
    # the trained model closes most of the gap between the baseline and the oracle
    assert mean_loss(rho) < baseline - 0.8 * (baseline - oracle)
    assert np.corrcoef(rho, true_p)[0, 1] > 0.95


def test_save_and_load_round_trip(tmp_path):
    images, y, _ = toy_problem(64)
    model = models.build_bayesian_cnn(image_size=32, n_questions=1, seed=2)
    model.compile(optimizer="adam", loss=losses.BinomialLoss())
    model.fit(images, y, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)  # no custom_objects needed
    assert isinstance(loaded.loss, losses.BinomialLoss)
    assert isinstance(loaded.get_layer("head").get_layer("mc_dropout"), models.MCDropout)
    x = images.astype("float32")
    np.testing.assert_array_equal(
        model.get_layer("trunk").predict(x, verbose=0),
        loaded.get_layer("trunk").predict(x, verbose=0),
    )
    np.testing.assert_array_equal(
        posteriors.sample_rho(model, images, 5, seed=9),
        posteriors.sample_rho(loaded, images, 5, seed=9),
    )


def test_bad_dropout_rate():
    with pytest.raises(ValueError, match="dropout_rate"):
        models.build_bayesian_cnn(dropout_rate=1.0)


def test_fast_path_only_for_exact_trunk_head_models():
    model = models.build_bayesian_cnn(image_size=32, seed=0)
    assert models.split_trunk_head(model) is not None
    # an extra layer after the head must not be skipped by the fast sampler
    extra = keras.Model(model.input, keras.layers.Dense(1, name="extra")(model.output))
    assert models.split_trunk_head(extra) is None
    x = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 1)).astype("float32")
    rho = posteriors.sample_rho(extra, x, 4, seed=1)
    assert rho.shape == (3, 1, 4)


def test_loaded_model_keeps_the_fast_path(tmp_path):
    model = models.build_bayesian_cnn(image_size=32, seed=0)
    model.save(tmp_path / "m.keras")
    assert models.split_trunk_head(keras.models.load_model(tmp_path / "m.keras")) is not None


@pytest.fixture
def saved_model(tmp_path):
    model = models.build_bayesian_cnn(image_size=16, filters=(2,) * 6, dense_units=4, seed=0)
    path = tmp_path / "small.keras"
    model.save(path)
    return path


def test_load_model_reads_a_whole_file(saved_model):
    assert models.split_trunk_head(models.load_model(saved_model)) is not None


@pytest.mark.parametrize("damage", ["truncated", "csv renamed"])
def test_a_corrupt_model_file_is_not_called_missing(saved_model, tmp_path, damage):
    bad = tmp_path / "bad.keras"
    if damage == "truncated":
        bad.write_bytes(saved_model.read_bytes()[: saved_model.stat().st_size // 2])
    else:
        bad.write_text("id,smooth-or-featured\n1,0.5\n")
    with pytest.raises(ValueError) as err:
        models.load_model(bad)
    message = str(err.value)
    assert str(bad) in message and "exists but is not a readable Keras model" in message
    assert "truncated" in message and "notebook 02" in message and "restore the file" in message
    assert "not found" not in message.lower()


def test_a_missing_model_file_says_it_is_missing(tmp_path):
    gone = tmp_path / "gone.keras"
    with pytest.raises(FileNotFoundError, match=re.escape(f"model file {gone} is missing: train")):
        models.load_model(gone)


def test_a_missing_trained_model_says_run_notebook_02_first(tmp_path, monkeypatch):
    from zoolib import paths

    monkeypatch.setattr(paths, "MODELS_DIR", tmp_path / "models")
    expected = tmp_path / "models" / "cnn.keras"
    with pytest.raises(FileNotFoundError) as err:
        models.trained_model_path("cnn")
    message = str(err.value)
    assert "run notebook 02 first" in message and "model_name='cnn'" in message
    assert str(expected) in message and "models/cnn.keras under the project root" in message
    expected.parent.mkdir()
    expected.write_bytes(b"")  # only existence is checked here; load_model checks the content
    assert models.trained_model_path("cnn") == expected


def test_notebook_03_stops_before_any_work_when_no_model_exists(tmp_path, monkeypatch):
    """Runs notebook 03's parameter cell and the cell that loads the model, with no model: the
    first statement stops it with the run-notebook-02 message; no data is read."""
    import json

    from zoolib import paths

    monkeypatch.setattr(paths, "MODELS_DIR", tmp_path / "models")
    notebook = json.loads((paths.NOTEBOOKS_DIR / "03_dropout_posteriors.ipynb").read_text())
    code = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]
    (params,) = [
        "".join(c["source"])
        for c in notebook["cells"]
        if "parameters" in c.get("metadata", {}).get("tags", [])
    ]
    (loading,) = [src for src in code if "models.load_model" in src]

    class Untouched:
        def __getattr__(self, name):
            raise AssertionError(f"notebook 03 went on to use {name} without a model")

    namespace = {"models": models, **{m: Untouched() for m in ("cards", "data", "pipeline")}}
    exec(params, namespace)
    with pytest.raises(FileNotFoundError, match="run notebook 02 first") as err:
        exec(loading, namespace)
    assert str(tmp_path / "models" / "bayesian_cnn.keras") in str(err.value)
