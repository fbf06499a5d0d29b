"""How should the fine-tuning regime train its heads? Measured on the VALIDATION split only.

Usage: python experiments/head_settings.py [--dataset synthetic] [--seeds 4]

Notebook 04's fine-tuning regime trains a fresh MC-dropout head (:mod:`zoolib.active.heads`) on the
pretrained trunk's features of the labelled galaxies each round. This script chooses its
training settings: for labelled sets of 32, 128 and 512 random pool galaxies (several seeds),
it trains a head with each setting and prints the RMSE of the MC-dropout mean (T = 30) against
the true p on the validation split, per question, and the training loss after the setting's
steps against four times as many (a converged head gains nothing from more steps).
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import pandas as pd

from zoolib.active import heads
from zoolib.cnn import evaluation, posteriors, pretrained
from zoolib.data import processed
from zoolib.votes.schema import counts

GRID = {
    "l2": [1e-3, 1e-2, 1e-1, 1.0],
    "steps, learning rate": [(300, 0.05), (500, 0.03), (1000, 0.02)],
}
SIZES = (32, 128, 512)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args()
    ds = processed.load_processed(args.dataset)
    cat = ds.catalog.reset_index(drop=True)
    trunk, _ = pretrained.load(ds.manifest["image_size"], ds.manifest["channels"])
    x = posteriors.trunk_features(trunk, ds.images)
    k, n = counts(cat, ds.questions)
    pool = np.flatnonzero(cat.split == "train")
    val = np.flatnonzero(cat.split == "val")
    rows = []
    for l2, (steps, lr) in itertools.product(GRID["l2"], GRID["steps, learning rate"]):
        settings = heads.HeadSettings(steps=steps, learning_rate=lr, l2=l2)
        longer = heads.HeadSettings(steps=4 * steps, learning_rate=lr, l2=l2)
        for size, seed in itertools.product(SIZES, range(args.seeds)):
            lab = np.random.default_rng(seed).choice(pool, size, replace=False)
            w, b = heads.fit(x[lab], k[lab], n[lab], settings, np.random.default_rng(seed))
            w4, b4 = heads.fit(x[lab], k[lab], n[lab], longer, np.random.default_rng(seed))
            rho = heads.sample_rho(
                x[val], w, b, 30, settings.dropout_rate, np.random.default_rng(0)
            )
            m = evaluation.question_metrics(rho, cat.iloc[val], ds.questions)["cnn"]
            row = {"l2": l2, "steps": steps, "learning rate": lr, "labelled": size, "seed": seed}
            row.update({q: m[q]["rmse_true"] for q in ds.questions})
            row["loss gain of 4x steps"] = heads.mean_loss(
                x[lab], k[lab], n[lab], w, b
            ) - heads.mean_loss(x[lab], k[lab], n[lab], w4, b4)
            rows.append(row)
    table = pd.DataFrame(rows).groupby(["l2", "steps", "learning rate", "labelled"]).mean()
    wide = table.drop(columns="seed").unstack("labelled")
    with pd.option_context("display.width", 250, "display.max_columns", 40):
        print("validation RMSE against true p (mean over seeds), by labelled-set size:")
        print(wide.round(4).to_string())


if __name__ == "__main__":
    main()
