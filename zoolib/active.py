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

The model learns every question in ``questions``; ``acquire_on`` (a subset, default all) says
which questions' scores are summed to rank the pool. The pool's votes are unknown before
labelling, so scores use an expected N per question.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from zoolib import acquisition, files
from zoolib.savings import labels_to_reach
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
        expected_n: (Q,) expected number of votes per question, or (pool, Q) per galaxy
            (whole numbers).
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


def settings_id(**settings) -> str:
    """Eight hex digits identifying a set of (JSON-serialisable) settings, for run folder names:
    the same settings resume the same runs, changed settings start new ones."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def round_file(run_dir, round_: int, suffix: str = ".json") -> Path:
    """``<run_dir>/round_<NNN><suffix>``: a round's record (``.json``) or model (``.keras``)."""
    return Path(run_dir) / f"round_{round_:03d}{suffix}"


def completed_rounds(run_dir) -> list[dict]:
    """The round records of a run written so far (``round_NNN.json``), in round order."""
    return [json.loads(p.read_text()) for p in sorted(run_dir.glob("round_[0-9][0-9][0-9].json"))]


def tree_votes(mean_rho: np.ndarray, questions: list[str], n_flat) -> np.ndarray:
    r"""Expected N per galaxy and question, following the Galaxy Zoo decision tree.

    Volunteers reach a question only through its parent's answer (``Question.asked_if``), so
    a galaxy's expected N for it is its parent's expected N times the model's probability of
    that answer: :math:`N_\text{edge-on} = N\,(1 - \rho_\text{smooth})` and
    :math:`N_\text{bar} = N_\text{edge-on}\,(1 - \rho_\text{edge-on})` (the "not yes"
    answer of smooth-or-featured lumps featured with artifact, so this slightly overstates
    N for the later questions). Questions without a parent among ``questions`` keep
    ``n_flat``. Results are rounded to whole votes; 0 means nobody would be asked.

    Args:
        mean_rho: (G, Q) predicted probabilities of "yes" (e.g. the MC-dropout mean).
        questions: the Q question names, in column order.
        n_flat: (Q,) expected N of each question with no parent here (e.g. the labelled mean).

    Returns:
        float64 (G, Q) whole numbers.
    """
    from zoolib.schema import QUESTIONS, question

    mean_rho = np.asarray(mean_rho, dtype=np.float64)
    if mean_rho.ndim != 2 or mean_rho.shape[1] != len(questions):
        raise ValueError(f"mean_rho must be (galaxies, {len(questions)}); got {mean_rho.shape}")
    exact = np.broadcast_to(np.asarray(n_flat, dtype=np.float64), mean_rho.shape).copy()
    for name in sorted(questions, key=list(QUESTIONS).index):  # parents before children
        j, parent = questions.index(name), question(name).asked_if
        if parent is None or parent[0] not in questions:
            continue
        p = questions.index(parent[0])
        yes = question(parent[0]).yes == parent[1]
        exact[:, j] = exact[:, p] * (mean_rho[:, p] if yes else 1.0 - mean_rho[:, p])
    return np.rint(exact)  # rounded once at the end, so rounding does not compound


def _pool_votes(rho: np.ndarray, questions: list[str], n_exp: np.ndarray, tree: bool):
    """(pool, Q) N to score the pool's samples rho (pool, Q, T) with: ``n_exp`` for every
    galaxy, or per galaxy from the decision tree (:func:`tree_votes`) when ``tree``."""
    n = tree_votes(rho.mean(axis=-1), questions, n_exp) if tree else n_exp
    return np.broadcast_to(n, rho.shape[:-1])


def _expected_n(expected_n, labelled_mean: np.ndarray, questions: list[str]) -> np.ndarray:
    """(Q,) N assumed for the pool: ``expected_n`` (scalar, (Q,) or {question: N}, the
    missing questions taking the labelled mean) or, when None, the labelled mean itself."""
    if expected_n is None:
        return labelled_mean
    if isinstance(expected_n, dict):
        unknown = sorted(set(expected_n) - set(questions))
        if unknown:
            raise ValueError(f"expected_n names questions the model does not learn: {unknown}")
        out = labelled_mean.astype(np.float64)
        out[[questions.index(q) for q in expected_n]] = list(expected_n.values())
    else:
        out = np.broadcast_to(np.asarray(expected_n, dtype=np.float64), labelled_mean.shape)
    if np.any(out < 1) or np.any(out != np.rint(out)):
        raise ValueError(f"expected_n must be whole numbers of votes >= 1; got {expected_n!r}")
    return out.copy()


def _fingerprint(catalog: pd.DataFrame) -> str:
    """sha256 of the catalogue's ids and splits in order: which galaxies, and which are test."""
    from zoolib.schema import SPLIT_COLUMN

    text = "\n".join(catalog[ID_COLUMN].astype(str) + "\t" + catalog[SPLIT_COLUMN].astype(str))
    return hashlib.sha256(text.encode()).hexdigest()


def _check_same_run(run_dir: Path, stored: dict | None, config: dict) -> None:
    """Refuse to resume a run that was started with other settings."""
    if stored == config:
        return
    if stored is None:
        raise ValueError(f"{run_dir} holds rounds without a recorded configuration; delete it")
    changed = sorted(k for k in config.keys() | stored.keys() if stored.get(k) != config.get(k))
    details = ", ".join(f"{k}: {stored.get(k)!r} -> {config.get(k)!r}" for k in changed)
    raise ValueError(
        f"{run_dir} was started with other settings ({details}); resuming would mix them. "
        "Delete that folder or choose another run folder."
    )


ROUND0_SETTINGS = ("questions", "n_initial", "initial_epochs", "n_samples", "seed", "batch_size",
                   "dropout_rate", "catalog")  # fmt: skip


def _initial_model(other: Path, config: dict):
    """Round 0's model from another run folder, after checking it was trained identically."""
    from zoolib import models

    done = completed_rounds(other)
    if not done:
        raise ValueError(f"initial_from={other} has no completed round 0")
    theirs = done[0].get("config") or {}
    changed = [k for k in ROUND0_SETTINGS if theirs.get(k) != config[k]]
    if changed:
        raise ValueError(f"initial_from={other} trained round 0 with other settings: {changed}")
    return models.load_model(round_file(other, 0, ".keras"))


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
    acquire_on: list[str] | None = None,
    initial_epochs: int | None = None,
    initial_from=None,
    expected_n_tree: bool = False,
) -> pd.DataFrame:
    """Run (or resume) one active-learning simulation; return its per-round history.

    ``catalog`` rows match ``images``; rows whose ``split`` is "test" form the fixed test set,
    all others start in the pool, from which ``n_initial`` ids are labelled at random. Round r
    trains on the labelled set (from scratch, or from round r-1's model if ``warm_start``),
    evaluates on the test set and, unless it is the last round, acquires ``acquire_per_round``
    ids. Each completed round is written atomically as ``run_dir/round_NNN.json`` (labelled
    and acquired ids, scores, metrics, settings) with its model; calling again resumes after
    the last completed round and gives the same result as an uninterrupted run. For exact
    reproducibility this turns on TensorFlow's op determinism for the rest of the process.
    Resuming a run folder that was started with other settings (or another catalogue) is an
    error.

    Args:
        run_dir: folder of this run (one strategy, one seed).
        images: (galaxies, S, S, C) pixels 0..255, rows matching ``catalog``.
        catalog: canonical catalogue with ``id_str``, ``split`` and the vote columns.
        questions: the Q questions the model learns (its outputs, in order).
        strategy: one of :data:`STRATEGIES`.
        expected_n: N assumed for the pool's galaxies: a whole number, (Q,) of them, or a dict
            {question: N}; questions not given use the labelled set's mean N, rounded.
        acquire_on: the questions whose scores, summed, rank the pool (default all).
        expected_n_tree: give each pool galaxy its own expected N for the later questions of
            the decision tree (:func:`tree_votes`, from the model's own predictions) instead of
            the same N for every galaxy.
        initial_epochs: epochs for round 0, which starts from scratch (default
            ``epochs_per_round``); with ``warm_start`` every later round continues from it.
        initial_from: another run folder of the same seed and settings (any strategy) whose
            round-0 model is reused instead of training the same model again. Round 0 does not
            depend on the strategy, so strategies compared side by side can share it.
        beta: ``power_bald`` exponent.
        stop_after: end the call after this round (to simulate a kill in tests).
    """
    from functools import partial

    import tensorflow as tf
    from tqdm.auto import tqdm

    from zoolib import data, evaluation, models, pipeline, posteriors, training
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
    acquire_on = list(questions) if acquire_on is None else list(acquire_on)
    if not acquire_on or set(acquire_on) - set(questions):
        raise ValueError(f"acquire_on must be a non-empty subset of {questions}; got {acquire_on}")
    scored = [questions.index(q) for q in acquire_on]
    _expected_n(expected_n, np.ones(len(questions)), questions)  # fail early on bad values
    oracle = Oracle(catalog)
    totals = [question(q).total_column for q in questions]
    config = {
        "strategy": strategy, "questions": list(questions), "acquire_on": acquire_on,
        "n_initial": n_initial, "acquire_per_round": acquire_per_round, "n_rounds": n_rounds,
        "epochs_per_round": epochs_per_round, "warm_start": bool(warm_start),
        "n_samples": n_samples, "beta": float(beta), "seed": seed, "batch_size": batch_size,
        "dropout_rate": float(dropout_rate),
        "initial_epochs": epochs_per_round if initial_epochs is None else initial_epochs,
        "expected_n_tree": bool(expected_n_tree),
        "expected_n": expected_n if isinstance(expected_n, dict) or expected_n is None
        else [float(v) for v in np.atleast_1d(expected_n)],
        "catalog": _fingerprint(catalog),
    }  # fmt: skip
    done = completed_rounds(run_dir)
    if done:
        _check_same_run(run_dir, done[-1].get("config"), config)
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
        votes = data.votes_array(labels, questions)
        ds = pipeline.make_tf_dataset(x, votes, batch_size, seed=seed + r)
        if warm_start and r > 0:
            build = partial(models.load_model, round_file(run_dir, r - 1, ".keras"))
        else:
            build = partial(
                models.build_bayesian_cnn, size, channels, len(questions), dropout_rate,
                seed=seed * 1000 + r,
            )  # fmt: skip
        if r == 0 and initial_from is not None:
            model = _initial_model(Path(initial_from), config)
        else:
            epochs = config["initial_epochs"] if r == 0 else epochs_per_round
            _, _, model = training.train(build, ds, None, epochs, seed=seed * 1000 + r)
        rho_test = posteriors.sample_rho(model, test_images, n_samples, seed=seed + r)
        table = evaluation.evaluate(rho_test, test_cat, questions)
        record = {
            "round": r, "strategy": strategy, "seed": seed, "n_labelled": len(labelled),
            "config": config,
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
            n_exp = _expected_n(expected_n, expected_votes(labels, totals), questions)
            n_pool = n_exp
            if rho_pool is not None:
                n_pool = _pool_votes(rho_pool, questions, n_exp, expected_n_tree)[:, scored]
                rho_pool = rho_pool[:, scored]
            score = scores(strategy, rho_pool, n_pool)
            picks = select(strategy, len(pool), acquire_per_round, score, [seed, r + 1], beta)
            record["acquired"] = [pool[p] for p in picks]
            record["scores"] = [] if score is None else [float(score[p]) for p in picks]
            record["expected_n"] = [float(v) for v in n_exp]
        files.save_model(model, round_file(run_dir, r, ".keras"))
        files.write_json(round_file(run_dir, r), record)  # marks the round complete
        labelled = labelled + record["acquired"]
        if stop_after is not None and r >= stop_after:
            break
    return history(run_dir)


def history(run_dir) -> pd.DataFrame:
    """One row per completed round: n_labelled and test metrics ``<question> <metric>``, plus
    ``all nll`` (summed over questions) and ``all rmse`` (averaged over questions)."""
    rows = []
    for rec in completed_rounds(Path(run_dir)):
        row = {"round": rec["round"], "strategy": rec["strategy"], "seed": rec["seed"],
               "n_labelled": rec["n_labelled"]}  # fmt: skip
        for name, values in rec["metrics"].items():
            row.update({f"{name} {k}": v for k, v in values.items()})
        row["all nll"] = sum(v["nll"] for v in rec["metrics"].values())
        row["all rmse"] = float(np.mean([v["rmse"] for v in rec["metrics"].values()]))
        rows.append(row)
    return pd.DataFrame(rows)


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
    for rec in completed_rounds(Path(run_dir)):
        scores_ = rec["scores"] or [np.nan] * len(rec["acquired"])
        for i, s in zip(rec["acquired"], scores_, strict=True):
            rows.append({ID_COLUMN: i, "round": rec["round"], "strategy": rec["strategy"],
                         "seed": rec["seed"], "score": s})  # fmt: skip
    return pd.DataFrame(rows, columns=[ID_COLUMN, "round", "strategy", "seed", "score"])


def pool_scores(run_dir, round_: int, images: np.ndarray, catalog: pd.DataFrame) -> pd.DataFrame:
    """Per-question scores of the pool as it stood at round ``round_`` of a run.

    Loads that round's model and record, rebuilds the pool (non-test ids not yet labelled),
    draws the same MC-dropout samples as the run did (same T and seed) and scores every
    question with the record's expected N.

    Returns:
        One row per pool galaxy, in catalogue order: ``id_str``, ``mi <question>`` and
        ``entropy <question>`` for each question the model learned, and ``score``, the value the
        run ranked by (MI or predictive entropy summed over ``acquire_on``; NaN for random).
    """
    from zoolib import models, posteriors
    from zoolib.schema import SPLIT_COLUMN

    run_dir = Path(run_dir)
    record_path = round_file(run_dir, round_)
    if not record_path.exists():
        raise FileNotFoundError(f"round {round_} of {run_dir} has not completed ({record_path})")
    rec = json.loads(record_path.read_text())
    if not rec["acquired"]:
        raise ValueError(f"round {round_} of {run_dir} is the last one: it scored no pool")
    config = rec["config"]
    questions, n_exp = config["questions"], np.asarray(rec["expected_n"], dtype=np.float64)
    labelled = set(rec["labelled"])
    is_pool = (catalog[SPLIT_COLUMN] != "test") & ~catalog[ID_COLUMN].isin(labelled)
    pos = np.flatnonzero(is_pool.to_numpy())
    model = models.load_model(round_file(run_dir, round_, ".keras"))
    rho = posteriors.sample_rho(model, images[pos], config["n_samples"], seed=rec["seed"] + round_)
    n = _pool_votes(rho, questions, n_exp, config["expected_n_tree"])
    pred, expected = acquisition.entropies(rho, n)
    mi = acquisition.bald_from_entropies(pred, expected)
    out = pd.DataFrame({ID_COLUMN: catalog[ID_COLUMN].to_numpy()[pos]})
    for j, q in enumerate(questions):
        out[f"mi {q}"] = mi[:, j]
        out[f"entropy {q}"] = pred[:, j]
    kind = {"bald": "mi", "power_bald": "mi", "entropy": "entropy"}.get(rec["strategy"])
    cols = [f"{kind} {q}" for q in config["acquire_on"]]
    out["score"] = out[cols].sum(axis=1) if kind else np.nan
    return out


def savings(curves: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Label savings against random, seed by seed, from learning curves.

    Args:
        curves: rows of :func:`history` for several strategies and seeds (columns
            ``strategy``, ``seed``, ``n_labelled`` and ``metric``); must include ``random``.
        metric: a column where lower is better (e.g. ``"smooth-or-featured nll"``).

    Returns:
        One row per (strategy, seed): ``target`` (random's final metric for that seed),
        ``labels_random`` and ``labels`` (labelled-set sizes at which random and the strategy
        first reach it, interpolated), ``reached``, ``saving`` = 1 - labels / labels_random
        (NaN when not reached) and ``saving_bound``: the saving itself when reached, else the
        upper bound 1 - (largest labelled size) / labels_random that a seed which never got
        there cannot exceed.
    """
    if "random" not in set(curves["strategy"]):
        raise ValueError("savings are measured against 'random', which is not in the curves")
    rows = []
    for seed, per_seed in curves.groupby("seed", sort=True):
        ref = per_seed[per_seed.strategy == "random"].sort_values("n_labelled")
        if ref.empty:
            raise ValueError(f"seed {seed} has no 'random' run to compare with")
        target = float(ref[metric].iloc[-1])
        n_random = labels_to_reach(ref.n_labelled, ref[metric], target)
        for strategy, cur in per_seed.groupby("strategy", sort=False):
            cur = cur.sort_values("n_labelled")
            n = labels_to_reach(cur.n_labelled, cur[metric], target)
            reached = not np.isnan(n)
            bound = 1.0 - (n if reached else float(cur.n_labelled.max())) / n_random
            rows.append({"strategy": strategy, "seed": seed, "target": target,
                         "labels_random": n_random, "labels": n, "reached": reached,
                         "saving": bound if reached else float("nan"),
                         "saving_bound": bound})  # fmt: skip
    return pd.DataFrame(rows)


def summarise_savings(table: pd.DataFrame) -> pd.DataFrame:
    """Per strategy: mean, std, min and max saving over the seeds that reached random's final
    metric, how many did (``reached`` of ``seeds``), and a one-line ``summary``."""
    rows = []
    for strategy, t in table.groupby("strategy", sort=False):
        ok = t.loc[t.reached, "saving"]
        row = {"strategy": strategy, "mean": ok.mean(), "std": ok.std(ddof=1), "min": ok.min(),
               "max": ok.max(), "reached": int(t.reached.sum()), "seeds": len(t)}  # fmt: skip
        bound = t.loc[~t.reached, "saving_bound"].max()
        if len(ok) == 0:
            text = f"none of {len(t)} seeds reached random's final metric (saving < {bound:.0%})"
        else:
            text = f"{ok.mean():.0%} ± {ok.std():.0%}" if len(ok) > 1 else f"{ok.mean():.0%}"
            if len(ok) == len(t):
                text += f" (all {len(t)} seeds)"
            else:
                text += (
                    f" (mean of the {len(ok)} of {len(t)} seeds that reached random's final "
                    f"metric; the others saved < {bound:.0%})"
                )
        row["summary"] = text
        rows.append(row)
    return pd.DataFrame(rows).set_index("strategy")
