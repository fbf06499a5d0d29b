r"""The pretrained Bayesian CNN shipped with zoolib: made once, checked on load, fine-tuned later.

Training the paper's CNN from scratch to convergence takes over an hour on a 2-core CPU
(about 200 images/s at 64 px; the shipped run averaged 192), far beyond a notebook's budget,
so, like Zoobot, zoo pretrains once and fine-tunes cheaply. :func:`pretrain`
(``python -m zoolib pretrain`` / ``make pretrain``) simulates a large universe at 64 px
(every question), with a seed no notebook uses (:data:`UNIVERSE_SEED`), trains
:func:`zoolib.cnn.models.build_bayesian_cnn` on it with early stopping, measures it on its own
test split and writes

* ``zoolib/cnn/shipped/simulated/bayesian_cnn_64px.keras``: the model (trunk and head, about 2.3
  MB);
* ``zoolib/cnn/shipped/simulated/manifest.json``: its sha256, the exact command, the code version,
  the universe (preset, seed, size, and a fingerprint of it, see :func:`universe_fingerprint`),
  the training record and its own test metrics.

:func:`load` checks the hash and that the architecture, image size and channels match what the
caller needs, with an error saying what to do otherwise. If the simulated universe changes,
:func:`check_universe` (run by the tests) fails until the weights are regenerated.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import zoolib
from zoolib import files, paths
from zoolib.cnn import evaluation, posteriors
from zoolib.cnn import precision as zprecision
from zoolib.data import processed
from zoolib.universe import synthetic
from zoolib.votes.schema import QUESTIONS, question

MODEL_FILE = paths.SHIPPED_MODELS["pretrained"].name  # bayesian_cnn_64px.keras
MANIFEST_FILE = "manifest.json"
UNIVERSE_SEED = 15_542_020  # the pretraining universe; notebooks and tests use small seeds
FINGERPRINT_SEED = 491  # the small universe whose statistics identify the simulation's version
FINGERPRINT_GALAXIES = 200
FINGERPRINT_RTOL = 1e-6  # statistics of the same code agree to ~1e-12; any model change moves them


@dataclass
class Settings:
    """What :func:`pretrain` does; the defaults made the shipped weights."""

    n_galaxies: int = 60_000
    image_size: int = 64
    channels: int = 1
    preset: str = "gz2"
    epochs: int = 15
    patience: int = 3
    batch_size: int = 128
    learning_rate: float = 1e-3  # Adam, as in the paper; x0.3 after each epoch without progress
    dropout_rate: float = 0.5
    dense_activation: str = "leaky_relu"  # not the paper's ReLU: see zoolib.cnn.models.build_trunk
    val_fraction: float = 0.05
    test_fraction: float = 0.05
    eval_samples: int = 30
    seed: int = UNIVERSE_SEED
    precision: str = "float32"  # or mixed_bfloat16 / auto (zoolib.cnn.precision); shipped: float32


def universe_fingerprint(preset: str, image_size: int, channels: int) -> dict[str, float]:
    """Statistics of a small fixed universe (:data:`FINGERPRINT_GALAXIES` galaxies): mean and
    spread of its pixels, mean true and recoverable probabilities and mean votes per question.

    Two versions of the simulation that make different galaxies, images, volunteers or votes
    give different statistics; the same code gives the same values to about 1e-12 on any CPU.
    """
    images, cat = synthetic.simulate(
        FINGERPRINT_GALAXIES, image_size, channels, seed=FINGERPRINT_SEED, preset=preset
    )
    pixels = images.astype(np.float64)
    stats = {"pixel mean": pixels.mean(), "pixel std": pixels.std()}
    for q in QUESTIONS.values():
        for column in (f"true_p_{q.name}", f"recoverable_p_{q.name}", q.yes_column, q.total_column):
            stats[f"{column} mean"] = cat[column].astype(np.float64).mean()
    return {k: float(v) for k, v in stats.items()}


def fingerprint_differences(claimed: dict, actual: dict) -> list[str]:
    """Entries of two fingerprints that differ beyond :data:`FINGERPRINT_RTOL`, described."""
    out = [f"{k}: only in one" for k in sorted(set(claimed) ^ set(actual))]
    for k in sorted(set(claimed) & set(actual)):
        if not np.isclose(claimed[k], actual[k], rtol=FINGERPRINT_RTOL, atol=1e-12):
            out.append(f"{k}: weights made on {claimed[k]:.8g}, simulation gives {actual[k]:.8g}")
    return out


def read_manifest(folder: Path | None = None) -> dict:
    """The manifest of the shipped (or ``folder``'s) pretrained model."""
    path = Path(folder or paths.PRETRAINED_DIR) / MANIFEST_FILE
    if not path.is_file():
        make = ("make pretrain-real" if path.parent == paths.PRETRAINED_REAL_DIR
                else "make pretrain")  # fmt: skip
        raise FileNotFoundError(
            f"no pretrained model at {path.parent}: run `{make}` or use init: 'scratch' in"
            " notebook 02"
        )
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"cannot read {path}: {err}") from err


def check_universe(manifest: dict) -> None:
    """Raise if the simulation no longer makes the universe the weights were pretrained on."""
    u = manifest["universe"]
    diffs = fingerprint_differences(
        u["fingerprint"], universe_fingerprint(u["preset"], u["image_size"], u["channels"])
    )
    if diffs:
        raise ValueError(
            "the simulated universe changed since the pretrained weights were made; regenerate "
            "them with `make pretrain` and commit zoolib/cnn/shipped/simulated/. Differences:\n  "
            + "\n  ".join(diffs)
        )


def load(image_size: int, channels: int, folder: Path | None = None):
    """The pretrained model and its manifest, after checking the file's sha256 and that it takes
    ``image_size`` x ``image_size`` x ``channels`` images with the paper's architecture."""
    from zoolib.cnn import models

    folder = Path(folder or paths.PRETRAINED_DIR)
    manifest = read_manifest(folder)
    path = folder / manifest["file"]
    if not path.is_file():
        raise FileNotFoundError(f"{path} is named by {folder / MANIFEST_FILE} but missing")
    if files.sha256(path) != manifest["sha256"]:
        raise ValueError(
            f"{path} does not match the sha256 in {folder / MANIFEST_FILE}: the file is damaged "
            "or was replaced without its manifest; restore it (git checkout) or run `make pretrain`"
        )
    arch = manifest["architecture"]
    if (arch["image_size"], arch["channels"]) != (image_size, channels):
        raise ValueError(
            f"the pretrained model takes {arch['image_size']} px images with {arch['channels']} "
            f"channel(s), not {image_size} px with {channels}: make the dataset with image_size: "
            f"{arch['image_size']} (and channels: {arch['channels']}) in notebook 01 and leave "
            "notebook 02's image_size at 0, or use init: 'scratch' in notebook 02"
        )
    model = models.load_model(path)
    expected = models.build_bayesian_cnn(
        image_size,
        channels,
        len(arch["questions"]),
        arch["dropout_rate"],
        dense_activation=arch["dense_activation"],
    )
    shapes = [tuple(w.shape) for w in model.weights]
    if shapes != [tuple(w.shape) for w in expected.weights]:
        raise ValueError(f"{path} is not the paper's CNN as built by zoolib.cnn.models: {shapes}")
    return model, manifest


INITS = ("auto", "pretrained", "real", "scratch")  # notebook 02's init choices
AUTO_START = {"synthetic": "pretrained", "real": "real"}  # measured: docs/data.md


def shipped_folder(name: str | Path) -> Path:
    """The folder of a shipped model by name (``"simulated"`` or its notebook-02 name
    ``"pretrained"``; ``"real"``), or ``name`` itself as a path to a model folder."""
    shipped = {"simulated": paths.PRETRAINED_DIR, "pretrained": paths.PRETRAINED_DIR,
               "real": paths.PRETRAINED_REAL_DIR}  # fmt: skip
    return shipped.get(str(name), Path(name))


def start_folder(init: str, source: str) -> Path | None:
    """Where notebook 02's ``init`` starts from: the simulated pretrained CNN's folder
    ("pretrained"), the real-image CNN's ("real"), None ("scratch": random weights); "auto"
    takes :data:`AUTO_START` for the dataset's source (``"synthetic"`` or a catalogue path)."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, not {init!r}")
    if init == "auto":
        init = AUTO_START["synthetic" if source == "synthetic" else "real"]
    return None if init == "scratch" else shipped_folder(init)


def trained_ids(name: str | Path) -> set[str]:
    """Every real image id a shipped model (:func:`shipped_folder`) trained on: none for a model
    of the simulated universe (its manifest has ``universe``), else the ``id_str`` column of the
    file its manifest names under ``trained_ids`` (sha256 checked). Refuses a model whose manifest
    saw real images but lists none."""
    import pandas as pd

    folder = shipped_folder(name)
    manifest = read_manifest(folder)
    if "universe" in manifest and "data" not in manifest:
        return set()
    entry = manifest.get("trained_ids")
    if entry is None:
        raise ValueError(f"{folder / MANIFEST_FILE} does not list the images it trained on "
                         "(no trained_ids): the pool cannot be checked against them")  # fmt: skip
    path = folder / entry["file"]
    if files.sha256(path) != entry["sha256"]:
        raise ValueError(f"{path} does not match the sha256 in its manifest: restore it")
    return set(pd.read_csv(path, dtype={"id_str": str})["id_str"])


def check_unseen(name: str | Path, ids, what: str = "the pool and test split") -> None:
    """Refuse ids a shipped model trained on, naming them (the first ten) and how many."""
    seen = sorted(set(map(str, ids)) & trained_ids(name))
    if seen:
        shown = ", ".join(seen[:10]) + (" ..." if len(seen) > 10 else "")
        raise ValueError(f"{len(seen)} galaxies of {what} are among the images model {name!r} "
                         f"trained on: {shown}. Leave them out (its manifest's trained_ids) or "
                         "use a model that never saw them ('pretrained')")  # fmt: skip


def describe(manifest: dict) -> str:
    """One line on what a shipped model has seen (simulated universe or real images)."""
    sha = f"sha256 {manifest['sha256'][:12]}..."
    if "universe" in manifest:
        u = manifest["universe"]
        return f"pretrained on {u['n_galaxies']:,} simulated galaxies (seed {u['seed']}), {sha}"
    seen = ", ".join(f"{d['trained_on']:,} {s}" for s, d in manifest["data"].items())
    how = ("trained further on real ones with SimCLR and labels of "
           + ", ".join(manifest["training_tasks"])) if "training_tasks" in manifest else (
        "fine-tuned on real ones")  # fmt: skip
    return f"pretrained on simulated galaxies, then {how} ({seen}), {sha}"


def initial_model(
    questions: list[str],
    image_size: int = 64,
    channels: int = 1,
    dropout_rate: float = 0.5,
    seed: int | None = None,
    folder: Path | None = None,
    outputs: list[str] | None = None,
):
    r"""The paper's CNN for ``questions`` starting from the pretrained weights; and the manifest.

    The whole trunk is copied; each question the pretrained model also learned gets its head
    weights (its column of the last layer), any other question a fresh random column. Pass
    ``lambda: initial_model(...)[0]`` to :func:`zoolib.cnn.training.train` to fine-tune it.

    ``outputs`` (default ``questions``) names a tree model's outputs instead, one per answer
    (``<question>_<answer>``, :meth:`zoolib.cnn.cards.ModelCard.outputs`): a learned question's
    "yes" answer gets its column, its K - 1 other answers zero weights and bias
    :math:`-\log(K - 1)` (so the softmax's "yes" starts exactly at the pretrained sigmoid), and
    answers of other questions fresh columns. (For a Dirichlet-multinomial model the outputs
    are concentrations, and this start is only a start, not the pretrained prediction.)

    A greyscale model starts a colour one (``channels=3``): the first convolution's kernel is
    repeated over the 3 input channels and divided by 3, so the colour model's output on an RGB
    image equals the greyscale model's on the mean of its bands (how zoo makes greyscale;
    tested), and fine-tuning can learn colour from there.
    """
    from zoolib.cnn import models

    stored = read_manifest(folder)["architecture"]["channels"]
    if channels != stored and (stored, channels) != (1, 3):
        raise ValueError(
            f"a {stored}-channel pretrained model cannot start a {channels}-channel one"
        )
    source, manifest = load(image_size, stored, folder)
    arch = manifest["architecture"]
    outputs = list(outputs or questions)
    model = models.build_bayesian_cnn(
        image_size, channels, len(outputs), dropout_rate, seed=seed,
        dense_activation=arch["dense_activation"],
    )  # fmt: skip
    (src_trunk, src_head), (trunk, head) = (
        models.split_trunk_head(source),
        models.split_trunk_head(model),
    )
    weights = src_trunk.get_weights()
    if channels != stored:
        weights[0] = np.repeat(weights[0], channels, axis=2) / channels  # (kh, kw, 1, f) -> 3
    trunk.set_weights(weights)
    kernel, bias = head.get_layer("logits").get_weights()
    src_kernel, src_bias = src_head.get_layer("logits").get_weights()
    for j, name in enumerate(outputs):
        column, answers = _learned(name, arch["questions"])
        if column is not None:
            kernel[:, j], bias[j] = src_kernel[:, column], src_bias[column]
        elif answers:  # softmax(x, -log(K-1), ...) = sigmoid(x)
            kernel[:, j], bias[j] = 0.0, -np.log(answers - 1)
    head.get_layer("logits").set_weights([kernel, bias])
    return model, manifest


def _learned(output: str, learned: list[str]) -> tuple[int | None, int | None]:
    """(the pretrained head's column for ``output``, None) when it is a learned question or
    its "yes" answer; (None, K) when it is another answer of a learned question of K answers;
    (None, None) otherwise."""
    for i, q in enumerate(learned):
        if output in (q, question(q).yes_column):
            return i, None
        if output in question(q).answer_columns:
            return None, len(question(q).answers)
    return None, None


def dead_features(model, images: np.ndarray, batch_size: int = 256) -> int:
    """How many of the trunk's features take one value for every one of ``images`` (for ReLU:
    zero for all, a dead unit); a head learning from the features can use none of them."""
    from zoolib.cnn import models

    parts = models.split_trunk_head(model)
    if parts is None:
        raise ValueError("the model has no separate deterministic trunk")
    features = parts[0].predict(np.asarray(images, np.float32), batch_size=batch_size, verbose=0)
    return int(np.sum(features.max(axis=0) == features.min(axis=0)))


def _code_version() -> dict:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=paths.PROJECT_ROOT, capture_output=True,
            text=True, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = bool(subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=paths.PROJECT_ROOT,
            capture_output=True, text=True, check=True,
        ).stdout.strip())  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = None, None
    import keras
    import tensorflow as tf

    return {
        "zoolib": zoolib.__version__, "git_commit": commit, "uncommitted_changes": dirty,
        "tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__,
        "python": platform.python_version(),
    }  # fmt: skip


def pretrain(
    settings: Settings | None = None,
    out_dir: Path | None = None,
    work_dir: Path | None = None,
    verbose: int = 2,
):
    """Simulate, train, measure and write the pretrained model and its manifest; return the
    manifest. Everything is measured first; then the model is written to a temporary name and
    renamed, and the manifest right after it (an interruption in that moment leaves a model
    that ``load`` refuses by its hash, never a silently mismatched pair). The best model so
    far and the training log go to ``work_dir`` (default ``models/pretrain/``) while it runs."""
    import keras

    from zoolib.cnn import models, training

    s = settings or Settings()
    out_dir = Path(out_dir or paths.PRETRAINED_DIR)
    work_dir = Path(work_dir or paths.MODELS_DIR / "pretrain")
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    code_version = _code_version()  # the code that runs, before anyone commits more
    images, cat = synthetic.simulate(s.n_galaxies, s.image_size, s.channels, s.seed, s.preset)
    split = processed.assign_splits(
        len(cat), (1 - s.val_fraction - s.test_fraction, s.val_fraction, s.test_fraction), s.seed
    )
    questions = list(QUESTIONS)
    rows = {name: np.flatnonzero(split == name) for name in processed.SPLITS}
    votes = processed.votes_array(cat, questions)
    simulated = time.perf_counter() - start
    fit = training.FitSettings(epochs=s.epochs, batch_size=s.batch_size,
                               learning_rate=s.learning_rate, patience=s.patience, seed=s.seed)
    history, _, model = training.fit_labels(
        lambda: models.build_bayesian_cnn(s.image_size, s.channels, len(questions),
                                          s.dropout_rate, seed=s.seed,
                                          dense_activation=s.dense_activation),
        images[rows["train"]], votes[rows["train"]], fit,
        val=(images[rows["val"]], votes[rows["val"]]),
        model_path=work_dir / "best.keras", log_dir=work_dir, verbose=verbose,
        callbacks=[keras.callbacks.ReduceLROnPlateau(factor=0.3, patience=1)],
        precision=s.precision,
    )  # fmt: skip
    policy = zprecision.policy_of(model)
    trained = time.perf_counter() - start - simulated
    test_cat = cat.iloc[rows["test"]].reset_index(drop=True)
    test_images = images[rows["test"]]
    rho = posteriors.sample_rho(model, test_images, s.eval_samples, seed=s.seed)
    baseline = evaluation.baseline_fractions(cat.iloc[rows["train"]], questions)
    table = evaluation.evaluate(rho, test_cat, questions, baseline)
    # everything slow is measured before the model is renamed into place, so that the
    # model and its manifest are replaced within moments of each other
    fingerprint = universe_fingerprint(s.preset, s.image_size, s.channels)
    dead = dead_features(model, test_images)
    # saved without the optimizer's state: a third of the size, and all fine-tuning needs
    clean = models.build_bayesian_cnn(s.image_size, s.channels, len(questions), s.dropout_rate,
                                      dense_activation=s.dense_activation)  # fmt: skip
    clean.set_weights(model.get_weights())
    target = files.save_model(clean, out_dir / MODEL_FILE)
    n_train = len(rows["train"])
    epochs_run = len(history["loss"])
    manifest = {
        "file": MODEL_FILE,
        "sha256": files.sha256(target),
        "bytes": target.stat().st_size,
        "command": ("python -m zoolib pretrain " + shlex.join(sys.argv[2:])).strip()
        if sys.argv[1:2] == ["pretrain"]
        else None,
        "settings": dataclasses.asdict(s),
        "architecture": {
            "name": "bayesian_cnn",
            "image_size": s.image_size,
            "channels": s.channels,
            "questions": questions,
            "dropout_rate": s.dropout_rate,
            "dense_activation": s.dense_activation,
            "parameters": int(model.count_params()),
        },  # fmt: skip
        "universe": {
            "preset": s.preset,
            "seed": s.seed,
            "n_galaxies": s.n_galaxies,
            "image_size": s.image_size,
            "channels": s.channels,
            "split_counts": {k: int(len(v)) for k, v in rows.items()},
            "fingerprint": fingerprint,
        },  # fmt: skip
        "code_version": code_version,
        "training": {
            "epochs_run": epochs_run,
            "best_epoch": int(np.argmin(history["val_loss"])) + 1,
            "history": history,
            "seconds_simulating": round(simulated, 1),
            "seconds_training": round(trained, 1),
            "images_per_second": round(n_train * epochs_run / trained, 1),
            "precision": policy,  # what the CNN computed in (zoolib.cnn.precision); absent: float32
            "machine": f"{zprecision.cpu_model()}, {platform.machine()}, {_cpu_count()} CPU cores, "
            + ("GPU" if _has_gpu() else "no GPU"),
        },
        "test": evaluation.table_to_dict(table),
        "dead_features": dead,
    }
    files.write_json(out_dir / MANIFEST_FILE, manifest)
    return manifest


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _has_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))
