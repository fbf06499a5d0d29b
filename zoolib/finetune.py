r"""Active learning in the fine-tuning regime: MC-dropout heads on the pretrained trunk's features.

The trunk of the shipped pretrained CNN (:mod:`zoolib.pretrained`; trained on galaxies disjoint
from any notebook's) turns every image into 128 features once. Each round then trains a fresh
MC-dropout head (:mod:`zoolib.heads`: dropout then one dense layer, from zero weights, to
convergence) on the labelled galaxies' cached features, measures it on the test split, scores
the pool and acquires. A round takes milliseconds, so an experiment affords tens of paired seeds:
this is how Zoobot is used (a pretrained representation, a new labelled set) and what gives the
savings statistics of :mod:`zoolib.savings` their power on a CPU.

Splits of the catalogue (``split`` column): ``train`` is the pool; ``val`` is labelled and used
only for the learning gate and the look-ahead oracle; ``test`` only for the learning curves.
Strategies (:mod:`zoolib.strategies`) plus ``oracle``: per round it draws
``oracle_candidates`` random batches from the pool, trains the next round's head on each, and
keeps the batch whose head is best on the validation split against the true p (simulations
only): the headroom any acquisition rule could reach, not a rule itself.

**The learning gate.** Round 0 (random initial labels, shared by every strategy of a seed) must
beat the constant prediction (the labelled pooled fraction) on the validation split by
``gate_margin`` in the headline metric, or the experiment stops with an error naming the
settings to raise: acquisition is not worth measuring on a model that has not learned.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import special

from zoolib import evaluation, heads, runs, strategies
from zoolib.runs import ORACLE, Settings, stream
from zoolib.schema import ID_COLUMN, SPLIT_COLUMN, counts


@dataclass
class Data:
    """Everything a round reads: features of every galaxy, the catalogue and its splits."""

    features: np.ndarray  # (G, F)
    views: np.ndarray | None  # (V, G, F) features of flipped and rotated images, or None
    catalog: pd.DataFrame
    questions: list[str]
    k: np.ndarray  # (G, Q)
    n: np.ndarray  # (G, Q)
    position: dict  # id -> row
    pool: np.ndarray  # rows of the train split
    val: np.ndarray
    test: np.ndarray

    @classmethod
    def build(cls, features, catalog, questions, views=None) -> Data:
        features = np.asarray(features, dtype=np.float32)
        if len(features) != len(catalog):
            raise ValueError(f"{len(features)} feature rows for {len(catalog)} catalogue rows")
        if views is not None and np.shape(views)[1:] != features.shape:
            raise ValueError(f"view features {np.shape(views)} do not match {features.shape}")
        split = catalog[SPLIT_COLUMN].to_numpy()
        rows = {s: np.flatnonzero(split == s) for s in ("train", "val", "test")}
        empty = [s for s, r in rows.items() if len(r) == 0]
        if empty:
            raise ValueError(f"the catalogue has no {empty} galaxies (split column)")
        k, n = counts(catalog, questions)
        ids = catalog[ID_COLUMN].to_numpy()
        return cls(
            features,
            views,
            catalog.reset_index(drop=True),
            list(questions),
            k,
            n,
            {i: p for p, i in enumerate(ids)},
            rows["train"],
            rows["val"],
            rows["test"],
        )

    def rows(self, ids) -> np.ndarray:
        return np.array([self.position[i] for i in ids], dtype=int)


def _scored(settings: Settings, questions: list[str]) -> list[int]:
    if settings.question == "all":
        return list(range(len(questions)))
    if settings.question not in questions:
        raise ValueError(f"question {settings.question!r} is not learned; choose from {questions}")
    return [questions.index(settings.question)]


def _check_truth(settings: Settings, data: Data) -> None:
    missing = [q for q in data.questions if f"true_p_{q}" not in data.catalog.columns]
    if missing and settings.metric == "rmse_true":
        raise ValueError(
            f"metric 'rmse_true' needs the true p of a simulation ({missing} have "
            "none): use metric 'rmse' (against k/N) or 'nll' on real catalogues"
        )
    if missing and ORACLE in settings.strategies:
        raise ValueError(
            "the look-ahead oracle needs the true p of a simulation; remove 'oracle' "
            "from the strategies for a real catalogue"
        )


def _fit(data: Data, settings: Settings, rows_sets: list[np.ndarray], rng):
    """Heads trained on each labelled set (all of one size), together: (H, F, Q), (H, Q)."""
    idx = np.stack(rows_sets)
    return heads.fit(data.features[idx], data.k[idx], data.n[idx], settings.head, rng)


def _metrics(data, settings, rows, w, b, rng, baseline=None) -> dict:
    """{question: {nll, rmse, rmse_true, ...}} of one head on ``rows`` (``all``: the means);
    with ``baseline`` fractions, {"cnn": ..., "baseline": ...}."""
    rho = heads.sample_rho(
        data.features[rows], w, b, settings.n_samples, settings.head.dropout_rate, rng
    )
    out = evaluation.question_metrics(rho, data.catalog.iloc[rows], data.questions, baseline)
    return out if baseline is not None else out["cnn"]


def _headline(metrics: dict, settings: Settings) -> float:
    return float(metrics[settings.question][settings.metric])


def _round_zero(data: Data, settings: Settings, seed: int) -> tuple[dict, tuple]:
    """Round 0's record (before test metrics) and head (weights, bias), after the gate."""
    pick = stream(seed, 0, "initial").choice(len(data.pool), settings.n_initial, replace=False)
    labelled = data.pool[np.sort(pick)]
    w, b = _fit(data, settings, [labelled], stream(seed, 0, "train"))
    base = evaluation.baseline_fractions(data.catalog.iloc[labelled], data.questions)
    val = _metrics(data, settings, data.val, w[0], b[0], stream(seed, 0, "evaluate"), base)
    constant = _headline(val["baseline"], settings)
    runs.gate(_headline(val["cnn"], settings), constant, settings, seed,
         f"n_initial (now {settings.n_initial}), the head's steps ({settings.head.steps}) or "
         f"learning_rate ({settings.head.learning_rate})")  # fmt: skip
    ids = data.catalog[ID_COLUMN].to_numpy()
    record = {"round": 0, "n_labelled": len(labelled), "labelled": ids[labelled].tolist(),
              "val_constant": constant}  # fmt: skip
    return record, (w[0], b[0])


def _acquire(data, settings, strategy, w, b, labelled, seed, r) -> tuple[np.ndarray, list]:
    """Pool rows to label next (best first) and their scores ([] for unscored rules)."""
    pool = np.setdiff1d(data.pool, labelled)
    size = settings.acquire_per_round
    if strategy == ORACLE:
        return _oracle(data, settings, labelled, pool, seed, r), []
    spec = strategies.lookup(strategy)
    pick_rng = stream(seed, r, spec.stream, spec.index)
    features = data.features[pool]
    if spec.posterior is None:  # random or kmeans: no model needed
        return pool[strategies.select(strategy, len(pool), size, None, pick_rng,
                                      features=features)], []  # fmt: skip
    cols = _scored(settings, data.questions)
    rate, score_rng = settings.head.dropout_rate, stream(seed, r, "score")
    joint = None
    if spec.posterior == "ensemble":
        rho = _ensemble_rho(data, settings, labelled, features, seed, r)
    elif spec.posterior == "shared":
        rho = heads.sample_rho_shared(features, w, b, settings.n_samples, rate, score_rng)
    else:
        inputs = data.views[:, pool] if spec.posterior == "views" else features
        rho = heads.sample_rho(inputs, w, b, settings.n_samples, rate, score_rng)
    n_pool = _pool_n(data, settings, rho, labelled)
    if spec.posterior == "shared":
        every = spec.pick == "variance"
        joint = _joint(settings, rho, n_pool, data.questions, cols, stream(seed, r, "targets"),
                       every)  # fmt: skip
    score = strategies.scores(strategy, rho[:, cols], n_pool[:, cols], joint)
    picks = strategies.select(strategy, len(pool), size, score, pick_rng, settings.beta,
                              features=features, joint=joint)  # fmt: skip
    return pool[picks], [] if score is None else [float(score[p]) for p in picks]


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


def _pool_n(data: Data, settings: Settings, rho: np.ndarray, labelled: np.ndarray) -> np.ndarray:
    return strategies.pool_n(rho, data.catalog.iloc[labelled], data.questions,
                             settings.expected_votes, settings.tree_votes)  # fmt: skip


def _ensemble_rho(data, settings, labelled, features, seed, r) -> np.ndarray:
    """(pool, Q, K) predictions of K heads, each trained on a bootstrap resample of the
    labelled set; each head predicts deterministically (dropout's mean, the weights as they are)."""
    rng = stream(seed, r, "ensemble")
    resamples = [rng.choice(labelled, len(labelled)) for _ in range(settings.ensemble_heads)]
    w, b = _fit(data, settings, resamples, rng)
    logits = np.einsum("gf,hfq->ghq", features.astype(np.float64), w) + b[None]
    return np.clip(special.expit(np.moveaxis(logits, 1, 2)), heads.RHO_CLIP, 1 - heads.RHO_CLIP)


def _oracle(data, settings, labelled, pool, seed, r) -> np.ndarray:
    """The random candidate batch whose next-round head is best on validation (true p)."""
    rng = stream(seed, r, "oracle")
    size = settings.acquire_per_round
    batches = [
        pool[rng.choice(len(pool), size, replace=False)] for _ in range(settings.oracle_candidates)
    ]
    w, b = _fit(
        data,
        settings,
        [np.concatenate([labelled, c]) for c in batches],
        stream(seed, r + 1, "train"),
    )
    scores = [
        _headline(
            _metrics(data, settings, data.val, w[c], b[c], stream(seed, r, "evaluate")), settings
        )
        for c in range(len(batches))
    ]
    return batches[int(np.argmin(scores))]


def run(
    settings: Settings,
    features: np.ndarray,
    catalog: pd.DataFrame,
    questions: list[str],
    run_dir,
    views: np.ndarray | None = None,
    progress: bool = True,
    stop_after: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run (or resume) every strategy and seed of ``settings``; return (curves, acquisitions).

    Args:
        settings: the experiment (``regime`` must be "finetune").
        features: (G, F) trunk features of every catalogue row (see
            :func:`zoolib.posteriors.trunk_features`).
        catalog: canonical catalogue with ``id_str``, ``split`` and vote columns (and
            ``true_p_<question>`` for ``rmse_true`` and the oracle).
        questions: the Q questions the heads learn.
        run_dir: folder of the run files (``<strategy>-seed<s>.json``, one round per rewrite);
            calling again resumes after the last complete round with identical results.
        views: (V, G, F) features of flipped and rotated images, for ``bald_views``.
        stop_after: stop after computing this many new rounds (to simulate a kill in tests).

    Returns:
        curves (:func:`zoolib.runs.curves`) and acquisitions (:func:`zoolib.runs.acquisitions`).
    """
    from tqdm.auto import tqdm

    if settings.regime != "finetune":
        raise ValueError(f"finetune.run runs regime 'finetune', not {settings.regime!r}")
    if "bald_views" in settings.strategies and views is None:
        raise ValueError("strategy 'bald_views' needs views=, the trunk features of the 8 flips "
                         "and rotations (posteriors.trunk_features(..., views=True))")  # fmt: skip
    data = Data.build(features, catalog, questions, views)
    _check_truth(settings, data)
    _scored(settings, data.questions)
    if settings.n_initial + settings.n_rounds * settings.acquire_per_round > len(data.pool):
        raise ValueError(
            f"the label budget {settings.budget[-1]} exceeds the pool of {len(data.pool)}"
        )
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    header = run_header(settings, data)
    ids = data.catalog[ID_COLUMN].to_numpy()
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
                    zeros[seed] = _round_zero(data, settings, seed)
                record, (w, b) = dict(zeros[seed][0]), zeros[seed][1]
                labelled = data.rows(record["labelled"])
            else:
                labelled = data.rows(runs.labelled_after(rounds))
                fitted = _fit(data, settings, [labelled], stream(seed, r, "train"))
                w, b = fitted[0][0], fitted[1][0]
                record = {"round": r, "n_labelled": len(labelled)}
            record["test"] = _metrics(data, settings, data.test, w, b, stream(seed, r, "evaluate"))
            record["acquired"], record["scores"] = [], []
            if r < settings.n_rounds:
                picks, scores = _acquire(data, settings, strategy, w, b, labelled, seed, r)
                record["acquired"], record["scores"] = ids[picks].tolist(), scores
            rounds.append(record)
            runs.write_run(path, header, rounds)
            new_rounds += 1
        results[(strategy, seed)] = rounds
    return _results(results)


def run_header(settings: Settings, data: Data) -> dict:
    """What a run file must match to be resumed: the settings, which galaxies are in which
    split, and a digest of the features, votes and truth the run was computed on."""
    truth = runs.truth(data.catalog, data.questions)
    return {
        "settings": settings.to_dict(), "catalog": runs.catalog_fingerprint(data.catalog),
        "questions": list(data.questions),
        "data": runs.array_digest(data.features, data.views, data.k, data.n, truth),
    }  # fmt: skip


def _results(results: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    return runs.curves(results), runs.acquisitions(results)


def pool_scores(
    settings: Settings,
    features,
    catalog,
    questions,
    run_dir,
    strategy: str,
    seed: int,
    round_: int,
    views=None,
) -> pd.DataFrame:
    """The pool as a run saw it at one round: the head retrained from the run file (the same
    streams, so the same head), its MC-dropout samples of the pool, and per question the mean
    rho, the expected N it was scored with, the predictive entropy and the mutual information
    (plain dropout samples: what ``bald`` ranks by; ``views`` as given to the run).

    Returns:
        One row per pool galaxy not yet labelled: ``id_str``, ``rho <q>``, ``n <q>``,
        ``entropy <q>``, ``mi <q>`` per question, and ``mi`` summed over the scored questions.
    """
    from zoolib import acquisition

    data = Data.build(features, catalog, questions, views)
    rounds = runs.read_run(runs.run_file(run_dir, strategy, seed), run_header(settings, data))
    if round_ >= min(len(rounds), settings.n_rounds):
        raise ValueError(f"round {round_} of {strategy} seed {seed} did not score a pool")
    labelled = data.rows(runs.labelled_after(rounds[:round_]) if round_ else rounds[0]["labelled"])
    w, b = _fit(data, settings, [labelled], stream(seed, round_, "train"))
    pool = np.setdiff1d(data.pool, labelled)
    rho = heads.sample_rho(
        data.features[pool], w[0], b[0], settings.n_samples, settings.head.dropout_rate,
        stream(seed, round_, "score"),
    )  # fmt: skip
    n = _pool_n(data, settings, rho, labelled)
    entropy, expected = acquisition.entropies(rho, n)
    mi = acquisition.bald_from_entropies(entropy, expected)
    out = pd.DataFrame({ID_COLUMN: data.catalog[ID_COLUMN].to_numpy()[pool]})
    for j, q in enumerate(questions):
        out[f"rho {q}"], out[f"n {q}"] = rho[:, j].mean(axis=-1), n[:, j]
        out[f"entropy {q}"], out[f"mi {q}"] = entropy[:, j], mi[:, j]
    out["mi"] = mi[:, _scored(settings, list(questions))].sum(axis=1)
    return out
