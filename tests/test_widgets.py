import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from zoolib.active import acquisition  # noqa: E402
from zoolib.reports.widgets import SORT_KEYS, GalaxyExplorer  # noqa: E402
from zoolib.universe import synthetic  # noqa: E402


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
    shown = explorer.galaxy
    explorer.n_samples.value = 2  # fewer samples in the figure: the same galaxy stays on show
    assert explorer.galaxy == shown
    explorer.n_samples.value = explorer.n_samples.max
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

    from zoolib.reports import plots

    fig, ax = plt.subplots()
    plots.draw_posterior(ax, np.array([rho]), n, k=5, level=level)
    (span,) = ax.patches
    lo, hi = stats.binom.interval(level, n, rho)
    assert span.get_x() == lo - 0.5
    assert span.get_x() + span.get_width() == hi + 0.5
    plt.close(fig)


@pytest.fixture
def with_single():
    images, cat = synthetic.simulate(12, size=32, seed=3)
    rng = np.random.default_rng(0)
    rho = rng.beta(1, 1, size=(12, 2, 10))
    rho_single = rng.beta(1, 1, size=(12, 2))
    return GalaxyExplorer(images, rho, cat, ["smooth-or-featured", "bar"], rho_single=rho_single)


def _curve(fig, prefix: str) -> np.ndarray:
    """The y data of the posterior panel's line whose legend label starts with ``prefix``."""
    (line,) = [ln for ln in fig.axes[1].lines if ln.get_label().startswith(prefix)]
    return np.asarray(line.get_ydata())


def test_the_posterior_toggle_switches_mixture_and_single_pass(with_single):
    import matplotlib.pyplot as plt
    from scipy import stats

    ex = with_single
    assert ex.posterior.options == ("MC dropout", "single pass") and not ex.posterior.disabled
    ex.n_samples.value = 4
    i, before = ex.galaxy, ex.redraws
    n = int(ex.catalog["smooth-or-featured_total-votes"].iloc[i])
    ks = np.arange(n + 1)
    fig = ex.figure()
    mixture = stats.binom.pmf(ks[None, :], n, ex.rho[i, 0, :4, None]).mean(axis=0)
    np.testing.assert_allclose(_curve(fig, "mixture of T=4"), mixture, rtol=1e-9, atol=1e-12)
    assert "MC dropout" in fig.axes[1].get_title()
    plt.close(fig)

    ex.posterior.value = "single pass"
    assert ex.redraws == before + 1 and ex.galaxy == i  # same galaxy, now without dropout
    assert ex.n_samples.disabled and ex.show_samples.disabled  # T does not apply
    fig = ex.figure()
    single = stats.binom.pmf(ks, n, ex.rho_single[i, 0])
    np.testing.assert_allclose(_curve(fig, "single pass"), single, rtol=1e-9, atol=1e-12)
    assert not any(ln.get_label().startswith("mixture") for ln in fig.axes[1].lines)
    assert len(fig.axes[1].lines) == 2  # the binomial and the observed k, no sample curves
    assert not np.allclose(single, mixture)
    (span,) = fig.axes[1].patches  # the central 95% interval of that binomial
    lo, hi = stats.binom.interval(0.95, n, ex.rho_single[i, 0])
    assert (span.get_x(), span.get_x() + span.get_width()) == (lo - 0.5, hi + 0.5)
    assert "single pass" in fig.axes[1].get_title()
    plt.close(fig)

    ex.posterior.value = "MC dropout"  # back: T applies again, with the value it had
    assert not ex.n_samples.disabled and not ex.show_samples.disabled
    assert ex.n_samples.value == 4 and ex.redraws == before + 2
    np.testing.assert_allclose(_curve(ex.figure(), "mixture of T=4"), mixture, atol=1e-12)


def test_without_rho_single_the_toggle_is_disabled_and_says_why(explorer):
    assert explorer.rho_single is None
    assert explorer.posterior.disabled and explorer.posterior.value == "MC dropout"
    assert "rho_single" in explorer.posterior.tooltip
    assert all("rho_single" in tip for tip in explorer.posterior.tooltips)
    assert "MC dropout" in explorer.figure().axes[1].get_title()
    assert not explorer.n_samples.disabled


def test_rho_single_must_match_the_samples(explorer):
    with pytest.raises(ValueError, match=r"rho_single must have shape \(galaxies, Q\) = \(12, 2\)"):
        GalaxyExplorer(explorer.images, explorer.rho, explorer.catalog, explorer.questions,
                       rho_single=np.zeros((12, 3)))  # fmt: skip


def test_redraw_time_is_recorded_and_shown(with_single):
    ex = with_single
    assert ex.last_redraw_seconds is None and ex.status.value == ""
    ex.rank.value = 3
    first = ex.last_redraw_seconds
    assert isinstance(first, float) and 0 < first < 30
    assert ex.status.value == f"redrawn in {first:.2f} s"
    ex.last_redraw_seconds = -1.0
    ex.posterior.value = "single pass"
    assert ex.last_redraw_seconds > 0  # measured again for the new redraw
    assert ex.status.value == f"redrawn in {ex.last_redraw_seconds:.2f} s"
    widget = ex.widget()
    assert widget.children[1] is ex.output and widget.children[2] is ex.status  # under the figure


def test_every_control_is_labelled_and_laid_out_in_tab_order(with_single):
    ex = with_single
    controls = ex.controls()
    labels = [c.description for c in controls]
    assert labels == ["question", "sort by", "galaxy #", "posterior", "T samples",
                      "per-sample curves"]  # fmt: skip
    assert all(c.tooltip for c in controls) and all(c.tabbable is not False for c in controls)
    (row, _, _) = ex.widget().children
    in_layout = [c for column in row.children for c in column.children]
    assert in_layout == controls  # the page order, which is the Tab order


def test_any_answer_of_a_tree_model_can_be_chosen():
    from zoolib.votes import trees

    images, cat = synthetic.simulate(12, size=32, seed=3)
    tree = trees.THREE
    k, n = tree.answer_counts(cat)
    rho = np.random.default_rng(1).dirichlet([1, 1, 1, 1, 1, 1, 1], (12, 10)).transpose(0, 2, 1)
    names = tree.answer_columns()
    explorer = GalaxyExplorer(images, rho, cat, names, votes=(k, n))
    assert list(explorer.question.options) == names
    explorer.question.value = "smooth-or-featured_artifact"
    mi = acquisition.mutual_information(rho[:, 2], n[:, 2])
    assert explorer.galaxy == int(np.argmax(mi))  # ranked on the artifact answer's own votes
    np.testing.assert_array_equal(explorer._k_n(2)[0], cat["smooth-or-featured_artifact"])
    assert "smooth-or-featured_artifact" in explorer.figure().axes[1].get_title()


def test_a_redraw_sets_the_output_from_the_kernel(explorer):
    """Each redraw replaces the Output widget's outputs with one PNG of the current view, set
    from the kernel (no capture waiting on a front end, as under papermill)."""
    import base64

    explorer.redraw()
    first = explorer.output.outputs
    assert len(first) == 1 and first[0]["output_type"] == "display_data"
    png = base64.b64decode(first[0]["data"]["image/png"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    explorer.sort.value = SORT_KEYS[0]
    explorer.rank.value = 3  # another galaxy: another picture, still one output
    assert len(explorer.output.outputs) == 1
    assert explorer.output.outputs[0]["data"]["image/png"] != first[0]["data"]["image/png"]


def test_the_live_explorer_does_not_block_a_notebook_run_outside_the_runner(tmp_path, monkeypatch):
    """papermill without the runner (no ZOO_HEADLESS): the live widget is shown, its figure
    set from the kernel, and the run ends with the widget's view and no stderr output."""
    import nbformat
    import papermill as pm

    monkeypatch.delenv("ZOO_HEADLESS", raising=False)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import numpy as np\n"
        "from zoolib.reports.widgets import GalaxyExplorer\n"
        "from zoolib.universe import synthetic\n"
        "images, cat = synthetic.simulate(12, size=32, seed=3)\n"
        "rho = np.random.default_rng(0).beta(1, 1, size=(12, 1, 10))\n"
        "explorer = GalaxyExplorer(images, rho, cat, ['smooth-or-featured'])\n"
        "explorer.show();\n"
        "print('shown', len(explorer.output.outputs))"
    )]  # fmt: skip
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}  # fmt: skip
    nbformat.write(nb, tmp_path / "explore.ipynb")
    pm.execute_notebook(str(tmp_path / "explore.ipynb"), str(tmp_path / "out.ipynb"),
                        progress_bar=False, execution_timeout=120, cwd=str(tmp_path))  # fmt: skip
    outputs = nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[0].outputs
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    assert any("shown 1" in o.get("text", "") for o in outputs)
    assert not [o for o in outputs if o.get("name") == "stderr"]
