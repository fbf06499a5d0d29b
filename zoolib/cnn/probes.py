r"""How much does a trunk know about real galaxies? Linear probes, learning curves and nearest
neighbours on its features: the yardstick every trunk is measured with.

Given features :math:`X` (G, F) of G labelled galaxies (a trunk's, or raw pixels) and a label
:math:`y_g \in \{0, \dots, C-1\}` (ring or not; a GZ1 class):

* **Linear probe.** L2-regularised logistic regression on standardised features,
  :math:`\min_W \sum_g -w_{y_g} \log \mathrm{softmax}(W x_g)_{y_g} + \lVert W \rVert^2 / 2C`,
  each class weighted by :math:`w_c \propto 1 / G_c` (so a rare class counts as much as a common
  one), with :math:`C` chosen from :data:`CS` by 5-fold cross-validation of the log loss on the
  *training rows only* (scikit-learn's ``LogisticRegressionCV``). The trunk is frozen: the probe
  measures what its features already separate.
* **Learning curve.** The galaxies are cut into K stratified folds (:func:`stratified_folds`);
  for each fold and each size n, n training galaxies are drawn stratified from the other folds
  (:func:`stratified_sample`; "all" takes every one), the probe is fitted and predicts the fold.
  The out-of-fold predictions of every fold are pooled, so each size is scored on all G.
* **Scores** (:func:`scores`): accuracy, **balanced accuracy** (the mean over classes of the
  recall :math:`\Pr(\hat y = c \mid y = c)`, which a majority-class guess scores 1/C at), each
  class's recall, and the Bernoulli or categorical NLL, with 95% bootstrap intervals over
  galaxies (4,000 resamples, each statistic recomputed on each resample).
* **Similarity** (:func:`precision_at_k`): for each galaxy, the share of its k nearest neighbours
  (cosine similarity of standardised features, itself left out) that carry its label; averaged
  over galaxies. A random ordering scores about the label's prevalence among the others.
* **Raw pixels** (:func:`pixel_features`): the floor every trunk must clear: PCA to 64
  components of 32 px greyscale images (fitted on the images, never on the labels).

Shapes: features (G, F) float; labels (G,) int; probabilities (G, C). Measured on the shared
real images: ``docs/representations.md``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from zoolib.cnn import similarity

N_BOOT = 4000  # bootstrap resamples for every interval
CS = np.logspace(-4, 2, 7)  # the probe's inverse regularisation strengths, a factor 10 apart
ALL = 0  # a learning-curve size meaning "every training galaxy of the other folds"


def stratified_folds(labels, k: int, seed: int = 0) -> np.ndarray:
    """(G,) fold number 0..k-1 of each galaxy, each class spread evenly over the folds."""
    labels = np.asarray(labels)
    if k < 2:
        raise ValueError(f"need at least 2 folds, got {k}")
    rng = np.random.default_rng(seed)
    out = np.empty(len(labels), int)
    for value in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == value))
        out[rows] = np.arange(len(rows)) % k
    return out


def stratified_sample(labels, size: int, seed: int) -> np.ndarray:
    """Sorted positions of ``size`` items drawn without replacement, each class in its share
    (rounded, at least one of every class when ``size`` allows); ``size`` 0 (:data:`ALL`) or at
    least ``len(labels)`` takes every item."""
    labels = np.asarray(labels)
    if size == ALL or size >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    floor = 1 if size >= len(classes) else 0  # every class, where the size allows
    want = np.maximum(np.round(size * counts / counts.sum()).astype(int), floor)
    while want.sum() > size:  # rounding overshoot: take from the largest share
        want[np.argmax(want)] -= 1
    while want.sum() < size:
        want[np.argmax(counts - want)] += 1
    picks = [rng.choice(np.flatnonzero(labels == c), n, replace=False)
             for c, n in zip(classes, want, strict=True)]  # fmt: skip
    return np.sort(np.concatenate(picks))


def fit_probe(x_train, y_train, seed: int = 0, cv: int = 5):
    """The linear probe fitted on (x_train, y_train): a scikit-learn pipeline (standardise, then
    class-balanced L2 logistic regression with C by ``cv``-fold cross-validation of the log
    loss)."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y_train = np.asarray(y_train)
    folds = min(cv, int(np.bincount(y_train).min()))  # every fold needs every class
    if folds < 2:
        raise ValueError("each class needs at least 2 training galaxies for the probe's CV")
    split = StratifiedKFold(folds, shuffle=True, random_state=seed)
    probe = LogisticRegressionCV(Cs=CS, l1_ratios=(0.0,), cv=split, scoring="neg_log_loss",
                                 class_weight="balanced", max_iter=2000,
                                 use_legacy_attributes=False)  # fmt: skip  (0.0: pure L2)
    return make_pipeline(StandardScaler(), probe).fit(np.asarray(x_train, np.float64), y_train)


def learning_curve(features, labels, sizes=(25, 50, 100, 200, ALL), n_folds: int = 5,
                   seed: int = 0) -> pd.DataFrame:  # fmt: skip
    """Out-of-fold probe scores at each training size: one row per size (:func:`scores`'
    columns, plus ``labels``, the training galaxies per fold; ``all`` for every one)."""
    labels = np.asarray(labels)
    fold = stratified_folds(labels, n_folds, seed)
    rows = []
    for size in sizes:
        prob = np.zeros((len(labels), labels.max() + 1))
        n_train = []
        for f in range(n_folds):
            pool, test = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
            train = pool[stratified_sample(labels[pool], size, seed=seed + f)]
            probe = fit_probe(features[train], labels[train], seed=seed + f)
            prob[np.ix_(test, probe.classes_)] = probe.predict_proba(features[test])
            n_train.append(len(train))
        rows.append({"labels": "all" if size == ALL else size,
                     "trained on": int(np.mean(n_train)), **scores(prob, labels)})  # fmt: skip
    return pd.DataFrame(rows)


def scores(prob, labels, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Accuracy, balanced accuracy, per-class recall and NLL of probabilities ``prob`` (G, C)
    against ``labels`` (G,), each with a 95% bootstrap interval over galaxies (``[lo, hi]``)."""
    prob, labels = np.asarray(prob, np.float64), np.asarray(labels)
    pred = prob.argmax(axis=1)
    nll = -np.log(np.clip(prob[np.arange(len(labels)), labels], 1e-12, 1.0))
    idx = np.random.default_rng(seed).integers(0, len(labels), (n_boot, len(labels)))
    stats = {
        "accuracy": lambda r: np.mean(pred[r] == labels[r]),
        "balanced accuracy": lambda r: balanced_accuracy(labels[r], pred[r]),
        "nll": lambda r: np.mean(nll[r]),
        **{f"recall {c}": (lambda r, c=c: recall(labels[r], pred[r], c))
           for c in np.unique(labels)},
    }  # fmt: skip
    out = {"galaxies": len(labels)}
    for name, stat in stats.items():
        boots = np.array([stat(r) for r in idx])
        boots = boots[np.isfinite(boots)]
        out[name] = float(stat(np.arange(len(labels))))
        out[f"{name} 95%"] = f"[{np.quantile(boots, 0.025):.3f}, {np.quantile(boots, 0.975):.3f}]"
    return out


def recall(labels, pred, c) -> float:
    """Pr(predicted c | class c); NaN where no galaxy is of class c."""
    mine = labels == c
    return float(np.mean(pred[mine] == c)) if mine.any() else np.nan


def balanced_accuracy(labels, pred) -> float:
    """Mean recall over the classes present in ``labels``."""
    return float(np.mean([recall(labels, pred, c) for c in np.unique(labels)]))


def precision_at_k(features, labels, k: int = 10) -> np.ndarray:
    """(G,) share of each galaxy's ``k`` nearest neighbours (cosine similarity of standardised
    features, the galaxy itself left out; ties broken by position:
    :func:`zoolib.cnn.similarity.nearest`) that share its label."""
    labels = np.asarray(labels)
    if len(labels) != len(features):
        raise ValueError(f"{len(labels)} labels for {len(features)} rows of features")
    near, _ = similarity.nearest(features, k)
    return np.mean(labels[near] == labels[:, None], axis=1)


def bootstrap_mean(values, n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, str]:
    """The mean of ``values`` and its 95% bootstrap interval over items, as ``[lo, hi]``."""
    values = np.asarray(values, np.float64)
    idx = np.random.default_rng(seed).integers(0, len(values), (n_boot, len(values)))
    boots = values[idx].mean(axis=1)
    interval = f"[{np.quantile(boots, 0.025):.3f}, {np.quantile(boots, 0.975):.3f}]"
    return float(values.mean()), interval


def pixel_features(images, size: int = 32, components: int = 64, seed: int = 0) -> np.ndarray:
    """(G, components) raw-pixel features: greyscale (channel mean), resized to ``size`` px
    (area averaging), flattened, PCA-reduced (fitted on these images; no labels involved)."""
    from PIL import Image
    from sklearn.decomposition import PCA

    images = np.asarray(images)
    grey = images.mean(axis=-1) if images.ndim == 4 else images
    small = np.stack([
        np.asarray(Image.fromarray(g.astype(np.float32)).resize((size, size), Image.BOX))
        for g in grey
    ]).reshape(len(grey), -1)  # fmt: skip
    n = min(components, len(small) - 1, small.shape[1])
    return PCA(n, random_state=seed).fit_transform(small).astype(np.float32)


TRUNKS = ("simulated", "real", "random")  # the shipped trunks, and the paper's CNN untrained


def trunk_features(trunk: str, images, seed: int = 0) -> np.ndarray:
    """(G, 128) features of 64 px greyscale ``images`` from a trunk: ``simulated`` (the shipped
    pretrained CNN, :data:`zoolib.paths.PRETRAINED_DIR`), ``real`` (the one trained on real
    images), ``random`` (the paper's CNN with freshly initialised weights, ``seed``), or the path
    of a folder holding a model and its manifest as ``shipped/`` does (a trunk being measured)."""
    from pathlib import Path

    from zoolib.cnn import models, posteriors, pretrained

    images = np.asarray(images)
    size, channels = images.shape[1], images.shape[3]
    if trunk == "random":
        model = models.build_bayesian_cnn(size, channels, 1, seed=seed)
    elif trunk in ("simulated", "real") or (Path(trunk) / pretrained.MANIFEST_FILE).is_file():
        model, _ = pretrained.load(size, channels, pretrained.shipped_folder(trunk))
    else:
        raise ValueError(f"unknown trunk {trunk!r}; expected one of {TRUNKS} (or 'pixels', or "
                         "a folder with a model and its manifest.json)")
    return posteriors.trunk_features(model, images)
