r"""Active learning in the paper's regime (``regime: "scratch"``): CNNs trained on the images.

Faithful to the code of Walmsley et al. (2020): round 0 trains the CNN from random weights for
``initial_steps`` optimiser steps of ``batch_size`` (1,875 of 256), each later round continues
from the last model (``warm_start``) for ``steps_per_round`` steps (750), with augmentation; the
pool is scored with T MC-dropout samples and an expected N (40 in the paper); 256 initial
galaxies and 25 rounds of 128 (``notebooks/params/paper.yaml``). Steps become epochs of the
labelled set, ``ceil(steps * batch / labelled)``, so the number of optimiser steps is the
paper's to within one epoch.

The splits, strategies, streams, run files, curves and the learning gate are those of the
fine-tuning regime (:mod:`zoolib.finetune`, :mod:`zoolib.runs`), except that the oracle is not
offered here (each candidate would cost a CNN training). Each round's model is saved beside the
run file, so a killed run resumes after its last complete round with identical results.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from zoolib import evaluation, runs, strategies
from zoolib.runs import ORACLE, Settings, stream
from zoolib.schema import ID_COLUMN, SPLIT_COLUMN, counts


def epochs_for(steps: int, batch_size: int, n_labelled: int) -> int:
    """Epochs of ``n_labelled`` galaxies in batches of ``batch_size`` that make ``steps`` steps."""
    per_epoch = math.ceil(n_labelled / batch_size)
    return max(1, math.ceil(steps / per_epoch))


def model_file(run_dir, strategy: str, seed: int, round_: int) -> Path:
    """The model of one round (round 0 is shared by the strategies of a seed)."""
    name = f"seed{seed}-round000" if round_ == 0 else f"{strategy}-seed{seed}-round{round_:03d}"
    return Path(run_dir) / f"{name}.keras"


def _metrics(model, images, catalog, questions, settings, rng_seed, baseline=None) -> dict:
    from zoolib import posteriors

    rho = posteriors.sample_rho(model, images, settings.n_samples, seed=rng_seed)
    out = evaluation.question_metrics(rho, catalog, questions, baseline)
    return out if baseline is not None else out["cnn"]


def _train(images, catalog, rows, questions, settings, seed, r, start):
    from zoolib import data, models, pipeline, training

    votes = data.votes_array(catalog.iloc[rows], questions)
    batch = min(settings.batch_size, len(rows))
    train_seed = int(stream(seed, r, "train").integers(2**31))
    ds = pipeline.make_tf_dataset(images[rows], votes, batch, seed=train_seed)
    steps = settings.initial_steps if r == 0 else settings.steps_per_round
    build = (
        partial(models.load_model, start)
        if start is not None
        else partial(
            models.build_bayesian_cnn,
            images.shape[1],
            images.shape[3],
            len(questions),
            seed=train_seed,
        )  # fmt: skip
    )
    epochs = epochs_for(steps, batch, len(rows))
    return training.train(build, ds, None, epochs, seed=train_seed, precision=settings.precision)[2]


def _gate(model, images, catalog, val, labelled, questions, settings, seed) -> None:
    base = evaluation.baseline_fractions(catalog.iloc[labelled], questions)
    val_metrics = _metrics(model, images[val], catalog.iloc[val], questions, settings, seed, base)
    pick = lambda m: float(m[settings.question][settings.metric])  # noqa: E731
    raise_what = f"n_initial (now {settings.n_initial}) or initial_steps ({settings.initial_steps})"
    runs.gate(pick(val_metrics["cnn"]), pick(val_metrics["baseline"]), settings, seed, raise_what)


def run(
    settings: Settings,
    images: np.ndarray,
    catalog: pd.DataFrame,
    questions: list[str],
    run_dir,
    progress: bool = True,
    stop_after: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run (or resume) every strategy and seed of ``settings`` on the images; return (curves,
    acquisitions) as :func:`zoolib.finetune.run` does. Turns on TensorFlow's op determinism
    for the rest of the process (resume gives identical results)."""
    import tensorflow as tf
    from tqdm.auto import tqdm

    from zoolib import models, posteriors, precision
    from zoolib.files import save_model

    unsupported = [s for s in settings.strategies
                   if s == ORACLE or "scratch" not in strategies.lookup(s).regimes]  # fmt: skip
    if settings.regime != "scratch" or unsupported:
        raise ValueError(
            f"active.run runs regime 'scratch', without the oracle and the strategies that "
            f"need the pretrained trunk's features or shared masks: remove {unsupported}"
        )
    tf.config.experimental.enable_op_determinism()
    catalog = catalog.reset_index(drop=True)
    split = catalog[SPLIT_COLUMN].to_numpy()
    pool, val, test = (np.flatnonzero(split == s) for s in ("train", "val", "test"))
    if settings.budget[-1] > len(pool):
        raise ValueError(f"the label budget {settings.budget[-1]} exceeds the pool of {len(pool)}")
    cols = (
        list(range(len(questions)))
        if settings.question == "all"
        else [questions.index(settings.question)]
    )
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    k, n = counts(catalog, questions)
    header = {
        "settings": settings.to_dict(), "catalog": runs.catalog_fingerprint(catalog),
        "questions": list(questions),
        "data": runs.array_digest(images, k, n, runs.truth(catalog, questions)),
    }  # fmt: skip
    ids = catalog[ID_COLUMN].to_numpy()
    position = {i: p for p, i in enumerate(ids)}
    results, new_rounds = {}, 0
    for seed in tqdm(settings.seeds, desc="seeds", disable=not progress):
        for strategy in settings.runs:
            path = runs.run_file(run_dir, strategy, seed)
            rounds = runs.read_run(path, header)
            while len(rounds) <= settings.n_rounds:
                if stop_after is not None and new_rounds >= stop_after:
                    return runs.curves(results | {(strategy, seed): rounds}), runs.acquisitions(
                        results
                    )
                r = len(rounds)
                if r == 0:
                    pick = stream(seed, 0, "initial").choice(
                        len(pool), settings.n_initial, replace=False
                    )
                    labelled = pool[np.sort(pick)]
                    record = {"round": 0, "labelled": ids[labelled].tolist()}
                else:
                    labelled = np.array([position[i] for i in runs.labelled_after(rounds)])
                    record = {"round": r}
                record["n_labelled"] = len(labelled)
                target = model_file(run_dir, strategy, seed, r)
                if target.exists():  # round 0 of another strategy, or a round before a kill
                    model = precision.apply(models.load_model(target), settings.precision)
                else:
                    start = (
                        model_file(run_dir, strategy, seed, r - 1)
                        if r and settings.warm_start
                        else None
                    )
                    model = _train(images, catalog, labelled, questions, settings, seed, r, start)
                    if r == 0:
                        _gate(model, images, catalog, val, labelled, questions, settings, seed)
                    save_model(model, target)
                eval_seed = int(stream(seed, r, "evaluate").integers(2**31))
                record["test"] = _metrics(
                    model, images[test], catalog.iloc[test], questions, settings, eval_seed
                )
                record["acquired"], record["scores"] = [], []
                if r < settings.n_rounds:
                    rest = np.setdiff1d(pool, labelled)
                    score = None
                    spec = strategies.lookup(strategy)
                    if not spec.random_like:
                        rho = posteriors.sample_rho(
                            model, images[rest], settings.n_samples,
                            seed=int(stream(seed, r, "score").integers(2**31)),
                            augment=strategy == "bald_views",
                        )  # fmt: skip
                        n_pool = strategies.pool_n(
                            rho, catalog.iloc[labelled], questions,
                            settings.expected_votes, settings.tree_votes,
                        )  # fmt: skip
                        score = strategies.scores(strategy, rho[:, cols], n_pool[:, cols])
                    picks = strategies.select(
                        strategy, len(rest), settings.acquire_per_round, score,
                        stream(seed, r, spec.stream, spec.index), settings.beta,
                    )  # fmt: skip
                    record["acquired"] = ids[rest[picks]].tolist()
                    record["scores"] = [] if score is None else [float(score[p]) for p in picks]
                rounds.append(record)
                runs.write_run(path, header, rounds)
                new_rounds += 1
            results[(strategy, seed)] = rounds
    return runs.curves(results), runs.acquisitions(results)
