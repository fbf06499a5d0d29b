"""Command line: ``python -m zoolib run [--params default|ci|full|FILE.yaml] [--only 02 ...]``."""

from __future__ import annotations

import argparse
import sys

from zoolib import runner


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zoolib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="run the numbered notebooks into reports/")
    run_p.add_argument("--params", default="default", help="ci, default, full or a YAML file")
    run_p.add_argument("--only", nargs="*", help="notebook prefixes to run, e.g. 01 02")
    args = parser.parse_args(argv)
    try:
        runner.run(params=args.params, only=args.only)
    except (runner.RunError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
