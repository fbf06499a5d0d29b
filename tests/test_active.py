"""The paper's regime (CNNs trained on images): book-keeping, resume after a kill, the gate."""

import pandas as pd
import pytest

from zoolib.active import cnn_regime, runs
from zoolib.data import processed
from zoolib.universe import synthetic


@pytest.fixture(scope="module")
def universe():
    images, cat = synthetic.simulate(200, size=16, seed=4)  # 16 px: the bookkeeping, fast
    cat["split"] = processed.assign_splits(len(cat), (0.6, 0.15, 0.25), seed=0)
    return images, cat


SMALL = dict(
    regime="scratch",
    question="smooth-or-featured",
    metric="rmse",
    n_initial=16,
    acquire_per_round=8,
    n_rounds=2,
    n_seeds=1,
    n_samples=4,
    initial_steps=20,
    steps_per_round=4,
    batch_size=8,  # 2 steps an epoch: the same 20 initial steps in half the epochs
    gate_margin=0.0,
    strategies=("random", "bald"),
    random_streams=1,  # the extra reference streams are tested in the fine-tuning regime
)
Q = ["smooth-or-featured"]


def test_steps_become_epochs():
    assert cnn_regime.epochs_for(1875, 256, 256) == 1875  # the paper: one step per epoch at first
    assert cnn_regime.epochs_for(750, 256, 3456) == 54  # 14 steps per epoch -> 756 steps
    assert cnn_regime.epochs_for(1, 256, 4000) == 1


@pytest.mark.slow
def test_resume_after_a_kill_is_identical(tmp_path, universe):
    images, cat = universe
    settings = runs.Settings(**SMALL)
    full, picks = cnn_regime.run(settings, images, cat, Q, tmp_path / "full", progress=False)
    cnn_regime.run(settings, images, cat, Q, tmp_path / "killed", progress=False, stop_after=4)
    resumed, picks2 = cnn_regime.run(settings, images, cat, Q, tmp_path / "killed", progress=False)
    pd.testing.assert_frame_equal(full, resumed)
    pd.testing.assert_frame_equal(picks, picks2)
    assert sorted(full.n_labelled.unique()) == [16, 24, 32]
    assert not set(picks.id_str) & set(cat.id_str[cat.split != "train"])
    assert picks.groupby("strategy").id_str.nunique().tolist() == [16, 16]


def test_the_gate_and_the_oracle_are_checked(tmp_path, universe):
    images, cat = universe
    with pytest.raises(ValueError, match=r"cannot run strategies \['oracle'\]"):
        cnn_regime.run(
            runs.Settings(**{**SMALL, "strategies": ("random", "oracle")}), images, cat, Q, tmp_path
        )
    # the one loop checks the question for both regimes (a bare "not in list" before)
    with pytest.raises(ValueError, match="question='bar' is not learned"):
        cnn_regime.run(runs.Settings(**{**SMALL, "question": "bar"}), images, cat, Q, tmp_path)
    with pytest.raises(ValueError, match="learning gate: round 0 of seed 0"):
        cnn_regime.run(
            runs.Settings(**{**SMALL, "gate_margin": 0.99, "n_rounds": 1}),
            images,
            cat,
            Q,
            tmp_path / "gate",
            progress=False,
        )
