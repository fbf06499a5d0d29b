r"""Active learning in the fine-tuning regime: MC-dropout heads on the pretrained trunk's features.

The trunk of the shipped pretrained CNN (:mod:`zoolib.cnn.pretrained`; trained on galaxies disjoint
from any notebook's) turns every image into 128 features once. Each round then trains a fresh
MC-dropout head (:mod:`zoolib.active.heads`: dropout then one dense layer, from zero weights, to
convergence) on the labelled galaxies' cached features, measures it on the test split, scores
the pool and acquires. A round takes milliseconds, so an experiment affords tens of paired seeds:
this is how Zoobot is used (a pretrained representation, a new labelled set) and what gives the
savings statistics of :mod:`zoolib.active.savings` their power on a CPU.

Splits of the catalogue (``split`` column): ``train`` is the pool; ``val`` is labelled and used
only for the learning gate and the look-ahead oracle; ``test`` only for the learning curves.
Strategies (:mod:`zoolib.active.strategies`) plus ``oracle``: per round it draws
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

import numpy as np
import pandas as pd
from scipy import special

from zoolib.active import heads, loop, runs, strategies
from zoolib.active.runs import Settings, stream
from zoolib.votes import trees
from zoolib.votes.schema import ID_COLUMN, SPLIT_COLUMN, counts


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
    tree: trees.Tree | None = None  # a softmax head over each question's answers, or None

    @property
    def sizes(self) -> list[int] | None:
        """Answers per question of a tree's softmax head; None for sigmoid heads."""
        return None if self.tree is None else self.tree.sizes()

    @classmethod
    def build(cls, features, catalog, questions, views=None, tree=None) -> Data:
        """``questions``: the yes/no questions of sigmoid heads; with ``tree`` (a softmax head
        per question of it) they are its answer columns, ``<question>_<answer>``."""
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
        if tree is None:
            k, n = counts(catalog, questions)
        else:
            k, n = tree.answer_counts(catalog)
            questions = tree.answer_columns()
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
            tree,
        )

    def rows(self, ids) -> np.ndarray:
        return np.array([self.position[i] for i in ids], dtype=int)


class HeadLearner:
    """The fine-tuning regime's learner for :func:`zoolib.active.loop.run`: a model is a head
    (weights (F, Q), bias (Q,)) trained by :func:`zoolib.active.heads.fit` on the cached
    features."""

    regime = "finetune"

    def __init__(self, data: Data, settings: Settings):
        self.data, self.settings = data, settings
        self.catalog, self.questions = data.catalog, data.questions
        self.pool, self.val, self.test = data.pool, data.val, data.test
        self.rows = data.rows
        head = settings.head
        self.gate_hint = (f"n_initial (now {settings.n_initial}), the head's steps "
                          f"({head.steps}) or learning_rate ({head.learning_rate})")  # fmt: skip

    def header(self) -> dict:
        """What a run file must match to be resumed: the settings, which galaxies are in which
        split, and a digest of the features, votes and truth the run was computed on."""
        data = self.data
        truth = runs.truth(data.catalog, data.questions)
        return {
            "settings": self.settings.to_dict(), "questions": list(data.questions),
            "catalog": runs.catalog_fingerprint(data.catalog),
            "data": runs.array_digest(data.features, data.views, data.k, data.n, truth),
        }  # fmt: skip

    def fit_many(self, rows_sets: list[np.ndarray], rng, weights=None):
        """Heads trained on each labelled set (all of one size), together: (H, F, Q), (H, Q)."""
        idx = np.stack(rows_sets)
        d = self.data
        return heads.fit(d.features[idx], d.k[idx], d.n[idx], self.settings.head, rng,
                         weights=None if weights is None else np.stack(weights),
                         sizes=d.sizes)  # fmt: skip

    def fit(self, rows, seed: int, r: int, strategy, weights=None):
        w, b = self.fit_many([rows], stream(seed, r, "train"),
                             None if weights is None else [weights])  # fmt: skip
        return w[0], b[0]

    def rho(self, model, rows, posterior: str, rng) -> np.ndarray:
        w, b = model
        rate, t = self.settings.head.dropout_rate, self.settings.n_samples
        if posterior == "shared":
            return heads.sample_rho_shared(self.data.features[rows], w, b, t, rate, rng)
        inputs = self.data.views[:, rows] if posterior == "views" else self.data.features[rows]
        return heads.sample_probabilities(inputs, w, b, t, rate, rng, self.data.sizes)

    @property
    def tree(self) -> trees.Tree | None:
        return self.data.tree

    @property
    def votes(self):
        """catalogue -> (k, N) of a tree's answers (each answer, its question's N), for the
        metrics; None for yes/no questions (the schema's counts)."""
        return None if self.data.tree is None else self.data.tree.answer_counts

    def features(self, rows) -> np.ndarray:
        return self.data.features[rows]

    def ensemble_rho(self, labelled, rows, seed: int, r: int) -> np.ndarray:
        """(pool, Q, K) predictions of K heads, each trained on a bootstrap resample of the
        labelled set; each predicts deterministically (dropout's mean, the weights as they are)."""
        rng = stream(seed, r, "ensemble")
        count = self.settings.ensemble_heads
        resamples = [rng.choice(labelled, len(labelled)) for _ in range(count)]
        w, b = self.fit_many(resamples, rng)
        logits = np.einsum("gf,hfq->ghq", self.data.features[rows].astype(np.float64), w) + b[None]
        return np.clip(special.expit(np.moveaxis(logits, 1, 2)), heads.RHO_CLIP,
                       1 - heads.RHO_CLIP)  # fmt: skip

    def oracle(self, labelled, pool, seed: int, r: int) -> np.ndarray:
        """The random candidate batch whose next-round head is best on validation (true p)."""
        rng, settings = stream(seed, r, "oracle"), self.settings
        size = settings.acquire_per_round
        batches = [pool[rng.choice(len(pool), size, replace=False)]
                   for _ in range(settings.oracle_candidates)]  # fmt: skip
        w, b = self.fit_many([np.concatenate([labelled, c]) for c in batches],
                             stream(seed, r + 1, "train"))  # fmt: skip
        scores = [
            loop.headline(
                loop.metrics(self, (w[c], b[c]), self.val, stream(seed, r, "evaluate")), settings
            )  # fmt: skip
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
    tree: trees.Tree | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run (or resume) every strategy and seed of ``settings``; return (curves, acquisitions).

    Args:
        settings: the experiment (``regime`` must be "finetune").
        features: (G, F) trunk features of every catalogue row (see
            :func:`zoolib.cnn.posteriors.trunk_features`).
        catalog: canonical catalogue with ``id_str``, ``split`` and vote columns (and
            ``true_p_<question>`` for ``rmse_true`` and the oracle).
        questions: the Q questions the heads learn.
        run_dir: folder of the run files (``<strategy>-seed<s>.json``, one round per rewrite);
            calling again resumes after the last complete round with identical results.
        views: (V, G, F) features of flipped and rotated images, for ``bald_views``.
        stop_after: stop after computing this many new rounds (to simulate a kill in tests).
        tree: learn a softmax head over each question's answers of this tree (the catalogue's
            count columns) instead of a sigmoid per yes/no question; the curves then measure
            every answer, ``<question>_<answer> <metric>``, and ``all``.

    Returns:
        curves (:func:`zoolib.active.runs.curves`) and acquisitions
        (:func:`zoolib.active.runs.acquisitions`), from the round loop
        :func:`zoolib.active.loop.run`.
    """
    if "bald_views" in settings.strategies and views is None:
        raise ValueError("strategy 'bald_views' needs views=, the trunk features of the 8 flips "
                         "and rotations (posteriors.trunk_features(..., views=True))")  # fmt: skip
    learner = HeadLearner(Data.build(features, catalog, questions, views, tree), settings)
    return loop.run(settings, learner, run_dir, progress, stop_after)


def run_header(settings: Settings, data: Data) -> dict:
    """The header of the run files of ``settings`` on ``data`` (:meth:`HeadLearner.header`)."""
    return HeadLearner(data, settings).header()


def round_model(learner: HeadLearner, rounds: list[dict], strategy: str, seed: int, round_: int):
    """(labelled rows, head) of a run's round, retrained from its run file's ``rounds`` with the
    loop's own streams: the same head the loop measured at that round."""
    data = learner.data
    labelled = data.rows(runs.labelled_after(rounds[:round_]) if round_ else rounds[0]["labelled"])
    weights = loop.training_weights(strategy, rounds[:round_], len(data.pool))
    return labelled, learner.fit(labelled, seed, round_, strategy, weights)


def final_test_predictions(
    settings: Settings, features, catalog, questions, run_dir
) -> pd.DataFrame:
    """Every run's last head (:func:`round_model`) on the test split, its MC-dropout mean rho
    from the loop's own evaluation stream (what its last curve point measured): one row per
    (strategy, seed, test galaxy) with ``strategy``, ``seed``, ``id_str`` and ``rho <q>``."""
    data = Data.build(features, catalog, questions)
    learner, header = HeadLearner(data, settings), run_header(settings, data)
    ids, parts, last = data.catalog[ID_COLUMN].to_numpy()[data.test], [], settings.n_rounds
    for seed in settings.seeds:
        for strategy in settings.runs:
            rounds = runs.read_run(runs.run_file(run_dir, strategy, seed), header)
            if len(rounds) <= last:
                raise ValueError(f"{strategy} seed {seed} has not finished: run it first")
            _, model = round_model(learner, rounds, strategy, seed, last)
            rho = learner.rho(model, data.test, "dropout", stream(seed, last, "evaluate"))
            part = pd.DataFrame({"strategy": strategy, "seed": seed, ID_COLUMN: ids})
            parts.append(
                part.join(pd.DataFrame(rho.mean(-1), columns=[f"rho {q}" for q in questions]))
            )
    return pd.concat(parts, ignore_index=True)


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
    from zoolib.active import acquisition

    data = Data.build(features, catalog, questions, views)
    rounds = runs.read_run(runs.run_file(run_dir, strategy, seed), run_header(settings, data))
    if round_ >= min(len(rounds), settings.n_rounds):
        raise ValueError(f"round {round_} of {strategy} seed {seed} did not score a pool")
    learner = HeadLearner(data, settings)
    labelled, model = round_model(learner, rounds, strategy, seed, round_)
    pool = np.setdiff1d(data.pool, labelled)
    rho = learner.rho(model, pool, "dropout", stream(seed, round_, "score"))
    n = strategies.pool_n(rho, data.catalog.iloc[labelled], data.questions,
                          settings.expected_votes, settings.tree_votes)  # fmt: skip
    entropy, expected = acquisition.entropies(rho, n)
    mi = acquisition.bald_from_entropies(entropy, expected)
    out = pd.DataFrame({ID_COLUMN: data.catalog[ID_COLUMN].to_numpy()[pool]})
    for j, q in enumerate(questions):
        out[f"rho {q}"], out[f"n {q}"] = rho[:, j].mean(axis=-1), n[:, j]
        out[f"entropy {q}"], out[f"mi {q}"] = entropy[:, j], mi[:, j]
    out["mi"] = mi[:, loop.scored(settings, list(questions))].sum(axis=1)
    return out


def what_mi_tracks(scored: pd.DataFrame, questions: list[str]) -> pd.DataFrame:
    r"""What a pool's mutual information ranks by, per question: its Spearman correlation with
    the galaxy's ``brightness`` and, on a simulation (``true_p_<q>``), with the true excess loss
    :math:`N\,\mathrm{KL}(p_\text{true}\,\|\,\bar\rho)` (what labelling the galaxy could teach),
    and the featured share and median redshift of the top 10% by MI against the whole pool.

    ``scored``: :func:`pool_scores` joined to the catalogue (``morphology``, ``redshift``) and a
    ``brightness`` column. Returns one row per question.
    """
    from scipy import stats

    rows = []
    for q in questions:
        mi = scored[f"mi {q}"]
        row = {"question": q, "Spearman(MI, brightness)": stats.spearmanr(mi, scored.brightness)[0]}
        if f"true_p_{q}" in scored:
            p, r = scored[f"true_p_{q}"].to_numpy(), scored[f"rho {q}"].to_numpy()
            excess = scored[f"n {q}"] * (special.rel_entr(p, r) + special.rel_entr(1 - p, 1 - r))
            top = mi >= mi.quantile(0.9)
            featured = scored.morphology == "featured"
            row.update({
                "Spearman(MI, true excess loss)": stats.spearmanr(mi, excess)[0],
                "featured share, top 10% MI": featured[top].mean(),
                "featured share, pool": featured.mean(),
                "median z, top 10% MI": scored.redshift[top].median(),
                "median z, pool": scored.redshift.median(),
            })  # fmt: skip
        rows.append(row)
    return pd.DataFrame(rows).set_index("question")
