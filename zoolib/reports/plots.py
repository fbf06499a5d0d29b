"""Figures shared by the notebooks (matplotlib + seaborn). Each returns its Figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from zoolib.active import savings
from zoolib.votes.schema import counts, question


def show_image(ax, image: np.ndarray, title: str | None = None) -> None:
    """Draw one uint8 (S, S, C) image without axes (greyscale when C == 1)."""
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255)
    else:
        ax.imshow(image)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=8)


def gallery(
    images: np.ndarray,
    titles: list[str],
    ncols: int = 8,
    size: float = 1.6,
    suptitle: str | None = None,
):
    """A grid of images with a small title over each, and an optional title over all."""
    n = len(images)
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * (size + 0.25)))
    for ax in np.atleast_1d(axes).ravel():
        ax.set_axis_off()
    for ax, image, title in zip(np.atleast_1d(axes).ravel()[:n], images, titles, strict=True):
        show_image(ax, image, title)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def gallery_by_fraction(
    images: np.ndarray, catalog: pd.DataFrame, name: str, n_show: int = 8, min_votes: int = 5
):
    """Galaxies spanning the vote fraction k/N of one question, from lowest to highest.

    Only galaxies asked the question by at least ``min_votes`` volunteers are eligible; one is
    picked at evenly spaced quantiles of k/N.
    """
    q = question(name)
    n = catalog[q.total_column].to_numpy()
    eligible = np.flatnonzero(n >= min_votes)
    if len(eligible) == 0:
        raise ValueError(f"no galaxy has {min_votes}+ votes on {name!r}")
    frac = catalog[q.yes_column].to_numpy()[eligible] / n[eligible]
    order = eligible[np.argsort(frac, kind="stable")]
    picks = order[np.linspace(0, len(order) - 1, min(n_show, len(order))).round().astype(int)]
    titles = [f"{catalog[q.yes_column].iloc[i]}/{n[i]} {q.yes}" for i in picks]
    fig = gallery(images[picks], titles, ncols=len(picks))
    fig.suptitle(f"{name}: the vote fraction for '{q.yes}' rises from left to right")
    fig.tight_layout(rect=(0, 0, 1, 0.85))
    return fig


def vote_distributions(
    frames: dict[str, pd.DataFrame],
    names: list[str],
    min_votes: int = 1,
    distances: pd.DataFrame | None = None,
):
    """Distributions of N and of the vote fraction k/N per question, one hue per catalogue.

    ``frames`` maps a label (e.g. "simulated", "GZ2 Stripe 82") to a canonical catalogue.
    Fractions use only galaxies asked the question at least ``min_votes`` times. ``distances``
    (indexed by question, columns ``ks`` and ``wasserstein``, as from
    :func:`zoolib.universe.calibration.distances`) are written into the fraction panels' titles.
    """
    totals, fractions = [], []
    for label, cat in frames.items():
        for name in names:
            q = question(name)
            if q.total_column not in cat.columns:
                continue
            n = cat[q.total_column].to_numpy()
            k = cat[q.yes_column].to_numpy()
            asked = n >= max(min_votes, 1)
            totals.append(pd.DataFrame({"catalogue": label, "question": name, "N": n[n > 0]}))
            fractions.append(
                pd.DataFrame(
                    {"catalogue": label, "question": name, "fraction": k[asked] / n[asked]}
                )
            )
    totals = pd.concat(totals, ignore_index=True)
    fractions = pd.concat(fractions, ignore_index=True)
    fig, axes = plt.subplots(2, len(names), figsize=(4.2 * len(names), 6.5), squeeze=False)
    for j, name in enumerate(names):
        common = dict(hue="catalogue", stat="density", common_norm=False, element="step")
        n_sub = totals[totals["question"] == name]
        sns.histplot(data=n_sub, x="N", ax=axes[0, j], discrete=n_sub["N"].max() < 80, **common)
        axes[0, j].set_title(f"{name}: volunteers asked (N > 0)")
        sns.histplot(
            data=fractions[fractions["question"] == name], x="fraction", ax=axes[1, j],
            bins=np.linspace(0, 1, 21), **common,
        )  # fmt: skip
        title = f"{name}: k/N for '{question(name).yes}'"
        if min_votes > 1:
            title += f" (N >= {min_votes})"
        if distances is not None and name in distances.index:
            row = distances.loc[name]
            title += f"\nKS {row['ks']:.3f}, W1 {row['wasserstein']:.3f}"
        axes[1, j].set_title(title)
    fig.tight_layout()
    return fig


def universe_trends(catalog: pd.DataFrame):
    """Simulated truth: what volunteers see against redshift, inclination, size and brightness.

    Left: P(featured) for disks and ellipticals against redshift. Middle: P(bar) for barred
    and unbarred face-on disks and for edge-on disks. Right: share of galaxies whose true
    p(smooth) is intermediate (0.2-0.8) against the galaxy's clarity (how well its extent is
    resolved and its light detected; :func:`zoolib.universe.volunteers.visibility`).
    """
    from zoolib.universe import volunteers

    cat = catalog.copy()
    disk = cat["morphology"] == "featured"
    cat["galaxy"] = np.select(
        [~disk, cat["edge_on"], cat["has_bar"]],
        ["elliptical", "edge-on disk", "barred disk"],
        "unbarred disk",
    )
    edges = np.linspace(0.02, 0.12, 6)
    cat["redshift bin"] = pd.cut(cat["redshift"], edges).apply(lambda b: f"{b.mid:.2f}")
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.9))
    sns.pointplot(
        data=cat, x="redshift bin", y="p_featured", hue="galaxy", ax=axes[0], errorbar=("pi", 50),
        hue_order=["elliptical", "unbarred disk", "barred disk", "edge-on disk"],
    )  # fmt: skip
    axes[0].set_title("P(volunteer answers 'featured')")
    sns.pointplot(
        data=cat[disk], x="redshift bin", y="true_p_bar", hue="galaxy", ax=axes[1],
        errorbar=("pi", 50), hue_order=["unbarred disk", "barred disk", "edge-on disk"],
    )  # fmt: skip
    axes[1].set_title("disks: P(volunteer answers 'bar')")
    for ax in axes[:2]:
        ax.set_ylim(0, 1)
        ax.set_ylabel("probability (median, 25-75%)")
    clarity = volunteers.visibility(cat)["clarity"]
    p = cat["true_p_smooth-or-featured"]
    cat["intermediate"] = ((p > 0.2) & (p < 0.8)).astype(float)
    edges = [0, 0.25, 0.5, 0.75, 0.9, 1.0]
    labels = [f"{a:g}-{b:g}" for a, b in zip(edges[:-1], edges[1:], strict=True)]
    cat["clarity bin"] = pd.cut(clarity, edges, labels=labels, include_lowest=True)
    sns.barplot(data=cat, x="clarity bin", y="intermediate", ax=axes[2], errorbar=("ci", 95))
    axes[2].set_title("share with 0.2 < p(smooth) < 0.8")
    axes[2].set_xlabel("clarity: small or faint (left) to large and bright (right)")
    axes[2].set_ylabel("share of galaxies (95% CI)")
    fig.tight_layout()
    return fig


def draw_posterior(
    ax,
    rho_samples,
    n: int,
    k: int | None = None,
    show_samples: bool = True,
    level: float = 0.95,
    concentration: float | None = None,
):
    """The paper's posterior panel for one galaxy and question.

    Grey: Binomial(k | n, rho_t) for each of the T samples; green: their mean, the posterior
    over the vote count; orange dashed: a single stochastic forward pass (sample 0); black line:
    the observed k. With a ``concentration`` (:func:`zoolib.votes.binomial.fit_concentration`),
    purple: the mixture of beta-binomials that allows for volunteers who disagree about the same
    image. The central ``level`` interval of the last mixture drawn is shaded.
    """
    from zoolib.votes.binomial import credible_interval, mixture_pmf, vote_pmf

    rho_samples = np.asarray(rho_samples, dtype=np.float64)
    ks = np.arange(n + 1)
    pmfs = vote_pmf(rho_samples, n)  # (T, n + 1)
    lo, hi = credible_interval(rho_samples[None, :], n, level, concentration=concentration)
    kind = "" if concentration is None else " (beta-binomial)"
    ax.axvspan(lo[0] - 0.5, hi[0] + 0.5, color="tab:green", alpha=0.12,
               label=f"{level:.0%} interval {lo[0]}-{hi[0]}{kind}")  # fmt: skip
    if show_samples:
        for pmf in pmfs:
            ax.plot(ks, pmf, color="0.6", lw=0.6, alpha=0.5)
    ax.plot(ks, pmfs[0], color="tab:orange", lw=1.2, ls="--", label="one forward pass")
    ax.plot(ks, pmfs.mean(axis=0), color="tab:green", lw=2.2, label=f"mixture of T={len(pmfs)}")
    if concentration is not None:
        spread = mixture_pmf(rho_samples[None, :], n, concentration=concentration)[0]
        ax.plot(ks, spread[: n + 1], color="tab:purple", lw=1.8,
                label=f"with volunteer spread (phi={concentration:.3g})")  # fmt: skip
    if k is not None:
        ax.axvline(k, color="black", lw=1.5, label=f"observed k={k}")
    ax.set_xlim(0, n)
    ax.set_xlabel("k (yes votes)")
    ax.set_ylabel("p(k)")


def draw_single_pass(ax, rho: float, n: int, k: int | None = None, level: float = 0.95):
    """The single-pass posterior for one galaxy and question: one Binomial(k | n, rho) at the
    deterministic rho (dropout off), in blue, its central ``level`` interval shaded, and the
    observed k as a black line (the counterpart of :func:`draw_posterior` without dropout)."""
    from zoolib.votes.binomial import credible_interval, vote_pmf

    rho = float(rho)
    ks = np.arange(n + 1)
    lo, hi = credible_interval(np.array([[rho]]), n, level)
    ax.axvspan(lo[0] - 0.5, hi[0] + 0.5, color="tab:blue", alpha=0.12,
               label=f"{level:.0%} interval {lo[0]}-{hi[0]}")  # fmt: skip
    pmf = vote_pmf(np.array([rho]), n)[0]
    ax.plot(ks, pmf, color="tab:blue", lw=2.2, label=f"single pass, dropout off (rho={rho:.2f})")
    if k is not None:
        ax.axvline(k, color="black", lw=1.5, label=f"observed k={k}")
    ax.set_xlim(0, n)
    ax.set_xlabel("k (yes votes)")
    ax.set_ylabel("p(k)")


def posterior_panels(
    images: np.ndarray,
    rho_samples: np.ndarray,
    k,
    n,
    titles: list[str],
    name: str,
    concentration: float | None = None,
):
    """One row per galaxy: the image and its posterior over k (see :func:`draw_posterior`).

    ``rho_samples`` is (galaxies, T) for one question; ``k`` and ``n`` are (galaxies,).
    """
    rows = len(images)
    fig, axes = plt.subplots(rows, 2, figsize=(7.5, 2.3 * rows), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 2.4]})  # fmt: skip
    for i in range(rows):
        show_image(axes[i, 0], images[i], titles[i])
        draw_posterior(axes[i, 1], rho_samples[i], int(n[i]), int(k[i]),
                       concentration=concentration)  # fmt: skip
    axes[0, 1].legend(fontsize=7, loc="upper right")
    fig.suptitle(f"{name}: posteriors over the vote count")
    fig.tight_layout()
    return fig


def calibration(levels, curves: dict[str, np.ndarray], title: str = "interval coverage"):
    """Coverage of central credible intervals against their nominal level, one line per method."""
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.plot([0, 1], [0, 1], color="0.5", ls=":", label="perfect calibration")
    for label, values in curves.items():
        ax.plot(levels, values, marker="o", label=label)
    ax.set_xlabel("nominal level")
    ax.set_ylabel("observed coverage")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def pit_histograms(pits: dict[str, np.ndarray], bins: int = 20):
    """Histograms of (randomised) PIT values; flat means calibrated, U-shaped overconfident."""
    fig, axes = plt.subplots(1, len(pits), figsize=(4.2 * len(pits), 3.2), squeeze=False)
    for ax, (label, values) in zip(axes[0], pits.items(), strict=True):
        values = np.asarray(values)
        ax.hist(values[np.isfinite(values)], bins=np.linspace(0, 1, bins + 1), density=True)
        ax.axhline(1.0, color="black", ls=":")
        ax.set_title(label)
        ax.set_xlabel("PIT")
    fig.tight_layout()
    return fig


def learning_curves(history: dict[str, list[float]]):
    """Training and validation loss per epoch; the starting weights' validation loss
    (``start_val_loss``, when fine-tuning) as a point at epoch 0."""
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for key, values in history.items():
        if key == "start_val_loss":
            ax.plot([0], values, marker="*", ms=10, ls="", color="black", label="start (val)")
        elif key.endswith("loss"):
            ax.plot(np.arange(1, len(values) + 1), values, marker="o", label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("binomial loss per galaxy (no log C term)")
    ax.legend()
    fig.tight_layout()
    return fig


def predicted_vs_target(mean_rho: np.ndarray, catalog: pd.DataFrame, questions: list[str],
                        votes=None):  # fmt: skip
    """Scatter of the predicted mean rho (galaxies, Q) against the truth per question.

    The target is ``true_p_<name>`` when the catalogue has it (simulated data), otherwise
    the observed fraction k/N; galaxies with N = 0 are left out. ``votes`` (catalogue -> (k, N),
    :meth:`zoolib.cnn.cards.ModelCard.counts`) gives the counts of names that are not schema
    questions (a tree model's answers); four panels a row.
    """
    if votes is None:
        k_all, n_all = counts(catalog, questions)
    else:
        k_all, n_all = votes(catalog)
    ncols = min(4, len(questions))
    nrows = -(-len(questions) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.3 * ncols, 4 * nrows), squeeze=False)
    for j, name in enumerate(questions):
        n = n_all[:, j]
        asked = n > 0
        truth = f"true_p_{name}"
        if truth in catalog.columns:
            target, label = catalog[truth].to_numpy(), "true p"
        else:
            target, label = k_all[:, j] / np.maximum(n, 1), "observed k/N"
        ax = axes.flat[j]
        ax.scatter(target[asked], mean_rho[asked, j], s=6, alpha=0.4)
        ax.plot([0, 1], [0, 1], color="black", lw=1)
        ax.set(xlabel=label, ylabel="predicted mean rho", title=name, xlim=(0, 1), ylim=(0, 1))
    for ax in list(axes.flat)[len(questions):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def showcase_indices(pred_entropy: np.ndarray, mutual_info: np.ndarray, n_show: int) -> dict:
    """Pick galaxies that span the kinds of posterior: {label: position}.

    * confident: the lowest predictive entropy;
    * uncertain but agreeing: high predictive entropy with low mutual information (every
      sampled network says "about half of the volunteers");
    * disagreeing: the highest mutual information (the networks are each confident but
      disagree: what BALD acquires);
    then more galaxies evenly spread in predictive entropy until ``n_show`` are chosen.
    """
    n = len(pred_entropy)
    picks = {"confident": int(np.argmin(pred_entropy))}
    agreeing = pred_entropy - 3 * mutual_info
    picks["uncertain, samples agree"] = int(np.argmax(agreeing))
    picks["samples disagree (high BALD)"] = int(np.argmax(mutual_info))
    order = np.argsort(pred_entropy)
    for q in np.linspace(0.2, 0.8, max(0, n_show - 3)):
        candidate = int(order[int(q * (n - 1))])
        if candidate not in picks.values():
            picks[f"entropy quantile {q:.2f}"] = candidate
    return dict(list(picks.items())[:n_show])


def active_learning_curves(curves: pd.DataFrame, column: str):
    """Left: test ``column`` (e.g. "all rmse_asked") against the labelled-set size, mean over
    seeds with a 95% bootstrap interval over seeds; random's runs are shown as their mean, the
    reference (:func:`zoolib.active.savings.reference_runs`). Right: the paired difference to the
    reference (strategy minus reference, seed by seed), with its 95% interval; below zero is
    better. ``curves`` has one row per (strategy, seed, round), as from
    :func:`zoolib.active.runs.curves`.
    """
    runs = savings.reference_runs(curves)
    label = runs[0] if len(runs) == 1 else f"{runs[0]} (mean of {len(runs)})"
    ref = (curves[curves.strategy.isin(runs)].groupby(["seed", "n_labelled"], as_index=False)
           [column].mean().assign(strategy=label))  # fmt: skip
    others = curves[~curves.strategy.isin(runs)]
    shown = pd.concat([ref, others[["seed", "n_labelled", column, "strategy"]]], ignore_index=True)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    names = list(dict.fromkeys(shown["strategy"]))  # one colour per strategy in both panels
    palette = dict(zip(names, sns.color_palette(n_colors=len(names)), strict=True))
    style = dict(x="n_labelled", hue="strategy", errorbar=("ci", 95), n_boot=1000, seed=0,
                 palette=palette)  # fmt: skip
    sns.lineplot(data=shown, y=column, ax=axes[0], **style)
    axes[0].set(xlabel="labelled galaxies", ylabel=f"test {column}", title="learning curves")
    paired = others.merge(ref[["seed", "n_labelled", column]], on=["seed", "n_labelled"],
                          suffixes=("", " reference"))  # fmt: skip
    paired["difference"] = paired[column] - paired[f"{column} reference"]
    sns.lineplot(data=paired, y="difference", ax=axes[1], **style)
    axes[1].axhline(0, color="black", lw=0.8)
    axes[1].set(xlabel="labelled galaxies", ylabel=f"{column} minus {label}",
                title=f"paired difference to {label} (below 0: better)")  # fmt: skip
    fig.tight_layout()
    return fig


def acquired_vs_pool(picks: pd.DataFrame):
    """Share of featured galaxies and redshift distribution, per ``strategy`` (with "pool").

    ``picks`` has columns ``strategy``, ``morphology`` and ``redshift``: one row per acquired
    galaxy, plus the pool's galaxies under strategy "pool".
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    share = picks.assign(featured=picks.morphology == "featured")
    sns.barplot(data=share, x="strategy", y="featured", errorbar=None, ax=axes[0])
    axes[0].set(ylabel="share of featured galaxies", title="morphology of acquired galaxies")
    axes[0].tick_params(axis="x", rotation=35)
    sns.histplot(data=picks, x="redshift", hue="strategy", stat="density", common_norm=False,
                 element="step", fill=False, bins=12, ax=axes[1])  # fmt: skip
    axes[1].set_title("redshift of acquired galaxies")
    fig.tight_layout()
    return fig
