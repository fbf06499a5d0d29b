"""The paper's regime at a scale this CPU affords: is BALD better than random when the CNN itself
is retrained on the images every round? (Issue 22, item 7.)

Usage:
    python experiments/paper_regime.py calibrate      # how long must a round train?
    python experiments/paper_regime.py run [--seeds 6] [--out reports/paper_regime]

Data: a simulated universe imitating GZ DECaLS (``preset="decals"``, N about 40, like the paper's
GZ2 sample), ``--galaxies`` 6,000 at 32 px (the largest size whose 6-seed run fits an afternoon on
2 CPU cores), split 70/10/20 with seed 0, cut to galaxies with N > 36 for smooth-or-featured (the
paper's cut). One question, smooth-or-featured, scored with expected N = 40 (as the paper).

``calibrate`` trains the paper's CNN from random weights on 256 random pool galaxies and on
1,280 (the first and the last labelled-set size), and warm-starts the 256 model on 384, printing
the validation binomial NLL per epoch: the training length of the run is chosen where it is flat
(validation split only). ``run`` then runs ``zoolib.active.cnn_regime.run`` (regime ``scratch``,
warm start as the seed code's README runs it: each round continues from the last round's model)
with 256 initial labels and 8 rounds of 128, strategies random (and its extra reference streams),
random_null and bald, and prints the paired curve gaps against the mean of random's streams with
95% intervals (bootstrap over seeds, :mod:`zoolib.active.savings`) in the test NLL (the paper's
metric) and the RMSE against true p, and the wall time. Results: ``docs/active-learning.md``, "The
paper's regime at 32 px".
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from zoolib import paths
from zoolib.active import cnn_regime, savings
from zoolib.active.runs import Settings
from zoolib.cnn import models, training
from zoolib.data import pipeline, processed
from zoolib.universe import synthetic
from zoolib.votes.schema import question as question_of

QUESTION = "smooth-or-featured"
MIN_VOTES = 36
SIZE = 32


def universe(n_galaxies: int, seed: int = 0):
    """(images, catalogue) of the decals universe at 32 px, split, cut to N > 36."""
    images, catalog = synthetic.simulate(n_galaxies, SIZE, 1, seed=seed, preset="decals")
    catalog["split"] = processed.assign_splits(len(catalog), (0.7, 0.1, 0.2), seed)
    keep = (catalog[question_of(QUESTION).total_column] > MIN_VOTES).to_numpy()
    print(f"N > {MIN_VOTES}: keeping {keep.sum()} of {len(keep)} galaxies")
    return images[keep], catalog[keep].reset_index(drop=True)


def calibrate(images, catalog, epochs: int, precision: str) -> dict:
    """Validation NLL per epoch of scratch training on 256 and 1,280 galaxies, and of a warm
    start from the 256 model on 384 (256 + 128)."""
    split = catalog["split"].to_numpy()
    pool, val = np.flatnonzero(split == "train"), np.flatnonzero(split == "val")
    order = np.random.default_rng(0).permutation(pool)
    votes = processed.votes_array(catalog, [QUESTION])
    val_ds = pipeline.make_tf_dataset(images[val], votes[val], 256, shuffle=False,
                                      augment_images=False)  # fmt: skip

    def fit(rows, start=None):
        ds = pipeline.make_tf_dataset(images[rows], votes[rows], min(256, len(rows)), seed=0)
        build = start or (lambda: models.build_bayesian_cnn(SIZE, 1, 1, seed=0))
        t0 = time.perf_counter()
        history, _, model = training.train(build, ds, val_ds, epochs, patience=epochs,
                                           precision=precision)  # fmt: skip
        return history["val_loss"], model, time.perf_counter() - t0

    out = {}
    for n in (256, 1280):
        out[f"scratch {n}"], model, seconds = fit(order[:n])
        print(f"scratch on {n}: {seconds:.0f} s")
        if n == 256:
            out["warm 384"], _, seconds = fit(order[:384], start=model)
            print(f"warm start on 384: {seconds:.0f} s")
    for name, losses in out.items():
        best = int(np.argmin(losses))
        print(f"{name:12s} best epoch {best + 1:3d} (val NLL {losses[best]:.4f}); "
              + " ".join(f"{v:.3f}" for v in losses[::5]))  # fmt: skip
    return out


def settings_for(args) -> Settings:
    return Settings(
        regime="scratch", question=QUESTION, metric="nll",
        strategies=("random", "random_null", "bald"), random_streams=args.random_streams,
        n_initial=256, acquire_per_round=128, n_rounds=args.rounds, n_seeds=args.seeds,
        n_samples=15, expected_votes={QUESTION: 40}, tree_votes=False,
        initial_steps=args.initial_steps, steps_per_round=args.steps_per_round, batch_size=128,
        warm_start=True, precision=args.precision,
    )  # fmt: skip


def report(curves) -> dict:
    """Paired curve gaps (below zero: better than random's mean) and savings at 25/50/75% of
    the budget, with 95% intervals over seeds, in the test NLL and the RMSE against true p."""
    out = {}
    for metric in ("nll", "rmse_true"):
        column = f"{QUESTION} {metric}"
        saves, gaps = savings.summary(curves, column, fractions=(0.25, 0.5, 0.75))
        print(f"\n{column}: paired against the mean of random's streams")
        for s, g in gaps.items():
            at = " / ".join(f"{v['saving']:+.0%} [{v['ci_low']:+.0%}, {v['ci_high']:+.0%}]"
                            for v in saves[s].values())  # fmt: skip
            print(f"  {s:12s} gap {g['mean']:+.4f} [{g['ci_low']:+.4f}, {g['ci_high']:+.4f}]"
                  f"  savings 25/50/75%: {at}")  # fmt: skip
        out[metric] = {"savings": saves, "curve_gap": gaps}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=["calibrate", "run"])
    p.add_argument("--galaxies", type=int, default=6000)
    p.add_argument("--epochs", type=int, default=60, help="calibrate: epochs per fit")
    p.add_argument("--seeds", type=int, default=6)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--random-streams", type=int, default=2)
    p.add_argument("--initial-steps", type=int, default=400)
    p.add_argument("--steps-per-round", type=int, default=150)
    p.add_argument("--precision", default="mixed_bfloat16")
    p.add_argument("--out", type=Path, default=paths.RUNS_DIR / "paper_regime")
    args = p.parse_args()
    images, catalog = universe(args.galaxies)
    if args.what == "calibrate":
        calibrate(images, catalog, args.epochs, args.precision)
        return
    settings = settings_for(args)
    t0 = time.perf_counter()
    curves, _ = cnn_regime.run(settings, images, catalog, [QUESTION], args.out / settings.digest())
    seconds = time.perf_counter() - t0
    result = report(curves) | {"wall_s": seconds, "settings": settings.to_dict()}
    print(f"\nwall time {seconds / 60:.1f} min")
    (args.out / f"{settings.digest()}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
