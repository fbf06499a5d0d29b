"""Run state of active-learning experiments: the settings, their random streams, run files.

:class:`Settings` holds every choice of an experiment (both regimes), is hashed into the run
folder's name (:meth:`Settings.digest`), stored in every run file and checked on resume: the same
settings resume, changed settings are refused with the differences named.

Random streams are independent per (seed, round, purpose) (:func:`stream`, by
``numpy.random.SeedSequence``), so no two rounds or repeats share draws, and a strategy's draws
do not depend on what another strategy did. (A round's validation samples, for the learning
gate and the oracle, and its test samples both come from its ``evaluate`` stream: correlated
noise, no leak.) Strategies of one seed share the
streams of the initial labels, the training, the test samples and the pool samples (common
random numbers: their paired differences are not blurred by unrelated noise); ``random_null``
differs from ``random`` only in its acquisition stream.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

from zoolib import files
from zoolib.active.heads import HeadSettings
from zoolib.active.strategies import STRATEGIES, reference_names
from zoolib.votes.schema import ID_COLUMN, SPLIT_COLUMN

REGIMES = ("finetune", "scratch")
METRICS = ("rmse_asked", "rmse_true", "rmse", "nll")
ORACLE = "oracle"
PURPOSES = ("initial", "train", "evaluate", "score", "acquire", "null_acquire", "oracle", "views",
            "ensemble", "targets")  # fmt: skip


def strategies_problem(names) -> str | None:
    """Why ``names`` cannot be a run's strategies (``random`` among them, every name known), or
    None. :class:`Settings` and the runner's checks before a run (notebooks 04 and 05) use it."""
    known = STRATEGIES + (ORACLE,)
    unknown = [s for s in names if s not in known]
    if unknown or "random" not in names:
        return f"must include 'random'; choose from {known}" + (
            f" (unknown: {unknown})" if unknown else "")
    return None


@dataclass(frozen=True)
class Settings:
    """Every choice of an active-learning experiment. Field comments give the meaning;
    notebook 04's parameter cell sets them by keyword."""

    regime: str = "finetune"  # "finetune": heads on the pretrained trunk; "scratch": the paper's
    question: str = "all"  # ranks the pool and is measured; "all": every question
    metric: str = "rmse_asked"  # headline: rmse_asked, rmse_true (simulations), rmse (k/N) or nll
    strategies: tuple[str, ...] = ("random", "random_null", "bald", "power_bald", ORACLE)
    n_initial: int = 32  # galaxies labelled at random before round 1
    acquire_per_round: int = 32  # galaxies acquired per round
    n_rounds: int = 15  # acquisition rounds after round 0
    n_seeds: int = 20  # paired repeats: seeds seed, seed + 1, ...
    random_streams: int = 3  # random runs per seed whose mean is the reference of every gap
    seed: int = 0
    n_samples: int = 30  # T, MC-dropout samples for scoring and evaluation
    expected_votes: dict = field(default_factory=dict)  # {question: N} for the pool
    tree_votes: bool = True  # later questions' N from the decision tree
    beta: float = 1.0  # power_bald and power_epig exponent
    n_targets: int = 256  # epig: target galaxies drawn from the unlabelled pool per round
    oracle_candidates: int = 8  # random batches the look-ahead oracle tries per round
    gate_margin: float = 0.05  # round 0 must beat the constant by this fraction (validation)
    ensemble_heads: int = 8  # bald_ensemble: K bootstrap heads
    head: HeadSettings = field(default_factory=HeadSettings)  # finetune: how heads train
    initial_steps: int = 1875  # scratch: optimiser steps of round 0 (the paper's code)
    steps_per_round: int = 750  # scratch: optimiser steps per later round
    batch_size: int = 256  # scratch: training batch size
    warm_start: bool = True  # scratch: continue from the last round's model
    precision: str = "float32"  # the CNN's policy (zoolib.cnn.precision; resolve auto first): the
    # trunk features' (finetune) or the training and scoring's (scratch)

    def __post_init__(self):
        def bad(name, why):
            raise ValueError(f"Settings.{name}={getattr(self, name)!r}: {why}")

        if self.regime not in REGIMES:
            bad("regime", f"choose from {REGIMES}")
        if self.metric not in METRICS:
            bad("metric", f"choose from {METRICS}")
        if why := strategies_problem(self.strategies):
            bad("strategies", why)
        for name in ("n_initial", "acquire_per_round", "n_rounds", "n_seeds", "n_samples",
                     "random_streams", "n_targets"):  # fmt: skip
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                bad(name, "must be a whole number >= 1")
        if self.oracle_candidates < 1 or not 0 <= self.gate_margin < 1:
            bad(
                "oracle_candidates" if self.oracle_candidates < 1 else "gate_margin", "out of range"
            )
        if self.precision not in ("float32", "mixed_bfloat16"):
            bad("precision",
                "float32 or mixed_bfloat16 (zoolib.cnn.precision.choose resolves auto)")
        if isinstance(self.head, dict):
            object.__setattr__(self, "head", HeadSettings(**self.head))
        object.__setattr__(self, "strategies", tuple(self.strategies))

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self), sort_keys=True))

    @classmethod
    def from_dict(cls, values: dict) -> Settings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown settings {unknown}; known: {sorted(known)}")
        return cls(**values)

    def digest(self) -> str:
        """Ten hex digits of the settings' sha256: the run folder's name part."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    @property
    def runs(self) -> tuple[str, ...]:
        """Every run of a seed: the strategies, with random's extra reference streams after
        random (random_2, ...: :func:`zoolib.active.strategies.reference_names`)."""
        extra = reference_names(self.random_streams)[1:]
        at = self.strategies.index("random") + 1
        return self.strategies[:at] + extra + self.strategies[at:]

    @property
    def seeds(self) -> list[int]:
        return [self.seed + s for s in range(self.n_seeds)]

    @property
    def budget(self) -> list[int]:
        """Labelled-set sizes after rounds 0..n_rounds."""
        return [self.n_initial + r * self.acquire_per_round for r in range(self.n_rounds + 1)]


def gate(ours: float, constant: float, settings: Settings, seed: int, raise_what: str) -> None:
    """The learning gate: round 0's validation metric must beat the constant's by the margin."""
    needed = (1 - settings.gate_margin) * constant
    if not ours <= needed:
        raise ValueError(
            f"learning gate: round 0 of seed {seed} does not beat the constant prediction on the "
            f"validation split ({settings.question} {settings.metric} {ours:.4f} against "
            f"{constant:.4f}; needed <= {needed:.4f}). Raise {raise_what}, or lower gate_margin "
            f"({settings.gate_margin}) if you mean to study a model that has not learned"
        )


def stream(seed: int, round_: int, purpose: str, index: int = 0) -> np.random.Generator:
    """The independent random stream of (seed, round, purpose); ``index`` > 0 gives further
    independent repeats of it (random's extra reference streams)."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown stream purpose {purpose!r}; choose from {PURPOSES}")
    entropy = [seed, round_, PURPOSES.index(purpose)] + ([index] if index else [])
    return np.random.default_rng(np.random.SeedSequence(entropy))


def catalog_fingerprint(catalog: pd.DataFrame) -> str:
    """sha256 of the catalogue's ids and splits in order: which galaxies, and which are test."""
    text = "\n".join(catalog[ID_COLUMN].astype(str) + "\t" + catalog[SPLIT_COLUMN].astype(str))
    return hashlib.sha256(text.encode()).hexdigest()


def array_digest(*arrays) -> str:
    """sha256 of arrays' shapes, dtypes and values (None skipped): what a run was computed on."""
    digest = hashlib.sha256()
    for a in arrays:
        if a is None:
            continue
        a = np.ascontiguousarray(a)
        digest.update(f"{a.shape}{a.dtype}".encode())
        digest.update(a.data)
    return digest.hexdigest()


def truth(catalog: pd.DataFrame, questions: list[str]) -> np.ndarray | None:
    """(G, Q) true p of a simulated catalogue, or None for a real one."""
    columns = [f"true_p_{q}" for q in questions]
    return catalog[columns].to_numpy() if set(columns) <= set(catalog.columns) else None


def check_same(path: Path, stored: dict, current: dict) -> None:
    """Refuse to resume ``path`` when it was started with other settings (names them)."""
    if stored == current:
        return
    details = ", ".join(differences(stored, current))
    raise ValueError(
        f"{path} was started with other settings ({details}); resuming would mix them. "
        "Delete it or choose another run folder."
    )


def differences(stored: dict, current: dict, prefix: str = "") -> list[str]:
    """``key: old -> new`` for every entry that differs, nested dicts as ``outer.inner``."""
    out = []
    for k in sorted(stored.keys() | current.keys()):
        old, new = stored.get(k), current.get(k)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            out += differences(old, new, f"{prefix}{k}.")
        else:
            out.append(f"{prefix}{k}: {old!r} -> {new!r}")
    return out


def run_file(run_dir, strategy: str, seed: int) -> Path:
    """``<run_dir>/<strategy>-seed<seed>.json``: one strategy's rounds for one seed."""
    return Path(run_dir) / f"{strategy}-seed{seed}.json"


def read_run(path: Path, header: dict) -> list[dict]:
    """The rounds recorded in ``path`` so far ([] if none), after checking its header."""
    if not path.exists():
        return []
    record = json.loads(path.read_text())
    check_same(path, record["header"], header)
    return record["rounds"]


def write_run(path: Path, header: dict, rounds: list[dict]) -> None:
    """Write a run's rounds atomically: a killed run keeps its last complete round."""
    files.write_json(path, {"header": header, "rounds": rounds})


def labelled_after(rounds: list[dict]) -> list[str]:
    """Ids labelled after the last recorded round: round 0's, plus every acquisition."""
    ids = list(rounds[0]["labelled"])
    for r in rounds:
        ids += r["acquired"]
    return ids


def curves(rounds_by_run: dict[tuple[str, int], list[dict]]) -> pd.DataFrame:
    """Learning curves: one row per (strategy, seed, round) with ``n_labelled`` and the test
    metrics as ``<question> <metric>`` columns (the shape :mod:`zoolib.active.savings` reads)."""
    rows = []
    for (strategy, seed), rounds in rounds_by_run.items():
        for r in rounds:
            row = {"strategy": strategy, "seed": seed, "round": r["round"],
                   "n_labelled": r["n_labelled"]}  # fmt: skip
            for q, values in r["test"].items():
                row.update({f"{q} {name}": v for name, v in values.items()})
            rows.append(row)
    return pd.DataFrame(rows)


def acquisitions(rounds_by_run: dict[tuple[str, int], list[dict]]) -> pd.DataFrame:
    """One row per acquired galaxy: ``id_str``, ``strategy``, ``seed``, ``round``, ``score``."""
    rows = [
        {ID_COLUMN: i, "strategy": strategy, "seed": seed, "round": r["round"], "score": s}
        for (strategy, seed), rounds in rounds_by_run.items()
        for r in rounds
        for i, s in zip(r["acquired"], r["scores"] or [np.nan] * len(r["acquired"]), strict=True)
    ]
    return pd.DataFrame(rows, columns=[ID_COLUMN, "strategy", "seed", "round", "score"])
