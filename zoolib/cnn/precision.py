r"""Numeric precision of the CNN: ``float32``, ``mixed_bfloat16``, or ``auto`` (measured).

Under Keras's ``mixed_bfloat16`` policy the convolutions and dense layers compute in bfloat16
(8 bits of mantissa, float32's range) while the weights, the optimiser state and the gradients'
accumulation stay float32. Where the CPU has bfloat16 matrix units (Intel AMX ``amx_bf16``;
``avx512_bf16`` on AMD Zen 4 and some Xeons) or the GPU has bfloat16 tensor cores (compute
capability 8.0 and later), oneDNN or cuDNN runs those layers several times faster.

What stays in float32 or float64 (the maths the binomial NLL and BALD need): the last dense layer
(``logits``, as Keras's mixed-precision guide keeps a model's outputs), hence the logits, the
loss, the gradients' update of the float32 weights, and all numpy maths after the network
(:func:`zoolib.cnn.posteriors.to_rho` works in float64).

Measured on the 2-core AMD EPYC with ``avx512_bf16`` (no AMX) these notebooks ran on, paper's
CNN at 64 px (``benchmarks/bench_precision.py``): see ``docs/performance.md``.

Choices:

* :func:`choose` turns a requested precision into a Keras policy name for a ``task``
  (``"train"``: an Adam step; ``"predict"``: a forward pass). ``float32`` and
  ``mixed_bfloat16`` are taken as asked. ``auto`` picks ``mixed_bfloat16`` only where
  :func:`native_units` finds bfloat16 hardware **and** :func:`probe` measures it at least
  :data:`AUTO_MIN_SPEEDUP` times faster on this machine for that task; otherwise float32. The
  probe takes a few seconds and is run once per process and task.
* :func:`apply` sets a model's layers to a policy in place (weights untouched: they are float32
  under both policies), so a model trained or saved in one precision predicts in another, and
  :func:`policy_of` reads it back. (Building under Keras's global policy is not needed: the
  policy only decides the dtype layers compute in, so it can be set after building.)

Results are not bit-identical across precisions: the precision used is recorded in model cards,
manifests, active-learning run headers and reports. ``float32`` leaves every computation exactly
as it was before this module existed.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path

FLOAT32 = "float32"
BFLOAT16 = "mixed_bfloat16"
AUTO = "auto"
PRECISIONS = (FLOAT32, BFLOAT16, AUTO)
TASKS = ("train", "predict")
AUTO_MIN_SPEEDUP = 1.2  # auto takes bfloat16 only if the probe measures at least this ratio
CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of bfloat16 matrix instructions
OUTPUT_LAYER = "logits"  # the layer kept in float32 (zoolib.cnn.models.build_head)


@dataclass(frozen=True)
class Choice:
    """A resolved precision: the Keras ``policy`` and why it was chosen (one line)."""

    policy: str
    requested: str
    task: str
    reason: str

    def __str__(self) -> str:
        return f"precision {self.policy} for {self.task} ({self.requested}: {self.reason})"


def check(precision: str, name: str = "precision") -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else ValueError naming the parameter."""
    if precision not in PRECISIONS:
        raise ValueError(f"{name}={precision!r}: choose from {', '.join(PRECISIONS)}")
    return precision


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU feature flags the kernel reports (empty where there is no /proc/cpuinfo)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's model name, or the platform's processor string."""
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def native_units() -> str | None:
    """What bfloat16 hardware this process can use, in words, or None.

    A GPU that TensorFlow sees counts when its compute capability is 8.0 or more (Ampere and
    later); otherwise the CPU counts when it reports one of :data:`CPU_FLAGS`.
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        capability = details.get("compute_capability") or (0, 0)
        name = details.get("device_name", "GPU")
        return f"{name} (compute capability {capability[0]}.{capability[1]})" if (
            tuple(capability) >= (8, 0)
        ) else None
    found = [f for f in CPU_FLAGS if f in cpu_flags()]
    return f"{cpu_model()} ({', '.join(found)})" if found else None


def _timed(fn, repeats: int) -> float:
    """Best of ``repeats`` wall-clock seconds of ``fn()`` after two warm-up calls."""
    fn()
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def throughput(policy: str, task: str, image_size: int = 64, batch_size: int | None = None,
               repeats: int = 3, steps: int = 3) -> float:  # fmt: skip
    """Images per second of the paper's CNN (:func:`zoolib.cnn.models.build_bayesian_cnn`, 3
    questions, 1 channel) under ``policy``: ``train`` times ``steps`` Adam steps on the binomial
    loss (batch 64), ``predict`` a forward pass (batch 256); the best of ``repeats`` after two
    warm-ups. (Fewer steps misjudged training on an AMD EPYC: 1.18x against the 1.8x of a whole
    epoch.)"""
    import keras
    import numpy as np
    import tensorflow as tf

    from zoolib.cnn import losses, models

    if task not in TASKS:
        raise ValueError(f"task={task!r}: choose from {TASKS}")
    batch = batch_size or (64 if task == "train" else 256)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(0, 255, (batch, image_size, image_size, 1)).astype(np.float32))
    model = apply(models.build_bayesian_cnn(image_size, 1, 3, seed=0), policy)
    if task == "predict":
        forward = tf.function(lambda: model(x, training=False))
        return batch / _timed(lambda: forward().numpy(), repeats)
    k = rng.integers(0, 11, (batch, 3))
    y = tf.constant(np.stack([k, np.full_like(k, 10)], axis=-1).astype(np.float32))
    loss, optimizer = losses.BinomialLoss(), keras.optimizers.Adam(1e-3)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            value = loss(y, model(x, training=True))
        grads = tape.gradient(value, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return value

    def run():
        for _ in range(steps):
            value = step()
        value.numpy()

    return batch * steps / _timed(run, repeats)


@functools.cache
def probe(task: str) -> dict[str, float]:
    """{float32 images/s, mixed_bfloat16 images/s, ratio} of :func:`throughput` for ``task``,
    measured now on this machine (a few seconds; cached for the process)."""
    fast = throughput(BFLOAT16, task)
    slow = throughput(FLOAT32, task)
    return {FLOAT32: slow, BFLOAT16: fast, "ratio": fast / slow}


def choose(precision: str, task: str = "train") -> Choice:
    """The policy to use for ``task`` when ``precision`` is asked (see the module docstring).
    ``auto`` is decided once per process and task; ``str(choice)`` says what and why."""
    check(precision)
    if task not in TASKS:
        raise ValueError(f"task={task!r}: choose from {TASKS}")
    if precision != AUTO:
        return Choice(precision, precision, task, "as asked")
    return _auto(task)


@functools.cache
def _auto(task: str) -> Choice:
    units = native_units()
    if units is None:
        choice = Choice(FLOAT32, AUTO, task, "no bfloat16 units found on this machine")
    else:
        measured = probe(task)
        ratio = measured["ratio"]
        words = (
            f"{units}: the probe measured bfloat16 at {ratio:.2f}x float32 "
            f"({measured[BFLOAT16]:.0f} against {measured[FLOAT32]:.0f} images/s)"
        )
        if ratio >= AUTO_MIN_SPEEDUP:
            choice = Choice(BFLOAT16, AUTO, task, words)
        else:
            choice = Choice(FLOAT32, AUTO, task, f"{words}, under the {AUTO_MIN_SPEEDUP}x it needs")
    return choice


def forget() -> None:
    """Forget this process's auto decisions and probe results (the next ``auto`` probes again)."""
    _auto.cache_clear()
    probe.cache_clear()


def _layers(model):
    import keras

    return [
        layer for layer in model._flatten_layers(include_self=True)
        if not isinstance(layer, keras.layers.InputLayer)
    ]  # fmt: skip


def apply(model, policy: str):
    """Set every layer of ``model`` (nested sub-models included) to ``policy``, except the
    :data:`OUTPUT_LAYER` layers, which stay float32; return ``model``.

    The weights are float32 under both policies and are not touched, so ``apply(model,
    "float32")`` gives back exactly the float32 model. (:mod:`zoolib.cnn.posteriors` retraces its
    cached sampler when it sees another policy.)
    """
    if policy not in (FLOAT32, BFLOAT16):
        raise ValueError(f"policy={policy!r}: choose {FLOAT32} or {BFLOAT16} (resolve auto first)")
    for layer in _layers(model):
        layer.dtype_policy = FLOAT32 if layer.name == OUTPUT_LAYER else policy
    return model


def policy_of(model) -> str:
    """The policy of ``model``'s layers (all but the output layer): ``float32``,
    ``mixed_bfloat16``, or ``mixed`` when they disagree."""
    names = {layer.dtype_policy.name for layer in _layers(model) if layer.name != OUTPUT_LAYER}
    return names.pop() if len(names) == 1 else "mixed"
