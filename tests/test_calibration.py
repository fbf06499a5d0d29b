"""Simulated volunteers against the real catalogues: distances stay where they were fitted."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from zoolib.universe import calibration, synthetic, volunteers
from zoolib.votes.schema import question

TEST_GALAXIES = 20_000
ALPHA = 1e-3  # chance that sampling alone fails a regression check


def dkw(m: int, alpha: float = ALPHA) -> float:
    """Dvoretzky-Kiefer-Wolfowitz: P(sup |F_m - F| > eps) <= 2 exp(-2 m eps^2) = alpha."""
    return math.sqrt(math.log(2 / alpha) / (2 * m))


@pytest.fixture(scope="module")
def references():
    return {name: calibration.reference_catalog(name) for name in calibration.SURVEYS}


@pytest.mark.parametrize("name", sorted(calibration.SURVEYS))
def test_ks_distances_stay_under_their_recorded_values(name, references):
    """A fresh modest universe is as close to the survey as the recorded calibration.

    The KS of the simulated distribution against the real one moves with the simulated sample
    by at most the DKW deviation of each simulated sample (triangle inequality), so the bound
    is the recorded KS plus those deviations (loose: 0.03-0.04 for the later questions; the
    exact check is the next test); and the issue's goal (0.05) holds for the record.
    """
    preset = volunteers.preset(name)
    recorded = preset.calibration["measured"]
    catalog = synthetic.simulate_catalog(TEST_GALAXIES, seed=2024, preset=name)
    table = calibration.distances(catalog, references[name], calibration.survey(name).questions)
    for q, row in table.iterrows():
        rec = recorded["questions"][q]
        bound = rec["ks"] + dkw(int(row["n_simulated"])) + dkw(rec["n_simulated"])
        assert row["ks"] <= bound, (name, q, row["ks"], bound)
        assert rec["ks"] <= 0.05
        assert row["n_reference"] == rec["n_reference"]


@pytest.mark.parametrize("name", sorted(calibration.SURVEYS))
def test_the_fit_objective_is_where_it_was_recorded(name):
    """Exact regression: the fit's own distances (fixed latents and N) for the recorded constants.

    Anything that changes the universe (latents, visibility, the volunteer model, the reference)
    moves them; rerun ``python -m zoolib calibrate`` after such a change.
    """
    recorded = volunteers.preset(name).calibration["fit"]
    now = calibration.expected_distances(name)
    for q, targets in now.items():
        for label, values in targets.items():
            assert values["expected_ks"] == pytest.approx(
                recorded[q][label]["expected_ks"], abs=1e-9
            )
            assert values["expected_ks"] <= 0.05, (name, q, label)


def test_the_regression_check_can_fail(references):
    """The same check rejects volunteers without ambiguity (the old, too decisive universe)."""
    name = "gz2"
    preset = volunteers.preset(name)
    decisive = preset.volunteers.replace(
        amb_smooth=0.0, feat_slope=4 * preset.volunteers.feat_slope
    )
    broken = volunteers.Preset(**{**preset.__dict__, "volunteers": decisive})
    catalog = synthetic.simulate_catalog(TEST_GALAXIES, seed=2024, preset=broken)
    table = calibration.distances(catalog, references[name], ["smooth-or-featured"])
    rec = preset.calibration["measured"]["questions"]["smooth-or-featured"]
    bound = rec["ks"] + dkw(int(table["n_simulated"].iloc[0])) + dkw(rec["n_simulated"])
    assert table["ks"].iloc[0] > bound


def test_expected_cdf_matches_a_brute_force_mixture(rng):
    n = rng.integers(0, 12, 40)
    p = rng.random(40)
    reference = rng.integers(0, 6, 30) / 5
    cdf = calibration.FractionCDF(n, reference, min_votes=3)
    got = cdf.cdf(p)
    # brute force: enumerate every (galaxy, k) with its probability
    keep = n >= 3
    values, weights = [], []
    for ng, pg in zip(n[keep], p[keep], strict=True):
        for k in range(ng + 1):
            values.append(k / ng)
            weights.append(stats.binom.pmf(k, ng, pg))
    values, weights = np.array(values), np.array(weights)
    grid = np.unique(np.round(np.concatenate([values, reference]), 12))
    expected = [weights[values <= x + 1e-12].sum() / keep.sum() for x in grid]
    np.testing.assert_allclose(got, expected, atol=1e-12)
    ref_cdf = [np.mean(reference <= x + 1e-12) for x in grid]
    cvm, ks = cdf.loss(p)
    assert ks == pytest.approx(np.abs(np.array(expected) - ref_cdf).max(), abs=1e-12)
    ref_mass = np.diff(ref_cdf, prepend=0.0)
    assert cvm == pytest.approx(np.sum((np.array(expected) - ref_cdf) ** 2 * ref_mass), abs=1e-12)


def test_distances_use_only_galaxies_asked_often_enough():
    q, first = question("bar"), question("smooth-or-featured").total_column
    sim = pd.DataFrame({q.yes_column: [0, 3, 5, 1], q.total_column: [2, 6, 5, 10], first: 20})
    ref = pd.DataFrame({q.yes_column: [1, 0, 6], q.total_column: [1, 8, 12], first: [4, 10, 20]})
    table = calibration.distances(sim, ref, ["bar"], min_votes=5)
    row = table.loc["bar"]
    assert (row["n_simulated"], row["n_reference"]) == (3, 2)
    sim_f, ref_f = np.array([0.5, 1.0, 0.1]), np.array([0.0, 0.5])
    assert row["ks"] == pytest.approx(stats.ks_2samp(sim_f, ref_f).statistic)
    assert row["wasserstein"] == pytest.approx(stats.wasserstein_distance(sim_f, ref_f))
    # per volunteer: k_bar / N_first over galaxies with N_first >= 5
    per_sim, per_ref = np.array([0, 3, 5, 1]) / 20, np.array([0 / 10, 6 / 20])
    assert row["ks_per_volunteer"] == pytest.approx(stats.ks_2samp(per_sim, per_ref).statistic)
    with pytest.raises(ValueError, match="bar: no galaxy of the first catalogue .* 11 or more"):
        calibration.distances(sim, ref, ["bar"], min_votes=11)


def test_noise_floor_is_what_sampling_gives():
    catalog = synthetic.simulate_catalog(40_000, seed=11)
    floor = calibration.noise_floor(catalog, {"smooth-or-featured": 2000}, 10_000, repeats=30)
    # two independent samples of 2,000 and 10,000 from one distribution: KS ~ 0.87 sqrt(1/n + 1/m)
    scale = math.sqrt(1 / 2000 + 1 / 10_000)
    assert 0.5 * scale < floor.loc["smooth-or-featured", "ks_floor_mean"] < 1.2 * scale
    with pytest.raises(ValueError, match=r"smooth-or-featured: .*sizes\['smooth-or-featured'\]"):
        calibration.noise_floor(catalog, {"smooth-or-featured": 39_000}, 10_000)
