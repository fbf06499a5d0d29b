import numpy as np
import pandas as pd
import pytest
from scipy import stats

from zoolib.universe import calibration, synthetic, volunteers
from zoolib.votes.schema import QUESTIONS


@pytest.fixture(scope="module")
def universe():
    """A large catalogue without images (votes and truth only) for statistical checks."""
    return synthetic.simulate_catalog(40_000, seed=7)


def test_catalogue_without_images_is_the_simulated_catalogue():
    _, with_images = synthetic.simulate(200, size=32, seed=5, preset="decals")
    pd.testing.assert_frame_equal(
        synthetic.simulate_catalog(200, size=32, seed=5, preset="decals"), with_images
    )


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


def test_totals_come_from_the_presets_survey(universe):
    n = universe["smooth-or-featured_total-votes"]
    assert set(n.unique()) <= set(volunteers.preset("gz2").n_values)
    assert n.min() >= 7 and n.median() == pytest.approx(20, abs=1)  # GZ2 Stripe 82: 7-39, 20
    decals = synthetic.simulate_catalog(5000, seed=1, preset="decals")
    n = decals["smooth-or-featured_total-votes"]
    assert n.min() >= 37 and n.median() == pytest.approx(40, abs=2)  # GZ DECaLS: 37-215, 40


@pytest.mark.parametrize("name", list(QUESTIONS))
def test_empirical_vote_fractions_match_true_p(universe, name):
    q = QUESTIONS[name]
    k = universe[q.yes_column].to_numpy(float)
    n = universe[q.total_column].to_numpy(float)
    p = universe[f"true_p_{name}"].to_numpy()
    # overall: sum k ~ sum n p within binomial noise
    z = (k.sum() - (n * p).sum()) / np.sqrt((n * p * (1 - p)).sum())
    assert abs(z) < 4
    # residuals have the binomial variance: z_i = (k_i - n_i p_i) / sqrt(n_i p_i (1 - p_i))
    asked = n > 0
    z2 = (k[asked] - n[asked] * p[asked]) ** 2 / (n[asked] * p[asked] * (1 - p[asked]))
    assert abs(z2.mean() - 1) < 4 * z2.std() / np.sqrt(len(z2))
    # and within bins of true p
    bins = np.digitize(p, [0.1, 0.3, 0.5, 0.7, 0.9])
    for b in np.unique(bins):
        m = (bins == b) & (n > 0)
        if n[m].sum() > 2000:
            assert k[m].sum() / n[m].sum() == pytest.approx(
                (n[m] * p[m]).sum() / n[m].sum(), abs=0.02
            )


def test_galaxies_voted_smooth_get_few_bar_votes_as_in_gz2(universe):
    """Bar votes per volunteer among galaxies most volunteers call smooth: real GZ2 vs simulated."""
    real = calibration.reference_catalog("gz2")

    def rate(cat):
        n = cat["smooth-or-featured_total-votes"]
        smooth = cat["smooth-or-featured_smooth"] > 0.8 * n
        return cat.loc[smooth, "bar_yes"].sum() / n[smooth].sum()

    assert rate(universe) < 0.02 and rate(real) < 0.02
    assert rate(real) / 2 < rate(universe) < 2 * rate(real)
    barred = universe["has_bar"] & ~universe["edge_on"]
    ellipticals = universe["morphology"] == "smooth"
    p_bar = universe["true_p_bar"]
    assert p_bar[barred].mean() > 2 * p_bar[ellipticals].mean()


def test_edge_on_disks_are_featured_but_rarely_barred(universe):
    disk, q = universe["morphology"] == "featured", universe["axis_ratio"]
    edge_on = disk & (q < 0.2)  # within ~10 degrees of edge-on (intrinsic thickness 0.15)
    face_on_barred = universe["has_bar"] & (q > 0.7)
    ellipticals = universe["morphology"] == "smooth"
    p_featured, p_edge = universe["p_featured"], universe["true_p_disk-edge-on"]
    assert p_featured[edge_on].mean() > 2 * p_featured[ellipticals].mean()
    assert p_edge[edge_on].mean() > 0.6
    assert p_edge[disk & (q > 0.5)].mean() < 0.1
    barred_edge_on = edge_on & universe["has_bar"]
    assert (
        universe.loc[barred_edge_on, "true_p_bar"].mean()
        < 0.5 * universe.loc[face_on_barred, "true_p_bar"].mean()
    )


def test_intermediate_votes_are_commonest_for_small_faint_galaxies(universe):
    clarity = volunteers.visibility(universe)["clarity"]
    p = universe["true_p_smooth-or-featured"]
    intermediate = (p > 0.2) & (p < 0.8)
    unclear, clear = clarity < 0.5, clarity > 0.9
    assert unclear.sum() > 1000 and clear.sum() > 1000
    assert intermediate[unclear].mean() > intermediate[clear].mean() + 0.05
    entropy = -(p * np.log(p) + (1 - p) * np.log(1 - p))  # volunteers' disagreement
    assert entropy[unclear].mean() > entropy[clear].mean()
    # and the fraction of real-like intermediate observed votes is substantial overall
    frac = universe["smooth-or-featured_smooth"] / universe["smooth-or-featured_total-votes"]
    assert ((frac >= 0.2) & (frac <= 0.8)).mean() > 0.4


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
    """A bar adds bar votes in a face-on disk, hardly any in an inclined one."""
    disk, bar, q = universe["morphology"] == "featured", universe["has_bar"], universe["axis_ratio"]
    p_bar = universe["true_p_bar"]

    def lift(mask):
        return p_bar[disk & bar & mask].mean() - p_bar[disk & ~bar & mask].mean()

    assert lift(q > 0.7) > 0.2
    assert lift(q < 0.35) < 0.05


def test_truth_does_not_depend_on_image_size():
    """Sizes scale with the image (same field of view), so what volunteers see is the same."""
    _, small = synthetic.simulate(400, size=32, seed=9)
    _, large = synthetic.simulate(400, size=128, seed=9)
    for col in ["p_smooth", "p_artifact", "true_p_disk-edge-on", "true_p_bar"]:
        np.testing.assert_allclose(small[col], large[col], rtol=1e-12)
    np.testing.assert_allclose(4 * small["disk_scale_px"], large["disk_scale_px"], rtol=1e-12)
    np.testing.assert_allclose(4 * small["star1_x_px"], large["star1_x_px"], rtol=1e-12)


def test_every_answer_has_its_true_probability_summing_to_one_per_question():
    from zoolib.votes import trees

    cat = synthetic.simulate_catalog(300, seed=4)
    for node in trees.THREE.nodes:
        truth = cat[[f"true_p_{c}" for c in node.answer_columns]].to_numpy()
        np.testing.assert_allclose(truth.sum(1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(cat["true_p_smooth-or-featured_smooth"],
                                  cat["true_p_smooth-or-featured"])  # fmt: skip
    np.testing.assert_array_equal(cat["true_p_bar_yes"], cat["true_p_bar"])
