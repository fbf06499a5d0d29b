import numpy as np
import pytest
from scipy import integrate, special

from zoolib.universe import calibration, synthetic, volunteers


@pytest.fixture(scope="module")
def latents():
    return synthetic.sample_latents(3000, np.random.default_rng(5))


@pytest.mark.parametrize("mu,scale", [(-3.0, 0.4), (0.0, 1.1), (2.5, 2.0), (-8.0, 1.0), (1.0, 3.0)])
def test_expected_expit_matches_numerical_integration(mu, scale):
    exact, _ = integrate.quad(
        lambda e: special.expit(mu + scale * e) * np.exp(-0.5 * e * e) / np.sqrt(2 * np.pi),
        -np.inf, np.inf, epsabs=1e-14,
    )  # fmt: skip
    assert volunteers.expected_expit(np.array([mu]), scale)[0] == pytest.approx(exact, abs=1e-11)


def test_recoverable_is_the_truth_averaged_over_the_ambiguity(latents):
    """Brute force: redraw the ambiguity many times and average the true probabilities."""
    model = volunteers.preset("gz2").volunteers
    sub = latents.iloc[:300].copy()
    rng = np.random.default_rng(0)
    draws = []
    for _ in range(2000):
        for column in volunteers.AMBIGUITY_COLUMNS.values():
            sub[column] = rng.standard_normal(len(sub))
        draws.append(volunteers.true_probabilities(sub, model).filter(like="true_p_").to_numpy())
    draws = np.stack(draws)
    mean, se = draws.mean(axis=0), draws.std(axis=0) / np.sqrt(len(draws))
    exact = volunteers.recoverable_probabilities(sub, model, pixel_px=0.0).to_numpy()
    z = (mean - exact) / np.maximum(se, 1e-12)
    assert np.abs(z).max() < 5


def test_ambiguity_spreads_galaxies_of_the_same_look(latents):
    model = volunteers.preset("gz2").volunteers
    truth = volunteers.true_probabilities(latents, model)
    flat = volunteers.true_probabilities(
        latents, model.replace(amb_smooth=0.0, amb_edge=0.0, amb_bar=0.0)
    )
    for q in ("smooth-or-featured", "disk-edge-on", "bar"):
        # same visible latents, different probabilities: the ambiguity moves them
        assert np.abs(truth[f"true_p_{q}"] - flat[f"true_p_{q}"]).mean() > 0.01


def test_coarse_pixels_hide_structure(latents):
    model = volunteers.preset("gz2").volunteers
    fine = volunteers.recoverable_probabilities(latents, model, pixel_px=0.0)
    coarse = volunteers.recoverable_probabilities(latents, model, pixel_px=4.0)
    barred = (latents["has_bar"] & ~latents["edge_on"]).to_numpy()
    assert (
        coarse["recoverable_p_bar"][barred].mean() < fine["recoverable_p_bar"][barred].mean() - 0.02
    )
    assert (coarse["recoverable_p_bar"][barred] <= fine["recoverable_p_bar"][barred] + 1e-12).all()
    np.testing.assert_allclose(
        volunteers.effective_psf(np.array([0.3, 0.8]), 2.0), [1.044031, 1.280625], rtol=1e-6
    )


def test_probabilities_are_valid(latents):
    probs = volunteers.true_probabilities(latents, volunteers.preset("decals").volunteers)
    np.testing.assert_allclose(probs[["p_smooth", "p_featured", "p_artifact"]].sum(axis=1), 1.0)
    assert ((probs > 0) & (probs < 1)).all().all()


def test_presets_record_the_shipped_vote_totals():
    for name, preset in volunteers.load_presets().items():
        values, counts = calibration.n_totals(calibration.reference_catalog(name))
        np.testing.assert_array_equal(preset.n_values, values)
        np.testing.assert_allclose(preset.n_probs, counts / counts.sum())


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown universe preset 'sdss'.*decals.*gz2"):
        volunteers.preset("sdss")
    with pytest.raises(ValueError, match="unknown volunteer-model constants"):
        volunteers.VolunteerModel().replace(bar_slop=1.0)
    assert isinstance(volunteers.preset("gz2").volunteers, volunteers.VolunteerModel)
