import numpy as np
import pandas as pd
import pytest
from scipy import stats

from zoolib import synthetic
from zoolib.schema import QUESTIONS


@pytest.fixture(scope="module")
def universe():
    """A large catalogue without images (votes and truth only) for statistical checks."""
    rng = np.random.default_rng(7)
    lat = synthetic.sample_latents(40_000, rng)
    probs = synthetic.true_probabilities(lat)
    votes = synthetic.draw_votes(probs, rng)
    return pd.concat([lat, probs, votes], axis=1)


def test_simulation_is_deterministic_for_a_seed():
    a_img, a_cat = synthetic.simulate(300, size=32, seed=3)
    b_img, b_cat = synthetic.simulate(300, size=32, seed=3, workers=1)
    c_img, c_cat = synthetic.simulate(300, size=32, seed=4)
    np.testing.assert_array_equal(a_img, b_img)
    pd.testing.assert_frame_equal(a_cat, b_cat)
    assert not np.array_equal(a_img, c_img)
    assert not a_cat["smooth-or-featured_smooth"].equals(c_cat["smooth-or-featured_smooth"])


def test_images_and_catalogue_shape():
    images, cat = synthetic.simulate(50, size=48, channels=3, seed=1)
    assert images.shape == (50, 48, 48, 3) and images.dtype == np.uint8
    assert len(cat) == 50 and cat["id_str"].is_unique
    for q in QUESTIONS.values():
        assert set(q.answer_columns + [q.total_column, f"true_p_{q.name}"]) <= set(cat.columns)
    for col in (
        "redshift",
        "morphology",
        "has_bar",
        "bar_strength",
        "n_arms",
        "pitch_deg",
        "axis_ratio",
        "psf_sigma_px",
        "sky_noise",
        "n_stars",
        "edge_on",
    ):
        assert col in cat.columns
    # galaxies sit in the centre: the central pixels are brighter than the border on average
    centre = images[:, 20:28, 20:28].mean()
    border = np.concatenate([images[:, :4].ravel(), images[:, -4:].ravel()]).mean()
    assert centre > border + 20
    with pytest.raises(ValueError, match="channels"):
        synthetic.simulate(5, channels=2)


def test_votes_follow_the_decision_tree(universe):
    for q in QUESTIONS.values():
        total = universe[q.total_column]
        np.testing.assert_array_equal(universe[q.answer_columns].sum(axis=1), total)
    n = universe["smooth-or-featured_total-votes"]
    n_edge = universe["disk-edge-on_total-votes"]
    n_bar = universe["bar_total-votes"]
    assert (n_bar <= n_edge).all() and (n_edge <= n).all()
    np.testing.assert_array_equal(n_edge, universe["smooth-or-featured_featured-or-disk"])
    np.testing.assert_array_equal(n_bar, universe["disk-edge-on_no"])
    assert n_bar.nunique() > 20  # N varies from galaxy to galaxy


def test_totals_come_from_the_real_decals_distribution(universe):
    values, probs = synthetic.vote_totals_distribution()
    n = universe["smooth-or-featured_total-votes"]
    assert set(n.unique()) <= set(values)
    assert n.min() >= 37 and n.median() == pytest.approx(40, abs=2)


@pytest.mark.parametrize("name", list(QUESTIONS))
def test_empirical_vote_fractions_match_true_p(universe, name):
    q = QUESTIONS[name]
    k = universe[q.yes_column].to_numpy(float)
    n = universe[q.total_column].to_numpy(float)
    p = universe[f"true_p_{name}"].to_numpy()
    # overall: sum k ~ sum n p within binomial noise
    z = (k.sum() - (n * p).sum()) / np.sqrt((n * p * (1 - p)).sum())
    assert abs(z) < 4
    # and within bins of true p
    bins = np.digitize(p, [0.1, 0.3, 0.5, 0.7, 0.9])
    for b in np.unique(bins):
        m = (bins == b) & (n > 0)
        if n[m].sum() > 2000:
            assert k[m].sum() / n[m].sum() == pytest.approx(
                (n[m] * p[m]).sum() / n[m].sum(), abs=0.02
            )


def test_smooth_galaxies_rarely_get_bar_votes(universe):
    smooth = universe["morphology"] == "smooth"
    barred = universe["has_bar"]

    def rate(mask):
        n = universe.loc[mask, "smooth-or-featured_total-votes"].sum()
        return universe.loc[mask, "bar_yes"].sum() / n

    assert rate(smooth) < 0.005
    assert rate(barred) > 10 * rate(smooth)


def test_visibility_falls_with_redshift(universe):
    barred = universe[universe["has_bar"] & ~universe["edge_on"]]
    rho, _ = stats.spearmanr(barred["redshift"], barred["true_p_bar"])
    assert rho < -0.2
    near, far = barred["redshift"] < 0.06, barred["redshift"] > 0.1
    assert barred.loc[near, "true_p_bar"].mean() > 1.5 * barred.loc[far, "true_p_bar"].mean()
    disks = universe[universe["morphology"] == "featured"]
    rho, _ = stats.spearmanr(disks["redshift"], disks["p_featured"])
    assert rho < -0.2


def test_inclined_disks_hide_bars(universe):
    barred = universe[universe["has_bar"]]
    face_on = barred["axis_ratio"] > 0.7
    inclined = barred["axis_ratio"] < 0.35
    assert barred.loc[face_on, "true_p_bar"].mean() > 3 * barred.loc[inclined, "true_p_bar"].mean()


def test_truth_does_not_depend_on_image_size():
    """Sizes scale with the image (same field of view), so what volunteers see is the same."""
    _, small = synthetic.simulate(400, size=32, seed=9)
    _, large = synthetic.simulate(400, size=128, seed=9)
    for col in ["p_smooth", "p_artifact", "true_p_disk-edge-on", "true_p_bar"]:
        np.testing.assert_allclose(small[col], large[col], rtol=1e-12)
    np.testing.assert_allclose(4 * small["disk_scale_px"], large["disk_scale_px"], rtol=1e-12)
    np.testing.assert_allclose(4 * small["star1_x_px"], large["star1_x_px"], rtol=1e-12)
