"""Test-set evaluation of a vote model against a baseline, and metrics files for the reports.

For each question the model's MC-dropout samples are scored with
:func:`zoolib.votes.metrics.mean_posterior_nll` (NLL of the observed votes under the mixture) and
:func:`zoolib.votes.metrics.rmse` of the mean :math:`\\rho` against the observed fraction k/N. The
baseline predicts, for every galaxy, the training set's pooled fraction
:math:`\\sum k / \\sum N`: a model that learned nothing from the images. On synthetic data the
RMSE against the true volunteer probability ``true_p_<question>`` is reported as well.

``rmse_asked`` counts what volunteers are asked: each galaxy's squared error on a question is
weighted by the share of its volunteers who would be asked that question,
:math:`w_q = \\prod_{\\text{answers leading to } q} p` (1 for smooth-or-featured;
:func:`zoolib.votes.schema.share_asked`), so the bar truth of a smooth galaxy, which nobody is
asked,
weighs almost nothing:

.. math:: \\mathrm{RMSE}_\\text{asked} =
          \\sqrt{\\sum_{i,q} w_{iq}\\,(\\bar\\rho_{iq} - p_{iq})^2 \\big/ \\sum_{i,q} w_{iq}}

per question (sums over galaxies) and, for ``all``, pooled over questions. On a simulation p and
w come from the true probabilities; on a real catalogue p is the observed k/N and w the observed
:math:`N_q / N_\\text{first question}`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from zoolib import files, paths
from zoolib.votes import binomial, metrics
from zoolib.votes.schema import QUESTIONS, ancestors, counts, question, share_asked

TRUTH_COLUMNS = {"true_p_": "rmse_true", "recoverable_p_": "rmse_recoverable"}
METRIC_LABELS = {
    "nll": "NLL", "rmse": "RMSE", "rmse_true": "RMSE vs true p",
    "rmse_recoverable": "RMSE vs recoverable p", "rmse_asked": "RMSE weighted by asked",
}  # fmt: skip


def baseline_fractions(train_catalog: pd.DataFrame, questions: list[str], votes=None) -> np.ndarray:
    """(Q,) pooled training fraction sum(k) / sum(N) per question (or per output: ``votes``,
    a function catalogue -> (k, N) such as :meth:`zoolib.cnn.cards.ModelCard.counts`, gives the
    counts of other names, e.g. a tree model's answers)."""
    k, n = (votes or _schema_counts(questions))(train_catalog)
    for j, name in enumerate(questions):
        if n[:, j].sum() == 0:
            raise ValueError(f"no training galaxy was asked {name!r}: no baseline")
    return k.sum(axis=0) / n.sum(axis=0)


def _schema_counts(questions):
    return lambda catalog: tuple(np.asarray(c, np.float64) for c in counts(catalog, questions))


def evaluate(
    rho_samples: np.ndarray,
    catalog: pd.DataFrame,
    questions: list[str],
    baseline: np.ndarray | None = None,
    votes=None,
) -> pd.DataFrame:
    """Per-question metrics of the model (and the baseline) on ``catalog``'s galaxies.

    Args:
        rho_samples: (galaxies, Q, T) MC-dropout samples, rows in catalogue order.
        catalog: canonical catalogue (vote columns, optional ``true_p_<question>``).
        questions: the Q question names, in the model's output order.
        baseline: (Q,) constant fractions (see :func:`baseline_fractions`), or None.
        votes: catalogue -> (k, N) (as :func:`baseline_fractions`), for outputs that are not
            schema questions: a tree model's answers ``<question>_<answer>``, scored as yes/no
            questions (this answer or another); ``rmse_asked`` is for schema questions only.

    Returns:
        DataFrame indexed by (model, question) with columns ``nll`` (nats per galaxy asked),
        ``rmse`` (against k/N) and, when the truth is known, ``rmse_true`` (against true p) and
        ``rmse_recoverable`` (against the part of true p the image can show).
    """
    rho_samples = np.asarray(rho_samples, dtype=np.float64)
    k, n = (votes or _schema_counts(questions))(catalog)
    models = {"cnn": rho_samples}
    if baseline is not None:
        models["baseline"] = np.broadcast_to(np.asarray(baseline)[None, :, None], k.shape + (1,))
    rows = []
    for label, samples in models.items():
        mean = samples.mean(axis=-1)
        nll = metrics.mean_posterior_nll(samples, k, n)
        rmse = metrics.rmse(mean, k, n)
        for j, name in enumerate(questions):
            row = {"model": label, "question": name, "nll": nll[j], "rmse": rmse[j]}
            row.update(_truth_rmse(mean[:, j], catalog, name))
            if name in QUESTIONS:
                row["rmse_asked"] = np.sqrt(_asked_sums(mean[:, j], catalog, name)[0])
            rows.append(row)
    return pd.DataFrame(rows).set_index(["model", "question"])


def question_metrics(rho_samples, catalog, questions, baseline=None, votes=None) -> dict:
    """:func:`evaluate` as {model: {question: {metric: value}}}, each model with an ``all``
    entry: every metric's mean over the questions (``votes``: as :func:`evaluate`, for a tree's
    answers; ``rmse_asked`` pools schema questions only)."""
    out = table_to_dict(evaluate(rho_samples, catalog, questions, baseline, votes))
    schema = all(q in QUESTIONS for q in questions)
    weight = np.array([asked_weights(catalog, q)[0].sum() for q in questions]) if schema else None
    for per_question in out.values():
        first = per_question[questions[0]]
        per_question["all"] = {
            m: float(np.mean([per_question[q][m] for q in questions])) for m in first
        }
        if schema:
            squares = np.array([per_question[q].get("rmse_asked", 0.0) ** 2 for q in questions])
            per_question["all"]["rmse_asked"] = float(np.sqrt(squares @ weight / weight.sum()))
    return out


def asked_weights(catalog: pd.DataFrame, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(weights, reference) of ``rmse_asked`` for one question, each (G,): the share of each
    galaxy's volunteers asked ``name`` and the probability to compare with. From the true p
    where the catalogue has it for the question and the answers leading there (a simulation),
    else from the observed votes: :math:`N_q / N_\\text{first}` and k/N (0 where N = 0)."""
    path = [name] + [q for q, _ in ancestors(name)]
    if all(f"true_p_{q}" in catalog.columns for q in path):
        truth = lambda q: catalog[f"true_p_{q}"].to_numpy()  # noqa: E731
        weights = np.broadcast_to(share_asked(name, truth), (len(catalog),))
        return weights.astype(np.float64), truth(name).astype(np.float64)
    k, n = (np.asarray(c, dtype=np.float64)[:, 0] for c in counts(catalog, [name]))
    root = catalog[question(path[-1]).total_column].to_numpy(dtype=np.float64)
    weights = np.divide(n, root, out=np.zeros_like(n), where=root > 0)
    return weights, np.divide(k, n, out=np.zeros_like(k), where=n > 0)


def _asked_sums(rho: np.ndarray, catalog: pd.DataFrame, name: str) -> tuple[float, float]:
    """(weighted mean squared error, total weight) of ``rho`` for ``rmse_asked``."""
    weights, reference = asked_weights(catalog, name)
    total = float(weights.sum())
    if total == 0:
        return float("nan"), 0.0
    return float(weights @ (rho - reference) ** 2 / total), total


def _truth_rmse(rho: np.ndarray, catalog: pd.DataFrame, name: str) -> dict[str, float]:
    """RMSE of ``rho`` against each truth column the catalogue has (all galaxies)."""
    return {
        metric: float(np.sqrt(np.mean((rho - catalog[f"{prefix}{name}"].to_numpy()) ** 2)))
        for prefix, metric in TRUTH_COLUMNS.items()
        if f"{prefix}{name}" in catalog.columns
    }


def headroom(train: pd.DataFrame, test: pd.DataFrame, questions: list[str],
             votes=None) -> pd.DataFrame:  # fmt: skip
    """Test NLL and RMSE of the constant baseline and of oracles that know the truth.

    Per question, over test galaxies asked it: the baseline predicts the training set's pooled
    fraction; ``oracle`` predicts ``true_p`` (the best any model can do); ``recoverable`` predicts
    ``recoverable_p`` (roughly what a model of the image can reach; an approximation, see
    :func:`zoolib.universe.volunteers.recoverable_probabilities`). Columns as in :func:`evaluate`
    (RMSE against the truth over all test galaxies, as there). A trained CNN lands between the
    baseline and the oracles; every later notebook can say where. ``votes`` as in
    :func:`evaluate`.
    """
    base = baseline_fractions(train, questions, votes)
    k_all, n_all = (votes or _schema_counts(questions))(test)
    rows = []
    for j, name in enumerate(questions):
        k, n = k_all[:, j], n_all[:, j]
        predictors = {"baseline": np.full(len(test), base[j])}
        for prefix, label in (("true_p_", "oracle"), ("recoverable_p_", "recoverable")):
            if f"{prefix}{name}" in test.columns:
                predictors[label] = test[f"{prefix}{name}"].to_numpy()
        for label, rho in predictors.items():
            row = {
                "model": label, "question": name,
                "nll": float(metrics.mean_nll(rho, k, n)), "rmse": float(metrics.rmse(rho, k, n)),
            }  # fmt: skip
            row.update(_truth_rmse(rho, test, name))
            rows.append(row)
    return pd.DataFrame(rows).set_index(["model", "question"])


def write_metrics(name: str, payload: dict, metrics_dir: Path | None = None) -> Path:
    """Write ``payload`` as ``<metrics_dir>/<name>.json`` atomically; return the path."""
    return files.write_json(Path(metrics_dir or paths.METRICS_DIR) / f"{name}.json", payload)


def table_to_dict(table: pd.DataFrame) -> dict:
    """{model: {question: {metric: value}}} from an :func:`evaluate` table."""
    out: dict = {}
    for (model, name), row in table.iterrows():
        out.setdefault(model, {})[name] = {k: float(v) for k, v in row.dropna().items()}
    return out


def learned(table: pd.DataFrame) -> list[str]:
    """Per question, whether the model beats the constant baseline on the test NLL, in words
    (an :func:`evaluate` table with a baseline): the gap is what the images taught it only if
    the model is below the constant; otherwise say so plainly, and by how much."""
    lines = []
    for name in table.loc["cnn"].index:
        ours, constant = table.loc[("cnn", name), "nll"], table.loc[("baseline", name), "nll"]
        change = (ours - constant) / constant
        if ours < constant:
            lines.append(f"{name}: test NLL {ours:.4f} against the constant's {constant:.4f} "
                         f"({change:+.0%}): the images taught it this much")  # fmt: skip
        else:
            lines.append(f"{name}: test NLL {ours:.4f} is NOT below the constant's "
                         f"{constant:.4f} ({change:+.0%}): the model does not beat predicting "
                         "the training set's share for every galaxy; nothing here was learned "
                         "from the images")  # fmt: skip
    return lines


def summarize(table: pd.DataFrame) -> dict[str, float]:
    """Flat {"<question> <metric> <model>": value} from an :func:`evaluate` table."""
    out = {}
    for (model, name), row in table.iterrows():
        for metric, value in row.dropna().items():
            out[f"{name} {METRIC_LABELS.get(metric, metric)} {model}"] = float(value)
    return out


def rho_interval_coverage(rho_samples: np.ndarray, true_p: np.ndarray, levels) -> np.ndarray:
    """Fraction of galaxies whose true p lies in the central interval of their rho samples.

    Args:
        rho_samples: (galaxies, T) samples for one question.
        true_p: (galaxies,) the true volunteer probability (simulated data only).
        levels: nominal levels in (0, 1).

    Returns:
        (len(levels),) coverage; the interval at level L runs between the (1-L)/2 and (1+L)/2
        empirical quantiles of the T samples. This checks the *epistemic* uncertainty that MC
        dropout claims about rho itself, not the vote-count posterior.
    """
    rho_samples = np.asarray(rho_samples, dtype=np.float64)
    true_p = np.asarray(true_p, dtype=np.float64)
    out = []
    for level in levels:
        lo = np.quantile(rho_samples, (1 - level) / 2, axis=-1)
        hi = np.quantile(rho_samples, (1 + level) / 2, axis=-1)
        out.append(np.mean((lo <= true_p) & (true_p <= hi)))
    return np.asarray(out)


def posterior_report(
    rho_samples: np.ndarray,
    rho_single: np.ndarray,
    k: np.ndarray,
    n: np.ndarray,
    questions: list[str],
    levels=(0.5, 0.8, 0.95),
    concentration=None,
    concentration_single=None,
    seed: int = 0,
    label: str = "",
) -> tuple[dict, dict]:
    """Calibration and accuracy of the MC-dropout mixture against a single deterministic pass.

    Args:
        rho_samples: (galaxies, Q, T) MC-dropout samples; rho_single: (galaxies, Q) dropout off.
        k, n: (galaxies, Q) observed votes.
        concentration, concentration_single: None (binomial votes) or (Q,) beta-binomial
            concentrations for the mixture and the single pass (:func:`zoolib.votes.binomial.
            fit_concentration`, fitted on the validation split).
        seed: seed of the randomised PIT.
        label: prefix of the summary's keys (e.g. "calibrated ").

    Returns:
        ({question: {coverage_mc, coverage_single (interval coverage, at least the level for
        discrete votes), randomized_mc, randomized_single (randomised-PIT coverage, exactly the
        level when calibrated), nll_mc, nll_single, rmse_mc, rmse_single}}, a flat summary).
    """
    single = np.asarray(rho_single)[..., None]
    phi = {"mc": concentration, "single": concentration_single}
    samples = {"mc": rho_samples, "single": single}
    cov = {m: binomial.coverage(samples[m], k, n, levels, concentration=phi[m]) for m in samples}
    rnd = {
        m: binomial.randomized_coverage(samples[m], k, n, levels, seed, concentration=phi[m])
        for m in samples
    }
    nll = {m: binomial.mixture_nll(samples[m], k, n, concentration=phi[m]) for m in samples}
    rmse_mc = metrics.rmse(np.mean(rho_samples, axis=-1), k, n)
    rmse_single = metrics.rmse(np.asarray(rho_single), k, n)
    results, summary = {}, {}
    for j, name in enumerate(questions):
        results[name] = {
            f"{kind}_{m}": {str(lv): float(table[m][i, j]) for i, lv in enumerate(levels)}
            for kind, table in (("coverage", cov), ("randomized", rnd))
            for m in samples
        }
        results[name].update({
            "nll_mc": float(nll["mc"][j]), "nll_single": float(nll["single"][j]),
            "rmse_mc": float(rmse_mc[j]), "rmse_single": float(rmse_single[j]),
        })  # fmt: skip
        for i, lv in enumerate(levels):
            summary[f"{label}{name} coverage@{lv:.0%} MC / single (PIT)"] = (
                f"{rnd['mc'][i, j]:.3f} / {rnd['single'][i, j]:.3f}"
            )
        summary[f"{label}{name} NLL MC / single"] = f"{nll['mc'][j]:.4f} / {nll['single'][j]:.4f}"
    return results, summary
