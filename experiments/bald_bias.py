"""Why does BALD do worse than random in notebook 04? Its heads, split by morphology.

Usage: python experiments/bald_bias.py RUN_FOLDER [--strategy bald] [--dataset synthetic]

RUN_FOLDER is a fine-tuning run of notebook 04 (``data/runs/<dataset>-finetune-<digest>``).
For every seed, the heads of ``random`` and of ``--strategy`` at the last round are retrained
from the run files (same streams, so the same heads) and their test RMSE against the true p is
split into featured and smooth galaxies. If BALD's labelled set, skewed towards featured
galaxies, buys accuracy there at the cost of the smooth ones, the paired difference is negative
for featured and positive for smooth: the sampling bias of uncertainty sampling.
Prints the mean paired difference (strategy minus random) with a 95% bootstrap interval over
seeds, per question and morphology, and the featured share of each labelled set.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from zoolib.active import heads, runs, savings
from zoolib.active.heads_regime import Data
from zoolib.cnn import posteriors, pretrained
from zoolib.data import processed


def final_rmse(d: Data, settings: runs.Settings, run_dir: Path, strategy: str, seed: int):
    header = json.loads(runs.run_file(run_dir, strategy, seed).read_text())["header"]
    rounds = runs.read_run(runs.run_file(run_dir, strategy, seed), header)
    last = len(rounds) - 1
    labelled = d.rows(runs.labelled_after(rounds[:last]))
    w, b = heads.fit(
        d.features[labelled],
        d.k[labelled],
        d.n[labelled],
        settings.head,
        runs.stream(seed, last, "train"),
    )
    rho = heads.sample_rho(
        d.features[d.test],
        w,
        b,
        settings.n_samples,
        settings.head.dropout_rate,
        runs.stream(seed, last, "evaluate"),
    )
    test = d.catalog.iloc[d.test]
    featured = (test["morphology"] == "featured").to_numpy()
    out = {}
    for j, q in enumerate(d.questions):
        err = (rho[:, j].mean(-1) - test[f"true_p_{q}"].to_numpy()) ** 2
        out[(q, "featured")] = np.sqrt(err[featured].mean())
        out[(q, "smooth")] = np.sqrt(err[~featured].mean())
    share = (d.catalog.iloc[labelled]["morphology"] == "featured").mean()
    return out, share


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--strategy", default="bald")
    parser.add_argument("--dataset", default="synthetic")
    args = parser.parse_args()
    first = next(args.run_dir.glob("random-seed*.json"))
    header = json.loads(first.read_text())["header"]
    settings = runs.Settings.from_dict(header["settings"])
    ds = processed.load_processed(args.dataset)
    trunk, _ = pretrained.load(ds.manifest["image_size"], ds.manifest["channels"])
    d = Data.build(posteriors.trunk_features(trunk, ds.images), ds.catalog, header["questions"])
    diffs, shares = [], {"random": [], args.strategy: []}
    for seed in settings.seeds:
        ours, share = final_rmse(d, settings, args.run_dir, args.strategy, seed)
        ref, ref_share = final_rmse(d, settings, args.run_dir, "random", seed)
        diffs.append({k: ours[k] - ref[k] for k in ours})
        shares[args.strategy].append(share)
        shares["random"].append(ref_share)
    table = pd.DataFrame(diffs)
    rows = []
    for col in table.columns:
        low, high = savings.bootstrap_interval(table[col].to_numpy(), lambda v: v.mean(axis=-1))
        rows.append(
            {
                "question": col[0],
                "test galaxies": col[1],
                "mean difference": table[col].mean(),
                "ci_low": low,
                "ci_high": high,
            }
        )
    print(
        f"{args.strategy} minus random, final-round test RMSE against true p, {len(table)} seeds:"
    )
    print(pd.DataFrame(rows).round(4).to_string(index=False))
    print({k: round(float(np.mean(v)), 3) for k, v in shares.items()}, "featured share of labelled")


if __name__ == "__main__":
    main()
