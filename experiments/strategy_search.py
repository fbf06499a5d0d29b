"""Which acquisition strategies are worth showing in notebook 04? Chosen WITHOUT the test split.

Usage: python experiments/strategy_search.py [--dataset synthetic] [--seeds 20]

Runs notebook 04's fine-tuning regime (its default settings) on a copy of the dataset in which
the test split is removed, the validation split plays the test split's part, and 400 random
galaxies of the pool become the validation split (for the gate). The learning curves, curve gaps
and savings printed here never touch the galaxies notebook 04 reports on, so choosing the
notebook's strategies from them does not tune on its test split.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd

from zoolib import paths
from zoolib.active import heads_regime, runs, savings
from zoolib.cnn import posteriors, pretrained
from zoolib.data import processed

STRATEGIES = ("random", "random_null", "power_bald", "entropy", "kmeans", "diverse_bald",
              "bald_ensemble", "bald", "epig", "power_epig", "variance", "power_bald_lure",
              "power_epig_lure")  # fmt: skip


def validation_copy(catalog: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Test rows dropped; val becomes test; 400 random train rows become val."""
    cat = catalog[catalog.split != "test"].copy()
    cat["split"] = cat["split"].replace({"val": "test"})
    train = np.flatnonzero(cat.split.to_numpy() == "train")
    chosen = np.random.default_rng(seed).choice(train, 400, replace=False)
    cat.iloc[chosen, cat.columns.get_loc("split")] = "val"
    return cat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--question", default=runs.Settings.question)
    parser.add_argument("--metric", nargs="+", default=["rmse_asked", "rmse_true", "nll"])
    parser.add_argument("--samples", type=int, default=runs.Settings.n_samples)
    args = parser.parse_args()
    ds = processed.load_processed(args.dataset)
    keep = np.flatnonzero(ds.catalog.split.to_numpy() != "test")
    cat = validation_copy(ds.catalog).reset_index(drop=True)
    trunk, _ = pretrained.load(ds.manifest["image_size"], ds.manifest["channels"])
    features = posteriors.trunk_features(trunk, ds.images[keep])
    settings = runs.Settings(  # notebook 04's defaults (tested equal) but for these
        question=args.question, strategies=tuple(args.strategies), n_seeds=args.seeds,
        n_samples=args.samples,
    )  # fmt: skip
    start = time.perf_counter()
    folder = paths.RUNS_DIR / f"strategy-search-{args.dataset}-{settings.digest()}"
    curves, _ = heads_regime.run(settings, features, cat, ds.questions, folder)
    print(f"{time.perf_counter() - start:.0f} s")
    report = {}
    for metric in args.metric:
        column = f"{args.question} {metric}"
        saving, gap = savings.summary(curves, column, fractions=(0.25, 0.5, 0.75))
        print(f"== {column}")
        for s in gap:
            g = gap[s]
            line = ", ".join(f"{t} {v['saving']:+.0%} [{v['ci_low']:+.0%}, {v['ci_high']:+.0%}]"
                             for t, v in saving[s].items())  # fmt: skip
            interval = f"{g['mean']:+.5f} [{g['ci_low']:+.5f}, {g['ci_high']:+.5f}]"
            print(f"{s:14s} gap {interval}; savings {line}")
        gaps = {s: {k: v for k, v in g.items() if k != "per_seed"} for s, g in gap.items()}
        report[column] = {"curve_gap": gaps, "savings": saving}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
