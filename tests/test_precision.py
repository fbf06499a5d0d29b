"""zoolib.cnn.precision: auto's choice (with faked hardware and probes), bfloat16 layers with
float32 outputs, the float32 path bit for bit, the shipped CNN in bfloat16 against float32, and the
precision recorded where results are kept (cards, run headers, predict's metadata, the runner)."""

import keras
import numpy as np
import pytest
from scipy import special
from test_finetune import SMALL, Q, toy

from zoolib.active import heads_regime, runs
from zoolib.cnn import cards, models, posteriors, precision, pretrained, training
from zoolib.cnn.losses import BinomialLoss
from zoolib.reports import runner
from zoolib.universe import synthetic


@pytest.fixture
def fresh_auto():
    """Auto decided afresh (request it before monkeypatch, which must undo its fakes first)."""
    precision.forget()
    yield
    precision.forget()


def test_explicit_precisions_are_taken_as_asked_and_bad_ones_named():
    for name in ("float32", "mixed_bfloat16"):
        for task in precision.TASKS:
            assert precision.choose(name, task).policy == name
    with pytest.raises(ValueError, match="precision='bfloat16'.*float32, mixed_bfloat16, auto"):
        precision.choose("bfloat16")
    with pytest.raises(ValueError, match="task='fit'"):
        precision.choose("float32", "fit")


def test_auto_keeps_float32_without_units_and_never_probes(fresh_auto, monkeypatch):
    monkeypatch.setattr(precision, "native_units", lambda: None)
    monkeypatch.setattr(precision, "probe", lambda task: pytest.fail("probed without units"))
    choice = precision.choose("auto", "train")
    assert choice.policy == "float32" and "no bfloat16 units" in str(choice)


@pytest.mark.parametrize("ratio, expected", [(0.6, "float32"), (1.1, "float32"),
                                             (1.9, "mixed_bfloat16"), (4.0, "mixed_bfloat16")])
def test_auto_follows_the_probe_where_there_are_units(fresh_auto, monkeypatch, ratio, expected):
    monkeypatch.setattr(precision, "native_units", lambda: "Fake CPU (amx_bf16)")
    calls = []

    def probe(task):
        calls.append(task)
        return {"float32": 100.0, "mixed_bfloat16": 100.0 * ratio, "ratio": ratio}

    monkeypatch.setattr(precision, "probe", probe)
    first = precision.choose("auto", "predict")
    assert first.policy == expected and f"{ratio:.2f}x" in first.reason
    assert precision.choose("auto", "predict") == first and calls == ["predict"]  # once a task


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Some Xeon\nflags\t\t: fpu avx512f amx_bf16\n")
    assert precision.cpu_flags(info) == {"fpu", "avx512f", "amx_bf16"}
    assert precision.cpu_model(info) == "Some Xeon"
    assert precision.cpu_flags(tmp_path / "missing") == set()


def small_model():
    return models.build_bayesian_cnn(16, 1, 2, filters=(4,) * 6, dense_units=8, seed=0)


def test_bfloat16_layers_compute_in_bfloat16_and_the_outputs_stay_float32():
    model = precision.apply(small_model(), "mixed_bfloat16")
    assert precision.policy_of(model) == "mixed_bfloat16"
    x = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 1)).astype(np.float32)
    trunk, head = models.split_trunk_head(model)
    assert trunk(x).dtype.name == "bfloat16"
    assert model(x).dtype.name == "float32"
    assert head.get_layer("logits").dtype_policy.name == "float32"
    assert all(w.dtype == "float32" for w in model.weights)  # weights are float32 in both


def test_float32_path_is_unchanged_bit_for_bit():
    x = np.random.default_rng(1).uniform(0, 255, (12, 16, 16, 1)).astype(np.float32)
    before = posteriors.sample_rho(small_model(), x, 5, seed=3)
    there_and_back = precision.apply(precision.apply(small_model(), "mixed_bfloat16"), "float32")
    np.testing.assert_array_equal(posteriors.sample_rho(there_and_back, x, 5, seed=3), before)


def toy_batches(n=64, size=16):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (n, size, size, 1)).astype(np.float32)
    k = (x.mean(axis=(1, 2, 3)) > 127.5).astype(np.float32)[:, None].repeat(2, axis=1) * 5
    y = np.stack([k, np.full_like(k, 5)], axis=-1)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(16)


def test_training_in_float32_equals_plain_keras_training():
    """train(precision='float32') is the computation a model never touched by precision gets."""
    ds = toy_batches()
    history, _, model = training.train(small_model, ds, None, 2, seed=5, precision="float32")
    reference = small_model()
    reference.compile(optimizer=keras.optimizers.Adam(1e-3), loss=BinomialLoss())
    keras.utils.set_random_seed(5)
    expected = reference.fit(ds, epochs=2, verbose=0, shuffle=False).history
    assert history["loss"] == [float(v) for v in expected["loss"]]
    for a, b in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_training_in_bfloat16_learns_with_float32_weights():
    ds = toy_batches(128)
    history, _, model = training.train(small_model, ds, ds, 6, learning_rate=3e-3, seed=0,
                                       precision="mixed_bfloat16")  # fmt: skip
    assert precision.policy_of(model) == "mixed_bfloat16"
    assert all(np.isfinite(history["loss"])) and history["loss"][-1] < history["loss"][0]
    assert all(w.dtype == "float32" for w in model.weights)


def test_shipped_cnn_in_bfloat16_agrees_with_float32():
    """The shipped weights were made in float32; their bfloat16 inference is checked here
    (measured on 2,048 galaxies: max |delta rho| 0.022, mean 0.0008, mean |delta logit| 0.006,
    against a mean MC-dropout spread of rho of 0.031)."""
    images, _ = synthetic.simulate(256, 64, 1, seed=11, preset="gz2")
    model, _ = pretrained.load(64, 1)
    rho32 = posteriors.deterministic_rho(model, images)
    rho16 = posteriors.deterministic_rho(precision.apply(model, "mixed_bfloat16"), images)
    delta = np.abs(rho16 - rho32)
    assert 0 < delta.max() < 0.05 and delta.mean() < 0.003
    assert np.abs(special.logit(rho16) - special.logit(rho32)).mean() < 0.02


def test_card_records_precision_and_refuses_unknown_ones(tmp_path):
    card = cards.ModelCard(["bar"], 64, 1, precision="mixed_bfloat16")
    card.write(tmp_path / "m.keras")
    assert cards.ModelCard.read(tmp_path / "m.keras").precision == "mixed_bfloat16"
    with pytest.raises(ValueError, match="precision must be float32 or mixed_bfloat16"):
        cards.ModelCard(["bar"], 64, 1, precision="auto")


def test_run_header_records_precision_and_resume_refuses_another(tmp_path):
    x, cat = toy()
    base = {**SMALL, "strategies": ("random",), "n_seeds": 1}
    heads_regime.run(runs.Settings(**base), x, cat, [Q], tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"settings\.precision: 'float32' -> 'mixed_bfloat16'"):
        heads_regime.run(runs.Settings(**base, precision="mixed_bfloat16"), x, cat, [Q],
                         tmp_path, progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="resolves auto"):
        runs.Settings(precision="auto")


def test_runner_gives_precision_to_the_notebooks_that_declare_it():
    notebooks = runner.numbered_notebooks()
    sets = runner.with_precision(notebooks, {"02_train": {"epochs": 1}}, "float32")
    assert sets["02_train"] == {"epochs": 1, "precision": "float32"}
    assert {stem for stem, v in sets.items() if "precision" in v} == {
        "02_train", "03_dropout_posteriors", "04_active_learning"}  # fmt: skip
    with pytest.raises(ValueError, match="--precision='half'"):
        runner.with_precision(notebooks, {}, "half")
