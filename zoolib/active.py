r"""Pool-based active learning, simulated with a catalogue whose votes we already know.

Book-keeping is by galaxy id (``id_str``), never by position: a fixed **test** set that is never
acquired, a **labelled** set, and the **pool**. The :class:`Oracle` reveals the catalogue's votes
only for ids that were acquired. Each round trains a model on the labelled set, evaluates it on
the test set, scores the pool with MC dropout and acquires ``acquire_per_round`` ids with one
of the strategies:

* ``random``: uniform, the baseline;
* ``bald``: the top-k mutual information (the paper's choice);
* ``entropy``: the top-k predictive entropy;
* ``power_bald``: sample k ids without replacement with probability proportional to
  :math:`\mathrm{MI}^\beta` (Kirsch et al. 2023), by Gumbel-top-k on
  :math:`\beta\log\mathrm{MI} + G`, :math:`G\sim\mathrm{Gumbel}(0,1)`. :math:`\beta = 0` is uniform
  and :math:`\beta\to\infty` is ``bald``.

The pool's votes are unknown before labelling, so scores use an expected N per question.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from zoolib import acquisition
from zoolib.schema import ID_COLUMN

STRATEGIES = ("random", "bald", "entropy", "power_bald")


class Oracle:
    """Reveals the votes of acquired galaxies, and nothing else."""

    def __init__(self, catalog: pd.DataFrame):
        if catalog[ID_COLUMN].duplicated().any():
            raise ValueError("the oracle's catalogue has duplicate ids")
        self._catalog = catalog.set_index(ID_COLUMN, drop=False)
        self.revealed: set[str] = set()

    def label(self, ids) -> pd.DataFrame:
        """Catalogue rows (with votes) of ``ids``, in that order; raises for unknown ids."""
        ids = list(ids)
        missing = [i for i in ids if i not in self._catalog.index]
        if missing:
            raise KeyError(f"ids not in the catalogue: {missing[:10]}")
        self.revealed.update(ids)
        return self._catalog.loc[ids].reset_index(drop=True)


def scores(strategy: str, rho_samples: np.ndarray | None, expected_n) -> np.ndarray | None:
    """Per-galaxy scores, summed over questions; None for strategies that need none.

    Args:
        rho_samples: (pool, Q, T) MC-dropout samples.
        expected_n: (Q,) expected number of votes per question (whole numbers).
    """
    if strategy == "random":
        return None
    if rho_samples is None:
        raise ValueError(f"strategy {strategy!r} needs MC-dropout samples of the pool")
    n = np.broadcast_to(np.asarray(expected_n, dtype=np.float64), rho_samples.shape[:-1])
    if strategy in ("bald", "power_bald"):
        per_question = acquisition.mutual_information(rho_samples, n)
    elif strategy == "entropy":
        per_question = acquisition.predictive_entropy(rho_samples, n)
    else:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {STRATEGIES}")
    return acquisition.sum_over_questions(per_question)


def select(
    strategy: str, n_pool: int, k: int, score: np.ndarray | None, seed: int, beta: float = 1.0
) -> np.ndarray:
    """Positions (into the pool) of the k galaxies to acquire, best first."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {STRATEGIES}")
    rng = np.random.default_rng(seed)
    if strategy == "random":
        return acquisition.select_top(rng.random(n_pool), k)
    if strategy in ("bald", "entropy"):
        return acquisition.select_top(score, k)
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta!r}")
    gumbel = rng.gumbel(size=n_pool)
    if beta == 0:
        return acquisition.select_top(gumbel, k)
    log_mi = np.log(np.maximum(score, np.finfo(float).tiny))
    return acquisition.select_top(beta * log_mi + gumbel, k)


def expected_votes(labelled: pd.DataFrame, total_columns: list[str]) -> np.ndarray:
    """(Q,) mean N of the labelled set per question, rounded to whole votes (at least 1)."""
    return np.maximum(1, np.rint(labelled[total_columns].mean().to_numpy()))


def _completed_rounds(run_dir) -> list[dict]:
    import json

    return [json.loads(p.read_text()) for p in sorted(run_dir.glob("round_[0-9][0-9][0-9].json"))]


def simulate(
    run_dir,
    images: np.ndarray,
    catalog: pd.DataFrame,
    questions: list[str],
    strategy: str,
    n_initial: int,
    acquire_per_round: int,
    n_rounds: int,
    epochs_per_round: int,
    warm_start: bool = False,
    n_samples: int = 10,
    expected_n=None,
    beta: float = 1.0,
    seed: int = 0,
    batch_size: int = 32,
    dropout_rate: float = 0.5,
    stop_after: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Run (or resume) one active-learning simulation; return its per-round history.

    ``catalog`` rows match ``images``; rows whose ``split`` is "test" form the fixed test set,
    all others start in the pool, from which ``n_initial`` ids are labelled at random. Round r
    trains on the labelled set (from scratch, or from round r-1's model if ``warm_start``),
    evaluates on the test set and, unless it is the last round, acquires ``acquire_per_round``
    ids. Each completed round is written atomically as ``run_dir/round_NNN.json`` (labelled and
    acquired ids, scores, metrics) with its model; calling again resumes after the last
    completed round and gives the same result as an uninterrupted run. ``stop_after`` ends the
    call after that round (to simulate a kill in tests). For exact reproducibility this turns
    on TensorFlow's op determinism for the rest of the process.
    """
    from functools import partial

    import tensorflow as tf
    from tqdm.auto import tqdm

    from zoolib import data, evaluation, models, posteriors, training
    from zoolib.schema import SPLIT_COLUMN, question

    tf.config.experimental.enable_op_determinism()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ids = catalog[ID_COLUMN].to_numpy()
    position = {i: p for p, i in enumerate(ids)}
    is_test = catalog[SPLIT_COLUMN].to_numpy() == "test"
    test_pos = np.flatnonzero(is_test)
    candidates = ids[~is_test]
    if n_initial + acquire_per_round * n_rounds > len(candidates):
        raise ValueError(
            f"n_initial + acquire_per_round * n_rounds = "
            f"{n_initial + acquire_per_round * n_rounds} exceeds the {len(candidates)} non-test ids"
        )
    oracle = Oracle(catalog)
    totals = [question(q).total_column for q in questions]
    done = _completed_rounds(run_dir)
    if done:
        last = done[-1]
        labelled = list(last["labelled"]) + list(last["acquired"])
        start = last["round"] + 1
    else:
        rng = np.random.default_rng([seed, 0])
        labelled = sorted(rng.choice(candidates, n_initial, replace=False).tolist())
        start = 0
    test_images, test_cat = images[test_pos], catalog.iloc[test_pos].reset_index(drop=True)
    size, channels = images.shape[1], images.shape[3]
    rounds = range(start, n_rounds + 1)
    for r in tqdm(rounds, desc=f"{strategy} rounds", disable=not progress):
        labels = oracle.label(labelled)
        x = images[[position[i] for i in labelled]]
        ds = data.make_tf_dataset(x, data.votes_array(labels, questions), batch_size, seed=seed + r)
        if warm_start and r > 0:
            build = partial(models.load_model, run_dir / f"round_{r - 1:03d}.keras")
        else:
            build = partial(
                models.build_bayesian_cnn, size, channels, len(questions), dropout_rate,
                seed=seed * 1000 + r,
            )  # fmt: skip
        _, _, model = training.train(build, ds, None, epochs_per_round, seed=seed * 1000 + r)
        rho_test = posteriors.sample_rho(model, test_images, n_samples, seed=seed + r)
        table = evaluation.evaluate(rho_test, test_cat, questions)
        record = {
            "round": r, "strategy": strategy, "seed": seed, "n_labelled": len(labelled),
            "labelled": labelled, "acquired": [], "scores": [],
            "metrics": evaluation.table_to_dict(table)["cnn"],
        }  # fmt: skip
        if r < n_rounds:
            labelled_set = set(labelled)
            pool = [i for i in candidates if i not in labelled_set]
            pool_pos = [position[i] for i in pool]
            rho_pool = None
            if strategy != "random":
                rho_pool = posteriors.sample_rho(model, images[pool_pos], n_samples, seed=seed + r)
            n_exp = expected_n if expected_n is not None else expected_votes(labels, totals)
            score = scores(strategy, rho_pool, n_exp)
            picks = select(strategy, len(pool), acquire_per_round, score, [seed, r + 1], beta)
            record["acquired"] = [pool[p] for p in picks]
            record["scores"] = [] if score is None else [float(score[p]) for p in picks]
            record["expected_n"] = [float(v) for v in np.atleast_1d(n_exp)]
        model.save(run_dir / f"round_{r:03d}.keras")
        evaluation.write_metrics(f"round_{r:03d}", record, run_dir)  # marks the round complete
        labelled = labelled + record["acquired"]
        if stop_after is not None and r >= stop_after:
            break
    return history(run_dir)


def history(run_dir) -> pd.DataFrame:
    """One row per completed round: n_labelled and test metrics ``<question> <metric>``."""
    rows = []
    for rec in _completed_rounds(Path(run_dir)):
        row = {"round": rec["round"], "strategy": rec["strategy"], "seed": rec["seed"],
               "n_labelled": rec["n_labelled"]}  # fmt: skip
        for name, values in rec["metrics"].items():
            row.update({f"{name} {k}": v for k, v in values.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def labels_to_reach(n_labelled, metric, target: float) -> float:
    """Labelled-set size at which a falling metric first reaches ``target``.

    Linear interpolation between rounds; NaN when the curve never gets there.

    Args:
        n_labelled: (R,) labelled-set sizes, increasing.
        metric: (R,) the metric (lower is better, e.g. test NLL) after each round.
    """
    n_labelled = np.asarray(n_labelled, dtype=np.float64)
    metric = np.asarray(metric, dtype=np.float64)
    if len(n_labelled) != len(metric) or np.any(np.diff(n_labelled) <= 0):
        raise ValueError("n_labelled must increase and match metric in length")
    hit = np.flatnonzero(metric <= target)
    if len(hit) == 0:
        return float("nan")
    i = int(hit[0])
    if i == 0:
        return float(n_labelled[0])
    m0, m1 = metric[i - 1], metric[i]
    frac = (m0 - target) / (m0 - m1)
    return float(n_labelled[i - 1] + frac * (n_labelled[i] - n_labelled[i - 1]))


def label_saving(n_labelled, metric, random_n_labelled, random_metric) -> float:
    """Fraction of labels saved against random: 1 - n_strategy / n_random.

    The target is random acquisition's final metric; n_random is where the random curve first
    reaches it and n_strategy where the strategy's curve does (both interpolated). NaN when the
    strategy never reaches the target.
    """
    target = float(np.asarray(random_metric, dtype=np.float64)[-1])
    n_random = labels_to_reach(random_n_labelled, random_metric, target)
    return 1.0 - labels_to_reach(n_labelled, metric, target) / n_random


def acquisitions(run_dir) -> pd.DataFrame:
    """One row per acquired galaxy: ``id_str``, ``round``, ``strategy``, ``seed``, ``score``."""
    rows = []
    for rec in _completed_rounds(Path(run_dir)):
        scores_ = rec["scores"] or [np.nan] * len(rec["acquired"])
        for i, s in zip(rec["acquired"], scores_, strict=True):
            rows.append({ID_COLUMN: i, "round": rec["round"], "strategy": rec["strategy"],
                         "seed": rec["seed"], "score": s})  # fmt: skip
    return pd.DataFrame(rows, columns=[ID_COLUMN, "round", "strategy", "seed", "score"])
