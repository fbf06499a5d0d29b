r"""Likelihoods of volunteer votes: binomial per yes/no question; multinomial or
Dirichlet-multinomial per question of a whole decision tree (:func:`tree_nll`, at the end).

For one question a galaxy received :math:`k` "yes" votes from :math:`n` volunteers. The CNN
outputs a logit :math:`x`; :math:`\rho = \sigma(x)` is the probability that a typical volunteer
answers "yes", and

.. math::

    -\log p(k \mid n, \rho) = -\log\binom{n}{k} - k\log\rho - (n-k)\log(1-\rho)
                            = -\log\binom{n}{k} + k\,\mathrm{softplus}(-x)
                              + (n-k)\,\mathrm{softplus}(x),

using :math:`\log\sigma(x) = -\mathrm{softplus}(-x)` and
:math:`\log(1-\sigma(x)) = -\mathrm{softplus}(x)`. Written this way the loss is finite, with
finite gradient :math:`n\sigma(x) - k`, for every finite logit. A galaxy seen by 40 volunteers
therefore pulls 10 times harder than one seen by 4; :math:`n = 1` is binary cross-entropy and
:math:`n = 0` (question never asked) contributes nothing.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from zoolib.votes.multinomial import CONCENTRATION_RANGE, as_vote_vectors
from zoolib.votes.schema import validate_counts


def binomial_nll(k, n, logits, include_constant: bool = False) -> tf.Tensor:
    r"""Per-item binomial negative log-likelihood of ``k`` yes votes out of ``n``.

    .. math:: \ell = k\,\mathrm{softplus}(-x) + (n-k)\,\mathrm{softplus}(x)
                     \;[-\log\tbinom{n}{k}\ \text{if include\_constant}]

    Args:
        k: yes votes, any shape broadcastable with ``logits``.
        n: total votes, same shape as ``k``. ``n = 0`` gives zero loss and zero gradient.
        logits: :math:`x`, with :math:`\rho = \sigma(x)`; the output dtype follows it.
        include_constant: add :math:`-\log\binom{n}{k}`; then the result equals
            ``-scipy.stats.binom.logpmf(k, n, sigmoid(logits))``.

    Returns:
        Tensor of the broadcast shape of (k, n, logits), dtype of ``logits``.

    Raises:
        ValueError: (eager inputs) naming the first index where k < 0, n < 0, k > n or a count is
            not finite. Inside a ``tf.function`` the same checks run as ``tf.debugging``
            assertions and raise ``InvalidArgumentError``.
    """
    logits = tf.convert_to_tensor(logits)
    if not logits.dtype.is_floating:
        logits = tf.cast(logits, tf.float32)
    dtype = logits.dtype
    if tf.executing_eagerly():
        validate_counts(np.asarray(k), np.asarray(n))
    k = tf.cast(k, dtype)
    n = tf.cast(n, dtype)
    if not tf.executing_eagerly():
        tf.debugging.assert_all_finite(k, "binomial_nll: k (yes votes) is not finite")
        tf.debugging.assert_all_finite(n, "binomial_nll: n (total votes) is not finite")
        tf.debugging.assert_non_negative(k, "binomial_nll: k (yes votes) is negative")
        tf.debugging.assert_less_equal(k, n, "binomial_nll: k (yes votes) exceeds n")
    nll = k * tf.math.softplus(-logits) + (n - k) * tf.math.softplus(logits)
    if include_constant:
        log_choose = tf.math.lgamma(n + 1) - tf.math.lgamma(k + 1) - tf.math.lgamma(n - k + 1)
        nll = nll - log_choose
    return nll


@keras.saving.register_keras_serializable(package="zoolib")
class BinomialLoss(keras.losses.Loss):
    """Keras loss: binomial NLL summed over questions, averaged over the batch.

    ``y_true`` has shape (batch, Q, 2) holding ``[k, n]`` per question; ``y_pred`` holds logits
    of shape (batch, Q). The per-galaxy loss is :math:`\\sum_q \\ell(k_q, n_q, x_q)`; Keras then
    averages it over the batch. Questions a galaxy was never asked (n = 0) add nothing.
    """

    def __init__(self, include_constant: bool = False, name: str = "binomial_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.include_constant = include_constant

    def call(self, y_true, y_pred):
        y_pred = tf.convert_to_tensor(y_pred)
        y_true = tf.cast(y_true, y_pred.dtype)
        if y_true.shape.rank != 3 or y_true.shape[-1] != 2:  # static: refused before training
            raise ValueError(
                f"BinomialLoss: votes must be (galaxies, questions, 2) of [k, N] "
                f"(zoolib.data.processed.votes_array), got shape {tuple(y_true.shape)}; "
                "for one question "
                "add its axis (votes[:, None, :]); a tree's vote vectors take TreeLoss"
            )
        nll = binomial_nll(
            y_true[..., 0], y_true[..., 1], y_pred, include_constant=self.include_constant
        )
        return tf.reduce_sum(nll, axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "include_constant": self.include_constant}


# ---------------------------------------------------------------------------------------------
# whole decision trees: a multinomial or Dirichlet-multinomial per question (zoolib.votes.trees)

LIKELIHOODS = ("multinomial", "dirichlet_multinomial")


def concentrations(outputs) -> tf.Tensor:
    """Dirichlet-multinomial concentrations from the network's outputs, within
    ``CONCENTRATION_RANGE``."""
    lo, hi = CONCENTRATION_RANGE
    return lo + (hi - lo) * tf.math.sigmoid(outputs)


def tree_nll(counts, outputs, sizes, likelihood: str = "multinomial",
             include_constant: bool = False) -> tf.Tensor:  # fmt: skip
    r"""Per-galaxy, per-question NLL of a tree's vote vectors: (batch, Q).

    ``counts`` and ``outputs`` are (batch, A): every question's answers side by side, in tree
    order, ``sizes`` the number of answers of each question (sum A). For ``"multinomial"`` the
    outputs are logits, :math:`p = \mathrm{softmax}` per question and
    :math:`\ell_q = -\sum_k n_k \log p_k`; for ``"dirichlet_multinomial"`` they give
    concentrations (:func:`concentrations`) and :math:`\ell_q = -\log\mathrm{DirMult}` without
    its count-only terms. ``include_constant`` adds :math:`-\log N! + \sum_k \log n_k!`, so the
    result equals :func:`zoolib.votes.multinomial.multinomial_logpmf` /
    :func:`~zoolib.votes.multinomial.dirichlet_multinomial_logpmf` negated. A question nobody was
    asked (N = 0) gives 0. For two answers the multinomial is :func:`binomial_nll` of the
    logit difference.
    """
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, not {likelihood!r}")
    outputs = tf.convert_to_tensor(outputs)
    if not outputs.dtype.is_floating:
        outputs = tf.cast(outputs, tf.float32)
    counts = tf.cast(counts, outputs.dtype)
    if tf.executing_eagerly():
        as_vote_vectors(np.asarray(counts), "counts")  # errors name the galaxy and answer
    else:  # under fit: the same checks as assertions (NaN counts would give NaN gradients)
        tf.debugging.assert_all_finite(counts, "tree_nll: a vote count is not finite")
        tf.debugging.assert_non_negative(counts, "tree_nll: a vote count is negative")
    per_question = []
    for n, x in zip(tf.split(counts, list(sizes), axis=-1), tf.split(outputs, list(sizes), -1),
                    strict=True):  # fmt: skip
        total = tf.reduce_sum(n, -1)
        if likelihood == "multinomial":
            nll = -tf.reduce_sum(n * tf.nn.log_softmax(x, axis=-1), -1)
        else:
            a = concentrations(x)
            big_a = tf.reduce_sum(a, -1)
            nll = -(tf.math.lgamma(big_a) - tf.math.lgamma(total + big_a)
                    + tf.reduce_sum(tf.math.lgamma(n + a) - tf.math.lgamma(a), -1))  # fmt: skip
        if include_constant:
            nll -= tf.math.lgamma(total + 1) - tf.reduce_sum(tf.math.lgamma(n + 1), -1)
        per_question.append(tf.where(total > 0, nll, tf.zeros_like(nll)))
    return tf.stack(per_question, axis=-1)


@keras.saving.register_keras_serializable(package="zoolib")
class TreeLoss(keras.losses.Loss):
    """Keras loss: :func:`tree_nll` summed over a tree's questions, averaged over the batch.
    ``y_true`` (batch, A) vote counts, ``y_pred`` (batch, A) outputs; ``sizes`` the answers per
    question."""

    def __init__(self, sizes, likelihood: str = "multinomial", name: str = "tree_loss",
                 **kwargs):  # fmt: skip
        super().__init__(name=name, **kwargs)
        self.sizes, self.likelihood = [int(s) for s in sizes], likelihood
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, not {likelihood!r}")

    def call(self, y_true, y_pred):
        return tf.reduce_sum(tree_nll(y_true, y_pred, self.sizes, self.likelihood), axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "sizes": self.sizes, "likelihood": self.likelihood}
