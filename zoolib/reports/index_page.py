"""``reports/index.html``: what a run of the notebooks found, on one page.

One section per numbered notebook: a link to its HTML report, its key figure as a thumbnail
(the first PNG output of a cell tagged ``key-figure``, else the notebook's first PNG output,
written to ``reports/html/thumbs/<stem>.png``), its wall time, the parameters papermill injected
(with every parameter of its parameter cell in a ``<details>`` block) and its metrics as small
tables. A failed notebook is marked with its message; notebooks the run did not reach are
marked not run. Plain HTML with inline CSS, no JavaScript, nothing fetched from elsewhere, every
path relative, so the page works offline and the reports folder can be moved.

Metrics tables come from ``reports/metrics/<stem>.json``, one renderer per known shape (see
``RENDERERS``); a file none of them knows shows its flat ``summary`` mapping.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
import re
import time
from pathlib import Path
from urllib.parse import quote

from zoolib import files
from zoolib.cnn import evaluation

KEY_FIGURE_TAG = "key-figure"
THUMBNAIL_PX = 800  # longest side of a thumbnail; shown at about half that
STYLE = (
    "body{font-family:sans-serif;max-width:64em;margin:auto;padding:0 1em 2em;color:#222}"
    "section{border-top:1px solid #ccc;padding:.3em 0 1em;overflow:auto}"
    "h2{margin:.4em 0}.meta{color:#555;margin:.3em 0}"
    ".thumb{float:right;margin:0 0 .5em 1.5em}.thumb img{width:22em;border:1px solid #ddd}"
    "table{border-collapse:collapse;margin:.5em 0}caption{text-align:left;color:#555}"
    "th,td{padding:2px 10px;text-align:right;vertical-align:top}td+td{white-space:nowrap}"
    "th:first-child,td:first-child{text-align:left}thead th{border-bottom:1px solid #999}"
    "tbody tr:nth-child(odd){background:#f4f4f4}code{font-size:.95em}"
    "details td{text-align:left}details td+td+td{color:#666;font-size:.9em;white-space:normal}"
    ".good{color:#1b7a1b}.bad{color:#b00020}.failed{color:#b00020}"
)


# ---------------------------------------------------------------------------------------------
# small helpers


def esc(value) -> str:
    return html.escape(str(value))


def href(path: Path, reports_dir: Path) -> str:
    """``path`` relative to the index, as an escaped URL."""
    return esc(quote(path.relative_to(reports_dir).as_posix()))


def report_path(reports_dir: Path, stem: str) -> Path:
    """Where the HTML report of notebook ``stem`` goes."""
    return Path(reports_dir) / "html" / f"{stem}.html"


def number(value, spec: str = ".3g") -> str:
    return format(value, spec) if isinstance(value, int | float) else esc(value)


def table(header: list[str], rows: list[list[str]], caption: str = "") -> str:
    """An HTML table (no header row when ``header`` is empty); ``header`` and ``caption`` are
    escaped here, cells must already be HTML."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    head = f"<thead><tr>{head}</tr></thead>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f"<table>{cap}{head}<tbody>{body}</tbody></table>"


def duration_text(seconds: float | None) -> str:
    """``seconds`` as "8.3 s", "1 min 37 s" or "2 h 05 min"; "" when unknown."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def read_executed(path: Path):
    """The executed notebook at ``path``, or None when it is missing or unreadable."""
    import nbformat

    try:
        return nbformat.read(path, as_version=4)
    except (OSError, ValueError):
        return None


def papermill_info(nb) -> dict:
    return nb.metadata.get("papermill", {}) if nb is not None else {}


# ---------------------------------------------------------------------------------------------
# key figure and parameters


def key_figure(nb) -> bytes | None:
    """The PNG of the first image output of a cell tagged ``key-figure``, else of the first
    image output of the notebook; None when it has none."""
    cells = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [c for c in cells if KEY_FIGURE_TAG in c.metadata.get("tags", [])]
    for cell in tagged + cells:
        for output in cell.get("outputs", []):
            png = output.get("data", {}).get("image/png")
            if png:
                return base64.b64decode(png if isinstance(png, str) else "".join(png))
    return None


def write_thumbnail(path: Path, png: bytes) -> Path:
    """``png`` scaled down to at most ``THUMBNAIL_PX`` a side, written atomically to ``path``
    (as it is, if Pillow cannot read it)."""
    from PIL import Image

    def write(tmp: Path) -> None:
        try:
            with Image.open(io.BytesIO(png)) as image:
                image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
                image.save(tmp, format="PNG", optimize=True)
        except (OSError, ValueError):
            tmp.write_bytes(png)

    return files.write_atomic(path, write)


def thumbnail_html(nb, stem: str, reports_dir: Path) -> str:
    png = key_figure(nb) if nb is not None else None
    if png is None:
        return ""
    thumb = write_thumbnail(reports_dir / "html" / "thumbs" / f"{stem}.png", png)
    page = href(report_path(reports_dir, stem), reports_dir)
    return (
        f'<a class=thumb href="{page}"><img src="{href(thumb, reports_dir)}"'
        f' alt="key figure of {esc(stem)}"></a>'
    )


def parameters_html(nb, executed: Path) -> str:
    """The parameters papermill injected (or "notebook defaults"), and every parameter of the
    parameter cell with its value in this run, in a ``<details>`` block."""
    import papermill as pm

    injected = papermill_info(nb).get("parameters") or {}
    shown = ", ".join(f"<code>{esc(k)} = {esc(repr(v))}</code>" for k, v in injected.items())
    rows = []
    for name, declared in pm.inspect_notebook(executed).items():
        value = f"<code>{esc(declared['default'])}</code>"
        if name in injected:
            value = f"<b><code>{esc(repr(injected[name]))}</code></b> (set by this run)"
        rows.append([f"<code>{esc(name)}</code>", value, esc(declared["help"])])
    details = (
        f"<details><summary>all {len(rows)} parameter{'s' if len(rows) > 1 else ''}</summary>"
        f"{table(['parameter', 'value', ''], rows)}</details>"
        if rows
        else ""
    )
    return f"<p class=meta>Parameters: {shown or 'notebook defaults'}</p>{details}"


# ---------------------------------------------------------------------------------------------
# metrics: one renderer per known shape


def models_table(metrics: dict) -> str:
    """``"test": {model: {question: {metric: value}}}`` as question x metric, models side by
    side ("0.122 / 0.247": CNN / baseline)."""
    test = metrics.get("test")
    if (
        not test
        or not isinstance(test, dict)
        or not all(isinstance(v, dict) for v in test.values())
    ):
        return ""
    models = sorted(test, key=lambda m: m != "cnn")
    questions = list(test[models[0]])
    names = list(next(iter(test[models[0]].values()), {}))
    rows = [
        [esc(q)]
        + [" / ".join(number(test[m].get(q, {}).get(k, "-")) for m in models) for k in names]
        for q in questions
    ]
    header = ["question"] + [evaluation.METRIC_LABELS.get(k, k) for k in names]
    return table(header, rows, f"test set: {' / '.join(models)}")


def interval(entry: dict, key: str, spec: str, better: str, colour: bool = True) -> str:
    """``entry[key] [ci_low, ci_high]``, coloured when the interval excludes zero (``better``:
    the sign that is better) unless ``colour`` is off (a smoke test)."""
    low, high = entry["ci_low"], entry["ci_high"]
    good, bad = (low > 0, high < 0) if better == "+" else (high < 0, low > 0)
    good, bad = good and colour, bad and colour
    css = " class=good" if good else " class=bad" if bad else ""
    text = f"{format(entry[key], spec)} [{format(low, spec)}, {format(high, spec)}]"
    return f"<span{css}>{text}</span>"


def strategy_table(metrics: dict, colour: bool = True) -> str:
    """``curve_gap`` {strategy: {mean, ci_low, ci_high}} and ``savings`` {strategy: {target:
    {saving, ci_low, ci_high}}}: one row per strategy; ``colour``: mark intervals that exclude
    zero (off for a smoke test)."""
    gaps, savings = metrics.get("curve_gap") or {}, metrics.get("savings") or {}
    if not isinstance(gaps, dict) or not isinstance(savings, dict) or not (gaps or savings):
        return ""
    strategies = list(dict.fromkeys([*gaps, *savings]))
    targets = list(dict.fromkeys(t for s in savings.values() for t in s))
    rows = []
    for s in strategies:
        row = [esc(s)]
        if gaps:
            row.append(interval(gaps[s], "mean", "+.5f", "-", colour) if s in gaps else "-")
        saved = savings.get(s, {})
        row += [interval(saved[t], "saving", "+.0%", "+", colour) if t in saved else "-"
                for t in targets]  # fmt: skip
        rows.append(row)
    header = ["strategy"] + (["curve gap"] if gaps else []) + [f"saving at {t}" for t in targets]
    metric = f" in {metrics['metric']}" if isinstance(metrics.get("metric"), str) else ""
    caption = (
        f"against random, 95% intervals: curve gap{metric} (negative is better), label saving"
        " at targets (positive is better); "
        + ("green/red where the interval excludes zero" if colour else "not coloured: a smoke test")
    )
    return table(header, rows, caption)


def summary_table(metrics: dict) -> str:
    """The flat ``summary`` mapping as a two-column table (the fallback)."""
    summary = metrics.get("summary")
    if not isinstance(summary, dict) or not summary:
        return ""
    return table([], [[esc(k), number(v, ".4g")] for k, v in summary.items()])


RENDERERS = (models_table, strategy_table)  # summary_table when none of these applies


def metrics_html(metrics_file: Path, colour: bool = True) -> str:
    """The tables of a metrics file: those of every renderer that knows its shape, else its
    summary; ``colour`` as :func:`strategy_table`."""
    try:
        metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    if not isinstance(metrics, dict):
        return ""
    tables = []
    for render in RENDERERS:
        try:
            tables.append(render(metrics, colour) if render is strategy_table else render(metrics))
        except (KeyError, TypeError, ValueError, AttributeError):  # not quite the known shape
            continue
    return "".join(tables) or summary_table(metrics)


# ---------------------------------------------------------------------------------------------
# sections and the page


def executed_path(reports_dir: Path, stem: str) -> Path:
    return reports_dir / "executed" / f"{stem}.ipynb"


def precision_text(metrics_file: Path) -> str:
    """'precision <b>...</b>' from a metrics file's ``precision`` entry (a policy, or a mapping
    of task to policy: :mod:`zoolib.cnn.precision`), or "" when it has none."""
    try:
        value = json.loads(metrics_file.read_text(encoding="utf-8")).get("precision")
    except (OSError, ValueError, AttributeError):
        return ""
    if isinstance(value, dict):
        value = ", ".join(f"{task} {policy}" for task, policy in value.items())
    return f"precision <b>{esc(value)}</b>" if isinstance(value, str) and value else ""


def run_facts(nb, stem: str, reports_dir: Path, verb: str = "ran in") -> str:
    """Wall time, links to the executed notebook and the metrics file, and the parameters."""
    links = [
        f'<a href="{href(path, reports_dir)}">{label}</a>'
        for path, label in [
            (executed_path(reports_dir, stem), "executed notebook"),
            (reports_dir / "metrics" / f"{stem}.json", "metrics JSON"),
        ]
        if path.is_file()
    ]
    took = duration_text(papermill_info(nb).get("duration"))
    facts = ([f"{verb} <b>{took}</b>"] if took else []) + links
    computed = precision_text(reports_dir / "metrics" / f"{stem}.json")
    facts += [computed] if computed else []
    params = parameters_html(nb, executed_path(reports_dir, stem)) if nb is not None else ""
    return (f"<p class=meta>{' · '.join(facts)}</p>" if facts else "") + params


def ran_section(page: Path, nb, reports_dir: Path, colour: bool = True) -> str:
    return (
        f'<section id="{esc(page.stem)}">{thumbnail_html(nb, page.stem, reports_dir)}'
        f'<h2><a href="{href(page, reports_dir)}">{esc(page.stem)}</a></h2>\n'
        f"{run_facts(nb, page.stem, reports_dir)}"
        f"{metrics_html(reports_dir / 'metrics' / f'{page.stem}.json', colour)}</section>"
    )


def failed_section(notebook: Path, message: str, nb, reports_dir: Path) -> str:
    page = href(report_path(reports_dir, notebook.stem), reports_dir)
    return (
        f'<section id="{esc(notebook.stem)}">'
        f'<h2 class=failed><a href="{page}">{esc(notebook.stem)}</a> FAILED</h2>'
        f"<p class=failed>{esc(message)}</p>\n"
        f"{run_facts(nb, notebook.stem, reports_dir, 'failed after')}</section>"
    )


def not_run_section(notebook: Path, reports_dir: Path) -> str:
    page = report_path(reports_dir, notebook.stem)
    earlier = ""
    if page.is_file():
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(page.stat().st_mtime))
        link = f'<a href="{href(page, reports_dir)}">earlier report</a>'
        earlier = f"<p class=meta>{link} of {when}</p>"
    return (
        f'<section id="{esc(notebook.stem)}">'
        f"<h2>{esc(notebook.stem)} <small>not run in this run</small></h2>\n{earlier}</section>"
    )


def status_html(executed: dict, failed: tuple[Path, str] | None) -> str:
    """When the run started (papermill's record of its first notebook, else now), how long
    its notebooks took, and whether it failed."""
    info = [papermill_info(nb) for nb in executed.values()]
    starts = sorted(i["start_time"] for i in info if i.get("start_time"))
    when = (
        datetime.datetime.fromisoformat(starts[0]).astimezone().strftime("%Y-%m-%d %H:%M")
        if starts
        else time.strftime("%Y-%m-%d %H:%M")
    )
    took = duration_text(sum(i.get("duration") or 0 for i in info)) if info else ""
    took = f", notebooks: {took}" if took else ""
    if failed:
        return f"<p class=failed><b>This run FAILED</b> ({when}{took}) in {esc(failed[0].name)}</p>"
    return f"<p>Run of {when} ({took[2:]}).</p>" if took else f"<p>Run of {when}.</p>"


def smoke_banner(reason: str) -> str:
    """An amber block of HTML (styled inline: it also tops each notebook's report) saying the
    run is a smoke test, and why."""
    return ('<div class=smoke style="background:#f6c343;color:#222;padding:.6em 1em;'
            'font-size:1.1em"><b>SMOKE TEST: these numbers are not results.</b> '
            f"{esc(reason)}. No interval is coloured as significant.</div>")  # fmt: skip


# TeX in the notebooks' Markdown, outside code: $$display$$ and $inline$ (not \$ or a $ before
# a space), rendered as MathML at report time so the reports need no network (browsers draw
# MathML natively; MathJax would come from a CDN)
CODE = re.compile(r"(```.*?```|`[^`\n]*`)", re.S)
TEX = re.compile(r"\$\$(.+?)\$\$|(?<![\\$])\$(?=[^\s$])([^$]+?)(?<=\S)\$", re.S)
MATHJAX = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S)
REMOTE_SCRIPT = re.compile(r"<script[^>]*\bsrc=\"https?://[^\"]*\"[^>]*>\s*</script>\s*")


def tex_to_mathml(markdown: str) -> str:
    """``markdown`` with each equation outside code replaced by MathML (``display="block"``
    for ``$$...$$``); an equation latex2mathml cannot read is left as TeX."""
    from latex2mathml.converter import convert

    def one(match) -> str:
        block = match.group(1) is not None
        try:
            return convert(match.group(1) if block else match.group(2),
                           display="block" if block else "inline")  # fmt: skip
        except Exception:  # noqa: BLE001 (any parse failure): the TeX stays readable as text
            return match.group(0)

    parts = CODE.split(markdown)
    return "".join(TEX.sub(one, p) if i % 2 == 0 else p for i, p in enumerate(parts))


# long lines of code (a parameter cell's comments) wrap in the report instead of running off
# the right edge of the page
WRAP_CODE = "<style>.jp-InputArea pre, .highlight pre { white-space: pre-wrap; }</style>"


def offline_page(page: str) -> str:
    """An nbconvert page that loads nothing from the network: without its MathJax loader (the
    maths is MathML) and without remote scripts (require.js from a CDN, which the reports'
    static figures do not need); long code lines wrap (:data:`WRAP_CODE`)."""
    page = REMOTE_SCRIPT.sub("", MATHJAX.sub("", page))
    return page.replace("</head>", WRAP_CODE + "\n</head>", 1)


def write_index(
    reports_dir: Path,
    params: str,
    done: list[Path],
    notebooks: list[Path] | None = None,
    failed: tuple[Path, str] | None = None,
    smoke: str | None = None,
) -> Path:
    """Write ``reports_dir/index.html``: a section for each of ``notebooks`` (default: those of
    ``done``, this run's HTML reports), ``failed`` (notebook, message) marked FAILED, the others
    not run. ``smoke`` (why the run is a smoke test, :func:`zoolib.reports.runner.smoke_reason`)
    puts a banner on top and colours no interval as significant."""
    reports_dir = Path(reports_dir)
    ran = {page.stem: page for page in done}
    this_run = [*ran, *([failed[0].stem] if failed else [])]
    executed = {s: read_executed(executed_path(reports_dir, s)) for s in this_run}
    sections = []
    for nb in notebooks or [Path(page.stem + ".ipynb") for page in done]:
        if nb.stem in ran:
            sections.append(ran_section(ran[nb.stem], executed[nb.stem], reports_dir,
                                        colour=smoke is None))  # fmt: skip
        elif failed and nb.stem == failed[0].stem:
            sections.append(failed_section(nb, failed[1], executed[nb.stem], reports_dir))
        else:
            sections.append(not_run_section(nb, reports_dir))
    status = status_html({s: nb for s, nb in executed.items() if nb is not None}, failed)
    if smoke:
        status = smoke_banner(smoke) + status
    body = "\n".join(sections) or "<p>no notebooks were run</p>"
    return files.write_text(
        reports_dir / "index.html",
        f"<!doctype html><meta charset=utf-8><title>zoo reports: {esc(params)}</title>"
        f"<style>{STYLE}</style>\n"
        f"<h1>zoo reports <small>(parameters: {esc(params)})</small></h1>{status}\n{body}\n",
    )
