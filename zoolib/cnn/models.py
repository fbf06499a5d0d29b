"""The Bayesian CNN of Walmsley et al. (2020): a deterministic trunk and an MC-dropout head.

Architecture (3x3 convolutions, ReLU, "same" padding)::

    image (S, S, C), pixel values 0..255
      -> rescale to [0, 1]
      -> conv 32 -> conv 32 -> max-pool
      -> conv 64 -> conv 64 -> max-pool
      -> conv 128 -> max-pool
      -> conv 128 -> max-pool
      -> flatten -> dense 128 ReLU                      = trunk: image -> 128 features
      -> MCDropout(rate) -> dense Q (logits)            = head: features -> logits

Dropout stays on at prediction time, so every forward pass is a draw from the approximate
posterior over network weights (Gal & Ghahramani 2016). Because all randomness sits in the head,
``zoolib.cnn.posteriors.sample_rho`` runs the expensive trunk once per image and draws the T dropout
masks on the cheap head only.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import keras
import numpy as np
from keras import layers

from zoolib import paths


@keras.saving.register_keras_serializable(package="zoolib")
class MCDropout(layers.Dropout):
    """Dropout that is active at prediction time too (Monte Carlo dropout).

    Each call multiplies each input unit independently by ``Bernoulli(1 - rate) / (1 - rate)``,
    whatever the ``training`` flag says. Input and output shapes are equal.
    """

    def call(self, inputs, training=None):
        return super().call(inputs, training=True)

    def reseed(self, seed: int) -> None:
        """Restart this layer's random stream at ``seed`` so that later draws repeat exactly."""
        state = self.seed_generator.state
        state.assign(np.array([int(seed), 0], dtype=state.dtype))


def build_trunk(
    image_size: int = 64,
    channels: int = 1,
    filters: tuple[int, ...] = (32, 32, 64, 64, 128, 128),
    dense_units: int = 128,
    name: str = "trunk",
    dense_activation: str = "relu",
) -> keras.Model:
    """Deterministic feature extractor: (batch, S, S, C) pixels 0..255 -> (batch, dense_units).

    ``dense_activation`` is the paper's ReLU by default. The shipped pretrained model uses
    ``"leaky_relu"`` (slope 0.2 below zero): with ReLU, 71 of the 128 features were zero for every
    image after three epochs (born alive, they die in training), with leaky ReLU none are
    constant and the validation loss fell faster (17.1 against 18.4 nats; 8,000 galaxies at 64 px).
    """
    if len(filters) != 6:
        raise ValueError(f"filters must list 6 convolution widths, got {filters!r}")
    inputs = keras.Input((image_size, image_size, channels), name="image")
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    conv = dict(kernel_size=3, padding="same", activation="relu")
    x = layers.Conv2D(filters[0], name="conv1", **conv)(x)
    x = layers.Conv2D(filters[1], name="conv2", **conv)(x)
    x = layers.MaxPooling2D(name="pool1")(x)
    x = layers.Conv2D(filters[2], name="conv3", **conv)(x)
    x = layers.Conv2D(filters[3], name="conv4", **conv)(x)
    x = layers.MaxPooling2D(name="pool2")(x)
    x = layers.Conv2D(filters[4], name="conv5", **conv)(x)
    x = layers.MaxPooling2D(name="pool3")(x)
    x = layers.Conv2D(filters[5], name="conv6", **conv)(x)
    x = layers.MaxPooling2D(name="pool4")(x)
    x = layers.Flatten(name="flatten")(x)
    features = layers.Dense(dense_units, activation=dense_activation, name="dense")(x)
    return keras.Model(inputs, features, name=name)


def build_head(
    n_features: int = 128,
    n_questions: int = 1,
    dropout_rate: float = 0.5,
    seed: int | None = None,
    name: str = "head",
) -> keras.Model:
    """Stochastic head: (batch, n_features) -> MCDropout -> (batch, n_questions) logits."""
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate!r}")
    features = keras.Input((n_features,), name="features")
    x = MCDropout(dropout_rate, seed=seed, name="mc_dropout")(features)
    # the outputs stay float32 under a mixed policy (zoolib.cnn.precision), as Keras's guide
    # keeps them
    logits = layers.Dense(n_questions, name="logits", dtype="float32")(x)
    return keras.Model(features, logits, name=name)


def build_bayesian_cnn(
    image_size: int = 64,
    channels: int = 1,
    n_questions: int = 1,
    dropout_rate: float = 0.5,
    dense_units: int = 128,
    filters: tuple[int, ...] = (32, 32, 64, 64, 128, 128),
    seed: int | None = None,
    name: str = "bayesian_cnn",
    dense_activation: str = "relu",
) -> keras.Model:
    """The paper's Bayesian CNN: (batch, S, S, C) pixels 0..255 -> (batch, Q) logits.

    ``rho = sigmoid(logits)`` is the predicted probability that a volunteer answers "yes" to each
    of the Q questions. The model is a functional composition of two sub-models, reachable as
    ``model.get_layer("trunk")`` (deterministic, image -> ``dense_units`` features) and
    ``model.get_layer("head")`` (MC dropout then a dense layer). ``seed`` fixes the weight
    initialisation and the dropout stream; note that it does so by calling
    ``keras.utils.set_random_seed(seed)``, which also seeds Python's, NumPy's and TensorFlow's
    global generators.
    """
    if seed is not None:
        keras.utils.set_random_seed(seed)
    trunk = build_trunk(
        image_size, channels, tuple(filters), dense_units, dense_activation=dense_activation
    )
    head = build_head(dense_units, n_questions, dropout_rate, seed=seed)
    inputs = keras.Input((image_size, image_size, channels), name="image")
    outputs = head(trunk(inputs))
    return keras.Model(inputs, outputs, name=name)


def mc_dropout_layers(model: keras.Model) -> list[MCDropout]:
    """All MCDropout layers of ``model``, searching nested sub-models."""
    return [layer for layer in model._flatten_layers() if isinstance(layer, MCDropout)]


def split_trunk_head(model: keras.Model) -> tuple[keras.Model, keras.Model] | None:
    """Return (trunk, head) when the model is exactly image -> trunk -> head -> output.

    Returns ``None`` for any other structure (extra layers around the two sub-models, for
    instance) or when the trunk holds an MCDropout layer; callers then fall back to full
    stochastic forward passes.
    """
    inner = [layer for layer in model.layers if not isinstance(layer, layers.InputLayer)]
    if [layer.name for layer in inner] != ["trunk", "head"]:
        return None
    trunk, head = inner
    if len(model.inputs) != 1 or len(model.outputs) != 1 or mc_dropout_layers(trunk):
        return None
    # with only these two layers, the output can only be head(trunk(image))
    if tuple(head.input.shape) != tuple(trunk.output.shape):
        return None
    if tuple(model.output.shape) != tuple(head.output.shape):
        return None
    return trunk, head


def reseed(model: keras.Model, seed: int) -> None:
    """Restart the random streams of all MCDropout layers in ``model`` from ``seed``."""
    for i, layer in enumerate(mc_dropout_layers(model)):
        layer.reseed(seed + 7919 * i)


def trained_model_path(model_name: str) -> Path:
    """Where notebook 02 saves the model it trains as ``model_name``: ``models/<name>.keras``
    under the project root (``paths.MODELS_DIR``). Notebooks that use the trained model call
    this first, so a missing model stops them at once with FileNotFoundError saying to run
    notebook 02 first and naming the expected file, before any heavy work."""
    path = paths.MODELS_DIR / f"{model_name}.keras"
    if not path.exists():
        raise FileNotFoundError(
            f"no trained model {model_name!r}: expected the file {path} (models/{model_name}"
            f".keras under the project root {paths.PROJECT_ROOT}); run notebook 02 first "
            f"(02_train with model_name={model_name!r}), then rerun this notebook"
        )
    return path


def load_model(path) -> keras.Model:
    """Load a saved ``.keras`` model; importing this module registers MCDropout and the loss.

    A missing file raises FileNotFoundError; a ``.keras`` file that is not a whole Keras zip
    (truncated, or another file renamed) raises ValueError. Both name the file.
    """
    from zoolib.cnn import losses  # noqa: F401  (registers BinomialLoss for the compile config)

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"model file {path} is missing: train it with notebook 02 (02_train, whose "
            "model_name parameter names models/<model_name>.keras) or give the path of a "
            "saved .keras model"
        )
    if path.suffix == ".keras" and not path.is_dir() and not readable_keras_zip(path):
        raise ValueError(
            f"model file {path} exists but is not a readable Keras model (it is truncated, or "
            "not a .keras zip file); retrain it with notebook 02 (02_train) or restore the file"
        )
    return keras.models.load_model(path)


def readable_keras_zip(path: Path) -> bool:
    """Whether ``path`` is a whole zip archive (every member's checksum right) holding a Keras
    model's ``config.json``: what a ``.keras`` file is."""
    try:
        with zipfile.ZipFile(path) as archive:
            return "config.json" in archive.namelist() and archive.testzip() is None
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error):
        return False
