import math

import numpy as np
import pytest
from scipy import stats

from zoolib.cnn import evaluation
from zoolib.universe import synthetic
from zoolib.votes import metrics


def test_rmse_masks_unasked_questions(rng):
    rho = rng.random((30, 2))
    n = rng.integers(0, 10, (30, 2))
    n[:5, 1] = 0
    k = np.floor(rng.random((30, 2)) * (n + 1))
    got = metrics.rmse(rho, k, n)
    for q in range(2):
        errs = [(rho[i, q] - k[i, q] / n[i, q]) ** 2 for i in range(30) if n[i, q] > 0]
        assert got[q] == pytest.approx(np.sqrt(np.mean(errs)))


def test_mean_nll_against_brute_force_formula(rng):
    rho = rng.random(50)
    n = rng.integers(0, 20, 50)
    k = np.floor(rng.random(50) * (n + 1)).astype(int)
    want = np.mean(
        [
            -(math.log(math.comb(n[i], k[i])) + k[i] * math.log(rho[i]))
            - (n[i] - k[i]) * math.log(1 - rho[i])
            for i in range(50)
            if n[i] > 0
        ]
    )
    assert metrics.mean_nll(rho, k, n) == pytest.approx(want, rel=1e-12)


def test_posterior_nll_is_log_of_mean_likelihood(rng):
    rho = rng.random((40, 3, 6))
    n = rng.integers(1, 30, (40, 3))
    k = np.floor(rng.random((40, 3)) * (n + 1))
    got = metrics.mean_posterior_nll(rho, k, n)
    want = [
        np.mean([-np.log(np.mean(stats.binom.pmf(k[i, q], n[i, q], rho[i, q]))) for i in range(40)])
        for q in range(3)
    ]
    np.testing.assert_allclose(got, want, rtol=1e-10)
    # with a single sample it reduces to the point NLL
    np.testing.assert_allclose(
        metrics.mean_posterior_nll(rho[..., :1], k, n), metrics.mean_nll(rho[..., 0], k, n)
    )


def test_metrics_reject_k_above_n():
    with pytest.raises(ValueError, match=r"index \(1,\)"):
        metrics.rmse([0.5, 0.5], [1, 4], [2, 3])


def test_headroom_scores_baseline_and_oracles_against_scipy():
    cat = synthetic.simulate_catalog(600, size=32, seed=4)
    train, test = cat.iloc[:400], cat.iloc[400:]
    room = evaluation.headroom(train, test, ["smooth-or-featured", "bar"])
    assert set(room.index.get_level_values("model")) == {"baseline", "oracle", "recoverable"}
    for name, yes in (("smooth-or-featured", "smooth"), ("bar", "yes")):
        k, n = test[f"{name}_{yes}"].to_numpy(), test[f"{name}_total-votes"].to_numpy()
        asked = n > 0
        pooled = train[f"{name}_{yes}"].sum() / train[f"{name}_total-votes"].sum()
        for model, rho in (
            ("baseline", np.full(len(test), pooled)),
            ("oracle", test[f"true_p_{name}"].to_numpy()),
            ("recoverable", test[f"recoverable_p_{name}"].to_numpy()),
        ):
            row = room.loc[(model, name)]
            expected = -stats.binom.logpmf(k[asked], n[asked], rho[asked]).mean()
            assert row["nll"] == pytest.approx(expected, rel=1e-12)
            truth = test[f"true_p_{name}"].to_numpy()
            assert row["rmse_true"] == pytest.approx(np.sqrt(np.mean((rho - truth) ** 2)))
        assert room.loc[("oracle", name), "rmse_true"] == 0.0
        # knowing the truth beats the constant guess on the votes themselves
        assert room.loc[("oracle", name), "nll"] < room.loc[("baseline", name), "nll"]
