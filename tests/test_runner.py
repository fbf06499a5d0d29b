import json
import os
import re
import struct
import zlib
from html.parser import HTMLParser
from urllib.parse import unquote

import nbformat
import pytest
import yaml

from zoolib import paths, quiet
from zoolib.reports import index_page, runner


def make_notebook(path, params_source, *body_sources):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(params_source)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# demo"),
        params,
        *[nbformat.v4.new_code_cell(source) for source in body_sources],
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)


@pytest.fixture
def project(tmp_path):
    nbs = tmp_path / "notebooks"
    (nbs / "params").mkdir(parents=True)
    make_notebook(nbs / "01_first.ipynb", "x = 1  # a number", "print('x is', x)")
    make_notebook(nbs / "02_second.ipynb", "y = 2  # another", "assert y == 2, 'y must be 2'")
    make_notebook(nbs / "scratch.ipynb", "z = 0  # not numbered", "raise SystemExit")
    (nbs / "params" / "ci.yaml").write_text(yaml.safe_dump({"01_first": {"x": 41}}))
    return tmp_path


def test_runs_numbered_notebooks_with_parameters(project):
    done = runner.run("ci", notebooks_dir=project / "notebooks", reports_dir=project / "reports")
    assert [p.name for p in done] == ["01_first.html", "02_second.html"]
    executed = nbformat.read(project / "reports" / "executed" / "01_first.ipynb", as_version=4)
    outputs = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert "x is 41" in outputs
    index = (project / "reports" / "index.html").read_text()
    assert "html/01_first.html" in index and "scratch" not in index


def test_unknown_parameter_is_an_error(project):
    (project / "notebooks" / "params" / "ci.yaml").write_text(
        yaml.safe_dump({"01_first": {"x": 1, "typo": 3}})
    )
    with pytest.raises(runner.RunError, match=r"01_first.ipynb: unknown parameter\(s\) \['typo'\]"):
        runner.run("ci", notebooks_dir=project / "notebooks", reports_dir=project / "reports")


def test_failing_notebook_stops_the_run_and_is_kept(project):
    (project / "notebooks" / "params" / "ci.yaml").write_text(
        yaml.safe_dump({"02_second": {"y": 3}})
    )
    with pytest.raises(runner.RunError, match="02_second.ipynb failed in cell .*y must be 2"):
        runner.run("ci", notebooks_dir=project / "notebooks", reports_dir=project / "reports")
    assert (project / "reports" / "executed" / "02_second.ipynb").exists()


def test_missing_parameter_set(project):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        runner.run("nope", notebooks_dir=project / "notebooks", reports_dir=project / "reports")


def test_only_that_matches_nothing_is_an_error(project):
    with pytest.raises(runner.RunError, match="--only 5 matches no notebook"):
        runner.run("ci", only=["5"], notebooks_dir=project / "notebooks", reports_dir=project / "r")
    assert not (project / "r" / "index.html").exists()


def test_default_runs_the_notebooks_own_parameter_cells(project):
    runner.run("default", only=["01"], notebooks_dir=project / "notebooks",
               reports_dir=project / "reports")  # fmt: skip
    executed = nbformat.read(project / "reports" / "executed" / "01_first.ipynb", as_version=4)
    outputs = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert "x is 1" in outputs  # the cell's own value, nothing injected


def test_a_second_copy_of_the_defaults_is_refused(project):
    (project / "notebooks" / "params" / "default.yaml").write_text(
        yaml.safe_dump({"01_first": {"x": 5}})
    )
    with pytest.raises(ValueError, match="default.yaml: the defaults are the notebooks' parameter"):
        runner.run("ci", notebooks_dir=project / "notebooks", reports_dir=project / "reports")


def outputs_of(executed):
    nb = nbformat.read(executed, as_version=4)
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))


@pytest.fixture
def typed(tmp_path):
    """Notebooks whose parameter cells are annotated, as the project's are."""
    nbs = tmp_path / "notebooks"
    (nbs / "params").mkdir(parents=True)
    make_notebook(
        nbs / "01_prep.ipynb",
        'image_size: int = 64  # px\nname: str = "synthetic"  # dataset',
        "print('prepared', image_size)",
    )
    make_notebook(
        nbs / "02_train.ipynb",
        "epochs: int = 3  # at most\nlearning_rate: float = 0.001  # Adam",
        "print('trained', epochs)",
        "assert epochs < 10, 'epochs must be below 10'",
        "print('evaluation', 'done')",
    )
    make_notebook(nbs / "03_posteriors.ipynb", "n_samples: int = 30  # T", "print(n_samples)")
    return tmp_path


def run_typed(typed, params):
    """Run the typed project with ``params`` written to a YAML file."""
    (typed / "set.yaml").write_text(yaml.safe_dump(params))
    return runner.run(str(typed / "set.yaml"), notebooks_dir=typed / "notebooks",
                      reports_dir=typed / "reports")  # fmt: skip


def test_parameters_of_every_notebook_are_checked_before_any_runs(typed):
    params = {"01_prep": {"image_size": "32"}, "03_posteriors": {"n_sample": 5}}
    with pytest.raises(runner.RunError) as err:
        run_typed(typed, params)
    message = str(err.value)
    assert "(nothing was run)" in message
    assert (
        "01_prep.ipynb: image_size is declared int (default 64), given '32' (str): write the"
        " number without quotes" in message
    )
    assert (
        "03_posteriors.ipynb: unknown parameter(s) ['n_sample'] (n_sample: did you mean"
        " n_samples?); it declares ['n_samples']" in message
    )
    assert not (typed / "reports").exists()  # not even 01 ran


def test_a_number_yaml_reads_as_text_gets_a_hint(typed):
    with pytest.raises(runner.RunError, match=re.escape(
        "02_train.ipynb: learning_rate is declared float (default 0.001), given '1e-3' (str):"
        " YAML reads 1e-3 as text, write 0.001"
    )):  # fmt: skip
        run_typed(typed, {"02_train": yaml.safe_load("learning_rate: 1e-3")})


@pytest.mark.parametrize(
    "type_name, default, value, fits",
    [
        ("int", "64", 32, True),
        ("int", "64", "32", False),
        ("int", "64", 32.0, False),
        ("int", "64", True, False),  # a bool is not a number
        ("float", "0.001", 1, True),  # an int is a fine float
        ("float", "0.001", False, False),
        ("bool", "True", 1, False),
        ("bool", "True", False, True),
        ("str", '"gz2"', 3, False),
        ("list", "[]", ["a"], True),
        ("list", "[]", "a", False),
        ("dict", "{}", {"bar": 10}, True),
        ("dict", "{}", [], False),
        ("int", "64", None, False),
        ("int", "None", None, True),  # None where the default is None
        ("int | None", "0", None, True),
        ("int | None", "0", "x", False),
        ("None", "1", "anything", True),  # unannotated: papermill says "None"; not checked
        ("Path", '"x"', 3, True),  # an annotation the check does not know
    ],
)
def test_type_rules(type_name, default, value, fits):
    declared = {"inferred_type_name": type_name, "default": default}
    problem = runner.type_problem("p", value, declared)
    assert (problem is None) == fits, problem
    if not fits:
        assert f"p is declared {type_name} (default {default}), given {value!r}" in problem


@pytest.mark.parametrize("params", runner.named_sets())
def test_shipped_parameter_sets_fit_the_notebooks(params, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_OUTPUT_ROOT", str(tmp_path))  # no dataset or model on disk
    notebooks = runner.numbered_notebooks(paths.NOTEBOOKS_DIR)
    runner.check_parameters(notebooks, runner.load_params(params), params)  # raises if not
    # with the notebooks each set is run with (protocol: --only 01 04, as its file says)
    notebooks = runner.select(notebooks, ["01", "04"] if params == "protocol" else None)
    if not (paths.PROJECT_ROOT.parent / "shared" / "data").is_dir():  # a machine without them
        notebooks = [nb for nb in notebooks if nb.stem != "05_campaign" or params == "ci"]
    runner.check_values(notebooks, runner.load_params(params), params)


BAD_VALUES = [
    ({"01_data_prep": {"image_size": -3}}, None,
     "01_data_prep.ipynb: image_size is -3: must be at least 16 pixels"),
    ({"01_data_prep": {"image_size": 0}}, None,
     "01_data_prep.ipynb: image_size is 0: must be at least 16 pixels"),
    ({"02_train": {"image_size": 12}}, None,
     "02_train.ipynb: image_size is 12: must be 0 (keep the dataset's) or >= 16"),
    ({"01_data_prep": {"tree": "thre"}}, None,
     "01_data_prep.ipynb: tree is 'thre': unknown tree 'thre'; did you mean 'three'?"),
    ({"01_data_prep": {"tree": "gz2"}}, None,
     "tree is 'gz2': a simulation has zoo's three questions"),
    ({"01_data_prep": {"source": "data/raw/sdss_gz1_sample/catalog.csv", "tree": "label:ring"}},
     None, "tree is 'label:ring': " + str(paths.RAW_DIR / "sdss_gz1_sample" / "catalog.csv")
     + " has no column 'ring'"),
    ({"01_data_prep": {"source": "mine.csv"}}, None,
     f"01_data_prep.ipynb: source: no file {paths.PROJECT_ROOT / 'mine.csv'}"),
    ({"02_train": {"dataset": "mine"}}, None,
     "02_train.ipynb: dataset is 'mine', which notebook 01 of this run does not write (it "
     "writes ['synthetic'])"),
    ({}, ["02", "03"], "02_train.ipynb: dataset is 'synthetic', which notebook 01 of this run "
     "does not write (it writes none: it is not in this run)"),
    ({"02_train": {"model_name": "a"}, "03_dropout_posteriors": {"model_name": "b"}}, None,
     "03_dropout_posteriors.ipynb: model_name is 'b', which notebook 02 of this run does not "
     "write (it writes ['a'])"),
    ({"04_active_learning": {"gate_margin": 1.5, "precision": "fp16"}}, None,
     "04_active_learning.ipynb: gate_margin is 1.5: must be in [0, 1)"),
    ({"04_active_learning": {"strategies": ["bald", "badl"]}}, None,
     "04_active_learning.ipynb: strategies is ['bald', 'badl']: must include 'random'"),
    ({"05_campaign": {"sources": [["nowhere.csv", 0.4]]}}, None,
     f"05_campaign.ipynb: sources: no file {paths.PROJECT_ROOT / 'nowhere.csv'}"),
    ({"05_campaign": {"sources": [["nowhere.csv", 0.4]]}}, None,
     "without the shared images, run the other notebooks: --only 01 02 03 04"),
]  # fmt: skip


def test_values_that_can_work_pass(tmp_path, monkeypatch):
    """The checks refuse nothing that works: the smallest image the CNN takes, a label read
    from <label>_yes / _no counts or from a column named as typed beside one that differs only
    in case, and a dataset already on disk for --only 02."""
    monkeypatch.setenv("ZOO_OUTPUT_ROOT", str(tmp_path))
    notebooks = runner.numbered_notebooks(paths.NOTEBOOKS_DIR)
    counts = tmp_path / "counts.csv"
    counts.write_text("id_str,file_loc,ring_yes,ring_no,ring_total-votes\na,a.png,3,1,4\n")
    both = tmp_path / "both.csv"
    both.write_text("id_str,file_loc,edge_on,Edge_On\na,a.png,1,0\n")
    for given in [{"image_size": 16}, {"source": str(counts), "tree": "label:ring"},
                  {"source": str(both), "tree": "label:edge_on"}]:  # fmt: skip
        runner.check_values(notebooks[:1], {"01_data_prep": given}, "mine")
    (tmp_path / "data" / "processed" / "mine").mkdir(parents=True)
    (tmp_path / "data" / "processed" / "mine" / "manifest.json").write_text("{}")
    runner.check_values(runner.select(notebooks, ["02"]), {"02_train": {"dataset": "mine"}}, "x")


@pytest.mark.parametrize(("overrides", "only", "message"), BAD_VALUES)
def test_values_that_cannot_work_are_refused_before_any_notebook_runs(
    overrides, only, message, tmp_path, monkeypatch
):
    """The run is refused up front, naming the notebook and the parameter; no kernel starts
    (nothing under reports/), where these once failed minutes in or were silently ignored."""
    monkeypatch.setenv("ZOO_OUTPUT_ROOT", str(tmp_path))
    (tmp_path / "set.yaml").write_text(yaml.safe_dump(overrides))
    with pytest.raises(runner.RunError, match="nothing was run") as err:
        runner.run(str(tmp_path / "set.yaml"), only=only, reports_dir=tmp_path / "reports")
    assert message in str(err.value)
    assert not (tmp_path / "reports").exists()


def test_malformed_yaml_names_the_file_line_and_column(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("02_train:\n  epochs: 5\n  model_name: [quick\n")
    with pytest.raises(ValueError) as err:
        runner.load_params(str(broken), tmp_path)
    message = str(err.value)
    assert message.startswith(f"{broken}: not valid YAML at line 4, column 1: expected ','")
    assert "\n" not in message


def test_a_yaml_name_is_also_looked_for_among_the_named_sets(project, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    folder = project / "notebooks" / "params"
    assert runner.load_params("ci.yaml", folder) == {"01_first": {"x": 41}}
    with pytest.raises(FileNotFoundError) as err:
        runner.load_params("cj.yaml", folder)
    message = str(err.value)
    assert f"looked for {elsewhere / 'cj.yaml'}, {paths.PROJECT_ROOT / 'cj.yaml'}" in message
    assert f"{folder / 'cj.yaml'}. Named sets (in {folder}): default, ci;" in message


def test_only_with_no_prefix_is_an_error(project):
    with pytest.raises(runner.RunError, match="--only needs at least one notebook prefix"):
        runner.run("ci", only=[], notebooks_dir=project / "notebooks", reports_dir=project / "r")
    assert not (project / "r").exists()


def test_a_failed_run_is_marked_in_its_reports_and_the_index(typed):
    reports = typed / "reports"
    run_typed(typed, {})  # a good run first: its reports must not look current afterwards
    good_page = (reports / "html" / "02_train.html").read_text()
    assert "FAILED" not in good_page and "evaluation done" in good_page

    with pytest.raises(runner.RunError, match="02_train.ipynb failed in cell 4"):
        run_typed(typed, {"02_train": {"epochs": 12}})
    page = (reports / "html" / "02_train.html").read_text()
    assert "<b>FAILED</b> in the run of" in page
    assert "02_train.ipynb failed in cell 4 (AssertionError: epochs must be below 10)" in page
    assert "trained 12" in page and "evaluation done" not in page  # what ran before the failure
    index = (reports / "index.html").read_text()
    assert "This run FAILED</b>" in index and "in 02_train.ipynb</p>" in index
    assert re.search(
        r'<h2 class=failed><a href="html/02_train.html">02_train</a> FAILED</h2>'
        r"<p class=failed>02_train.ipynb failed in cell 4 \(AssertionError: epochs must be below"
        r" 10\)",
        index,
    )
    assert '<a href="html/01_prep.html">01_prep</a></h2>' in index  # ran in this run
    assert "<h2>03_posteriors <small>not run in this run</small></h2>" in index
    assert '<a href="html/03_posteriors.html">earlier report</a> of ' in index


def test_a_notebook_that_never_started_gets_a_failed_page(typed):
    page = runner.write_failed_report(
        typed / "notebooks" / "01_prep.ipynb", typed / "reports", "the run was interrupted"
    )
    text = page.read_text()
    assert "<b>FAILED</b>" in text and "the run was interrupted" in text
    assert f"Executed notebook: {typed / 'reports' / 'executed' / '01_prep.ipynb'}" in text


def test_an_only_run_marks_the_other_notebooks_not_run(typed):
    runner.run("default", only=["02"], notebooks_dir=typed / "notebooks",
               reports_dir=typed / "reports")  # fmt: skip
    index = (typed / "reports" / "index.html").read_text()
    assert "<h2>01_prep <small>not run in this run</small></h2>\n" in index  # no earlier report
    assert '<a href="html/02_train.html">02_train</a>' in index and "FAILED" not in index


KERNEL_NOISE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796060932.640478   11427 port.cc:153] oneDNN custom operations are on. You may"
    " see slightly different numerical results due to floating-point round-off errors.",
    "I0000 00:00:1796060932.641605   11427 cudart_stub.cc:31] Could not find cuda drivers on"
    " your machine, GPU will not be used.",
    "[IPKernelApp] WARNING | Kernel is running over TCP without encryption. All communication"
    " (including code and outputs) is sent in plain text and is susceptible to eavesdropping.",
    "[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel.",
]
REAL = [
    "E0000 00:00:1796060954.722738   11649 cuda_platform.cc:52] failed call to cuInit",
    "W0000 00:00:1796060954.722738   11649 some.cc:1] a real warning",
    "an error from user code mentioning I0000 00:00:1.2 3 x.cc:1] in the middle",
]


def test_drop_noise_keeps_everything_else():
    text = "\n".join(KERNEL_NOISE[:1] + REAL[:1] + KERNEL_NOISE[1:] + REAL[1:]) + "\n"
    assert quiet.drop_noise(text) == "\n".join(REAL) + "\n"


def test_kernel_noise_stays_out_of_reports_and_console(tmp_path, capfd, monkeypatch):
    # ipykernel copies the process's stderr into the notebook, as TensorFlow's lines get there,
    # only outside pytest
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    lines = "".join(f"{line}\n" for line in KERNEL_NOISE[:3] + REAL[1:2])
    make_notebook(
        nbs / "01_noisy.ipynb",
        "x: int = 1  # n",
        # what TensorFlow's C++ code does (hex, so that the HTML of the source does not show it)
        f"import os\nos.write(2, bytes.fromhex({lines.encode().hex()!r}))",
        "import warnings\nwarnings.warn('a warning from user code')",
    )
    runner.run("default", notebooks_dir=nbs, reports_dir=tmp_path / "reports")
    executed = outputs_of(tmp_path / "reports" / "executed" / "01_noisy.ipynb")
    page = (tmp_path / "reports" / "html" / "01_noisy.html").read_text()
    console = capfd.readouterr().err
    for text in (executed, page, console):
        assert "absl::InitializeLog" not in text and "oneDNN" not in text and "cudart" not in text
    assert "without encryption" not in console
    assert "a real warning" in executed and "a real warning" in page and "a real warning" in console
    assert "a warning from user code" in executed and "a warning from user code" in page


# ---------------------------------------------------------------------------------------------
# the index page


def tiny_png(width, height):
    """A valid grey PNG of ``width`` x ``height`` pixels."""

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )  # fmt: skip


METRICS_02_SHAPE = {
    "test": {
        "cnn": {"bar": {"nll": 1.3248, "rmse_true": 0.12189}},
        "baseline": {"bar": {"nll": 1.8272, "rmse_true": 0.24731}},
    },
    "summary": {"bar NLL cnn": 1.3248},
}


class Links(HTMLParser):
    """The href and src attributes of a page, and its img tags."""

    def __init__(self):
        super().__init__()
        self.targets, self.images = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.targets += [attrs[a] for a in ("href", "src") if a in attrs]
        if tag == "img":
            self.images.append(attrs["src"])


@pytest.fixture
def figures(tmp_path):
    """01 shows two figures (the second tagged key-figure) and writes metrics of 02's shape;
    02 fails when y is not 2; 03 comes after."""
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    show = "from IPython.display import Image, display\ndisplay(Image(data=bytes.fromhex({!r})))"
    make_notebook(
        nbs / "01_fig.ipynb",
        'n: int = 3  # points\nlabel: str = "a"  # a name',
        show.format(tiny_png(1, 1).hex()),
        show.format(tiny_png(3, 2).hex()),
        "import json, os, pathlib\n"
        "folder = pathlib.Path(os.environ['ZOO_REPORTS_DIR']) / 'metrics'\n"
        "folder.mkdir(parents=True, exist_ok=True)\n"
        f"(folder / '01_fig.json').write_text({json.dumps(METRICS_02_SHAPE)!r})",
    )
    nb = nbformat.read(nbs / "01_fig.ipynb", as_version=4)
    nb.cells[3].metadata["tags"] = ["key-figure"]
    nbformat.write(nb, nbs / "01_fig.ipynb")
    make_notebook(
        nbs / "02_fail.ipynb", "y: int = 2  # must stay 2", "assert y == 2, 'y must be 2'"
    )
    make_notebook(nbs / "03_later.ipynb", "z: int = 0  # unused", "print(z)")
    return tmp_path


def test_the_index_shows_figures_parameters_wall_times_and_metrics(figures):
    (figures / "set.yaml").write_text(
        yaml.safe_dump({"01_fig": {"n": 5, "label": "<b>x</b>"}, "02_fail": {"y": 3}})
    )
    with pytest.raises(runner.RunError, match="02_fail.ipynb failed"):
        runner.run(str(figures / "set.yaml"), notebooks_dir=figures / "notebooks",
                   reports_dir=figures / "reports")  # fmt: skip
    reports = figures / "reports"
    index = (reports / "index.html").read_text()

    links = Links()
    links.feed(index)
    assert links.images == ["html/thumbs/01_fig.png"]  # the key figure, linked to its report
    assert '<a class=thumb href="html/01_fig.html"><img src="html/thumbs/01_fig.png"' in index
    thumb = (reports / "html" / "thumbs" / "01_fig.png").read_bytes()
    assert thumb.startswith(b"\x89PNG\r\n\x1a\n")
    assert struct.unpack(">II", thumb[16:24]) == (3, 2)  # the tagged figure, not the first
    unresolved = [
        t for t in links.targets
        if not (reports / unquote(t.split("#")[0])).is_file() and not t.startswith("#")
    ]  # fmt: skip
    assert links.targets and unresolved == []

    assert "<th>NLL</th><th>RMSE vs true p</th>" in index
    assert "<td>bar</td><td>1.32 / 1.83</td><td>0.122 / 0.247</td>" in index  # CNN / baseline
    assert "<code>n = 5</code>" in index  # the values injected, escaped
    assert "<code>label = &#x27;&lt;b&gt;x&lt;/b&gt;&#x27;</code>" in index
    assert "<b>x</b>" not in index and "notebook defaults" not in index
    assert "<td><code>n</code></td><td><b><code>5</code></b> (set by this run)</td>" in index
    duration = nbformat.read(reports / "executed" / "01_fig.ipynb", as_version=4).metadata[
        "papermill"
    ]["duration"]
    assert f"ran in <b>{index_page.duration_text(duration)}</b>" in index

    assert '<h2 class=failed><a href="html/02_fail.html">02_fail</a> FAILED</h2>' in index
    assert "<p class=failed>02_fail.ipynb failed in cell 3 (AssertionError: y must be 2)" in index
    assert "failed after <b>" in index and "<code>y = 3</code>" in index
    assert "<h2>03_later <small>not run in this run</small></h2>" in index


def test_a_run_with_the_notebook_defaults_says_so(figures):
    runner.run("default", only=["01"], notebooks_dir=figures / "notebooks",
               reports_dir=figures / "reports")  # fmt: skip
    index = (figures / "reports" / "index.html").read_text()
    assert "<p class=meta>Parameters: notebook defaults</p>" in index
    assert "<td><code>n</code></td><td><code>3</code></td><td>points</td>" in index
    assert "Run of " in index and "FAILED" not in index


def test_savings_and_curve_gaps_are_a_table_per_strategy():
    metrics = {
        "metric": "rmse_true",
        "curve_gap": {"oracle": {"mean": -0.00324, "ci_low": -0.00414, "ci_high": -0.00242}},
        "savings": {
            "oracle": {"50%": {"saving": 0.48, "ci_low": 0.37, "ci_high": 0.57}},
            "bald": {"50%": {"saving": -0.05, "ci_low": -0.34, "ci_high": 0.17}},
        },
        "summary": {"oracle curve gap": "-0.00324"},
    }
    page = index_page.strategy_table(metrics)
    assert "<th>strategy</th><th>curve gap</th><th>saving at 50%</th>" in page
    assert "<td>oracle</td><td><span class=good>-0.00324 [-0.00414, -0.00242]</span></td>" in page
    assert "<td><span class=good>+48% [+37%, +57%]</span></td>" in page
    assert "<td>bald</td><td>-</td><td><span>-5% [-34%, +17%]</span></td>" in page
    assert "curve gap in rmse_true (negative is better)" in page


def test_metrics_of_an_unknown_shape_show_their_summary(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"test": [1, 2], "summary": {"KS <distance>": 0.019017}}))
    assert index_page.metrics_html(path) == (
        "<table><tbody><tr><td>KS &lt;distance&gt;</td><td>0.01902</td></tr></tbody></table>"
    )
    path.write_text(json.dumps(METRICS_02_SHAPE))
    assert "1.32 / 1.83" in index_page.metrics_html(path)
    assert "bar NLL cnn" not in index_page.metrics_html(path)  # the table replaces it


def test_a_smoke_test_colours_no_interval_and_says_why(tmp_path):
    metrics = {"curve_gap": {"oracle": {"mean": -0.003, "ci_low": -0.004, "ci_high": -0.002}},
               "savings": {"oracle": {"50%": {"saving": 0.48, "ci_low": 0.37, "ci_high": 0.57}}}}
    assert "class=good" in index_page.strategy_table(metrics)
    plain = index_page.strategy_table(metrics, colour=False)
    assert "class=good" not in plain and "class=bad" not in plain and "not coloured" in plain
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "04_active_learning.json").write_text(json.dumps(metrics))
    (tmp_path / "html").mkdir()
    page = tmp_path / "html" / "04_active_learning.html"
    page.write_text("<html></html>")
    index = index_page.write_index(tmp_path, "ci", [page], smoke="tiny").read_text()
    assert "SMOKE TEST: these numbers are not results.</b> tiny." in index
    assert "class=good" not in index
    assert "SMOKE TEST" not in index_page.write_index(tmp_path, "full", [page]).read_text()


def test_which_runs_are_smoke_tests():
    notebooks = runner.numbered_notebooks()
    assert "smoke test" in runner.smoke_reason("ci", notebooks, runner.load_params("ci"))
    assert runner.smoke_reason("default", notebooks, {}) is None  # notebook 04 runs 20 seeds
    few = {"04_active_learning": {"n_seeds": 3}}
    assert "3 seed(s), fewer than the 5" in runner.smoke_reason("mine.yaml", notebooks, few)
    banner = runner.to_html(__import__("nbformat").v4.new_notebook(), "<b>hello</b>")
    assert "<b>hello</b>" in banner


def test_equations_become_mathml_outside_code_and_mathjax_goes():
    text = ("Loss $-\\sum_k n_k \\log p_k$ and\n$$\\rho = \\sigma(x)$$\n"
            "not `$code$`, not \\$5 or $ 3, and ```\n$fenced$\n```")
    out = index_page.tex_to_mathml(text)
    assert out.count("<math") == 2 and 'display="block"' in out
    assert "`$code$`" in out and "\\$5 or $ 3" in out and "$fenced$" in out
    assert "<msub>" in out  # n_k as a subscript, not text
    assert index_page.tex_to_mathml("price $5, or $x$").count("<math") == 1  # $x$ only
    bad = index_page.tex_to_mathml("$\\frac{1}{$")  # unreadable TeX stays as it was
    assert "\\frac{1}{" in bad
    page = runner.to_html(__import__("nbformat").v4.new_notebook(
        cells=[__import__("nbformat").v4.new_markdown_cell("$x^2$")]))
    assert "<math" in page and "Load mathjax" not in page
    assert not re.search(r"(src|href)=\"https?://", page)  # nothing loaded from the network
    assert index_page.WRAP_CODE in page.split("</head>")[0]  # long parameter comments wrap


def test_no_cuda_driver_is_no_error_on_a_machine_without_nvidia(monkeypatch, tmp_path):
    line = ("E0000 00:00:1796313699.253331   30330 cuda_platform.cc:52] failed call to cuInit: "
            "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)")
    real = "E0000 00:00:1796313699.253331   30330 some_op.cc:12] a real error"
    text = f"{line}\n{real}\n"
    monkeypatch.setattr(quiet, "NVIDIA_DEVICE", tmp_path / "absent")
    assert quiet.drop_noise(text) == f"{real}\n"
    (tmp_path / "present").touch()
    monkeypatch.setattr(quiet, "NVIDIA_DEVICE", tmp_path / "present")
    assert quiet.drop_noise(text) == text  # with a GPU it may mean a broken driver: kept


def test_kernels_get_the_outputs_root_as_an_absolute_path(tmp_path, monkeypatch):
    from pathlib import Path

    monkeypatch.setenv("ZOO_OUTPUT_ROOT", "relative/outputs")  # kernels run in notebooks/
    with runner.kernel_environment(tmp_path):
        root = Path(os.environ["ZOO_OUTPUT_ROOT"])
        assert root.is_absolute() and root == Path("relative/outputs").resolve()
    assert os.environ["ZOO_OUTPUT_ROOT"] == "relative/outputs"  # restored afterwards


def test_set_values_over_a_named_set(typed):
    available = runner.numbered_notebooks(typed / "notebooks")
    sets = runner.with_values({"02_train": {"epochs": 2}},
                              ["02.epochs=5", "01_prep.name=mine", "03.n_samples=[1, 2]"],
                              available)  # fmt: skip
    assert sets == {"02_train": {"epochs": 5}, "01_prep": {"name": "mine"},
                    "03_posteriors": {"n_samples": [1, 2]}}  # fmt: skip
    for bad, match in [("02epochs=5", "write NOTEBOOK.PARAMETER=VALUE"),
                       ("02.epochs", "write NOTEBOOK.PARAMETER=VALUE"),
                       ("0.epochs=1", "'0' names 3 notebooks"),
                       ("09.x=1", "'09' names 0 notebooks")]:  # fmt: skip
        with pytest.raises(runner.RunError, match=re.escape(match)):
            runner.with_values({}, [bad], available)
    assert runner.own_reports("default", None) is None and runner.own_reports("ci", None) is None
    assert runner.own_reports("my_exercise.yaml", None) == "my_exercise"
    assert runner.own_reports("ci", ["02.epochs=3"]) == "ci-custom"
    assert runner.own_reports("metrics.yaml", None) == "own-metrics"  # not inside reports/metrics
    with pytest.raises(runner.RunError, match=r"--set names notebook\(s\) \['02'\] that this run"):
        runner.run("default", only=["03"], notebooks_dir=typed / "notebooks",
                   reports_dir=typed / "reports", values=["02.epochs=3"])  # fmt: skip


def test_an_exercise_on_smoke_settings_keeps_the_class_reports(typed, monkeypatch, capsys):
    """--params ci --set ...: the named set with a value changed runs into reports/ci-custom/,
    and a YAML file of one's own into reports/<its stem>/; the main reports/ stay as they
    were (the class's index and metrics agree)."""
    monkeypatch.delenv("ZOO_REPORTS_DIR", raising=False)
    monkeypatch.setattr(paths, "REPORTS_DIR", typed / "reports")
    (typed / "notebooks" / "params" / "ci.yaml").write_text("02_train: {epochs: 1}\n")
    nbs = typed / "notebooks"
    runner.run("ci", only=["02"], notebooks_dir=nbs, values=["02.epochs=4"])
    executed = typed / "reports" / "ci-custom" / "executed" / "02_train.ipynb"
    assert "trained 4" in outputs_of(executed)
    assert (typed / "reports" / "ci-custom" / "index.html").is_file()
    (typed / "exercise.yaml").write_text("02_train: {epochs: 6}\n")
    runner.run(str(typed / "exercise.yaml"), only=["02"], notebooks_dir=nbs)
    assert "trained 6" in outputs_of(typed / "reports" / "exercise" / "executed" / "02_train.ipynb")
    assert not (typed / "reports" / "index.html").exists()
    out = capsys.readouterr().out
    assert f"reports go to {typed / 'reports' / 'exercise'}" in out
    assert f"open {typed / 'reports' / 'exercise' / 'index.html'}" in out
