r"""Binomial likelihood of volunteer votes.

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

from zoolib.schema import validate_counts


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
        nll = binomial_nll(
            y_true[..., 0], y_true[..., 1], y_pred, include_constant=self.include_constant
        )
        return tf.reduce_sum(nll, axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "include_constant": self.include_constant}
