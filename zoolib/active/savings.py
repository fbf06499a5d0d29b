r"""How much better than random is a strategy? Paired statistics over seeds, with intervals.

Learning curves come as a table with columns ``strategy``, ``seed``, ``n_labelled`` and one
column per metric (lower is better: NLL, RMSE). Seed ``s`` of a strategy is paired with seed
``s`` of the **reference**: the mean curve of the random runs of that seed, ``random`` and its
extra streams ``random_2``, ``random_3``... where the curves have them
(:func:`zoolib.active.strategies.reference_names`). Averaging R independent random streams divides
the reference's own acquisition luck, which shifts every comparison of a seed at once, by R.
``random_null`` is one more random run on its own stream (:mod:`zoolib.active.runs`): measured
against the same reference by the same code, it is the noise floor that every table and figure
stands beside (its intervals should cover zero).

**Paired curve gap** (the primary statistic). Per seed, the mean over the acquisition rounds
(round 0 is shared, so it is left out) of strategy minus random:

.. math:: g_s = \frac1R \sum_{r=1}^{R} \big(m^{\text{ours}}_{s,r} - m^{\text{random}}_{s,r}\big),
   \qquad \bar g = \frac1S \sum_s g_s,

with a 95% bootstrap interval over seeds (resampling whole seeds; see *Intervals*). Negative is
better than random. It stays defined where random's curve is flat, unlike savings.

**Savings at targets** (secondary). A target is a point of random's seed-mean curve, the
metric it reaches at a fraction ``f`` of the label budget (``n_0 + f (n_max - n_0)``,
interpolated). For each *single run*, ``n`` is where its curve first reaches the target
(interpolated between rounds). A run that never reaches it is *censored*: it is kept, with ``n``
set to the largest labelled size (a lower bound of what it needs), and counted. The reference's
``n`` for seed ``s`` is the mean of its R streams' own crossings, never the crossing of their
mean curve:

.. math:: \bar n^{\text{random}}_s = \frac1R \sum_{i=1}^{R} n\big(m^{\text{random}_i}_{s}\big),
   \qquad \text{saving} = 1 - \frac{\sum_s n^{\text{strategy}}_s}{\sum_s \bar n^{\text{random}}_s},

with a 95% bootstrap interval over seeds (each resample keeps a seed's strategy run
and its R random streams together).

*Why single runs on both sides.* Where a noisy curve first crosses a level comes earlier than
where its expected curve does (a dip crosses first), and the noisier the curve, the earlier.
The mean of R streams is a smoother curve than one run, so measuring one strategy run against
the crossing of that mean credits every strategy with the dips of its own noise. Until this
was found (issue 34) the noise floor, ``random_null``, "saved" +8% to +11% on the main job and
+42% [+21, +56] on the flat curve of real SDSS cutouts; on simulated nulls with three streams
and autocorrelated noise it saved +11% to +16% on a flat curve with intervals covering zero in
66-88% of experiments. Crossing for crossing, a strategy run and a random stream are the same
statistic of equally noisy curves, so under the null the saving centres on zero (tested on
steep and flat simulated nulls: mean within 2 points, coverage 0.90-0.99).

*Intervals* are bootstrap intervals over seeds, *expanded* for few seeds
(:func:`expanded_levels`): plain percentile intervals over 20 rows are too narrow (they covered
zero in 89-94% of simulated nulls); the expanded ones, about a t-interval's width, cover it in
about 95%.

*Where savings mean little* (:func:`savings_ill_defined`): when random's curve falls by less
than twice one run's noise, or rises back, the first crossing of a run is decided by its
noise; the saving is then unbiased but uninformative, and notebook 04 states only the curve gap.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from zoolib.active.strategies import REFERENCE, lookup

NULL = "random_null"
N_BOOT = 4000
LEVEL = 0.95


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


def curve_matrix(curves: pd.DataFrame, strategy: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(seeds,) seed labels and (seeds, rounds) metric values of one strategy, rows by seed.

    Raises if the strategy's seeds have different labelled sizes (they cannot be paired).
    """
    rows = curves[curves["strategy"] == strategy]
    if rows.empty:
        raise ValueError(f"no curves for strategy {strategy!r}")
    wide = rows.pivot_table(index="seed", columns="n_labelled", values=metric, aggfunc="first")
    if wide.isna().any().any():
        raise ValueError(f"the seeds of {strategy!r} were not measured at the same labelled sizes")
    return wide.index.to_numpy(), wide.to_numpy(dtype=np.float64)


def reference_runs(curves: pd.DataFrame) -> list[str]:
    """The random runs whose mean is the reference: ``random`` and its extra streams."""
    names = [s for s in dict.fromkeys(curves["strategy"]) if s != NULL and _is_reference(s)]
    if REFERENCE not in names:
        raise ValueError(f"no curves for strategy {REFERENCE!r}, the reference")
    return names


def _is_reference(name: str) -> bool:
    try:
        spec = lookup(name)
    except ValueError:  # the oracle and other non-rules
        return False
    return spec.random_like and spec.stream == "acquire"


def reference_stack(curves: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(seeds,) and (streams, seeds, rounds): each random run of the reference
    (:func:`reference_runs`) on the seeds they all have; seeds that lack one are left out."""
    parts = [curve_matrix(curves, s, metric) for s in reference_runs(curves)]
    common = parts[0][0]
    for seeds, _ in parts[1:]:
        common = np.intersect1d(common, seeds)
    if any(m.shape[1] != parts[0][1].shape[1] for _, m in parts):
        raise ValueError("the random runs were measured at different labelled sizes")
    return common, np.stack([m[np.isin(seeds, common)] for seeds, m in parts])


def reference_matrix(curves: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(seeds,) and (seeds, rounds) of the reference: per seed, the mean curve of the random
    runs (:func:`reference_stack`)."""
    seeds, stack = reference_stack(curves, metric)
    return seeds, stack.mean(axis=0)


def sizes_of(curves: pd.DataFrame, strategy: str) -> np.ndarray:
    """The labelled-set sizes a strategy was measured at, increasing, as floats."""
    return np.sort(curves.loc[curves["strategy"] == strategy, "n_labelled"].unique()).astype(float)


def _pair(curves, strategy, metric, reference):
    """The labelled sizes, the strategy's (seeds, rounds) and the reference's: (streams, seeds,
    rounds) for random (its streams), (1, seeds, rounds) for any other run; both on their
    common seeds. Refuses runs measured at different sizes."""
    seeds, ours = curve_matrix(curves, strategy, metric)
    if reference == REFERENCE:
        ref_seeds, ref = reference_stack(curves, metric)
        names = reference_runs(curves)
    else:
        ref_seeds, ref = curve_matrix(curves, reference, metric)
        ref, names = ref[None], [reference]
    common = np.intersect1d(seeds, ref_seeds)
    if len(common) == 0:
        raise ValueError(f"{strategy!r} and {reference!r} share no seed to pair")
    sizes = sizes_of(curves, strategy)
    if any(not np.array_equal(sizes_of(curves, n), sizes) for n in names):
        raise ValueError(f"{strategy!r} and {reference!r} were measured at different sizes")
    return sizes, ours[np.isin(seeds, common)], ref[:, np.isin(ref_seeds, common)]


def expanded_levels(n: int, level: float = LEVEL) -> tuple[float, float]:
    r"""The quantile levels of the *expanded* percentile interval for ``n`` rows (Hesterberg
    2015, The American Statistician 69, 371): :math:`\alpha' = \Phi\big(\sqrt{n/(n-1)}\,
    t_{n-1,\alpha/2}\big)`, which widens the plain percentile interval, too narrow over few
    rows, to about a t-interval's width (n = 20 at 95%: the 1.6% and 98.4% quantiles)."""
    from scipy import stats

    alpha = (1 - level) / 2
    if n < 2:
        return alpha, 1 - alpha
    low = float(stats.norm.cdf(np.sqrt(n / (n - 1)) * stats.t.ppf(alpha, n - 1)))
    return low, 1 - low


def bootstrap_interval(values: np.ndarray, statistic, n_boot: int = N_BOOT, seed: int = 0):
    """Expanded percentile interval (``LEVEL``, :func:`expanded_levels`) of ``statistic`` over
    resamples of the rows of ``values`` (seeds) with replacement. ``statistic`` maps an array
    (resamples, rows, ...) to (resamples,): every resample at once."""
    values = np.asarray(values)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    stats = statistic(values[idx])
    low, high = expanded_levels(len(values))
    return float(np.quantile(stats, low)), float(np.quantile(stats, high))


def curve_gap(
    curves: pd.DataFrame, strategy: str, metric: str, reference: str = REFERENCE, seed: int = 0
) -> dict:
    """Paired curve gap of ``strategy`` against ``reference``: {mean, ci_low, ci_high, n_seeds,
    per_seed}. Negative is better than the reference."""
    _, ours, ref = _pair(curves, strategy, metric, reference)
    return gap_of(ours, ref, seed)


def gap_of(ours: np.ndarray, ref: np.ndarray, seed: int = 0) -> dict:
    """:func:`curve_gap` of arrays: ``ours`` (seeds, rounds), ``ref`` (streams, seeds, rounds)."""
    gaps = (ours[:, 1:] - ref.mean(axis=0)[:, 1:]).mean(axis=1)
    low, high = bootstrap_interval(gaps, lambda g: g.mean(axis=-1), seed=seed)
    return {"mean": float(gaps.mean()), "ci_low": low, "ci_high": high,
            "n_seeds": len(gaps), "per_seed": [float(g) for g in gaps]}  # fmt: skip


def targets(curves: pd.DataFrame, metric: str, fractions=(0.25, 0.5, 1.0)) -> dict[float, float]:
    """{f: the metric of the reference's seed-mean curve at a fraction f of the label budget}."""
    _, ref = reference_matrix(curves, metric)
    sizes = sizes_of(curves, REFERENCE)
    mean = ref.mean(axis=0)
    out = {}
    for f in fractions:
        if not 0 < f <= 1:
            raise ValueError(f"target fractions must lie in (0, 1], got {f!r}")
        out[float(f)] = float(np.interp(sizes[0] + f * (sizes[-1] - sizes[0]), sizes, mean))
    return out


def _needed(sizes: np.ndarray, curves: np.ndarray, target: float) -> tuple[np.ndarray, np.ndarray]:
    """Labels each row needs to reach ``target`` (censored rows: the largest size) and which
    rows are censored."""
    n = np.array([labels_to_reach(sizes, row, target) for row in curves])
    censored = np.isnan(n)
    return np.where(censored, sizes[-1], n), censored


def saving_at(
    curves: pd.DataFrame, strategy: str, metric: str, target: float, seed: int = 0
) -> dict:
    """Saving of ``strategy`` against random at one target: {saving, ci_low, ci_high, n_seeds,
    n_censored (strategy seeds), n_censored_random (random runs, of n_seeds x streams),
    n_strategy, n_random (mean labels needed over seeds; random's: over its runs)}."""
    sizes, ours, ref = _pair(curves, strategy, metric, REFERENCE)
    return saving_of(sizes, ours, ref, target, seed)


def saving_of(sizes, ours: np.ndarray, ref: np.ndarray, target: float, seed: int = 0) -> dict:
    """:func:`saving_at` of arrays: labelled ``sizes`` (rounds,), ``ours`` (seeds, rounds),
    ``ref`` (streams, seeds, rounds)."""
    sizes = np.asarray(sizes, dtype=np.float64)
    n_ours, cens_ours = _needed(sizes, ours, target)
    needed = [_needed(sizes, stream, target) for stream in ref]
    n_ref = np.mean([n for n, _ in needed], axis=0)  # per seed: the mean of its runs' crossings
    pairs = np.stack([n_ours, n_ref], axis=1)

    def ratio(p):  # (..., seeds, 2) -> (...)
        return 1.0 - p[..., 0].sum(axis=-1) / p[..., 1].sum(axis=-1)

    low, high = bootstrap_interval(pairs, ratio, seed=seed)
    return {
        "saving": float(ratio(pairs)), "ci_low": low, "ci_high": high, "n_seeds": len(pairs),
        "n_censored": int(cens_ours.sum()),
        "n_censored_random": int(sum(c.sum() for _, c in needed)),
        "n_strategy": float(n_ours.mean()), "n_random": float(n_ref.mean()),
    }  # fmt: skip


def summary(
    curves: pd.DataFrame, metric: str, fractions=(0.25, 0.5, 1.0), seed: int = 0
) -> tuple[dict, dict]:
    """``savings`` {strategy: {f"{fraction:.0%}": saving_at(...)}} and ``curve_gap``
    {strategy: curve_gap(...)} for every strategy but the reference's random runs
    (``random_null`` included)."""
    goals = targets(curves, metric, fractions)
    reference = set(reference_runs(curves))
    strategies = [s for s in curves["strategy"].unique() if s not in reference]
    saves = {
        s: {f"{f:.0%}": saving_at(curves, s, metric, t, seed) for f, t in goals.items()}
        for s in strategies
    }
    gaps = {s: curve_gap(curves, s, metric, seed=seed) for s in strategies}
    return saves, gaps


MIN_SEEDS = 5  # fewer paired seeds: bootstrap intervals are too narrow to mean anything


def _interval(g: dict) -> str:
    return f"{g['mean']:+.4f} [{g['ci_low']:+.4f}, {g['ci_high']:+.4f}]"


def verdict(gap: dict, saves: dict | None = None) -> str:
    """How one strategy compares with random, in words, from its :func:`curve_gap` (and its
    savings, {target: :func:`saving_at`}): too few seeds, better, worse or indistinguishable.
    "Better" is qualified when a saving is not positive (a lower curve on average, yet more
    labels needed at that target)."""
    if gap["n_seeds"] < MIN_SEEDS:
        return (f"measured on {gap['n_seeds']} seed(s), too few for an interval (curve gap "
                f"{gap['mean']:+.4f}; run n_seeds >= {MIN_SEEDS} to tell)")  # fmt: skip
    if gap["ci_high"] < 0:
        worse = {t: v for t, v in (saves or {}).items() if v["saving"] <= 0}
        if worse:
            at = ", ".join(f"{t}: {v['saving']:+.0%}" for t, v in worse.items())
            return (f"below random's curve on average (curve gap {_interval(gap)}), yet it "
                    f"saves no labels at some targets ({at}): not a clear win")  # fmt: skip
        return f"better than random (curve gap {_interval(gap)})"
    if gap["ci_low"] > 0:
        return f"worse than random (curve gap {_interval(gap)})"
    return f"not distinguishable from random (curve gap {_interval(gap)})"


RISE_SHARE = 0.1  # random's curve rising back by more than this share of its fall: not falling
NOISE_FALLS = 2.0  # random's curve must fall by this many times one run's noise


def run_noise(curves: pd.DataFrame, metric: str) -> float:
    """One run's own noise: the standard deviation of a random-like run's metric (the
    reference's streams and ``random_null``) about its seed's mean of them, rounds after 0,
    scaled by sqrt(R / (R - 1)) for the R runs per seed. The seed's shared level (its test
    set, its initial labels) cancels; NaN with fewer than two random-like runs per seed."""
    names = [*reference_runs(curves), *([NULL] if NULL in set(curves["strategy"]) else [])]
    mats = [curve_matrix(curves, s, metric) for s in names]
    common = mats[0][0]
    for seeds, _ in mats[1:]:
        common = np.intersect1d(common, seeds)
    if len(mats) < 2 or len(common) == 0:
        return float("nan")
    runs = np.stack([m[np.isin(seeds, common)][:, 1:] for seeds, m in mats])
    deviation = runs - runs.mean(axis=0)
    return float(np.sqrt((deviation**2).mean() * len(runs) / (len(runs) - 1)))


def savings_ill_defined(curves: pd.DataFrame, metric: str) -> str | None:
    """Why labels-to-reach-a-target mean little on these curves, or None: random's mean curve
    (over seeds, the mean of its streams) either rises back (its last value above its minimum
    by more than ``RISE_SHARE`` of its fall: a target can be reached early and lost again;
    measured: the test NLL of heads at N = 40, docs/active-learning.md) or falls, from round 0
    to its lowest point, by less than ``NOISE_FALLS`` times one run's noise (:func:`run_noise`):
    where a single run first crosses a target is then decided by its noise (issue 34: SDSS
    cutouts, RMSE 0.348 -> 0.329). Savings stay unbiased there but say little; read the gaps."""
    _, ref = reference_matrix(curves, metric)
    mean = ref.mean(axis=0)
    sizes = sizes_of(curves, REFERENCE).astype(int)
    low = int(np.argmin(mean))
    fall = max(mean[0] - mean[low], 0.0)
    if mean[-1] - mean[low] > RISE_SHARE * fall:
        return (f"Random's mean {metric} is lowest at {sizes[low]} labels ({mean[low]:.4f}) "
                f"and ends at {mean[-1]:.4f} with {sizes[-1]}: the curve does not keep falling, "
                "so the labels needed to reach a target are ill-defined; read the curve gaps, "
                "not the savings.")  # fmt: skip
    noise = run_noise(curves, metric)
    if np.isnan(noise):
        return ("One random-like run per seed: its own noise cannot be measured, so whether "
                "savings mean anything here cannot be judged; only the curve gaps are stated "
                "(run random_streams >= 2 or random_null).")  # fmt: skip
    if fall < NOISE_FALLS * noise:
        return (f"Random's mean {metric} falls by only {fall:.4f} ({mean[0]:.4f} -> "
                f"{mean[low]:.4f}), less than {NOISE_FALLS:g}x one run's own noise "
                f"({noise:.4f}): where a run first reaches a target is decided by its noise, so "
                "savings are ill-defined here and only the curve gaps are stated.")  # fmt: skip
    return None


def _covers(v: dict) -> bool:
    return v["ci_low"] <= 0 <= v["ci_high"]


def floor_line(null_saves: dict | None, null_gap: dict) -> str:
    """Whether the noise floor's curve-gap interval, and each of its savings intervals (None:
    savings not stated), cover zero, in words."""
    checks = [("curve gap", _covers(null_gap))]
    checks += [(f"saving at {t}", _covers(v)) for t, v in (null_saves or {}).items()]
    missed = [name for name, ok in checks if not ok]
    what = "curve gap" + (" and savings" if null_saves else "")
    if not missed:
        return (
            f"\nThe noise floor's intervals ({what}) all cover zero: strategies whose "
            "intervals sit inside them cannot be told from random."
        )
    return (
        f"\nThe noise floor's interval does NOT cover zero ({', '.join(missed)}): by chance "
        "1 time in 20 per interval, or the statistic is biased; read the other rows with it."
    )


def conclusion(
    saves: dict, gaps: dict, column: str, budget: list[int], curves: pd.DataFrame | None = None
) -> list[str]:
    """Notebook 04's written verdict: whether savings mean anything on these curves
    (:func:`savings_ill_defined`, given the ``curves``; if not, only curve gaps are stated), a
    line per strategy (:func:`verdict` and its savings), the noise floor's gap and savings
    (:func:`floor_line`) and how much of the oracle's headroom the best rule reaches."""
    warning = None if curves is None else savings_ill_defined(curves, column)
    stated = {} if warning else saves
    n_seeds = max(g["n_seeds"] for g in gaps.values())
    lines = [f"On {column}, {n_seeds} paired seeds, {budget[0]} -> {budget[-1]} labels:"]
    for s, g in gaps.items():
        at = ", ".join(f"{t}: {v['saving']:+.0%} [{v['ci_low']:+.0%}, {v['ci_high']:+.0%}]"
                       for t, v in stated.get(s, {}).items())  # fmt: skip
        lines.append(
            f"* **{s}** is {verdict(g, stated.get(s))}" + (f"; savings {at}." if at else ".")
        )
    null = gaps.get(NULL)
    if null and null["n_seeds"] >= MIN_SEEDS:
        lines.append(floor_line(stated.get(NULL), null))
    lines += headroom(gaps)
    return lines + ([warning] if warning else [])


def answer(gaps: dict, metric: str) -> str:
    """The question "did a rule save labels?" answered in one sentence from the curve gaps:
    yes, naming the rules whose interval lies below zero; no, naming any that lie above it
    (worse than random); or too few seeds to tell."""
    rules = {s: g for s, g in gaps.items() if s not in (NULL, "oracle")}
    if not rules or min(g["n_seeds"] for g in rules.values()) < MIN_SEEDS:
        return f"Too few paired seeds to tell (at least {MIN_SEEDS} are needed)."
    better = [s for s, g in rules.items() if g["ci_high"] < 0]
    worse = [s for s, g in rules.items() if g["ci_low"] > 0]
    if better:
        best = min(better, key=lambda s: rules[s]["mean"])
        return (f"Yes: {', '.join(better)} beat random on {metric} (the best, {best}, curve gap "
                f"{_interval(rules[best])})" + (f"; {', '.join(worse)} did worse." if worse
                                                 else "."))  # fmt: skip
    return ("No: no rule tried beats random on " + metric
            + (f"; {', '.join(worse)} did worse than random." if worse else
               " (every interval covers zero)."))  # fmt: skip


def headroom(gaps: dict) -> list[str]:
    """How much of the oracle's curve gap the best rule reaches (no line without an oracle)."""
    rules = {s: g for s, g in gaps.items() if s not in (NULL, "oracle")}
    if "oracle" not in gaps or not rules:
        return []
    oracle = gaps["oracle"]["mean"]
    best = min(rules, key=lambda s: rules[s]["mean"])
    if oracle >= 0:
        return [f"The oracle's gap ({oracle:+.4f}) shows no headroom over random here."]
    if rules[best]["mean"] >= 0:
        return [
            f"The oracle's gap ({oracle:+.4f}) is headroom that no rule tried reaches any "
            f"of (the best: {best}, {rules[best]['mean']:+.4f})."
        ]
    if rules[best]["mean"] <= oracle:
        return [
            f"The best rule, {best} ({rules[best]['mean']:+.4f}), does better than the "
            f"oracle ({oracle:+.4f}), which searches only a few random batches: a bound on "
            "random batches, not on every rule."
        ]
    share = rules[best]["mean"] / oracle
    return [
        f"The oracle's gap ({oracle:+.4f}) bounds what labels chosen well can do; the best "
        f"rule, {best} ({rules[best]['mean']:+.4f}), reaches {share:.0%} of it."
    ]
