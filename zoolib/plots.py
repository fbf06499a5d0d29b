"""Figures shared by the notebooks (matplotlib + seaborn). Each returns its Figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from zoolib.schema import question


def show_image(ax, image: np.ndarray, title: str | None = None) -> None:
    """Draw one uint8 (S, S, C) image without axes (greyscale when C == 1)."""
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255)
    else:
        ax.imshow(image)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=8)


def gallery(images: np.ndarray, titles: list[str], ncols: int = 8, size: float = 1.6):
    """A grid of images with a small title under each."""
    n = len(images)
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * (size + 0.25)))
    for ax in np.atleast_1d(axes).ravel():
        ax.set_axis_off()
    for ax, image, title in zip(np.atleast_1d(axes).ravel()[:n], images, titles, strict=True):
        show_image(ax, image, title)
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


def vote_distributions(frames: dict[str, pd.DataFrame], names: list[str]):
    """Distributions of N and of the vote fraction k/N per question, one hue per catalogue.

    ``frames`` maps a label (e.g. "synthetic", "GZ2 Stripe 82") to a canonical catalogue.
    Fractions use only galaxies with N > 0 for that question.
    """
    rows = []
    for label, cat in frames.items():
        for name in names:
            q = question(name)
            if q.total_column not in cat.columns:
                continue
            n = cat[q.total_column].to_numpy()
            k = cat[q.yes_column].to_numpy()
            asked = n > 0
            rows.append(
                pd.DataFrame(
                    {
                        "catalogue": label,
                        "question": name,
                        "N": n[asked],
                        "fraction": k[asked] / n[asked],
                    }
                )
            )
    long = pd.concat(rows, ignore_index=True)
    fig, axes = plt.subplots(2, len(names), figsize=(4.2 * len(names), 6.5), squeeze=False)
    for j, name in enumerate(names):
        sub = long[long["question"] == name]
        common = dict(data=sub, hue="catalogue", stat="density", common_norm=False, element="step")
        sns.histplot(x="N", ax=axes[0, j], discrete=sub["N"].max() < 80, **common)
        axes[0, j].set_title(f"{name}: volunteers asked (N)")
        sns.histplot(x="fraction", ax=axes[1, j], bins=np.linspace(0, 1, 21), **common)
        axes[1, j].set_title(f"{name}: vote fraction k/N for '{question(name).yes}'")
    fig.tight_layout()
    return fig


def visibility_vs_redshift(catalog: pd.DataFrame):
    """Synthetic truth: how often a typical volunteer sees features and bars, against redshift."""
    featured = catalog[catalog["morphology"] == "featured"].copy()
    featured["galaxy"] = np.where(featured["has_bar"], "barred disk", "unbarred disk")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    bins = pd.cut(featured["redshift"], np.linspace(0.02, 0.12, 6))
    featured["redshift bin"] = bins.apply(lambda b: f"{b.mid:.2f}")
    sns.pointplot(
        data=featured, x="redshift bin", y="p_featured", hue="galaxy", ax=axes[0], errorbar="sd"
    )
    axes[0].set_title("disks: P(volunteer answers 'featured')")
    sns.pointplot(
        data=featured[~featured["edge_on"]], x="redshift bin", y="true_p_bar", hue="galaxy",
        ax=axes[1], errorbar="sd",
    )  # fmt: skip
    axes[1].set_title("face-on disks: P(volunteer answers 'bar')")
    for ax in axes:
        ax.set_ylim(0, 1)
    fig.tight_layout()
    return fig
