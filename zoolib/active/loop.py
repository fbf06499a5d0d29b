r"""One round loop for both active-learning regimes: resume, fit, measure, acquire, write.

A *learner* is what differs between the regimes: the MC-dropout heads on cached trunk features
(:class:`zoolib.active.heads_regime.HeadLearner`) or the CNN trained on the images
(:class:`zoolib.active.cnn_regime.CnnLearner`). It offers

* ``regime``, ``catalog`` (index 0..G-1), ``questions``, the split rows ``pool``, ``val``,
  ``test`` and :meth:`rows` (ids -> rows);
* ``header()``: what a run file must match to be resumed;
* ``fit(rows, seed, round, strategy, weights)``: the model of a round, trained from that round's
  ``train`` stream (``weights``: per-galaxy loss weights, or None);
* ``rho(model, rows, posterior, rng)``: (G, Q, T) MC-dropout samples, ``posterior`` one of
  ``dropout`` (a mask per galaxy), ``views`` (a random flip or rotation per sample) or
  ``shared`` (one mask per sample for every galaxy);
* ``features(rows)`` (for ``kmeans`` and ``diverse_bald``), and optionally ``oracle`` and
  ``ensemble_rho`` (fine-tuning only);
* ``gate_hint``: the settings to raise when round 0 does not learn.

Per seed, round 0 labels ``n_initial`` random pool galaxies (the same for every strategy of the
seed, computed once) and must pass the learning gate (:func:`zoolib.active.runs.gate`); each round
then trains on the labelled set, records the test metrics
(:func:`zoolib.cnn.evaluation.question_metrics`) and acquires ``acquire_per_round`` pool galaxies
by the strategy (:mod:`zoolib.active.strategies`), writing the run file atomically
(:func:`zoolib.active.runs.write_run`), so a killed run resumes after its last complete round with
identical results. Strategies marked ``lure`` train on the LURE weights of their picks
(:func:`lure_weights`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from zoolib.active import campaign, runs, strategies
from zoolib.active.runs import ORACLE, Settings, stream
from zoolib.cnn import evaluation
from zoolib.votes.schema import ID_COLUMN


def scored(settings: Settings, questions: list[str]) -> list[int]:
    """Columns of the questions that rank the pool and are the headline."""
    if settings.question == "all":
        return list(range(len(questions)))
    if settings.question not in questions:
        raise ValueError(
            f"Settings.question={settings.question!r} is not learned; choose from "
            f"{list(questions)} or 'all'"
        )
    return [questions.index(settings.question)]


def check(settings: Settings, learner) -> None:
    """Refuse, before any work, what this learner cannot run (each problem named)."""
    if settings.regime != learner.regime:
        raise ValueError(f"Settings.regime={settings.regime!r}, but this runs {learner.regime!r}")
    unsupported = [
        s for s in settings.strategies
        if (s == ORACLE and not hasattr(learner, "oracle"))
        or (s != ORACLE and learner.regime not in strategies.lookup(s).regimes)
    ]  # fmt: skip
    if unsupported:
        raise ValueError(
            f"regime {learner.regime!r} cannot run strategies {unsupported} (they need the "
            "pretrained trunk's features, shared masks or cheap retraining): remove them"
        )
    if getattr(learner, "tree", None) is not None:
        _check_tree(settings)
    else:
        scored(settings, learner.questions)
    missing = [q for q in learner.questions if f"true_p_{q}" not in learner.catalog.columns]
    if missing and settings.metric == "rmse_true":
        raise ValueError(
            f"metric 'rmse_true' needs the true p of a simulation ({missing} have none): use "
            "'rmse_asked', 'rmse' (against k/N) or 'nll' on real catalogues"
        )
    if missing and ORACLE in settings.strategies:
        raise ValueError(
            "the look-ahead oracle needs the true p of a simulation; remove 'oracle' from the "
            "strategies for a real catalogue"
        )
    if settings.budget[-1] > len(learner.pool):
        raise ValueError(
            f"the label budget {settings.budget[-1]} exceeds the pool of {len(learner.pool)}"
        )


def _check_tree(settings: Settings) -> None:
    """What a softmax head over a tree's answers runs: vote-vector BALD (top-k or drawn) and
    the random rules, every question scored (``question: "all"``), headline rmse or nll."""
    rules = [s for s in settings.strategies if s == ORACLE or (
        s not in TREE_STRATEGIES and not strategies.lookup(s).random_like)]  # fmt: skip
    if rules:
        raise ValueError(f"a tree's heads run {TREE_STRATEGIES} and the random rules; remove "
                         f"{rules}")  # fmt: skip
    if settings.question != "all":
        raise ValueError(f"Settings.question={settings.question!r}: a tree's heads score every "
                         "question; use 'all'")  # fmt: skip
    if settings.metric not in ("rmse", "nll"):
        raise ValueError(f"Settings.metric={settings.metric!r}: a tree's answers are measured "
                         "by 'rmse' (against k/N) or 'nll'")  # fmt: skip


def metrics(learner, model, rows, rng, baseline=None) -> dict:
    """{question: {metric: value}} of ``model`` on ``rows`` (``all``: pooled); with
    ``baseline`` fractions {"cnn": ..., "baseline": ...}."""
    rho = learner.rho(model, rows, "dropout", rng)
    votes = getattr(learner, "votes", None)  # a tree's answer counts; None: the schema's
    out = evaluation.question_metrics(rho, learner.catalog.iloc[rows], learner.questions,
                                      baseline, votes)  # fmt: skip
    return out if baseline is not None else out["cnn"]


def headline(values: dict, settings: Settings) -> float:
    return float(values[settings.question][settings.metric])


def round_zero(learner, settings: Settings, seed: int) -> tuple[dict, object]:
    """Round 0's record (before its test metrics) and model, after the learning gate."""
    pool = learner.pool
    pick = stream(seed, 0, "initial").choice(len(pool), settings.n_initial, replace=False)
    labelled = pool[np.sort(pick)]
    model = learner.fit(labelled, seed, 0, None, None)
    votes = getattr(learner, "votes", None)
    base = evaluation.baseline_fractions(learner.catalog.iloc[labelled], learner.questions, votes)
    val = metrics(learner, model, learner.val, stream(seed, 0, "evaluate"), base)
    constant = headline(val["baseline"], settings)
    runs.gate(headline(val["cnn"], settings), constant, settings, seed, learner.gate_hint)
    ids = learner.catalog[ID_COLUMN].to_numpy()
    record = {"round": 0, "n_labelled": len(labelled), "labelled": ids[labelled].tolist(),
              "val_constant": constant}  # fmt: skip
    return record, model


def lure_weights(rounds: list[dict], n_pool: int) -> np.ndarray:
    r"""LURE weights (Farquhar, Gal and Rainforth 2021, eq. 5) of the labelled set, in the
    order of :func:`zoolib.active.runs.labelled_after`.

    The m-th of M labels, drawn from the N-galaxy pool with probability :math:`q_m` (its
    sampling probability among the galaxies still unlabelled), weighs

    .. math::  v_m = 1 + \frac{N - M}{N - m}\left(\frac{1}{(N - m + 1)\, q_m} - 1\right),

    so that :math:`\frac{1}{M}\sum_m v_m \ell_m` is an unbiased estimate of the pool's mean
    loss. Round 0's random labels and picks without a recorded probability (uniform) weigh 1.
    """
    q = [np.nan] * len(rounds[0]["labelled"])
    for r in rounds:
        q += r.get("probabilities") or [np.nan] * len(r["acquired"])
    q = np.asarray(q, dtype=np.float64)
    m = np.arange(1, len(q) + 1)
    big_m = len(q)
    if big_m >= n_pool:
        return np.ones(big_m)
    v = 1 + (n_pool - big_m) / (n_pool - m) * (1 / ((n_pool - m + 1) * q) - 1)
    return np.where(np.isnan(q), 1.0, v)


def training_weights(strategy: str, rounds: list[dict], n_pool: int) -> np.ndarray | None:
    """The loss weights of the next round's training on the labelled set of ``rounds``: LURE
    weights for strategies marked ``lure``, else None (every galaxy weighs 1)."""
    if not rounds or strategy == ORACLE or not strategies.lookup(strategy).lure:
        return None
    return lure_weights(rounds, n_pool)


def acquire(learner, settings: Settings, strategy: str, model, labelled, seed: int, r: int):
    """(pool rows to label next, best first; their scores, [] for unscored rules; their
    sampling probabilities for LURE strategies, else None)."""
    pool = np.setdiff1d(learner.pool, labelled)
    size = settings.acquire_per_round
    if strategy == ORACLE:
        return learner.oracle(labelled, pool, seed, r), [], None
    spec = strategies.lookup(strategy)
    pick_rng = stream(seed, r, spec.stream, spec.index)
    features = learner.features(pool) if spec.needs_features else None
    if spec.posterior is None:
        picks = strategies.select(strategy, len(pool), size, None, pick_rng, features=features)
        return pool[picks], [], None
    if getattr(learner, "tree", None) is not None:  # vote vectors of every question of the tree
        rho = learner.rho(model, pool, spec.posterior, stream(seed, r, "score"))
        score = campaign.vote_vector_bald(rho, learner.tree, tree_votes_n(learner, labelled,
                                                                           settings))  # fmt: skip
        picks = strategies.select(strategy, len(pool), size, score, pick_rng, settings.beta)
        return pool[picks], [float(score[p]) for p in picks], None
    cols = scored(settings, learner.questions)
    if spec.posterior == "ensemble":
        rho = learner.ensemble_rho(labelled, pool, seed, r)
    else:
        rho = learner.rho(model, pool, spec.posterior, stream(seed, r, "score"))
    n_pool = strategies.pool_n(rho, learner.catalog.iloc[labelled], learner.questions,
                               settings.expected_votes, settings.tree_votes)  # fmt: skip
    joint = None
    if spec.posterior == "shared":
        joint = _joint(settings, rho, n_pool, learner.questions, cols,
                       stream(seed, r, "targets"), every=spec.pick == "variance")  # fmt: skip
    score = strategies.scores(strategy, rho[:, cols], n_pool[:, cols], joint)
    picks = strategies.select(strategy, len(pool), size, score, pick_rng, settings.beta,
                              features=features, joint=joint)  # fmt: skip
    chosen = [] if score is None else [float(score[p]) for p in picks]
    probabilities = None
    if spec.lure:
        probabilities = strategies.sequential_probabilities(score, picks, settings.beta).tolist()
    return pool[picks], chosen, probabilities


def tree_votes_n(learner, labelled, settings: Settings) -> float:
    """N of a tree's first question for its pool: ``expected_votes`` of that question if set,
    else the labelled galaxies' mean total, rounded (later questions get their share of it)."""
    first = learner.tree.nodes[0]
    if first.name in settings.expected_votes:
        return float(settings.expected_votes[first.name])
    totals = learner.catalog.iloc[labelled][first.total_column]
    return float(max(1, np.rint(totals.mean())))


TREE_STRATEGIES = ("bald", "power_bald")  # with the random ones: vote-vector BALD, top or drawn


def _joint(settings, rho, n_pool, questions, cols, rng, every: bool) -> strategies.Joint:
    """The scored questions' shared-mask samples of the pool and of its targets: every pool
    galaxy for ``variance`` (its cost does not grow with them), ``n_targets`` random ones for
    ``epig``; each target weighted by its predicted chance of being asked each question."""
    share = strategies.tree_share(rho.mean(axis=-1), questions)[:, cols]
    targets = np.arange(len(rho))
    if not every and len(rho) > settings.n_targets:
        targets = np.sort(rng.choice(len(rho), settings.n_targets, replace=False))
    pool = rho[:, cols]
    return strategies.Joint(pool, n_pool[:, cols], pool[targets], share[targets])


def run(settings: Settings, learner, run_dir, progress: bool = True,
        stop_after: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """Run (or resume) every run of every seed of ``settings`` (:attr:`Settings.runs`) with
    ``learner``; return (curves, acquisitions) (:func:`zoolib.active.runs.curves`,
    :func:`zoolib.active.runs.acquisitions`). ``stop_after``: stop after this many new rounds (to
    simulate a kill in tests)."""
    from tqdm.auto import tqdm

    check(settings, learner)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    header = learner.header()
    ids = learner.catalog[ID_COLUMN].to_numpy()
    results, new_rounds, zeros = {}, 0, {}
    jobs = [(seed, s) for seed in settings.seeds for s in settings.runs]
    for seed, strategy in tqdm(jobs, desc="runs", disable=not progress):
        path = runs.run_file(run_dir, strategy, seed)
        rounds = runs.read_run(path, header)
        while len(rounds) <= settings.n_rounds:
            if stop_after is not None and new_rounds >= stop_after:
                return _results(results | {(strategy, seed): rounds})
            r = len(rounds)
            if r == 0:  # the same for every strategy of a seed: computed once
                if seed not in zeros:
                    zeros[seed] = round_zero(learner, settings, seed)
                record, model = dict(zeros[seed][0]), zeros[seed][1]
                labelled = learner.rows(record["labelled"])
            else:
                labelled = learner.rows(runs.labelled_after(rounds))
                weights = training_weights(strategy, rounds, len(learner.pool))
                model = learner.fit(labelled, seed, r, strategy, weights)
                record = {"round": r, "n_labelled": len(labelled)}
            record["test"] = metrics(learner, model, learner.test, stream(seed, r, "evaluate"))
            record["acquired"], record["scores"] = [], []
            if r < settings.n_rounds:
                picks, scores, probabilities = acquire(
                    learner, settings, strategy, model, labelled, seed, r
                )
                record["acquired"], record["scores"] = ids[picks].tolist(), scores
                if probabilities is not None:
                    record["probabilities"] = probabilities
            rounds.append(record)
            runs.write_run(path, header, rounds)
            new_rounds += 1
        results[(strategy, seed)] = rounds
    return _results(results)


def _results(results: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    return runs.curves(results), runs.acquisitions(results)
