"""Run the numbered notebooks headlessly with papermill and turn them into HTML reports.

``python -m zoolib run --params default`` executes ``notebooks/NN_*.ipynb`` in order with their
own parameter cells (the main job: exactly what a notebook run top to bottom in JupyterLab
does), writing ``reports/executed/*.ipynb``, ``reports/html/*.html`` and ``reports/index.html``.
Other sets override some parameters: ``notebooks/params/<name>.yaml`` (``ci``, ``full``,
``paper``, ``protocol``) or any YAML file, one mapping per notebook stem.

Before any notebook runs, every parameter of every notebook about to run is checked against
the notebook's parameter cell: its name, and its value against the cell's annotation. A
notebook that fails leaves ``reports/index.html`` saying so and its HTML report marked FAILED;
the index marks the notebooks this run did not reach as not run. The index page itself (key
figures, wall times, parameters, metrics tables) is :mod:`zoolib.reports.index_page`.
"""

from __future__ import annotations

import contextlib
import difflib
import html
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import yaml

from zoolib import files, paths
from zoolib.active import savings
from zoolib.quiet import drop_noise
from zoolib.reports import preflight
from zoolib.reports.index_page import (
    offline_page,
    report_path,
    smoke_banner,
    tex_to_mathml,
    write_index,
)

NOTEBOOK_PATTERN = re.compile(r"^\d\d_.+\.ipynb$")
DEFAULT_PARAMS = "default"  # the notebooks' own parameter cells: no file, nothing overridden

# Parameter annotations the runner checks (papermill's ``inferred_type_name``) and the Python
# types each accepts: an int is a fine float, a bool is not a number (see ``type_problem``).
# Unannotated parameters and other annotations are not checked.
ACCEPTED_TYPES = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str": (str,),
    "list": (list,),
    "dict": (dict,),
}

class RunError(RuntimeError):
    """A notebook failed or was given parameters it does not declare or cannot take."""


def numbered_notebooks(notebooks_dir: Path | None = None) -> list[Path]:
    """The notebooks named ``NN_*.ipynb`` in ``notebooks_dir``, in order."""
    folder = Path(notebooks_dir or paths.NOTEBOOKS_DIR)
    return sorted(p for p in folder.glob("*.ipynb") if NOTEBOOK_PATTERN.match(p.name))


# ---------------------------------------------------------------------------------------------
# parameter sets


def load_params(params: str, params_dir: Path | None = None) -> dict[str, dict]:
    """Parameter overrides by notebook stem: a named set (``named_sets``), a YAML file or
    ``default``.

    ``default`` overrides nothing: the notebooks' parameter cells are the main job's defaults,
    the one place they are written. A ``default.yaml`` beside the other sets is refused, so that
    a second, diverging copy cannot creep back. Where a set is looked for: see ``find_params``.
    """
    folder = Path(params_dir or paths.PARAMS_DIR)
    if (folder / f"{DEFAULT_PARAMS}.yaml").exists():
        raise ValueError(
            f"{folder / f'{DEFAULT_PARAMS}.yaml'}: the defaults are the notebooks' parameter"
            " cells; change them there and delete this file"
        )
    if params == DEFAULT_PARAMS:
        return {}
    path = find_params(params, folder)
    data = read_yaml(path) or {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(
            f"{path}: expected a mapping of notebook name -> parameter mapping, such as"
            " '02_train: {epochs: 5}'"
        )
    return data


def find_params(params: str, folder: Path) -> Path:
    """The YAML file of parameter set ``params``.

    A name without a suffix (``ci``) is ``folder/<name>.yaml``. A file name (``my.yaml``) is
    looked for as given (relative to the current folder), then relative to the project root,
    then in ``folder`` (notebooks/params/).
    """
    path = Path(params).expanduser()
    if not path.suffix:
        candidates = [folder / f"{params}.yaml"]
    elif path.is_absolute():
        candidates = [path]
    else:
        candidates = [path.absolute(), paths.PROJECT_ROOT / path, folder / path]
    candidates = list(dict.fromkeys(c.resolve() for c in candidates))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"parameter set {params!r} not found; looked for {', '.join(map(str, candidates))}. "
        f"Named sets (in {folder}): {', '.join(named_sets(folder))}; or give the path of a"
        " YAML file"
    )


def named_sets(folder: Path | None = None) -> list[str]:
    """``default`` and the stems of ``notebooks/params/*.yaml`` (ci, full, paper, protocol)."""
    folder = Path(folder or paths.PARAMS_DIR)
    return [DEFAULT_PARAMS] + sorted(p.stem for p in folder.glob("*.yaml"))


def read_yaml(path: Path):
    """The content of a YAML file; a syntax error names the file, line and column."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path}: not a UTF-8 text file ({err.reason} at byte {err.start})"
        ) from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValueError(f"{path}: not valid YAML{where}: {problem}") from None


def type_problem(name: str, value, declared: dict) -> str | None:
    """Why ``value`` cannot be the parameter ``name`` as papermill found it (``declared``:
    ``inferred_type_name`` is the annotation or "None", ``default`` the source text), or None.

    ``None`` is accepted where the default is None or the annotation allows it.
    """
    type_name, default = declared["inferred_type_name"], declared["default"]
    names = [t.strip() for t in type_name.split("|")]
    if type_name == "None" or not set(names) <= set(ACCEPTED_TYPES) | {"None"}:
        return None  # unannotated, or an annotation this check does not know
    if value is None:
        if default == "None" or "None" in names:
            return None
    else:
        accepted = tuple(t for n in names if n != "None" for t in ACCEPTED_TYPES[n])
        if isinstance(value, accepted) and (bool in accepted or not isinstance(value, bool)):
            return None
    given = f"{value!r} ({type(value).__name__})"
    return f"{name} is declared {type_name} (default {default}), given {given}{hint(value)}"


def hint(value) -> str:
    """What to write instead, for a number that YAML read as text."""
    if not isinstance(value, str):
        return ""
    try:
        number = float(value)
    except ValueError:
        return ""
    if not re.fullmatch(r"\s*[-+]?\d+(\.\d*)?[eE][-+]?\d+\s*", value):
        return ": write the number without quotes"
    plain = repr(number)  # YAML reads 1e-3 as text: it wants a dot and a signed exponent
    if isinstance(yaml.safe_load(plain), float):
        return f": YAML reads {value} as text, write {plain}"
    return f": YAML reads {value} as text, write it with a dot and a signed exponent (1.0e-10)"


def parameter_problems(notebook: Path, parameters: dict) -> list[str]:
    """Each way ``parameters`` do not fit ``notebook``'s parameter cell, prefixed by its name."""
    import papermill as pm

    declared = pm.inspect_notebook(str(notebook))
    unknown = sorted(set(parameters) - set(declared))
    problems = []
    if unknown:
        close = {u: difflib.get_close_matches(u, declared, n=1) for u in unknown}
        guesses = "".join(f" ({u}: did you mean {c[0]}?)" for u, c in close.items() if c)
        problems.append(
            f"{notebook.name}: unknown parameter(s) {unknown}{guesses};"
            f" it declares {sorted(declared)}"
        )
    for name in sorted(set(parameters) & set(declared)):
        problem = type_problem(name, parameters[name], declared[name])
        if problem:
            problems.append(f"{notebook.name}: {problem}")
    return problems


def with_precision(notebooks: list[Path], sets: dict[str, dict], precision: str) -> dict:
    """``sets`` with ``precision`` given to each of ``notebooks`` that declares the parameter."""
    import papermill as pm

    from zoolib.cnn import precision as zprecision

    zprecision.check(precision, "--precision")
    out = {stem: dict(values) for stem, values in sets.items()}
    for nb in notebooks:
        if "precision" in pm.inspect_notebook(str(nb)):
            out.setdefault(nb.stem, {})["precision"] = precision
    return out


def check_parameters(notebooks: list[Path], sets: dict[str, dict], params: str) -> None:
    """Raise RunError listing every parameter of ``sets`` that does not fit its notebook."""
    problems = [p for nb in notebooks for p in parameter_problems(nb, sets.get(nb.stem, {}))]
    if problems:
        raise RunError(
            f"parameter set {params!r} does not fit the notebooks (nothing was run):\n  "
            + "\n  ".join(problems)
        )


def check_values(notebooks: list[Path], sets: dict[str, dict], params: str) -> None:
    """Raise RunError listing every value of the run that cannot work
    (:func:`zoolib.reports.preflight.problems`: ranges, trees, files, datasets and models)."""
    problems = preflight.problems(notebooks, sets)
    if problems:
        raise RunError(
            f"parameter set {params!r}: these values cannot work (nothing was run):\n  "
            + "\n  ".join(problems)
        )


# ---------------------------------------------------------------------------------------------
# running one notebook


def kernel_manager_class(stderr_file):
    """A kernel manager class whose kernels write their own stderr to ``stderr_file``.

    ipykernel copies every line a library writes to the process's stderr (TensorFlow's C++
    log) to the kernel's stderr as well as the notebook; ``execute`` prints that file without
    the noise rather than letting the kernel write to the console. The connection is encrypted
    when the kernel and pyzmq support it (ipykernel warns on every start otherwise).
    """
    import zmq
    from jupyter_client.manager import AsyncKernelManager

    class ZooKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw):
            if zmq.has("curve"):
                self.transport_encryption = "auto"
            kw.setdefault("stderr", stderr_file)
            return await super().start_kernel(**kw)

    return ZooKernelManager


def strip_noise(nb) -> None:
    """Drop ``KERNEL_NOISE`` lines from the stderr outputs of an executed notebook (in place)."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for output in cell.outputs:
            if output.output_type == "stream" and output.name == "stderr":
                output.text = drop_noise(output.text)
        cell.outputs = [o for o in cell.outputs if o.output_type != "stream" or o.text]


def execute(notebook: Path, parameters: dict, executed: Path) -> None:
    """Run ``notebook`` with papermill into ``executed``; raise RunError naming the failure."""
    import papermill as pm
    from nbclient.exceptions import DeadKernelError

    with tempfile.TemporaryFile() as kernel_stderr:
        try:
            pm.execute_notebook(
                str(notebook), str(executed), parameters=parameters, cwd=str(notebook.parent),
                progress_bar=False, coalesce_streams=True,
                kernel_manager_class=kernel_manager_class(kernel_stderr),
            )  # fmt: skip
        except pm.PapermillExecutionError as err:
            raise RunError(
                f"{notebook.name} failed in cell {err.exec_count} ({err.ename}: {err.evalue}); "
                f"the partly executed notebook is kept at {executed}"
            ) from err
        except DeadKernelError as err:
            raise RunError(
                f"{notebook.name}: the kernel died ({err}; out of memory?); the partly executed"
                f" notebook is kept at {executed}"
            ) from err
        finally:
            kernel_stderr.seek(0)
            sys.stderr.write(drop_noise(kernel_stderr.read().decode(errors="replace")))


def clean_executed(executed: Path):
    """Remove the kernel's noise from an executed notebook on disk; return the notebook."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    strip_noise(nb)
    files.write_text(executed, nbformat.writes(nb))
    return nb


def html_report(reports_dir: Path, notebook: Path) -> Path:
    """Where the HTML report of ``notebook`` goes."""
    return report_path(reports_dir, notebook.stem)


def to_html(nb, banner: str | None = None) -> str:
    """A notebook node as a standalone HTML page that needs no network: equations as MathML
    (:func:`zoolib.reports.index_page.tex_to_mathml`); ``banner`` (HTML) above its first cell."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.from_dict(nb)  # a copy: the executed notebook on disk stays as it ran
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = tex_to_mathml(cell.source)
    if banner:
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(banner))
    body, _ = HTMLExporter().from_notebook_node(nb)
    return offline_page(body)


SMOKE_SETS = ("ci",)  # parameter sets that check the plumbing, not the science


def smoke_reason(params: str, notebooks: list[Path], sets: dict[str, dict]) -> str | None:
    """Why a run's numbers cannot support a conclusion, or None: a smoke-test parameter set, or
    an active-learning notebook run on fewer seeds than an interval needs
    (:data:`zoolib.active.savings.MIN_SEEDS`)."""
    import papermill as pm

    if params in SMOKE_SETS:
        return (f"parameter set {params!r} is the smoke test (a tiny universe, a few epochs, "
                "2 seeds): it shows that everything runs, not what the method does")  # fmt: skip
    for nb in notebooks:
        declared = pm.inspect_notebook(str(nb))
        if "n_seeds" in declared:
            seeds = int(sets.get(nb.stem, {}).get("n_seeds", declared["n_seeds"]["default"]))
            if seeds < savings.MIN_SEEDS:
                return (f"{nb.stem} ran {seeds} seed(s), fewer than the {savings.MIN_SEEDS} "
                        "a bootstrap interval needs: its intervals and savings mean nothing")
    return None


def run_notebook(notebook: Path, parameters: dict, reports_dir: Path,
                 banner: str | None = None) -> Path:  # fmt: skip
    """Execute one notebook with papermill and convert it to HTML; return the HTML path."""
    problems = parameter_problems(notebook, parameters)
    if problems:
        raise RunError("; ".join(problems))
    executed = reports_dir / "executed" / notebook.name
    executed.parent.mkdir(parents=True, exist_ok=True)
    executed.unlink(missing_ok=True)  # an executed notebook on disk is always this run's
    execute(notebook, parameters, executed)
    page = to_html(clean_executed(executed), banner)
    return files.write_text(html_report(reports_dir, notebook), page)


# ---------------------------------------------------------------------------------------------
# failure reports


def failure_banner(message: str, executed: Path) -> str:
    """A red block of HTML saying the notebook failed, why, and where its notebook is."""
    text = html.escape(message).replace("\n", "<br>")
    return (
        '<div style="background:#b00020;color:#fff;padding:1em;font-size:1.1em">'
        f"<b>FAILED</b> in the run of {time.strftime('%Y-%m-%d %H:%M')}: {text}<br>"
        "The cells below are what ran before the failure; everything after it is missing."
        + ("" if str(executed) in message else f" Executed notebook: {html.escape(str(executed))}")
        + "</div>"
    )


def write_failed_report(notebook: Path, reports_dir: Path, message: str) -> Path:
    """Replace ``notebook``'s HTML report by one marked FAILED: the partly executed notebook
    under a red banner, or only the banner when there is no executed notebook to show."""
    import nbformat

    executed = reports_dir / "executed" / notebook.name
    banner = failure_banner(message, executed)
    try:
        nb = clean_executed(executed)
    except (OSError, ValueError):  # never written, or not readable: the banner alone
        nb = nbformat.v4.new_notebook()
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(banner))
    return files.write_text(html_report(reports_dir, notebook), to_html(nb))


def describe(err: BaseException) -> str:
    """A failure in words, for the reports."""
    if isinstance(err, RunError):
        return str(err)
    if isinstance(err, KeyboardInterrupt):
        return "the run was interrupted"
    return f"{type(err).__name__}: {err}"


# ---------------------------------------------------------------------------------------------
# the run


@contextlib.contextmanager
def kernel_environment(reports_dir: Path):
    """The environment the notebooks' kernels inherit, restored afterwards."""
    saved = {
        k: os.environ.get(k)
        for k in ("ZOO_REPORTS_DIR", "ZOO_HEADLESS", "TF_CPP_MIN_LOG_LEVEL", "ZOO_OUTPUT_ROOT")
    }
    os.environ["ZOO_REPORTS_DIR"] = str(reports_dir.resolve())  # notebooks write metrics here
    # absolute: kernels run in notebooks/, where a relative root would mean another folder
    os.environ["ZOO_OUTPUT_ROOT"] = str(paths.output_root())  # as set now, not at import
    os.environ["ZOO_HEADLESS"] = "1"  # widgets draw static figures
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep TensorFlow's C++ log out of reports
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def select(available: list[Path], only: list[str] | None) -> list[Path]:
    """The notebooks of ``available`` whose names start with an entry of ``only`` (all: None)."""
    if only is None:
        return available
    if not only:
        raise RunError("--only needs at least one notebook prefix, e.g. --only 01 02")
    notebooks = [nb for nb in available if any(nb.name.startswith(o) for o in only)]
    if not notebooks:
        raise RunError(
            f"--only {' '.join(only)} matches no notebook; have {[nb.name for nb in available]}"
        )
    return notebooks


def with_values(sets: dict[str, dict], values: list[str], available: list[Path]) -> dict:
    """``sets`` with each ``NOTEBOOK.PARAMETER=VALUE`` of ``values`` (``--set``) over it: the
    notebook named by its stem or a prefix of it (``02`` is ``02_train``), the value read as
    YAML (``3``, ``0.5``, ``[random, bald]``, ``text``)."""
    out = {stem: dict(given) for stem, given in sets.items()}
    for item in values:
        key, sep, text = item.partition("=")
        notebook, dot, name = key.partition(".")
        if not sep or not dot or not notebook or not name:
            raise RunError(f"--set {item!r}: write NOTEBOOK.PARAMETER=VALUE, e.g. "
                           "02_train.epochs=3 or 02.epochs=3")  # fmt: skip
        stems = [nb.stem for nb in available if nb.stem.startswith(notebook)]
        if len(stems) != 1:
            raise RunError(f"--set {item!r}: {notebook!r} names {len(stems)} notebooks "
                           f"({stems or [nb.stem for nb in available]})")  # fmt: skip
        out.setdefault(stems[0], {})[name] = yaml.safe_load(text)
    return out


REPORT_FOLDERS = ("html", "executed", "metrics", "thumbs")  # what a run writes in reports/


def own_reports(params: str, values: list[str] | None) -> str | None:
    """The folder under ``reports/`` a run writes to when its parameters are not a shipped set
    (a YAML file of one's own: its stem; ``--set`` values: ``<set>-custom``), so that an
    exercise does not overwrite the class's reports; None for ``default`` and the named sets
    as they are. ``ZOO_REPORTS_DIR`` or ``reports_dir`` decide instead when given."""
    if Path(params).suffix:
        name = Path(params).stem + ("-custom" if values else "")
    else:
        name = f"{params}-custom" if values else None
    # a name of the reports' own folders (html, metrics, ...) would land inside them
    return f"own-{name}" if name in REPORT_FOLDERS else name


def run(
    params: str = "default",
    only: list[str] | None = None,
    notebooks_dir: Path | None = None,
    reports_dir: Path | None = None,
    precision: str | None = None,
    values: list[str] | None = None,
) -> list[Path]:
    """Run the numbered notebooks (or those whose names start with an entry of ``only``).

    ``precision`` (float32, mixed_bfloat16 or auto; :mod:`zoolib.cnn.precision`), when given, is the
    ``precision`` parameter of every notebook that declares one (02-04), over the set's value.
    ``values``: ``NOTEBOOK.PARAMETER=VALUE`` overrides over the set (:func:`with_values`).

    Reports go to ``reports_dir``, else ``ZOO_REPORTS_DIR``, else ``reports/`` for the
    notebooks' defaults and the named sets and ``reports/<name>/`` for anything else
    (:func:`own_reports`). All parameters are checked before the first notebook starts. When a
    notebook fails, its HTML report and ``index.html`` say so and RunError (or the error that
    stopped the run) is raised.
    """
    own = own_reports(params, values)
    own = own if reports_dir is None and "ZOO_REPORTS_DIR" not in os.environ else None
    reports_dir = Path(reports_dir or (paths.REPORTS_DIR / own if own else paths.REPORTS_DIR))
    sets = load_params(params, Path(notebooks_dir) / "params" if notebooks_dir else None)
    available = numbered_notebooks(notebooks_dir)
    sets = with_values(sets, values or [], available)
    notebooks = select(available, only)
    prefixes = {v.partition(".")[0] for v in values or []}
    unused = sorted(p for p in prefixes if not any(nb.stem.startswith(p) for nb in notebooks))
    if unused:
        raise RunError(f"--set names notebook(s) {unused} that this run does not include "
                       f"(--only {' '.join(only or [])})")  # fmt: skip
    stray = sorted(set(sets) - {nb.stem for nb in available})
    if stray:
        raise RunError(f"parameter set {params!r} names notebooks that do not exist: {stray}")
    if precision is not None:
        sets = with_precision(notebooks, sets, precision)
    check_parameters(notebooks, sets, params)
    check_values(notebooks, sets, params)
    if own:
        print(f"parameters of your own: reports go to {reports_dir} "
              f"(ZOO_REPORTS_DIR={paths.REPORTS_DIR} puts them over the main ones)",
              flush=True)  # fmt: skip
    smoke = smoke_reason(params, notebooks, sets)
    banner = smoke and smoke_banner(smoke)
    done = []
    with kernel_environment(reports_dir):
        for nb in notebooks:
            start = time.perf_counter()
            print(f"running {nb.name} ...", flush=True)
            try:
                done.append(run_notebook(nb, sets.get(nb.stem, {}), reports_dir, banner))
            except (Exception, KeyboardInterrupt) as err:
                write_failed_report(nb, reports_dir, describe(err))
                write_index(reports_dir, params, done, available, failed=(nb, describe(err)),
                            smoke=smoke)  # fmt: skip
                raise
            print(f"  {nb.name} done in {time.perf_counter() - start:.1f} s", flush=True)
    write_index(reports_dir, params, done, available, smoke=smoke)
    print(f"open {reports_dir / 'index.html'}", flush=True)
    return done
