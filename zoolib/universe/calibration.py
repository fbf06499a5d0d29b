r"""Calibrate the simulated volunteers against real Galaxy Zoo vote fractions, and measure it.

The comparison, per question: the distribution of vote fractions :math:`k/N` over galaxies asked
it at least ``MIN_VOTES`` times, real against simulated, the simulation drawing its votes with
the survey's own :math:`N` (the first question's :math:`N` from the survey's distribution, the
later questions' through the decision tree). Distances: the Kolmogorov-Smirnov statistic
(largest gap between the two cumulative distributions) and the Wasserstein-1 distance (area
between them, in units of vote fraction). References shipped in ``data/raw`` (:data:`SURVEYS`):

* ``gz2``: GZ2 Stripe 82 (Willett et al. 2013), 19,761 galaxies, N about 20: all three questions;
* ``decals``: GZ DECaLS DR5 (Walmsley et al. 2022), 4,000 galaxies, N about 40:
  smooth-or-featured only, so that preset's edge-on and bar constants are the gz2 fit's.

**Fit.** For fixed latents (``fit_galaxies`` of them) and fixed realised N, the expected
distribution of :math:`k/N` is a mixture of binomials,
:math:`F(x) = \frac1G\sum_g \sum_{k \le xN_g} \mathrm{Bin}(k \mid N_g, p_g)`, a smooth function
of the volunteer constants. Nelder-Mead minimises the Cramer-von Mises distance
:math:`\int (F - F_\text{real})^2\,dF_\text{real}` plus 0.1 times the KS distance, one question
at a time down the tree (each question's N depends on the answers above it), within bounds
(:data:`BOUNDS`): the vote distributions alone cannot tell the galaxy-level ambiguity (no
image shows it) from visible structure, so its scale is at most :data:`AMBIGUITY_MAX`, and a
galaxy nobody can make out gets within :data:`BLUR_MAX` logits of a coin toss (see
``docs/simulation.md``).

**Measure.** A fresh universe (other seeds) draws real votes; :func:`distances` compares them
with the reference; :func:`noise_floor` gives the KS that sampling alone produces for a
perfect simulation (two simulated samples of the same sizes: random against random).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from zoolib import files, paths
from zoolib.data import catalogs
from zoolib.universe import synthetic, volunteers
from zoolib.votes.schema import QUESTIONS, question

MIN_VOTES = 5  # fractions from fewer votes are mostly the binomial noise of small N


@dataclass(frozen=True)
class Survey:
    """A real catalogue to calibrate against."""

    path: str  # relative to data/raw (paths.RAW_DIR)
    questions: tuple[str, ...]
    citation: str
    label: str  # for figures and tables


SURVEYS: dict[str, Survey] = {
    "gz2": Survey(
        "gz2_stripe82/table5_counts.csv.gz",
        tuple(QUESTIONS),
        "Willett et al. 2013, MNRAS 435, 2835 (GZ2 Stripe 82 coadd, table 5)",
        "GZ2 Stripe 82",
    ),
    "decals": Survey(
        "gz_decals_dr5/smooth_or_featured_votes.csv.gz",
        ("smooth-or-featured",),
        "Walmsley et al. 2022, MNRAS 509, 3966 (GZ DECaLS DR5)",
        "GZ DECaLS",
    ),
}
FITTED = {  # constants fitted per question; the others keep their values
    "smooth-or-featured": (
        "feat_disk", "feat_slope", "feat_ell", "feat_blur", "amb_smooth", "art_base",
    ),
    "disk-edge-on": (
        "edge_base", "edge_slope", "edge_q", "edge_width", "edge_ell_below", "edge_flat",
        "amb_edge",
    ),
    "bar": ("bar_base", "bar_slope", "bar_ell_below", "amb_bar"),
}  # fmt: skip
AMBIGUITY_MAX = 1.0  # logit units: a prior that volunteers answer mostly what they see
BLUR_MAX = 1.0  # a galaxy nobody can make out gets 27-73% featured votes (see the docstring)
BOUNDS = {  # (low, high) of fitted constants; None: unbounded
    "feat_slope": (0.0, None), "edge_slope": (0.0, None), "bar_slope": (0.0, None),
    "feat_blur": (-BLUR_MAX, BLUR_MAX),
    "edge_q": (0.05, 0.6), "edge_width": (0.02, 0.3), "edge_flat": (0.0, None),
    "edge_ell_below": (0.0, None), "bar_ell_below": (0.0, None),
    "amb_smooth": (0.0, AMBIGUITY_MAX), "amb_edge": (0.0, AMBIGUITY_MAX),
    "amb_bar": (0.0, AMBIGUITY_MAX),
}  # fmt: skip
RESTARTS = 2  # Nelder-Mead restarted from its own result (a fresh simplex escapes stalls)


def survey(name: str) -> Survey:
    if name not in SURVEYS:
        raise ValueError(f"unknown reference survey {name!r}; known: {sorted(SURVEYS)}")
    return SURVEYS[name]


def reference_catalog(name: str) -> pd.DataFrame:
    """The survey's shipped catalogue, canonical columns
    (:func:`zoolib.data.catalogs.read_catalog`)."""
    catalog, _ = catalogs.read_catalog(paths.RAW_DIR / survey(name).path)
    return catalog


def vote_fractions(catalog: pd.DataFrame, name: str, min_votes: int = MIN_VOTES) -> np.ndarray:
    """k/N of one question over the galaxies asked it at least ``min_votes`` times."""
    q = question(name)
    n = catalog[q.total_column].to_numpy()
    keep = n >= min_votes
    return catalog[q.yes_column].to_numpy()[keep] / n[keep]


def n_totals(catalog: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Values and counts of the first question's N in a catalogue."""
    values, counts = np.unique(
        catalog[question("smooth-or-featured").total_column], return_counts=True
    )
    return values.astype(np.int64), counts.astype(np.int64)


def distances(
    simulated: pd.DataFrame,
    reference: pd.DataFrame,
    questions: list[str] | tuple[str, ...],
    min_votes: int = MIN_VOTES,
) -> pd.DataFrame:
    """Distances per question, simulated vs real: KS and Wasserstein-1 of k/N; KS of N; and,
    below the first question, KS of the yes votes per volunteer who saw the galaxy (k / N of the
    first question), which also checks how the answers combine down the tree.

    Raises ValueError naming the question and catalogue when one has no galaxy asked that
    question ``min_votes`` times (e.g. a catalogue of consensus classes, N = 1).
    """
    rows = []
    for name in questions:
        sim, ref = (
            vote_fractions(simulated, name, min_votes),
            vote_fractions(reference, name, min_votes),
        )
        for label, values in (("first", sim), ("second (reference)", ref)):
            if len(values) == 0:
                raise ValueError(
                    f"{name}: no galaxy of the {label} catalogue was asked it {min_votes} or"
                    " more times, so there is no vote-fraction distribution to compare"
                )
        total = question(name).total_column
        per_volunteer = np.nan
        if name != "smooth-or-featured":  # yes votes per volunteer who saw the galaxy
            column = question(name).yes_column
            per_volunteer = stats.ks_2samp(
                _per_volunteer(simulated, column, min_votes),
                _per_volunteer(reference, column, min_votes),
            ).statistic
        rows.append(
            {
                "question": name,
                "n_reference": len(ref),
                "n_simulated": len(sim),
                "ks": stats.ks_2samp(sim, ref).statistic,
                "wasserstein": stats.wasserstein_distance(sim, ref),
                "ks_n": stats.ks_2samp(simulated[total], reference[total]).statistic,
                "ks_per_volunteer": per_volunteer,
                "mean_reference": ref.mean(),
                "mean_simulated": sim.mean(),
            }
        )
    columns = ["question", "n_reference", "n_simulated", "ks", "wasserstein", "ks_n"]
    columns += ["ks_per_volunteer", "mean_reference", "mean_simulated"]
    return pd.DataFrame(rows, columns=columns).set_index("question")


def noise_floor(
    simulated: pd.DataFrame,
    sizes: dict[str, int],
    n_simulated: int,
    repeats: int = 100,
    seed: int = 0,
    min_votes: int = MIN_VOTES,
) -> pd.DataFrame:
    """KS between two disjoint simulated samples of the comparison's sizes, per question.

    ``sizes`` maps a question to the reference's number of fractions; the other sample has
    ``n_simulated`` galaxies' worth. What a perfect simulation would score: mean and 95th
    percentile over ``repeats`` random splits of ``simulated``.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for name, size in sizes.items():
        fractions = vote_fractions(simulated, name, min_votes)
        share = n_simulated / len(simulated)
        other = int(round(share * len(fractions)))
        if size + other > len(fractions):
            raise ValueError(
                f"{name}: {len(fractions)} simulated fractions, fewer than sizes[{name!r}] +"
                f" the n_simulated share ({size} + {other}); simulate more galaxies"
            )
        ks = []
        for _ in range(repeats):
            perm = rng.permutation(len(fractions))
            ks.append(
                stats.ks_2samp(
                    fractions[perm[:size]], fractions[perm[size : size + other]]
                ).statistic
            )
        rows.append(
            {"question": name, "ks_floor_mean": np.mean(ks), "ks_floor_95": np.quantile(ks, 0.95)}
        )
    return pd.DataFrame(rows).set_index("question")


class FractionCDF:
    """Expected CDF of k/D over galaxies, k ~ Binomial(n, p) with fixed n; and the loss.

    The denominator D is n itself (a question's vote fraction) unless ``denominator`` is given
    (e.g. the first question's N, for yes votes per volunteer). Galaxies with D >= ``min_votes``
    count. Built once from n, D and the reference fractions; :meth:`loss` then costs one
    (galaxies, max n + 1) binomial table.
    """

    def __init__(
        self,
        n: np.ndarray,
        reference: np.ndarray,
        min_votes: int = MIN_VOTES,
        denominator: np.ndarray | None = None,
    ):
        if min_votes < 1:
            raise ValueError(f"min_votes must be >= 1, got {min_votes!r}")
        n = np.asarray(n)
        denominator = n if denominator is None else np.asarray(denominator)
        self.keep = denominator >= min_votes
        if not self.keep.any():
            raise ValueError(f"no galaxy has {min_votes} or more votes (min_votes)")
        self.n = n[self.keep].astype(np.int64)
        self.k = np.arange(self.n.max() + 1)
        valid = self.k[None, :] <= self.n[:, None]
        frac = np.round(self.k[None, :] / denominator[self.keep, None], 12)
        grid = np.unique(np.concatenate([frac[valid], np.round(reference, 12)]))
        self.index = np.where(valid, np.searchsorted(grid, frac), len(grid))
        self.ref_cdf = np.searchsorted(np.sort(np.round(reference, 12)), grid, side="right") / len(
            reference
        )
        self.ref_mass = np.diff(self.ref_cdf, prepend=0.0)
        self.size = len(grid)

    def cdf(self, p: np.ndarray) -> np.ndarray:
        pmf = stats.binom.pmf(self.k[None, :], self.n[:, None], np.asarray(p)[self.keep, None])
        mass = np.bincount(self.index.ravel(), pmf.ravel(), minlength=self.size + 1)[: self.size]
        return np.cumsum(mass) / len(self.n)

    def loss(self, p: np.ndarray) -> tuple[float, float]:
        """(Cramer-von Mises distance, KS distance) of the expected CDF from the reference."""
        gap = self.cdf(p) - self.ref_cdf
        return float(np.sum(gap**2 * self.ref_mass)), float(np.abs(gap).max())


def fit(
    name: str,
    base: volunteers.Preset | None = None,
    start: volunteers.VolunteerModel | None = None,
    fit_galaxies: int = 20_000,
    seed: int = 12345,
    min_votes: int = MIN_VOTES,
    maxiter: int = 400,
) -> tuple[volunteers.VolunteerModel, dict]:
    """Fit the volunteer constants of preset ``name`` to its survey, one question at a time.

    Returns the fitted model and, per question and target, the expected-CDF KS and CvM
    distances reached (:func:`expected_distances` recomputes them for any model).
    """
    base = base or volunteers.preset(name)
    model = start or base.volunteers
    reference, latents, n_first = _setup(name, base, fit_galaxies, seed)
    report = {}
    for qname in survey(name).questions:
        targets = _targets(reference, qname, latents, model, n_first, seed, min_votes)
        model, iterations = _fit_question(latents, model, FITTED[qname], targets, maxiter)
        report[qname] = {"iterations": int(iterations), **_losses(latents, model, targets)}
    return model, report


def expected_distances(
    name: str,
    base: volunteers.Preset | None = None,
    fit_galaxies: int = 20_000,
    seed: int = 12345,
    min_votes: int = MIN_VOTES,
) -> dict:
    """The fit's objective terms for preset ``name`` as it is: {question: {target: distances}}.

    Deterministic (fixed latents and N), so a regression test can compare it with the record.
    """
    base = base or volunteers.preset(name)
    reference, latents, n_first = _setup(name, base, fit_galaxies, seed)
    model = base.volunteers
    return {
        q: _losses(latents, model, _targets(reference, q, latents, model, n_first, seed, min_votes))
        for q in survey(name).questions
    }


def _setup(name, base, fit_galaxies, seed):
    """The reference catalogue, fixed latents and fixed first-question N of a fit."""
    reference = reference_catalog(name)
    values, counts = n_totals(reference)
    rng = np.random.default_rng(seed)
    latents = synthetic.sample_latents(fit_galaxies, rng, preset=base)
    n_first = rng.choice(values, size=fit_galaxies, p=counts / counts.sum())
    return reference, latents, n_first


def _targets(reference, qname, latents, model, n_first, seed, min_votes) -> dict:
    """{label: (probability column, FractionCDF)} that question ``qname``'s fit matches."""
    if qname == "smooth-or-featured":
        n = n_first
    else:  # N through the tree, from the answers above as fitted (fixed random numbers)
        probs = volunteers.true_probabilities(latents, model)
        votes = synthetic.draw_votes(probs, np.random.default_rng(seed + 1), n_first)
        n = votes[question(qname).total_column].to_numpy()
    column = f"true_p_{qname}"
    fractions = vote_fractions(reference, qname, min_votes)
    targets = {qname: (column, FractionCDF(n, fractions, min_votes))}
    if qname == "smooth-or-featured":  # featured votes set the N of the questions below
        featured = _per_volunteer(reference, "smooth-or-featured_featured-or-disk", min_votes)
        targets["featured-or-disk"] = ("p_featured", FractionCDF(n, featured, min_votes))
    else:  # yes votes per volunteer who saw the galaxy: ties the answer to the tree above
        per = _per_volunteer(reference, question(qname).yes_column, min_votes)
        targets[f"{qname} per volunteer"] = (column, FractionCDF(n, per, min_votes, n_first))
    return targets


def _losses(latents, model, targets) -> dict:
    probs = volunteers.true_probabilities(latents, model)
    out = {}
    for label, (column, target) in targets.items():
        cvm, ks = target.loss(probs[column].to_numpy())
        out[label] = {"expected_ks": ks, "expected_cvm": cvm}
    return out


def _fit_question(latents, model, names, targets, maxiter):
    """Nelder-Mead over the constants ``names`` (restarted), for the sum of the targets' losses."""

    def objective(x):
        probs = volunteers.true_probabilities(latents, model.replace(**_decode(names, x)))
        return sum(cvm + 0.1 * ks for c, t in targets.values() for cvm, ks in [t.loss(probs[c])])

    x, iterations = _encode(names, model), 0
    for _ in range(1 + RESTARTS):
        result = optimize.minimize(
            objective, x, method="Nelder-Mead",
            options={"maxiter": maxiter, "xatol": 1e-3, "fatol": 1e-8, "adaptive": True},
        )  # fmt: skip
        x, iterations = result.x, iterations + result.nit
    return model.replace(**_decode(names, x)), iterations


def _per_volunteer(catalog: pd.DataFrame, column: str, min_votes: int) -> np.ndarray:
    """Votes in ``column`` per volunteer who saw the galaxy (the first question's N)."""
    n = catalog[question("smooth-or-featured").total_column].to_numpy()
    keep = n >= min_votes
    return catalog[column].to_numpy()[keep] / n[keep]


def _encode(names, model) -> np.ndarray:
    """Constants to unbounded optimiser coordinates (log for a lower bound, logit for two)."""
    out = []
    for name in names:
        value = getattr(model, name)
        low, high = BOUNDS.get(name, (None, None))
        if low is None:
            out.append(value)
        elif high is None:
            out.append(np.log(max(value - low, 1e-6)))
        else:
            share = np.clip((value - low) / (high - low), 1e-6, 1 - 1e-6)
            out.append(special.logit(share))
    return np.array(out)


def _decode(names, x) -> dict[str, float]:
    out = {}
    for name, v in zip(names, x, strict=True):
        low, high = BOUNDS.get(name, (None, None))
        if low is None:
            out[name] = float(v)
        elif high is None:
            out[name] = float(low + np.exp(v))
        else:
            out[name] = float(low + (high - low) * special.expit(v))
    return out


def measure(
    name: str,
    n_galaxies: int = 50_000,
    seeds: tuple[int, ...] = (101, 102, 103),
    min_votes: int = MIN_VOTES,
    base: volunteers.Preset | None = None,
) -> dict:
    """Distances of preset ``name``'s universe from its survey over several simulation seeds.

    Returns per question the KS and Wasserstein-1 distances (mean and range over seeds), the KS
    of the N distributions, and the sampling noise floor of the KS.
    """
    base = base or volunteers.preset(name)
    reference = reference_catalog(name)
    questions = survey(name).questions
    tables = [
        distances(
            synthetic.simulate_catalog(n_galaxies, seed=s, preset=base),
            reference,
            questions,
            min_votes,
        )
        for s in seeds
    ]
    stacked = pd.concat(tables, keys=seeds, names=["seed"])
    mean = stacked.groupby("question").mean()
    floor = noise_floor(
        synthetic.simulate_catalog(4 * n_galaxies, seed=seeds[0] + 1000, preset=base),
        {q: int(mean.loc[q, "n_reference"]) for q in questions},
        n_galaxies,
        min_votes=min_votes,
    )
    out = {}
    for q in questions:
        out[q] = {
            "n_reference": int(mean.loc[q, "n_reference"]),
            "n_simulated": int(mean.loc[q, "n_simulated"]),
            "ks": float(mean.loc[q, "ks"]),
            "ks_range": [float(stacked.xs(q, level="question")["ks"].min()),
                         float(stacked.xs(q, level="question")["ks"].max())],
            "wasserstein": float(mean.loc[q, "wasserstein"]),
            "ks_n": float(mean.loc[q, "ks_n"]),
            "ks_per_volunteer": _finite(mean.loc[q, "ks_per_volunteer"]),
            "mean_fraction_reference": float(mean.loc[q, "mean_reference"]),
            "mean_fraction_simulated": float(mean.loc[q, "mean_simulated"]),
            "ks_floor_mean": float(floor.loc[q, "ks_floor_mean"]),
            "ks_floor_95": float(floor.loc[q, "ks_floor_95"]),
        }  # fmt: skip
    return {
        "n_galaxies": n_galaxies,
        "seeds": list(seeds),
        "min_votes": min_votes,
        "questions": out,
    }


def calibrate(
    name: str,
    fit_galaxies: int = 20_000,
    maxiter: int = 1500,
    write: bool = True,
    path=None,
    refit: bool = True,
) -> dict:
    """Refit preset ``name``, measure it and (``write``) record both in the presets file.

    Questions its survey does not cover (decals: edge-on and bar) take the gz2 preset's
    constants, so calibrate gz2 first. ``refit=False`` keeps the recorded constants and fit
    report and only measures the distances again.
    """
    survey(name)  # an unknown name fails here, naming the known ones
    presets = volunteers.load_presets(path)
    start = presets[name].volunteers
    uncovered = [q for q in FITTED if q not in survey(name).questions]
    if uncovered:
        donor = presets["gz2"].volunteers
        start = start.replace(**{c: getattr(donor, c) for q in uncovered for c in FITTED[q]})
    if refit:
        model, report = fit(name, presets[name], start, fit_galaxies=fit_galaxies, maxiter=maxiter)
    else:
        model, report = presets[name].volunteers, presets[name].calibration["fit"]
    measured = measure(name, base=replace(presets[name], volunteers=model))
    record = {"reference": survey(name).citation, "fit": report, "measured": measured}
    if write:
        _write(name, model, record, path)
    return record


def _finite(value) -> float | None:
    return float(value) if np.isfinite(value) else None


def _write(name: str, model: volunteers.VolunteerModel, calibration: dict, path=None) -> None:
    """Write preset ``name``'s constants, N distribution and calibration record, atomically."""
    path = Path(path or volunteers.PRESETS_FILE)
    raw = json.loads(path.read_text())
    values, counts = n_totals(reference_catalog(name))
    raw[name]["volunteers"] = asdict(model)
    raw[name]["n_totals"] = {"values": values.tolist(), "counts": counts.tolist()}
    raw[name]["calibration"] = calibration
    files.write_text(path, json.dumps(raw, indent=1) + "\n")
