"""Which way of starting notebook 02 learns best? Measured on the VALIDATION split only.

Usage: python experiments/fine_tune_regimes.py [--seeds 0 1] [--galaxies 4000]

The dataset is notebook 01's default (the gz2 universe, seed 0, 64 px, split 70/10/20). Each
regime trains on the training split with early stopping on the validation split, and is scored
on the validation split (never the test split, which the notebooks report): mean MC-dropout NLL
per question (T = 30), RMSE of the mean rho against true p, and how often the observed votes
fall inside the 80% and 95% intervals of the MC-dropout posterior. Regimes:

* ``pretrained, as shipped``: no training at all;
* ``fine-tune all, lr 1e-4`` and ``fine-tune all, lr 1e-3``: every layer, Adam;
* ``head only, lr 1e-3``: the trunk frozen, only dropout + the last layer trained;
* ``scratch, lr 1e-3``: the paper's training from random weights (ReLU), same epochs budget.

Fine-tuning keeps the starting weights when no epoch beats their validation loss
(``training.train(keep_start=True)``), as notebook 02 does; ``kept start`` says when it did.

Prints one row per regime and seed, then the mean over seeds with the spread (min-max).
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from zoolib.cnn import evaluation, models, posteriors, pretrained, training
from zoolib.data import processed
from zoolib.universe import synthetic
from zoolib.votes import binomial
from zoolib.votes.schema import QUESTIONS, counts

REGIMES = {
    "pretrained, as shipped": dict(init="pretrained", epochs=0),
    "fine-tune all, lr 1e-4": dict(init="pretrained", learning_rate=1e-4),
    "fine-tune all, lr 1e-3": dict(init="pretrained", learning_rate=1e-3),
    "head only, lr 1e-3": dict(init="pretrained", learning_rate=1e-3, freeze_trunk=True),
    "scratch, lr 1e-3": dict(init="scratch", learning_rate=1e-3),
}


def run(regime: dict, x, y, cat, questions, seed: int, epochs: int) -> dict:
    def build():
        if regime["init"] == "scratch":
            return models.build_bayesian_cnn(64, 1, len(questions), seed=seed)
        model, _ = pretrained.initial_model(questions, seed=seed)
        model.get_layer("trunk").trainable = not regime.get("freeze_trunk", False)
        return model

    start = time.perf_counter()
    n_epochs = regime.get("epochs", epochs)
    if n_epochs:
        fit = training.FitSettings(epochs=n_epochs, batch_size=64,
                                   learning_rate=regime["learning_rate"], patience=4, seed=seed)
        history, _, model = training.fit_labels(
            build, x["train"], y["train"], fit, val=(x["val"], y["val"]),
            keep_start=regime["init"] == "pretrained",
        )  # fmt: skip
        epochs_run = len(history["loss"])
        kept = training.best_epoch(history) == 0  # no epoch beat the start
    else:
        model, epochs_run, kept = build(), 0, True
    seconds = time.perf_counter() - start
    rho = posteriors.sample_rho(model, x["val"], 30, seed=seed)
    table = evaluation.evaluate(rho, cat["val"], questions)
    k, n = counts(cat["val"], questions)
    cover = binomial.coverage(rho, k, n, [0.8, 0.95])  # (2, Q)
    row = {"seed": seed, "epochs": epochs_run, "kept start": kept, "seconds": round(seconds)}
    for j, q in enumerate(questions):
        row[f"{q} nll"] = table.loc[("cnn", q), "nll"]
        row[f"{q} rmse_true"] = table.loc[("cnn", q), "rmse_true"]
        row[f"{q} cover80"], row[f"{q} cover95"] = cover[0, j], cover[1, j]
    row["dead features"] = pretrained.dead_features(model, x["val"])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--galaxies", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--regimes", nargs="+", default=list(REGIMES))
    args = parser.parse_args()
    images, catalog = synthetic.simulate(args.galaxies, 64, 1, seed=0, preset="gz2")
    split = processed.assign_splits(len(catalog), (0.7, 0.1, 0.2), 0)
    questions = list(QUESTIONS)
    x = {s: images[split == s] for s in ("train", "val")}
    cat = {s: catalog[split == s].reset_index(drop=True) for s in ("train", "val")}
    y = {s: processed.votes_array(cat[s], questions) for s in x}
    rows = []
    for name in args.regimes:
        for seed in args.seeds:
            rows.append(
                {"regime": name, **run(REGIMES[name], x, y, cat, questions, seed, args.epochs)}
            )
            print(pd.DataFrame(rows[-1:]).to_string(index=False, float_format="%.4f"), flush=True)
    table = pd.DataFrame(rows).drop(columns="seed").astype({"kept start": int})
    mean = table.groupby("regime", sort=False).mean()
    spread = table.groupby("regime", sort=False).agg(lambda v: v.max() - v.min())
    with pd.option_context("display.width", 250, "display.max_columns", 60):
        print("mean over seeds:\n" + mean.T.round(4).to_string())
        print("spread over seeds (max - min):\n" + spread.T.round(4).to_string())


if __name__ == "__main__":
    main()
