"""Does mixed_bfloat16 change zoo's results? float32 and bfloat16 side by side, with intervals.

Usage: python experiments/precision_effect.py [--parts shipped finetune active pretrain]
       [--seeds 0 1 2] [--al-seeds 20] [--pretrain-galaxies 8000] [--pretrain-epochs 3]
       [--out precision_effect.json]

The data are the main job's: notebook 01's default universe (gz2 preset, seed 0, 4,000 galaxies
at 64 px, split 70/10/20). Parts:

* ``shipped``: the shipped pretrained CNN (trained in float32) predicting the test split
  deterministically in both precisions: max and mean |delta rho|, mean |delta logit|.
* ``finetune``: notebook 02 with its default parameters (fine-tune the shipped CNN, Adam 1e-4,
  batch 64, at most 15 epochs, patience 4, keep the start if no epoch beats it) for each seed in
  each precision, trained and evaluated in that precision (T = 30 on the test split): NLL and
  RMSE against the true p per question, randomised-PIT coverage at 80% and 95%, and the BALD
  ranking of the test galaxies (n = their votes). The difference bfloat16 - float32 is paired by
  seed, its mean given with a bootstrap interval over seeds (95%), beside the seed-to-seed
  standard deviation of the float32 value: the noise any single run carries. For BALD, the
  Spearman correlation of the two precisions' rankings (same seed) is shown beside that of two
  float32 seeds (the seed-to-seed floor).
* ``active``: notebook 04's fine-tuning regime with its defaults (20 paired seeds), its trunk
  features computed in each precision: every strategy's curve gap against random, per precision,
  and random's own curve in bfloat16 against float32 (paired by seed, the difference averaged
  over rounds) beside the random_null floor.
* ``pretrain``: ``zoolib.cnn.pretrained.pretrain`` reduced to ``--pretrain-galaxies`` and
  ``--pretrain-epochs`` (not the shipped 60,000 and 15: the same code, in minutes), in each
  precision: its own test metrics and images/s.

Every timing is printed as measured on this machine, both precisions in the same run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import special, stats

from zoolib.active import acquisition, heads, heads_regime, runs, savings
from zoolib.cnn import evaluation, posteriors, pretrained, training
from zoolib.cnn import precision as zprecision
from zoolib.data import processed
from zoolib.universe import synthetic
from zoolib.votes import binomial
from zoolib.votes.schema import QUESTIONS, counts

POLICIES = (zprecision.FLOAT32, zprecision.BFLOAT16)


def universe(galaxies: int = 4000):
    images, catalog = synthetic.simulate(galaxies, 64, 1, seed=0, preset="gz2")
    catalog["split"] = processed.assign_splits(len(catalog), (0.7, 0.1, 0.2), 0)
    return images, catalog


def paired(f32: np.ndarray, b16: np.ndarray) -> dict:
    """Mean of b16 - f32 over seeds with a bootstrap interval, and float32's seed-to-seed SD."""
    diff = np.asarray(b16) - np.asarray(f32)
    low, high = savings.bootstrap_interval(diff, lambda d: d.mean(axis=-1))
    sd = float(np.std(f32, ddof=1)) if len(f32) > 1 else float("nan")
    return {"diff": float(diff.mean()), "ci_low": low, "ci_high": high, "seed_sd_f32": sd}


def shipped(images, catalog) -> dict:
    test = catalog.split.to_numpy() == "test"
    model, _ = pretrained.load(64, 1)
    rho = {}
    for policy in POLICIES:
        zprecision.apply(model, policy)
        rho[policy] = posteriors.deterministic_rho(model, images[test])
    delta = np.abs(rho[POLICIES[1]] - rho[POLICIES[0]])
    logit = np.abs(special.logit(rho[POLICIES[1]]) - special.logit(rho[POLICIES[0]]))
    return {
        "galaxies": int(test.sum()), "max_abs_delta_rho": float(delta.max()),
        "mean_abs_delta_rho": float(delta.mean()), "mean_abs_delta_logit": float(logit.mean()),
    }  # fmt: skip


def finetune_once(images, catalog, policy: str, seed: int) -> tuple[dict, np.ndarray]:
    questions = list(QUESTIONS)
    split = catalog.split.to_numpy()
    x = {s: images[split == s] for s in ("train", "val", "test")}
    cat = {s: catalog[split == s].reset_index(drop=True) for s in x}
    y = {s: processed.votes_array(cat[s], questions) for s in x}
    start = time.perf_counter()
    fit = training.FitSettings(epochs=15, batch_size=64, learning_rate=1e-4, patience=4, seed=seed)
    history, _, model = training.fit_labels(
        lambda: pretrained.initial_model(questions, seed=seed)[0], x["train"], y["train"], fit,
        val=(x["val"], y["val"]), keep_start=True, precision=policy,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    rho = posteriors.sample_rho(model, x["test"], 30, seed=seed)
    table = evaluation.evaluate(rho, cat["test"], questions)
    k, n = counts(cat["test"], questions)
    cover = binomial.randomized_coverage(rho, k, n, [0.8, 0.95], seed)
    mi = acquisition.bald_from_entropies(*acquisition.entropies(rho, n)).sum(axis=1)
    row = {"precision": policy, "seed": seed, "epochs": len(history["loss"]),
           "train_seconds": seconds,
           "train_images_per_s": len(x["train"]) * len(history["loss"]) / seconds}  # fmt: skip
    for j, q in enumerate(questions):
        row[f"{q} nll"] = table.loc[("cnn", q), "nll"]
        row[f"{q} rmse_true"] = table.loc[("cnn", q), "rmse_true"]
        row[f"{q} cover80"], row[f"{q} cover95"] = cover[0, j], cover[1, j]
    return row, mi


def finetune_part(images, catalog, seeds) -> dict:
    rows, mi = [], {}
    for seed in seeds:
        for policy in POLICIES:
            row, mi[(policy, seed)] = finetune_once(images, catalog, policy, seed)
            rows.append(row)
            print(pd.DataFrame([row]).to_string(index=False, float_format="%.4f"), flush=True)
    table = pd.DataFrame(rows)
    kinds = ("nll", "rmse_true", "cover80", "cover95")
    metrics = [c for c in table.columns if c.split()[-1] in kinds]
    by = {p: table[table.precision == p].sort_values("seed") for p in POLICIES}
    out = {m: paired(by[POLICIES[0]][m].to_numpy(), by[POLICIES[1]][m].to_numpy()) for m in metrics}
    out["train_images_per_s"] = {p: float(by[p]["train_images_per_s"].median()) for p in POLICIES}
    cross = [stats.spearmanr(mi[(POLICIES[0], s)], mi[(POLICIES[1], s)])[0] for s in seeds]
    floor = [stats.spearmanr(mi[(POLICIES[0], a)], mi[(POLICIES[0], b)])[0]
             for i, a in enumerate(seeds) for b in seeds[i + 1:]]  # fmt: skip
    out["bald_spearman"] = {"f32_vs_bf16_same_seed": cross, "f32_seed_vs_seed": floor}
    out["rows"] = rows
    return out


def active_part(images, catalog, n_seeds: int) -> dict:
    settings = dict(question="all", strategies=("random", "random_null", "bald", "power_bald"),
                    n_initial=32, acquire_per_round=32, n_rounds=15, n_seeds=n_seeds,
                    head=heads.HeadSettings(steps=500, learning_rate=0.03, l2=0.01))  # fmt: skip
    model, _ = pretrained.load(64, 1)
    curves, out = {}, {}
    for policy in POLICIES:
        zprecision.apply(model, policy)
        start = time.perf_counter()
        features = posteriors.trunk_features(model, images)
        seconds = time.perf_counter() - start
        s = runs.Settings(**settings, precision=policy)
        with_tmp = Path(f"/tmp/zoo-precision-effect-{policy}")
        curves[policy], _ = heads_regime.run(s, features, catalog, list(QUESTIONS), with_tmp,
                                             progress=False)  # fmt: skip
        _, gaps = savings.summary(curves[policy], "all rmse_true")
        shown = {k: {m: v for m, v in g.items() if m != "per_seed"} for k, g in gaps.items()}
        out[policy] = {"feature_seconds": seconds, "curve_gap": shown}
    column = "all rmse_true"
    per = {p: curves[p][curves[p].strategy == "random"].sort_values(["seed", "round"])
           for p in POLICIES}  # fmt: skip
    f32 = per[POLICIES[0]][column].to_numpy().reshape(n_seeds, -1)[:, 1:].mean(axis=1)
    b16 = per[POLICIES[1]][column].to_numpy().reshape(n_seeds, -1)[:, 1:].mean(axis=1)
    out["random_curve_bf16_minus_f32"] = paired(f32, b16)
    return out


def pretrain_part(galaxies: int, epochs: int) -> dict:
    out = {}
    for policy in POLICIES:
        settings = pretrained.Settings(n_galaxies=galaxies, epochs=epochs, precision=policy,
                                       eval_samples=30)  # fmt: skip
        folder = Path(f"/tmp/zoo-precision-pretrain-{policy}")
        manifest = pretrained.pretrain(settings, folder, folder / "work", verbose=0)
        out[policy] = {"images_per_second": manifest["training"]["images_per_second"],
                       "seconds_training": manifest["training"]["seconds_training"],
                       "epochs_run": manifest["training"]["epochs_run"],
                       "test": manifest["test"]["cnn"]}  # fmt: skip
        print(policy, json.dumps(out[policy], indent=1), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", nargs="+", default=["shipped", "finetune", "active", "pretrain"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--al-seeds", type=int, default=20)
    parser.add_argument("--pretrain-galaxies", type=int, default=8000)
    parser.add_argument("--pretrain-epochs", type=int, default=3)
    parser.add_argument("--out", default="precision_effect.json")
    args = parser.parse_args()
    print(f"CPU: {zprecision.cpu_model()}; bfloat16 units: {zprecision.native_units()}")
    images, catalog = universe()
    results = {"cpu": zprecision.cpu_model(), "units": zprecision.native_units()}
    for part in args.parts:
        start = time.perf_counter()
        if part == "shipped":
            results[part] = shipped(images, catalog)
        elif part == "finetune":
            results[part] = finetune_part(images, catalog, args.seeds)
        elif part == "active":
            results[part] = active_part(images, catalog, args.al_seeds)
        elif part == "pretrain":
            results[part] = pretrain_part(args.pretrain_galaxies, args.pretrain_epochs)
        print(f"== {part} ({time.perf_counter() - start:.0f} s)")
        shown = {k: v for k, v in results[part].items() if k != "rows"}
        print(json.dumps(shown, indent=1), flush=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print("->", args.out)


if __name__ == "__main__":
    main()
