"""The command line's messages: help, bad arguments and bad parameter files, without running
any notebook."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from zoolib import paths
from zoolib.__main__ import main, parser, typed_paths
from zoolib.reports import runner


def help_text(capsys, *argv):
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


@pytest.fixture
def no_reports(tmp_path, monkeypatch):
    """Point the runner's default reports folder at a scratch one that must stay empty."""
    monkeypatch.setattr(paths, "REPORTS_DIR", tmp_path / "reports")
    yield tmp_path / "reports"
    assert not (tmp_path / "reports").exists()


def test_top_level_help_is_plain_text(capsys):
    text = help_text(capsys)
    sets = "|".join(runner.named_sets())
    assert f"python -m zoolib run [--params {sets}|FILE.yaml]" in text
    for markup in ("``", ":mod:", ":func:", ":class:"):
        assert markup not in text


def test_run_help_says_where_outputs_go_and_what_a_parameter_file_holds(capsys):
    text = help_text(capsys, "run")
    for output in ("reports/index.html", "reports/html/", "reports/executed/", "reports/metrics/"):
        assert output in text
    assert f"Outputs go under the outputs root, here {paths.OUTPUT_ROOT}" in text
    assert "set ZOO_OUTPUT_ROOT to use another" in text
    assert "{notebook stem: {parameter: value}}" in text
    assert "then relative to the project root, then in notebooks/params/" in text
    flat = " ".join(text.split())
    assert ("(01_data_prep's source and images_root, 03's similarity_catalog, 05's sources, "
            "and --set values) are relative to the project root") in flat  # fmt: skip
    assert "what it means: ranges, trees, files" in flat


def test_only_needs_a_value(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--only"])
    assert exit_.value.code == 2
    assert "argument --only: expected at least one argument" in capsys.readouterr().err


def test_malformed_yaml_is_one_line_naming_file_line_and_column(tmp_path, capsys, no_reports):
    broken = tmp_path / "broken.yaml"
    broken.write_text("02_train:\n  epochs: 5\n  model_name: [quick\n")
    assert main(["run", "--params", str(broken)]) == 1
    assert capsys.readouterr().err == (
        f"error: {broken}: not valid YAML at line 4, column 1: expected ',' or ']', but got"
        " '<stream end>'\n"
    )


def test_a_missing_parameter_set_lists_where_it_looked(tmp_path, capsys, monkeypatch, no_reports):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--params", "nope.yaml"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"error: parameter set 'nope.yaml' not found; looked for {tmp_path}")
    named = f"Named sets (in {paths.PARAMS_DIR}): default, ci, "
    assert f"{paths.PARAMS_DIR / 'nope.yaml'}. {named}" in err
    assert f"{runner.named_sets()[-1]}; or give the path of a YAML file" in err


def test_bad_parameters_of_a_late_notebook_stop_the_run_before_it_starts(
    tmp_path, capsys, no_reports
):
    params = tmp_path / "typo.yaml"
    params.write_text(yaml.safe_dump({"04_active_learning": {"n_seed": 2, "tree_votes": 1}}))
    assert main(["run", "--params", str(params)]) == 1
    out, err = capsys.readouterr()
    assert out == ""  # not "running 01_data_prep.ipynb ..."
    assert err.startswith(f"error: parameter set '{params}' does not fit the notebooks (nothing")
    assert "04_active_learning.ipynb: unknown parameter(s) ['n_seed'] (n_seed: did you mean" in err
    assert "04_active_learning.ipynb: tree_votes is declared bool (default True), given 1" in err


def test_a_string_for_an_int_names_notebook_parameter_type_and_value(tmp_path, capsys, no_reports):
    params = tmp_path / "quoted.yaml"
    params.write_text('01_data_prep:\n  image_size: "32"\n')
    assert main(["run", "--params", str(params), "--only", "01"]) == 1
    assert (
        "01_data_prep.ipynb: image_size is declared int (default 64), given '32' (str): write the"
        " number without quotes" in capsys.readouterr().err
    )


def _subparser(name):
    from zoolib.__main__ import parser, subcommands

    return subcommands(parser())[name]


# option -> the parameter of the function it calls, where the names differ
PREDICT_NAMES = {"samples": "n_samples", "no_progress": None, "campaign": "campaign_dir"}
# options whose command-line default is chosen apart from the function's, and why
DEFAULTS_APART = {"precision": "a user gets auto (a probe); the library function stays float32"}


@pytest.mark.parametrize("command", ["predict", "calibrate", "acquire"])
def test_every_option_states_its_default_and_it_is_the_functions(command):
    import argparse
    import inspect

    from zoolib import acquire, predict
    from zoolib.universe import calibration

    function = {"predict": predict.predict_catalog, "calibrate": calibration.calibrate,
                "acquire": acquire.acquire}[command]  # fmt: skip
    signature = inspect.signature(function).parameters
    for action in _subparser(command)._actions:
        if isinstance(action, argparse._HelpAction) or action.required:
            continue
        name = PREDICT_NAMES.get(action.dest, action.dest)
        if action.default not in (None, False):  # a stated default is in the help text
            shown = " ".join(map(str, action.default)) if isinstance(action.default, list) else (
                str(action.default))
            assert shown in action.help.replace(",", ""), (command, action.dest, action.help)
        if name in signature and action.dest not in DEFAULTS_APART:
            default = signature[name].default
            if action.default is not None and default is not inspect.Parameter.empty:
                assert action.default == default, (command, action.dest)
        elif name is not None and command != "calibrate" and action.dest not in DEFAULTS_APART:
            raise AssertionError(f"{command} --{action.dest} is no parameter of its function")


def test_version_and_the_usage_line_of_predict(capsys):
    import zoolib

    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"zoolib {zoolib.__version__}"
    text = help_text(capsys)
    assert "predict --model M --catalog C --out P [--images-root R] [--shard i/n]" in text


def test_no_help_starts_tensorflow():
    code = ("import sys, contextlib, io\nfrom zoolib.__main__ import main\n"
            "for command in ([], ['run'], ['predict'], ['calibrate'], ['pretrain']):\n"
            "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
            "        main([*command, '--help'])\n"
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"], out.stdout + out.stderr
    assert "cuInit" not in out.stderr


def test_paths_typed_on_the_command_line_are_relative_to_the_current_folder(
    tmp_path, monkeypatch, capsys
):
    """From a folder of one's own, a relative --catalog is looked for there (it was looked for
    under the project root), and a relative --out would be written there."""
    monkeypatch.chdir(tmp_path)
    code = main(["predict", "--model", "real", "--catalog", "mycat.csv", "--out", "p.parquet"])
    err = capsys.readouterr().err
    assert code == 1 and f"catalogue file not found: {tmp_path / 'mycat.csv'}" in err
    args = typed_paths(parser().parse_args(
        ["acquire", "--model", "mine.keras", "--catalog", "c.csv", "--labelled", "sub/l.csv",
         "--n", "3", "--out", "~/m.csv"]
    ))  # fmt: skip
    assert args.model == str(tmp_path / "mine.keras") and args.catalog == str(tmp_path / "c.csv")
    assert args.labelled == str(tmp_path / "sub" / "l.csv")
    assert args.out == str(Path("~/m.csv").expanduser())
    shipped = typed_paths(parser().parse_args(
        ["predict", "--model", "real", "--catalog", "/data/c.csv", "--out", "o.parquet"]
    ))  # fmt: skip
    assert shipped.model == "real" and shipped.catalog == "/data/c.csv"
    assert shipped.out == str(tmp_path / "o.parquet")


def test_predict_help_names_the_columns_the_shipped_real_model_has(capsys):
    """The help's list of rho columns matches the real model's card (it has no bar)."""
    import json

    text = " ".join(help_text(capsys, "predict").split())
    card = json.loads(paths.SHIPPED_MODELS["real"].with_suffix(".card.json").read_text())
    assert card["questions"] == ["smooth-or-featured", "disk-edge-on"]
    assert "--model real has smooth-or-featured and disk-edge-on, not bar" in text
    assert ".<out>.blocks/" in text and "relative to the current folder" in text
