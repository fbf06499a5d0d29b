import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from zoolib import acquisition, synthetic  # noqa: E402
from zoolib.widgets import SORT_KEYS, GalaxyExplorer  # noqa: E402


@pytest.fixture
def explorer():
    images, cat = synthetic.simulate(12, size=32, seed=3)
    rng = np.random.default_rng(0)
    rho = rng.beta(1, 1, size=(12, 2, 10))
    return GalaxyExplorer(images, rho, cat, ["smooth-or-featured", "bar"])


def test_sorted_by_mutual_information_first(explorer):
    n = explorer.catalog["smooth-or-featured_total-votes"].to_numpy()
    mi = acquisition.mutual_information(explorer.rho[:, 0], n)
    assert explorer.sort.value == SORT_KEYS[2]
    assert explorer.galaxy == int(np.argmax(mi))
    explorer.sort.value = SORT_KEYS[0]
    assert explorer.galaxy == 0


def test_controls_redraw_and_change_the_view(explorer):
    before = explorer.redraws
    explorer.sort.value = SORT_KEYS[0]
    explorer.rank.value = 5  # another galaxy
    assert explorer.galaxy == 5 and explorer.redraws == before + 2
    fig = explorer.figure()
    assert "synth-3-0000005" in fig.axes[0].get_title()
    explorer.n_samples.value = 3  # fewer samples: the mixture uses only the first 3
    fig = explorer.figure()
    assert explorer.redraws == before + 3
    assert "T=3" in " ".join(t.get_text() for t in fig.axes[1].get_legend().get_texts())
    explorer.show_samples.value = False
    fig = explorer.figure()
    assert len(fig.axes[1].lines) == 3  # no grey per-sample curves: pass, mixture, observed k
    explorer.show_samples.value = True
    assert len(explorer.figure().axes[1].lines) == 3 + 3  # plus the T = 3 sample curves


def test_headless_shows_a_static_figure(explorer, monkeypatch):
    monkeypatch.setenv("ZOO_HEADLESS", "1")
    fig = explorer.show()
    assert fig is not None and len(fig.axes) == 2
    assert explorer.show(headless=False) is None  # interactive: widgets are displayed instead


@pytest.mark.parametrize("rho, n, level", [(0.3, 40, 0.95), (0.8, 12, 0.8)])
def test_posterior_panel_shades_the_credible_interval(rho, n, level):
    """With T = 1 the mixture is one binomial: the shaded span is scipy's central interval."""
    import matplotlib.pyplot as plt
    from scipy import stats

    from zoolib import plots

    fig, ax = plt.subplots()
    plots.draw_posterior(ax, np.array([rho]), n, k=5, level=level)
    (span,) = ax.patches
    lo, hi = stats.binom.interval(level, n, rho)
    assert span.get_x() == lo - 0.5
    assert span.get_x() + span.get_width() == hi + 0.5
    plt.close(fig)
