"""Command line of zoo.

  python -m zoolib run [--params default|ci|full|paper|protocol|tree|FILE.yaml] [--only 02 ...]
      run the numbered notebooks into reports/
  python -m zoolib predict --model M --catalog C --out P [--images-root R] [--shard i/n] ...
      predict a catalogue with MC dropout (zoolib/predict.py)
  python -m zoolib acquire --model M --catalog C [--labelled L] --n K --out MANIFEST.csv
      the next galaxies for volunteers, as a Zooniverse subject manifest (zoolib/acquire.py)
  python -m zoolib votes --export CLASSIFICATIONS.csv --tasks TASKS.yaml --out VOTES.csv
      vote counts from a Zooniverse classification export (zoolib/data/panoptes.py)
  python -m zoolib calibrate [--presets gz2 decals] [--dry-run]
      refit the simulated volunteers to the shipped real catalogues (zoolib/universe/calibration.py)
  python -m zoolib pretrain
      make the shipped pretrained model, about an hour on 2 CPU cores (zoolib/cnn/pretrained.py)

python -m zoolib COMMAND --help describes a command.
"""

from __future__ import annotations

import argparse
import sys
import warnings

import zoolib
from zoolib import paths, quiet
from zoolib.data.catalogs import FILE_SOURCES, ID_SOURCES
from zoolib.reports import runner
from zoolib.universe.volunteers import load_presets

PRESETS = tuple(load_presets())  # the survey presets of zoolib/universe/presets.json


def _add_predict(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="MC-dropout predictions for a catalogue's images, one shard at a time",
        description="Write per galaxy and question the mean rho, its 5/50/95% quantiles over"
        " T MC-dropout samples, the predictive entropy and BALD (nats) to a Parquet file; see"
        " zoolib/predict.py for the columns, sharding and the provenance metadata. rho is the"
        " probability that a volunteer gives the answer named in the column:"
        " smooth-or-featured_smooth_rho_mean is P(smooth) (1 minus it: featured or artifact),"
        " disk-edge-on_yes_rho_mean P(edge-on), bar_yes_rho_mean P(bar), for the questions the"
        " model has (its card: --model real has smooth-or-featured and disk-edge-on, not bar;"
        " a tree or label model writes <question>_<answer>_fraction_mean). Images are made as the"
        " model's card says it was trained (crop). Relative paths"
        " are relative to the current folder; file_loc paths in the"
        " catalogue are relative to --images-root. Each finished block is written at once (to"
        " the hidden folder .<out>.blocks/ beside the output, removed once the output is"
        " whole): a killed or failed shard, run again, resumes after its finished blocks.",
    )
    p.add_argument(
        "--model", required=True,
        help="saved .keras model (its card beside it), or a shipped one: 'real' (seen real "
        "galaxies: zero-shot on a real catalogue) or 'pretrained' (simulated galaxies only)",
    )  # fmt: skip
    p.add_argument(
        "--catalog", required=True,
        help=f"CSV or Parquet with an id column (one of {', '.join(ID_SOURCES)}) and an image "
        f"path column (one of {', '.join(FILE_SOURCES)})",
    )  # fmt: skip
    p.add_argument(
        "--images-root", help="folder that file_loc paths are relative to (default: catalogue's)"
    )
    p.add_argument("--out", required=True, help="output .parquet; {i} and {n} become the shard")
    p.add_argument(
        "--on-error", choices=["raise", "skip"], default="raise",
        help="raise: stop, listing every missing or unreadable image of the shard by row, id "
        "and file (blocks finished before the first are kept); skip: leave bad images out and "
        "list them in the output's metadata",
    )  # fmt: skip
    p.add_argument(
        "--samples", type=int, default=30, help="T, dropout samples per galaxy (default 30)"
    )
    p.add_argument(
        "--shard", default="0/1", help="i/n: shard i of n, 0-based (0/4 .. 3/4); default 0/1"
    )
    p.add_argument("--seed", type=int, default=0, help="base seed of the dropout masks (default 0)")
    p.add_argument(
        "--block-size", type=int, default=256,
        help="galaxies per pass and per dropout seed (default 256); same for every shard",
    )  # fmt: skip
    p.add_argument(
        "--expected-votes", type=int, default=40,
        help="n, the whole number of volunteers assumed for the entropy and BALD (default 40)",
    )  # fmt: skip
    p.add_argument(
        "--questions", nargs="+",
        help="names of the model's outputs in order (default: model card, else schema order)",
    )  # fmt: skip
    p.add_argument(
        "--crop-fraction", type=float,
        help="central fraction of each image kept before resizing (default: the crop the model "
        "was trained with, from its card; 1.0 where the card records none); another value warns",
    )  # fmt: skip
    p.add_argument(
        "--allow-outside-root", action="store_true",
        help="accept image paths that lead outside --images-root (.. or absolute); refused "
        "otherwise, as in notebook 01",
    )  # fmt: skip
    p.add_argument("--workers", type=int, help="image decoding threads (default: CPU count)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--representations", action="store_true",
        help="also write the trunk's features per galaxy (feature_000, feature_001, ...; 128 "
        "for the paper's CNN), for similarity search and unusual galaxies (zoolib.cnn.similarity)",
    )  # fmt: skip
    _add_precision(p, "prediction")


def _add_acquire(sub) -> None:
    from zoolib.active.campaign import DEFAULT_RULE, RULES

    p = sub.add_parser(
        "acquire",
        help="pick the next galaxies for volunteers and write a Zooniverse subject manifest",
        description="Score the catalogue's galaxies not in --labelled with the model's"
        " MC-dropout posterior over every question of its tree (each question counted by the"
        " volunteers expected to be asked it), pick --n of them by --strategy and write a"
        " subject manifest for the Panoptes command line (image, then hidden #id_str, #score,"
        " #rank, #strategy, #round). Every round is recorded in the campaign folder (model"
        " sha256, rule, seed, scores, picks); the same inputs give the same picks, and an"
        " interrupted round resumes. Paths are relative to the current folder. See"
        " zoolib/acquire.py and zoolib/active/campaign.py.",
    )
    p.add_argument(
        "--model", required=True,
        help="saved .keras model (the paper's CNN, its card beside it), or 'real' / 'pretrained'",
    )  # fmt: skip
    p.add_argument("--catalog", required=True, help="CSV or Parquet with id and image columns")
    p.add_argument(
        "--images-root", help="folder that file_loc paths are relative to (default: catalogue's)"
    )
    p.add_argument("--labelled", help="CSV with an id_str column: galaxies not to pick")
    p.add_argument("--n", type=int, required=True, help="galaxies to pick")
    p.add_argument(
        "--strategy", choices=RULES, default=DEFAULT_RULE,
        help=f"acquisition rule (default {DEFAULT_RULE}: BALD-weighted sampling, the best rule "
        "measured in docs/active-learning.md)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of every draw (default 0)")
    p.add_argument("--out", required=True, help="subject manifest to write (.csv)")
    p.add_argument(
        "--campaign", help="campaign folder, one for every round (default: campaign/ beside the "
        "manifest)",
    )  # fmt: skip
    p.add_argument(
        "--crop-fraction", type=float,
        help="central crop before resizing (default: the model card's, as it was trained)",
    )  # fmt: skip
    p.add_argument(
        "--expected-votes", type=int, default=40,
        help="volunteers per galaxy asked the first question (default 40)",
    )  # fmt: skip
    p.add_argument("--samples", type=int, default=30, help="T, MC-dropout samples (default 30)")
    p.add_argument("--beta", type=float, default=1.0, help="power rules' exponent (default 1.0)")
    p.add_argument(
        "--on-error", choices=["raise", "skip"], default="raise",
        help="an unreadable image: raise (the default) stops, skip leaves it out and lists it",
    )  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_votes(sub) -> None:
    p = sub.add_parser(
        "votes",
        help="vote counts from a Zooniverse (Panoptes) classification export",
        description="Count the votes of a Panoptes classification export into zoo's vote table"
        " (id_str from the subjects' #id_str metadata; <question>_<answer> and"
        " <question>_total-votes per task of the tasks file), which notebook 01 reads as any"
        " catalogue. Counts follow panoptes-aggregation's question extractor; a classification"
        " exported twice counts once; other workflows and versions are left out and counted. A"
        " malformed classification stops the command, naming its classification_id, before"
        " anything is written. The tasks file: T0: {question: smooth-or-featured, answers:"
        " [smooth, featured-or-disk, artifact]}, answers in the workflow's order, optional"
        " labels: [...] as shown to volunteers. Paths are relative to the current folder."
        " See zoolib/data/panoptes.py.",
    )
    p.add_argument("--export", required=True, help="classification export CSV")
    p.add_argument("--tasks", required=True, help="YAML naming each task's question and answers")
    p.add_argument("--workflow-id", help="count only this workflow (needed if the export has two)")
    p.add_argument(
        "--workflow-version", help="count only this version: 12.34, or 12 for every 12.x"
    )
    p.add_argument("--out", required=True, help="vote table to write, .csv or .parquet")
    p.add_argument(
        "--on-error", choices=["raise", "skip"], default="raise",
        help="a malformed classification: raise (the default) stops, skip leaves it out and "
        "lists it in OUT's stem + .skipped.csv",
    )  # fmt: skip


def _votes(args) -> None:
    from pathlib import Path

    import pandas as pd

    from zoolib import files
    from zoolib.data import panoptes

    out = Path(args.out)
    if out.suffix not in (".csv", ".parquet"):
        raise ValueError(f"--out {out}: write .csv or .parquet")
    tasks = panoptes.read_tasks(args.tasks)
    export = panoptes.read_export(args.export)
    table, summary = panoptes.count_votes(
        export, tasks, args.workflow_id, args.workflow_version, on_error=args.on_error
    )
    panoptes.write_votes(table, out)
    listed = out.with_name(f"{out.stem}.skipped.csv")
    listed.unlink(missing_ok=True)  # a list from an earlier run would no longer be true
    if summary.skipped:
        skipped = pd.DataFrame(summary.skipped, columns=["classification_id", "row", "reason"])
        files.write_atomic(listed, lambda tmp: skipped.to_csv(tmp, index=False))
        print(f"{len(skipped)} classification(s) skipped, listed in {listed}")
    print("\n".join(summary.lines()))
    print(f"{len(table)} galaxies -> {out}")


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


def _add_precision(p, task: str) -> None:
    p.add_argument(
        "--precision", choices=["float32", "mixed_bfloat16", "auto"], default="auto",
        help=f"numeric precision of the CNN's {task}: auto (the default) takes mixed_bfloat16 "
        "only where the machine has bfloat16 units and a few-second probe measures it faster, "
        "and says what it chose; see zoolib/cnn/precision.py",
    )  # fmt: skip


def _add_calibrate(sub) -> None:
    p = sub.add_parser(
        "calibrate",
        help="refit the simulated volunteers to the shipped real vote fractions",
        description="Fit each preset's volunteer-model constants to its survey's vote-fraction"
        " distributions (zoolib/universe/calibration.py), measure the KS and Wasserstein"
        " distances on fresh universes, print them and record both in"
        " zoolib/universe/presets.json.",
    )
    p.add_argument(
        "--presets", nargs="+", default=["gz2", "decals"], choices=PRESETS, metavar="PRESET",
        help=f"survey presets to fit, in this order: any of {', '.join(PRESETS)} "
        "(default: gz2 decals)",
    )  # fmt: skip
    p.add_argument(
        "--fit-galaxies", type=int, default=20_000, help="galaxies in the fit (default 20000)"
    )
    p.add_argument(
        "--maxiter", type=int, default=1500,
        help="Nelder-Mead iterations per question (default 1500)",
    )  # fmt: skip
    p.add_argument("--dry-run", action="store_true", help="print, do not record (default: record)")
    p.add_argument(
        "--measure-only", action="store_true",
        help="keep the recorded constants, measure and record the distances again",
    )  # fmt: skip


def _calibrate(args) -> None:
    import pandas as pd

    from zoolib.universe import calibration

    for name in args.presets:
        record = calibration.calibrate(
            name, fit_galaxies=args.fit_galaxies, maxiter=args.maxiter,
            write=not args.dry_run, refit=not args.measure_only,
        )  # fmt: skip
        table = pd.DataFrame(record["measured"]["questions"]).T
        print(f"== {name} against {record['reference']}")
        print(table.to_string(float_format=lambda v: f"{v:.4f}"))


def _add_pretrain(sub) -> None:
    p = sub.add_parser(
        "pretrain",
        help="pretrain the shipped Bayesian CNN on a large simulated universe (about an hour "
        "on 2 CPU cores)",
        description="Simulate a universe at 64 px with a seed no notebook uses, train the"
        " paper's CNN on every question with early stopping, measure it on its own test split"
        " and write zoolib/cnn/shipped/simulated/ (the model and manifest.json); see"
        " zoolib/cnn/pretrained.py.",
    )
    from zoolib.cnn.pretrained import Settings  # TensorFlow-free at import: --help stays fast

    d = Settings()
    p.add_argument("--galaxies", type=int, default=d.n_galaxies, help=f"default {d.n_galaxies}")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"at most; default {d.epochs}")
    p.add_argument("--patience", type=int, default=d.patience, help=f"default {d.patience}")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"default {d.batch_size}")
    p.add_argument(
        "--learning-rate", type=float, default=d.learning_rate, help=f"default {d.learning_rate}"
    )
    p.add_argument("--out", help="folder to write (default: zoolib/pretrained, the shipped one)")
    _add_precision(p, "training (the shipped weights were made in float32)")


def _pretrain(args) -> None:
    from zoolib.cnn import pretrained

    settings = pretrained.Settings(
        n_galaxies=args.galaxies, epochs=args.epochs, patience=args.patience,
        batch_size=args.batch_size, learning_rate=args.learning_rate, precision=args.precision,
    )  # fmt: skip
    manifest = pretrained.pretrain(settings, args.out)
    t = manifest["training"]
    print(
        f"{t['epochs_run']} epochs ({t['seconds_training']:.0f} s, "
        f"{t['images_per_second']:.0f} images/s); dead features {manifest['dead_features']}"
    )
    for name, row in manifest["test"]["cnn"].items():
        base = manifest["test"]["baseline"][name]
        print(f"{name}: RMSE vs true p {row['rmse_true']:.4f} (baseline {base['rmse_true']:.4f})")


def _run_description() -> str:
    root, reports = paths.OUTPUT_ROOT, paths.REPORTS_DIR
    sets = ", ".join(runner.named_sets()[1:])
    return f"""\
Run the numbered notebooks (notebooks/NN_*.ipynb) in order with papermill.

Parameters. --params default (the default) runs each notebook with its own parameter cell. A
named set ({sets}) is notebooks/params/<name>.yaml; a YAML file of your own has the
same shape, {{notebook stem: {{parameter: value}}}}, for instance

    02_train:
      epochs: 5
      model_name: quick

and overrides only what it names. FILE.yaml is looked for as given (relative to the current
folder), then relative to the project root, then in notebooks/params/. Every parameter of
every notebook to run is checked (its name, and its value against the type in the parameter
cell, then what it means: ranges, trees, files, the datasets and models later notebooks
read) before the first notebook starts. Paths given as parameter values (01_data_prep's
source and images_root, 03's similarity_catalog, 05's sources, and --set values) are
relative to the project root.

A YAML file of your own, or --set values, is an exercise: its reports go to
reports/<file stem>/ (or reports/<set>-custom/), beside the main job's, unless ZOO_REPORTS_DIR
says otherwise. Datasets and models are shared: give them names of their own (01_data_prep's
name, 02_train's model_name) to keep the main job's.

Outputs go under the outputs root, here {root}
(set ZOO_OUTPUT_ROOT to use another, keeping them out of the checkout; ZOO_REPORTS_DIR moves
reports/, here {reports}):
  reports/index.html                 start here: this run's reports and key metrics
  reports/html/<notebook>.html       each notebook as HTML (marked FAILED if it failed)
  reports/executed/<notebook>.ipynb  each notebook as executed
  reports/metrics/<notebook>.json    the numbers each notebook measured
and the notebooks' own outputs: data/processed/, models/, data/runs/.
A failing notebook stops the run with exit status 1."""


def _add_run(sub) -> None:
    p = sub.add_parser(
        "run",
        help="run the numbered notebooks into reports/",
        description=_run_description(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--params", default="default", metavar="SET",
        help=f"{', '.join(runner.named_sets())} or FILE.yaml (default: default)",
    )  # fmt: skip
    p.add_argument(
        "--only", nargs="+", metavar="PREFIX", help="run only these notebooks, e.g. --only 01 02"
    )
    p.add_argument(
        "--set", action="append", metavar="NB.NAME=VALUE",
        help="a parameter over the set, e.g. --params ci --set 02.epochs=3 (repeatable; the "
        "value read as YAML, so quote text that looks like a number: 02.model_name=\"'2024'\"; "
        "a path in it is a notebook parameter, relative to the project root); reports then go "
        "to reports/<set>-custom/",
    )  # fmt: skip
    p.add_argument(
        "--precision", choices=["float32", "mixed_bfloat16", "auto"],
        help="the precision parameter of notebooks 02-04, over the set's (their default: auto)",
    )  # fmt: skip


def parser() -> argparse.ArgumentParser:
    """The command line's parser (each subcommand's: :func:`subcommands`)."""
    top = argparse.ArgumentParser(
        prog="python -m zoolib",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action="version", version=f"zoolib {zoolib.__version__}")
    sub = top.add_subparsers(dest="command", required=True)
    _add_run(sub)
    _add_predict(sub)
    _add_acquire(sub)
    _add_votes(sub)
    _add_calibrate(sub)
    _add_pretrain(sub)
    return top


def subcommands(top: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """{name: parser} of each subcommand of :func:`parser`."""
    action = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


TENSORFLOW_COMMANDS = ("predict", "acquire", "pretrain")  # the commands that run a CNN

# options that name files or folders: made absolute from the current folder before any work
PATH_OPTIONS = ("catalog", "images_root", "out", "labelled", "export", "tasks", "campaign")


def typed_paths(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with every path option absolute (:func:`zoolib.paths.typed`): a path typed on
    the command line is relative to the current folder. ``--model`` too, unless it names a
    shipped model (``real``, ``pretrained``); ``run --params FILE`` is looked for from the
    current folder first (:func:`zoolib.reports.runner.find_params`)."""
    for name in PATH_OPTIONS:
        if getattr(args, name, None) is not None:
            setattr(args, name, str(paths.typed(getattr(args, name))))
    model = getattr(args, "model", None)
    if model is not None and model not in paths.SHIPPED_MODELS:
        args.model = str(paths.typed(model))
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = typed_paths(parser().parse_args(argv))
    if args.command in TENSORFLOW_COMMANDS:
        quiet.tensorflow()  # without its C++ start-up lines on the terminal, as in the notebooks
    try:
        if args.command == "calibrate":
            _calibrate(args)
        elif args.command == "votes":
            _votes(args)
        elif args.command == "acquire":
            from zoolib import acquire

            acquire.acquire(
                args.model, args.catalog, args.out, args.n, labelled=args.labelled,
                images_root=args.images_root, strategy=args.strategy, seed=args.seed,
                campaign_dir=args.campaign, expected_votes=args.expected_votes,
                n_samples=args.samples, beta=args.beta, on_error=args.on_error,
                progress=not args.no_progress, crop_fraction=args.crop_fraction,
            )  # fmt: skip
        elif args.command == "pretrain":
            _pretrain(args)
        elif args.command == "predict":
            from zoolib import predict

            warnings.formatwarning = _one_line_warning
            predict.predict_catalog(
                args.model, args.catalog, args.out, images_root=args.images_root,
                n_samples=args.samples, shard=args.shard, seed=args.seed,
                block_size=args.block_size, expected_votes=args.expected_votes,
                questions=args.questions, crop_fraction=args.crop_fraction,
                allow_outside_root=args.allow_outside_root, overwrite=args.overwrite,
                workers=args.workers, progress=not args.no_progress,
                on_error=args.on_error, precision=args.precision,
                representations=args.representations,
            )  # fmt: skip
        else:
            runner.run(params=args.params, only=args.only, precision=args.precision,
                       values=args.set)  # fmt: skip
    except (runner.RunError, FileNotFoundError, ValueError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
