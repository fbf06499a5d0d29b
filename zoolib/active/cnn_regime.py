r"""Active learning in the paper's regime (``regime: "scratch"``): CNNs trained on the images.

Faithful to the code of Walmsley et al. (2020): round 0 trains the CNN from random weights for
``initial_steps`` optimiser steps of ``batch_size`` (1,875 of 256), each later round continues
from the last model (``warm_start``) for ``steps_per_round`` steps (750), with augmentation; the
pool is scored with T MC-dropout samples and an expected N (40 in the paper); 256 initial
galaxies and 25 rounds of 128 (``notebooks/params/paper.yaml``). Steps become epochs of the
labelled set, ``ceil(steps * batch / labelled)``, so the number of optimiser steps is the
paper's to within one epoch.

The splits, strategies, streams, run files, curves and the learning gate are those of the
fine-tuning regime (:mod:`zoolib.active.heads_regime`, :mod:`zoolib.active.runs`), except that the
oracle is not offered here (each candidate would cost a CNN training). Each round's model is saved
beside the run file, so a killed run resumes after its last complete round with identical results.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from zoolib.active import loop, runs
from zoolib.active.runs import Settings, stream
from zoolib.votes.schema import ID_COLUMN, SPLIT_COLUMN, counts


def epochs_for(steps: int, batch_size: int, n_labelled: int) -> int:
    """Epochs of ``n_labelled`` galaxies in batches of ``batch_size`` that make ``steps`` steps."""
    per_epoch = math.ceil(n_labelled / batch_size)
    return max(1, math.ceil(steps / per_epoch))


def model_file(run_dir, strategy: str, seed: int, round_: int) -> Path:
    """The model of one round (round 0 is shared by the strategies of a seed)."""
    name = f"seed{seed}-round000" if round_ == 0 else f"{strategy}-seed{seed}-round{round_:03d}"
    return Path(run_dir) / f"{name}.keras"


class CnnLearner:
    """The paper's regime's learner for :func:`zoolib.active.loop.run`: a model is the Keras CNN of
    a round, trained on the labelled images (warm-started from the last round's model when
    ``settings.warm_start``) and saved as :func:`model_file` so a resumed run reloads it."""

    regime = "scratch"

    def __init__(self, images: np.ndarray, catalog: pd.DataFrame, questions, settings, run_dir):
        self.images, self.settings, self.run_dir = images, settings, Path(run_dir)
        self.catalog, self.questions = catalog.reset_index(drop=True), list(questions)
        split = self.catalog[SPLIT_COLUMN].to_numpy()
        self.pool, self.val, self.test = (np.flatnonzero(split == s)
                                          for s in ("train", "val", "test"))  # fmt: skip
        self.position = {i: p for p, i in enumerate(self.catalog[ID_COLUMN])}
        self.gate_hint = (f"n_initial (now {settings.n_initial}) or initial_steps "
                          f"({settings.initial_steps})")  # fmt: skip

    def rows(self, ids) -> np.ndarray:
        return np.array([self.position[i] for i in ids], dtype=int)

    def header(self) -> dict:
        k, n = counts(self.catalog, self.questions)
        truth = runs.truth(self.catalog, self.questions)
        return {
            "settings": self.settings.to_dict(), "questions": self.questions,
            "catalog": runs.catalog_fingerprint(self.catalog),
            "data": runs.array_digest(self.images, k, n, truth),
        }  # fmt: skip

    def fit(self, rows, seed: int, r: int, strategy, weights=None):
        from zoolib.cnn import models, precision
        from zoolib.files import save_model

        if weights is not None:
            raise ValueError("the scratch regime does not train on LURE weights")
        target = model_file(self.run_dir, strategy, seed, r)
        if target.exists():  # a round before a kill
            return precision.apply(models.load_model(target), self.settings.precision)
        start = None
        if r and self.settings.warm_start:
            start = model_file(self.run_dir, strategy, seed, r - 1)
        model = _train(self.images, self.catalog, rows, self.questions, self.settings, seed, r,
                       start)  # fmt: skip
        save_model(model, target)
        return model

    def rho(self, model, rows, posterior: str, rng) -> np.ndarray:
        from zoolib.cnn import posteriors

        if posterior not in ("dropout", "views"):
            raise ValueError(f"the scratch regime samples no {posterior!r} posterior")
        return posteriors.sample_rho(model, self.images[rows], self.settings.n_samples,
                                     seed=int(rng.integers(2**31)),
                                     augment=posterior == "views")  # fmt: skip

    def features(self, rows):
        raise ValueError("the scratch regime has no cached features (kmeans, diverse_bald)")


def _train(images, catalog, rows, questions, settings, seed, r, start):
    from zoolib.cnn import models, training
    from zoolib.data import pipeline, processed

    votes = processed.votes_array(catalog.iloc[rows], questions)
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
    acquisitions) as :func:`zoolib.active.heads_regime.run` does, through the same round loop
    (:func:`zoolib.active.loop.run`). Turns on TensorFlow's op determinism for the rest of the
    process (resume gives identical results)."""
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    learner = CnnLearner(images, catalog, questions, settings, run_dir)
    return loop.run(settings, learner, run_dir, progress, stop_after)
