"""Where does the shipped model fall short of what its images show? A diagnostic, not a test.

Usage: python experiments/edge_on_gap.py [--galaxies 4000] [--seed 20261130]

Simulates a fresh ``gz2`` universe at 64 px (a seed no notebook or the pretraining uses),
predicts it with the shipped pretrained model (mean of T = 30 MC-dropout samples) and prints,
per question and per group of galaxies, the RMSE of the CNN, of the constant baseline (the
group's mean true p) and of the recoverable p
(:func:`zoolib.universe.volunteers.recoverable_probabilities`) against the true p, the CNN's
distance to the recoverable p, and each group's share of the CNN's squared error. For edge-on it
then bins the featured galaxies by axis ratio and by disk scale over PSF, the two latents the
edge-on truth depends on. Also prints the manifest's final training and validation losses (equal
losses: the model does not overfit its 54,000 galaxies).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from zoolib.cnn import posteriors, pretrained
from zoolib.universe import synthetic
from zoolib.votes.schema import QUESTIONS


def rmse(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def by_group(cat: pd.DataFrame, rho: np.ndarray, questions: list[str]) -> pd.DataFrame:
    rows = []
    for j, q in enumerate(questions):
        truth, shown = cat[f"true_p_{q}"].to_numpy(), cat[f"recoverable_p_{q}"].to_numpy()
        n = cat[QUESTIONS[q].total_column].to_numpy()
        error = (rho[:, j] - truth) ** 2
        groups = {
            "all": np.ones(len(cat), bool),
            "featured": cat["morphology"].eq("featured").to_numpy(),
            "smooth": cat["morphology"].eq("smooth").to_numpy(),
            "N < 5": n < 5,
            "N 5-9": (n >= 5) & (n < 10),
            "N >= 10": n >= 10,
        }
        for name, m in groups.items():
            if not m.any():  # e.g. no smooth-or-featured galaxy has N < 5 in gz2
                continue
            rows.append(
                {
                    "question": q,
                    "group": name,
                    "share of galaxies": m.mean(),
                    "cnn": rmse(rho[m, j], truth[m]),
                    "baseline": rmse(truth[m].mean(), truth[m]),
                    "recoverable": rmse(shown[m], truth[m]),
                    "cnn vs recoverable": rmse(rho[m, j], shown[m]),
                    "share of cnn squared error": error[m].sum() / error.sum(),
                }
            )
    return pd.DataFrame(rows)


def edge_on_bins(cat: pd.DataFrame, rho_edge: np.ndarray) -> list[pd.DataFrame]:
    featured = cat["morphology"].eq("featured").to_numpy()
    d = pd.DataFrame(
        {
            "axis ratio": cat["axis_ratio"],
            "disk scale / psf": cat["disk_scale_px"] / cat["psf_sigma_px"],
            "cnn": rho_edge,
            "true": cat["true_p_disk-edge-on"],
            "shown": cat["recoverable_p_disk-edge-on"],
        }
    )[featured]
    bins = {
        "axis ratio": pd.cut(d["axis ratio"], [0, 0.2, 0.3, 0.4, 0.6, 1]),
        "disk scale / psf": pd.qcut(d["disk scale / psf"], 4),
    }
    return [
        d.groupby(b, observed=True)
        .apply(
            lambda g: pd.Series(
                {
                    "galaxies": len(g),
                    "mean true p": g["true"].mean(),
                    "mean cnn": g["cnn"].mean(),
                    "rmse cnn": rmse(g["cnn"], g["true"]),
                    "rmse recoverable": rmse(g["shown"], g["true"]),
                }
            )
        )
        .rename_axis(name)
        for name, b in bins.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--galaxies", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=20261130)
    args = parser.parse_args()
    model, manifest = pretrained.load(64, 1)
    history = manifest["training"]["history"]
    best = int(np.argmin(history["val_loss"]))
    print(
        f"pretraining, best epoch {best + 1}: training loss {history['loss'][best]:.2f}, "
        f"validation loss {history['val_loss'][best]:.2f} nats"
    )
    questions = manifest["architecture"]["questions"]
    images, cat = synthetic.simulate(args.galaxies, 64, 1, seed=args.seed, preset="gz2")
    rho = posteriors.sample_rho(model, images, 30, seed=0).mean(-1)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(by_group(cat, rho, questions).round(3).to_string(index=False))
        for table in edge_on_bins(cat, rho[:, questions.index("disk-edge-on")]):
            print("\nedge-on, featured galaxies:\n" + table.round(3).to_string())


if __name__ == "__main__":
    main()
