"""Which choices make the CNN learn real galaxy images? Cross-validated on real SDSS cutouts.

Usage: python experiments/real_images.py [--catalog ../shared/data/sdss_gz1_sample/catalog.csv]
       [--folds 5] [--regimes head finetune scratch] [--crops 1.0 0.5]

The SDSS cutouts with Galaxy Zoo 1 consensus classes (423 px colour JPEGs; the project ships 60
of them in data/raw/sdss_gz1_sample, the shared data holds 400) are read as notebook 01 reads a
catalogue, at 64 px. Galaxies classed elliptical (smooth) or spiral / edge-on (featured) are cut
into stratified folds; for each fold a model is trained on the other folds (10% of them held
out for early stopping) and predicts the fold. Regimes:

* ``head``: the shipped pretrained trunk, frozen, and a fresh MC-dropout head (zoolib.active.heads);
* ``finetune``: the shipped pretrained CNN, every layer, Adam at 1e-4 (notebook 02's default);
* ``scratch``: the paper's CNN from random weights, Adam at 1e-3 (greyscale or colour).

Prints accuracy (rho_smooth > 0.5 against the class) and Bernoulli NLL of the out-of-fold
predictions, pooled over folds, with 95% bootstrap intervals over galaxies, and the majority
class and constant-prediction NLL beside them.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from zoolib import paths, prepare
from zoolib.active import heads
from zoolib.cnn import posteriors, pretrained, probes, training
from zoolib.data import processed
from zoolib.votes.schema import counts

QUESTION = "smooth-or-featured"
SMOOTH = {"elliptical"}
FEATURED = {"spiral_clockwise", "spiral_anticlockwise", "edge_on"}


def fit_predict(regime, x, k, n, train, test, seed, epochs, channels) -> np.ndarray:
    """Mean MC-dropout rho_smooth (T = 30) of the ``test`` rows after training on ``train``."""
    rng = np.random.default_rng(seed)
    if regime == "head":
        model, _ = pretrained.load(64, 1)
        f = posteriors.trunk_features(model, x)
        settings = heads.HeadSettings(steps=500, learning_rate=0.03, l2=0.01)
        w, b = heads.fit(f[train], k[train], n[train], settings, rng)
        return heads.sample_rho(f[test], w, b, 30, 0.5, rng).mean(-1)[:, 0]
    votes = np.stack([k, n], axis=-1).astype(np.float32)  # as processed.votes_array: [k, N]
    if regime == "finetune":
        build = lambda: pretrained.initial_model([QUESTION], seed=seed)[0]  # noqa: E731
        lr = 1e-4
    else:
        from zoolib.cnn import models

        build = lambda: models.build_bayesian_cnn(64, channels, 1, seed=seed)  # noqa: E731
        lr = 1e-3
    fit = training.FitSettings(epochs=epochs, batch_size=32, learning_rate=lr, patience=6,
                               val_fraction=0.1, val_batch_size=64, seed=seed)  # fmt: skip
    _, _, model = training.fit_labels(build, x[train], votes[train], fit,
                                      keep_start=regime == "finetune")  # fmt: skip
    return posteriors.sample_rho(model, x[test], 30, seed=seed).mean(-1)[:, 0]


def scores(rho: np.ndarray, smooth: np.ndarray, n_boot: int = 4000) -> dict:
    rho = np.clip(rho, 1e-6, 1 - 1e-6)
    correct = (rho > 0.5) == smooth
    nll = -np.where(smooth, np.log(rho), np.log1p(-rho))
    idx = np.random.default_rng(0).integers(0, len(rho), (n_boot, len(rho)))
    out = {}
    for name, v in (("accuracy", correct.astype(float)), ("nll", nll)):
        boots = v[idx].mean(axis=1)
        out[name] = v.mean()
        out[f"{name} 95%"] = f"[{np.quantile(boots, 0.025):.3f}, {np.quantile(boots, 0.975):.3f}]"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--catalog", default=str(paths.RAW_DIR / "sdss_gz1_sample" / "catalog.csv"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--regimes", nargs="+", default=["head", "finetune", "scratch"])
    parser.add_argument("--crops", type=float, nargs="+", default=[1.0, 0.5])
    parser.add_argument("--channels", type=int, nargs="+", default=[1])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for crop, channels in itertools.product(args.crops, args.channels):
            prepare.prepare_catalog(
                f"real-{crop}-{channels}",
                args.catalog,
                image_size=64,
                channels=channels,
                crop_fraction=crop,
                split_fractions=(1.0, 0.0, 0.0),
                root=Path(tmp),
            )
            ds = processed.load_processed(f"real-{crop}-{channels}", root=Path(tmp))
            cls = ds.catalog["gz1_class"].to_numpy()
            use = np.flatnonzero(np.isin(cls, list(SMOOTH | FEATURED)))
            x = ds.images[use]
            k, n = (a[use] for a in counts(ds.catalog, [QUESTION]))
            smooth = np.isin(cls[use], list(SMOOTH))
            fold = probes.stratified_folds(smooth.astype(int), args.folds)
            for regime in args.regimes:
                if regime != "scratch" and channels != 1:
                    continue  # the pretrained CNN is greyscale
                start, rho = time.perf_counter(), np.empty(len(use))
                for f in range(args.folds):
                    train, test = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
                    rho[test] = fit_predict(regime, x, k, n, train, test, f, args.epochs, channels)
                row = {
                    "regime": regime,
                    "crop": crop,
                    "channels": channels,
                    "galaxies": len(use),
                    **scores(rho, smooth),
                    "seconds": round(time.perf_counter() - start),
                }
                rows.append(row)
                print(pd.DataFrame([row]).to_string(index=False), flush=True)
            majority = max(smooth.mean(), 1 - smooth.mean())
            constant = -np.mean(np.where(smooth, np.log(smooth.mean()), np.log1p(-smooth.mean())))
            print(f"majority class {majority:.3f}, constant NLL {constant:.3f}", flush=True)
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
