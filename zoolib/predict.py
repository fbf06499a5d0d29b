r"""Predict a whole catalogue with MC dropout, in shards: ``python -m zoolib predict``.

:func:`predict_catalog` streams a catalogue's image files through a saved model and writes, for
each galaxy and question, a summary of T MC-dropout samples :math:`\rho_t` (probability of a
"yes" vote) as one Parquet row per galaxy:

* ``id_str`` (str) and ``row`` (int64, the catalogue's data row counted from 0, header excluded);
* per question q, with a its "yes" answer (rho is the probability that a volunteer answers a:
  ``smooth-or-featured``: *smooth*, ``disk-edge-on``: *yes*, ``bar``: *yes*; the metadata's
  ``answers``): ``q_a_rho_mean`` :math:`= \frac1T\sum_t\rho_t` (for example
  ``smooth-or-featured_smooth_rho_mean``, P(smooth): 1 minus it is P(featured or artifact));
  ``q_a_rho_q05``, ``q_a_rho_q50``, ``q_a_rho_q95``, the 5/50/95 % quantiles of the T samples
  (``np.quantile``, linear interpolation); ``q_entropy``, the predictive entropy of the vote
  count out of n = ``expected_votes`` volunteers (a whole number, default 40: the vote count is
  not known before labelling), and ``q_mi``, its mutual information with the weights (BALD),
  both in nats, as :mod:`zoolib.active.acquisition` defines them.

With ``representations`` (``--representations``), each row also holds the trunk's features
``feature_000`` ... ``feature_127`` (float32), for "galaxies like this one" and the most unusual
galaxies of a catalogue (:mod:`zoolib.cnn.similarity`).

The catalogue is a CSV (optionally compressed) or Parquet file: the id is the first of
``id_str``, ``objid``, ``dr7objid``, ``iauname``, ``subject_id`` present (read as text, as in
:mod:`zoolib.data.catalogs`), the image the first of ``file_loc``, ``file``, a path relative to
``images_root`` (default: the catalogue's folder, as :func:`zoolib.prepare.prepare_catalog`).
Vote columns are not needed. Images are read with :func:`zoolib.data.images.load_image` at the
model's input size and channel count, on a thread pool, a few blocks ahead of the model.

Sharding and seeding: the catalogue is cut into blocks of ``block_size`` consecutive rows
(block b = rows [b K, (b+1) K)); shard i/n (0-based, 0 <= i < n) takes the contiguous run of
blocks [i B / n, (i+1) B / n) of the B blocks. Each block is sampled by one call
``sample_rho(model, block, T, batch_size=K, seed=block_seed(seed, b))``, so its dropout masks
depend only on (seed, b, K, T), never on the shard: the shards' outputs concatenated in shard
order equal one unsharded run exactly, provided every shard uses the same model, catalogue,
``seed``, ``n_samples`` and ``block_size`` (bit for bit on the same hardware and TensorFlow
build; another CPU type may change the last bits of the convolutions).

Provenance goes in the Parquet schema metadata under the key ``zoolib.predict`` (JSON, read
it with :func:`read_metadata`), not in columns: sha256 of the model and catalogue files, the
zoolib / TensorFlow / Keras versions, the precision (:mod:`zoolib.cnn.precision`), questions, T,
seed, block size, expected votes, shard, its row range, and the rows left out (``skipped``: row, id,
file, reason).

Faults: each finished block is written at once to a folder beside the output
(``.<out name>.blocks/``, one Parquet file per block, atomically). A killed or failed shard,
run again with the same settings, resumes after its finished blocks; the final output is
assembled from the blocks in order and renamed into place, identical to an uninterrupted run,
and the blocks folder is removed. Changed settings (model, catalogue, T, seed, ...) discard the
old blocks, with a message. With ``on_error="raise"`` missing files are listed before the
model loads; the first image that cannot be decoded stops prediction, the rest of the shard is
then decoded only to find the others, and one error lists every such image by row, id and file
(blocks finished before the first are kept); with ``"skip"`` unreadable and missing images are
left out and listed. An existing output is skipped unless
``overwrite``.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import sys
import time
import warnings
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

import zoolib
from zoolib import files, paths
from zoolib.active import acquisition
from zoolib.cnn import cards, posteriors
from zoolib.cnn import precision as zprecision
from zoolib.data import catalogs, images
from zoolib.votes import multinomial, trees
from zoolib.votes.schema import FILE_COLUMN, ID_COLUMN, QUESTIONS, question

METADATA_KEY = b"zoolib.predict"
QUANTILES = {"q05": 0.05, "q50": 0.5, "q95": 0.95}
STATS = ("rho_mean", *(f"rho_{q}" for q in QUANTILES), "entropy", "mi")


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n) for shard i of n, 0-based: 0 <= i < n."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if match is None:
        raise ValueError(f"--shard must be i/n with 0 <= i < n (0-based), e.g. 0/4; got {text!r}")
    i, n = int(match[1]), int(match[2])
    if n < 1:
        raise ValueError(f"--shard {text!r}: the number of shards n must be at least 1")
    if i >= n:
        raise ValueError(
            f"--shard {text!r} is out of range: shards are 0-based, i/n needs 0 <= i < n"
            f" (here 0/{n} .. {n - 1}/{n})"
        )
    return i, n


def shard_blocks(n_rows: int, block_size: int, shard: int, n_shards: int) -> range:
    """Blocks [shard B / n_shards, (shard + 1) B / n_shards) of the B = ceil(rows / K) blocks."""
    n_blocks = -(-n_rows // block_size)
    return range(shard * n_blocks // n_shards, (shard + 1) * n_blocks // n_shards)


def block_seed(seed: int, block: int) -> int:
    """Dropout seed of block ``block``: a 32-bit number mixed from (seed, block) by NumPy's
    SeedSequence, so different base seeds never reuse each other's streams."""
    return int(np.random.SeedSequence([seed, block]).generate_state(1)[0])


def read_targets(path: str | Path) -> pd.DataFrame:
    """``id_str`` and ``file_loc`` of every catalogue row, in file order (see module doc).

    Raises ValueError naming the file and the rows at fault: no id or no file column, missing
    or duplicate ids, rows that name no image.
    """
    path = Path(path)
    raw = catalogs.read_table(path)  # CSV / Parquet, ids as text, errors naming the file
    ids = catalogs.read_ids(raw, path)
    file_col = next((c for c in catalogs.FILE_SOURCES if c in raw), None)
    if file_col is None:
        raise ValueError(f"{path} has no image column; expected one of {catalogs.FILE_SOURCES}")
    files = raw[file_col].astype(object).map(lambda v: "" if pd.isna(v) else str(v).strip())
    problems = [
        (ids.isna(), f"{ID_COLUMN} is missing"),
        (ids.notna() & ids.duplicated(keep=False), f"duplicate {ID_COLUMN}"),
        (files == "", f"no image file named in {file_col!r}"),
    ]
    bad = [
        f"  row {r} ({ID_COLUMN} {ids[r]!r}): {why}"
        for mask, why in problems
        for r in np.flatnonzero(mask.to_numpy())
    ]
    if bad:
        raise ValueError(f"{len(bad)} bad row(s) in {path}:\n" + catalogs.listed(bad))
    return pd.DataFrame({ID_COLUMN: ids.astype(str), FILE_COLUMN: files})


def column(name: str, stat: str, answer: str | None = None) -> str:
    """An output column: rho's statistics name the answer rho is the probability of
    (``smooth-or-featured_smooth_rho_mean``, ``bar_yes_rho_q95``; ``answer`` None: the
    schema's "yes"); the entropy and BALD are the question's (``bar_entropy``, ``bar_mi``)."""
    if not stat.startswith("rho"):
        return f"{name}_{stat}"
    return f"{name}_{answer or question(name).yes}_{stat}"


def answers(questions: Sequence[str] | dict) -> dict[str, str]:
    """{question: the answer its rho is the probability of}, e.g. smooth-or-featured: smooth;
    ``questions`` may already be that mapping (a model card's :meth:`rho_answers`)."""
    if isinstance(questions, dict):
        return dict(questions)
    return {q: question(q).yes for q in questions}


def output_columns(questions: Sequence[str] | dict | trees.Tree) -> list[str]:
    """Prediction column names, question by question (:func:`column`; a tree's:
    :func:`tree_columns`)."""
    if isinstance(questions, trees.Tree):
        return tree_columns(questions)
    return [column(q, s, a) for q, a in answers(questions).items() for s in STATS]


TREE_STATS = ("fraction_mean", "fraction_q05", "fraction_q95")  # per answer: a 90% interval


def tree_columns(tree: trees.Tree) -> list[str]:
    """A tree model's columns: per question q and answer a, ``q_a_fraction_mean`` (the expected
    vote fraction, the mean over T samples), ``q_a_fraction_q05`` and ``_q95`` (a 90% interval
    over the samples); then ``q_asked`` (the expected share of volunteers asked q,
    :meth:`zoolib.votes.trees.Tree.asked_share`) and ``q_mi`` (BALD over q's vote vector)."""
    out = []
    for node in tree.nodes:
        out += [f"{c}_{s}" for c in node.answer_columns for s in TREE_STATS]
        out += [f"{node.name}_asked", f"{node.name}_mi"]
    return out


def summarize_tree(logits: np.ndarray, tree: trees.Tree, expected_votes: int, seed: int,
                   likelihood: str = "multinomial") -> dict:  # fmt: skip
    """:func:`tree_columns` from a tree model's (G, A, T) MC-dropout outputs. BALD is over the
    vote vector of ``expected_votes`` volunteers: exact where the vectors can be enumerated
    (:func:`zoolib.votes.multinomial.mutual_information`), else its Monte Carlo estimate. For a
    Dirichlet-multinomial model (``likelihood``, from its card) the samples are its expected
    fractions and BALD is that of their multinomial mixture (an approximation: it leaves out
    each sample's own overdispersion)."""
    sizes = tree.sizes()
    p = multinomial.answer_probabilities(logits, sizes, likelihood=likelihood)  # (G, A, T)
    parts = dict(zip(tree.questions, np.split(p, np.cumsum(sizes)[:-1], axis=1), strict=True))
    asked = tree.asked_share({q: v.mean(-1) for q, v in parts.items()})
    out = {}
    for node in tree.nodes:
        part = parts[node.name]
        low, high = np.quantile(part, [0.05, 0.95], axis=-1)
        for j, c in enumerate(node.answer_columns):
            out[f"{c}_fraction_mean"] = part[:, j].mean(-1)
            out[f"{c}_fraction_q05"], out[f"{c}_fraction_q95"] = low[:, j], high[:, j]
        out[f"{node.name}_asked"] = asked[node.name]
        samples = np.moveaxis(part, 1, 2)  # (G, T, K)
        try:
            out[f"{node.name}_mi"] = multinomial.mutual_information(samples, expected_votes)
        except ValueError:  # too many vote vectors to sum
            out[f"{node.name}_mi"] = multinomial.mutual_information_mc(
                samples, expected_votes, seed=seed)[0]  # fmt: skip
    return out


def summarize(rho_samples: np.ndarray, questions: Sequence[str], expected_votes: int) -> dict:
    r"""Output columns from samples (galaxies, Q, T): ``{column(q, stat): (galaxies,), ...}``.

    Mean and quantiles are over the T axis; ``_entropy`` is :math:`H[\bar p]` and ``_mi`` is
    :math:`H[\bar p] - \frac1T\sum_t H[p_t]`, where :math:`p_t = \mathrm{Binomial}(n, \rho_t)`,
    :math:`\bar p` their mean and n = ``expected_votes``, in nats.
    """
    quantiles = np.quantile(rho_samples, list(QUANTILES.values()), axis=-1)  # (3, G, Q)
    stats = {"rho_mean": rho_samples.mean(axis=-1)}
    stats.update({f"rho_{name}": q for name, q in zip(QUANTILES, quantiles, strict=True)})
    stats["entropy"], expected = acquisition.entropies(rho_samples, expected_votes)
    stats["mi"] = acquisition.bald_from_entropies(stats["entropy"], expected)
    named = answers(questions).items()
    return {column(q, s, a): stats[s][:, j] for j, (q, a) in enumerate(named) for s in STATS}


def model_outputs(model_path: Path, n_outputs: int, questions: Sequence[str] | None, card):
    """What the model's outputs are: its ``card``'s tree (:class:`zoolib.votes.trees.Tree`) when the
    card carries one and there is an output per answer (a softmax per question), else
    :func:`model_questions` (one rho per question)."""
    if not questions and card is not None and card.tree is not None:
        tree = trees.from_mapping(card.model_name or "card", card.tree, str(model_path))
        tree = tree.part(card.questions)
        if n_outputs == tree.n_answers != len(card.questions):
            return tree
    return model_questions(model_path, n_outputs, questions, card)


def model_questions(model_path: Path, n_outputs: int, questions: Sequence[str] | None,
                    card: cards.ModelCard | None) -> dict:  # fmt: skip
    """{question: the answer rho is the probability of} of the model's Q outputs, in order:
    ``questions`` if given, else the model's ``card``'s (:mod:`zoolib.cnn.cards`, written by
    notebook 02; a card with its own tree names new questions), else the first Q schema
    questions. Raises ValueError, naming ``model_path``, unless there are Q distinct known
    names."""
    if not questions and card is not None:
        named = card.rho_answers()
        if len(named) == n_outputs:
            return named
        questions = list(named)
    questions = list(questions or list(QUESTIONS)[:n_outputs])
    for q in questions:
        question(q)  # unknown names raise, listing the known ones
    if len(questions) != n_outputs or len(set(questions)) != n_outputs:
        raise ValueError(
            f"{model_path} predicts {n_outputs} question(s) but the questions are {questions};"
            " pass --questions with one distinct schema question per output, in order"
        )
    return answers(questions)


def read_metadata(path: str | Path) -> dict:
    """The provenance record a prediction file carries in its Parquet schema metadata."""
    return json.loads(pq.read_schema(path).metadata[METADATA_KEY])


def _stream(files: list[Path], ids, blocks, block_size: int, load, workers, prefetch, skip):
    """Yield (block, rows, uint8 images, skipped) in order, decoding at most ``prefetch``
    blocks ahead; ``rows`` are the catalogue rows whose images loaded. Without ``skip``, the
    first block with an unreadable image stops the stream: the rest of the shard is decoded
    only to list every unreadable image in one error."""
    pool = ThreadPoolExecutor(max_workers=workers)

    def submit(b):
        rows = range(b * block_size, min((b + 1) * block_size, len(files)))
        return b, [(r, pool.submit(load, files[r])) for r in rows]

    def failures(futures):
        for r, fut in futures:
            try:
                fut.result()
            except images.READ_ERRORS as err:
                yield r, err

    try:
        later = iter(blocks)
        pending = deque(submit(b) for b in itertools.islice(later, prefetch + 1))
        while pending:
            b, futures = pending.popleft()
            pending.extend(submit(nxt) for nxt in itertools.islice(later, 1))
            bad = list(failures(futures))
            if bad and not skip:  # every unreadable image of the rest of the shard, in one error
                r, err = bad[0]
                print(f"row {r} ({ID_COLUMN} {ids[r]!r}) is unreadable ({err}); reading the rest "
                      "of the shard to list every such image before stopping (Ctrl-C stops "
                      "now; --on-error skip leaves them out)", file=sys.stderr, flush=True)
                rest = [f for _, fs in pending for f in fs]
                rest += [f for nxt in later for f in submit(nxt)[1]]
                bad += list(failures(rest))
                raise _unreadable(bad, ids)
            failed = {r for r, _ in bad}
            rows = [r for r, _ in futures if r not in failed]
            out = [fut.result() for r, fut in futures if r not in failed]
            skipped = [{"row": r, ID_COLUMN: ids[r], "file": str(files[r]), "reason": str(err)}
                       for r, err in bad]  # fmt: skip
            yield b, np.array(rows, dtype=np.int64), np.stack(out) if out else None, skipped
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _unreadable(bad: list, ids) -> Exception:
    """One error listing every unreadable image (row, id, reason): FileNotFoundError when all
    are missing files, else ValueError."""
    lines = [f"row {r} ({ID_COLUMN} {ids[r]!r}): {err}" for r, err in bad]
    missing = all(isinstance(e, FileNotFoundError) for _, e in bad)
    kind = FileNotFoundError if missing else ValueError
    return kind(
        f"{len(bad)} image(s) could not be read (--on-error skip leaves them out and lists "
        f"them; the blocks finished before the first are kept):\n{catalogs.listed(lines)}"
    )


def blocks_folder(out: Path) -> Path:
    """Where a shard's finished blocks wait until the output is assembled."""
    return out.with_name(f".{out.name}.blocks")


def _block_file(folder: Path, block: int) -> Path:
    return folder / f"block_{block:09d}.parquet"


def _finished_blocks(folder: Path, fingerprint: dict) -> set[int]:
    """Blocks finished by an earlier run with the same settings; other settings' are removed."""
    state = folder / "settings.json"
    if folder.is_dir() and (not state.is_file() or json.loads(state.read_text()) != fingerprint):
        print(f"{folder}: blocks of a run with other settings, removed; starting afresh")
        shutil.rmtree(folder)
    if not folder.is_dir():
        folder.mkdir(parents=True)
        files.write_json(state, fingerprint)
        return set()
    return {int(p.stem.split("_")[1]) for p in folder.glob("block_*.parquet")}


def feature_columns(n_features: int) -> list[str]:
    """``feature_000`` ... : the columns of ``--representations``, one per trunk feature."""
    return [f"feature_{f:03d}" for f in range(n_features)]


def _table(ids, rows, stats, questions, meta: dict, n_features: int = 0) -> pa.Table:
    columns = {
        ID_COLUMN: pa.array(ids[rows].tolist(), pa.string()),
        "row": pa.array(rows, pa.int64()),
    }
    for name in output_columns(questions):  # typed, so empty blocks and shards match too
        columns[name] = pa.array(stats[name] if len(rows) else np.zeros(0), pa.float64())
    for f, name in enumerate(feature_columns(n_features)):
        values = stats["features"][:, f] if len(rows) else np.zeros(0)
        columns[name] = pa.array(values, pa.float32())
    return pa.table(columns, metadata={METADATA_KEY: json.dumps(meta).encode()})


def _write_block(folder, block, ids, rows, stats, questions, skipped, n_features) -> None:
    table = _table(ids, rows, stats, questions, {"skipped": skipped}, n_features)
    files.write_atomic(_block_file(folder, block), lambda tmp: pq.write_table(table, tmp))


def _assemble(folder: Path, blocks: range, meta: dict, ids, questions, out: Path,
              n_features: int = 0) -> int:  # fmt: skip
    """Concatenate the blocks in order into ``out`` (atomically); returns the rows written."""
    parts = [pq.read_table(_block_file(folder, b)) for b in blocks]
    meta["skipped"] = [
        s for p in parts for s in json.loads(p.schema.metadata[METADATA_KEY])["skipped"]
    ]
    empty = _table(ids, np.zeros(0, np.int64), {}, questions, {}, n_features)
    table = pa.concat_tables([empty] + parts).replace_schema_metadata(
        {METADATA_KEY: json.dumps(meta).encode()}
    )
    files.write_atomic(out, lambda tmp: pq.write_table(table, tmp))
    shutil.rmtree(folder)
    return table.num_rows


def _check_settings(n_samples, block_size, seed, expected_votes, prefetch, crop_fraction, on_error):
    whole = [("--samples", n_samples, 1), ("--block-size", block_size, 1), ("--seed", seed, 0),
             ("--expected-votes", expected_votes, 1), ("--prefetch", prefetch, 0)]  # fmt: skip
    for name, value, low in whole:
        if isinstance(value, bool) or not float(value).is_integer() or value < low:
            raise ValueError(f"{name} must be a whole number >= {low}, got {value!r}")
    if crop_fraction is not None and not 0 < crop_fraction <= 1:
        raise ValueError(f"--crop-fraction must be in (0, 1], got {crop_fraction!r}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"--on-error must be 'raise' or 'skip', got {on_error!r}")
    return tuple(int(v) for _, v, _ in whole)


def _outside(names, root: Path, allow: bool) -> dict[int, str]:
    """{row: reason} of the rows whose image path leads outside ``root`` (unless ``allow``)."""
    if allow:
        return {}
    reason = catalogs.outside_root(root, "--allow-outside-root")
    return {r: reason for r, name in enumerate(names) if catalogs.leaves_root(name)}


def _bad_files(image_files, ids, rows, refused: dict[int, str], i, n) -> None:
    """With --on-error raise: one error listing the shard's refused and missing images."""
    bad = [
        f"  row {r} ({ID_COLUMN} {ids[r]!r}): {image_files[r]}: "
        + (refused[r] if r in refused else "image file not found")
        for r in rows
        if r in refused or not image_files[r].is_file()
    ]
    if bad:
        kind = ValueError if any(r in refused for r in rows) else FileNotFoundError
        raise kind(
            f"{len(bad)} image(s) of shard {i}/{n} refused or not found (--on-error skip leaves "
            f"them out and lists them):\n{catalogs.listed(bad)}"
        )


def feature_count(model, model_path) -> int:
    """Features per galaxy of a model's trunk; refuses a model that has no trunk to read."""
    from zoolib.cnn import models

    parts = models.split_trunk_head(model)
    if parts is None:
        raise ValueError(f"{model_path}: --representations needs the paper's CNN (a trunk and "
                         "a head, zoolib.cnn.models); this model has no trunk to read")  # fmt: skip
    return int(parts[0].output_shape[-1])


def format_warning(card, image_files) -> str | None:
    """A warning when the catalogue's images are FITS and the model's card says it learned
    from other formats only (its ``image_formats``): zoo stretches FITS by an arcsinh
    (:data:`zoolib.data.images.STRETCH`), which is not how survey JPEGs were made, so such a
    model meets images made otherwise than it learned from. Its accuracy on FITS is unmeasured;
    on five SDSS cutouts saved as FITS, the real model's P(smooth) moved by up to 0.5."""
    formats = card.extra.get("image_formats") if card else None
    fits = sum(str(f).lower().endswith(images.FITS_SUFFIXES) for f in image_files)
    if not formats or not fits or "fits" in formats:
        return None
    return (f"{fits} of {len(image_files)} images are FITS, but the model learned from "
            f"{'/'.join(formats)} images only: zoo stretches FITS by {images.STRETCH}, not as "
            "those were made, and the model's accuracy on FITS is unmeasured (on five SDSS "
            "cutouts saved as FITS, P(smooth) moved by up to 0.5): convert them as its "
            "training images were made, or check against labels of your own")  # fmt: skip


def image_settings(card, crop_fraction: float | None) -> tuple[float, list[str], list[str]]:
    """The crop to apply, warnings and notes from the model's ``card`` (None: no card): the
    card's crop unless ``crop_fraction`` is given (a warning when it differs), 1.0 where the
    card records none, with the card's ``crop_note`` when its crop is taken; a warning when
    the card's FITS stretch is not this version's (:data:`zoolib.data.images.STRETCH`)."""
    trained = card.crop_fraction if card else None
    warned, noted = [], []
    if crop_fraction is None:
        crop_fraction = trained or 1.0
        if card is not None and "crop_note" in card.extra:
            noted.append(f"crop {crop_fraction:g} from the model card: {card.extra['crop_note']}")
    elif trained is not None and crop_fraction != trained:
        warned.append(f"--crop-fraction {crop_fraction:g} differs from the {trained:g} the model "
                      "was trained with (its card); its predictions may be off")  # fmt: skip
    if card and card.stretch and card.stretch != images.STRETCH:
        warned.append(f"the model was trained on FITS images stretched by {card.stretch}; this "
                      f"version stretches them by {images.STRETCH}")  # fmt: skip
    return float(crop_fraction), warned, noted


def predict_catalog(
    model_path: str | Path,
    catalog_path: str | Path,
    out: str | Path,
    images_root: str | Path | None = None,
    n_samples: int = 30,
    shard: str = "0/1",
    seed: int = 0,
    block_size: int = 256,
    expected_votes: int = 40,
    questions: Sequence[str] | None = None,
    crop_fraction: float | None = None,
    allow_outside_root: bool = False,
    overwrite: bool = False,
    workers: int | None = None,
    prefetch: int = 2,
    progress: bool = True,
    on_error: str = "raise",
    stop_after: int | None = None,
    precision: str = "float32",
    representations: bool = False,
) -> Path | None:
    """Write the predictions of shard ``"i/n"`` to ``out`` (see the module docstring).

    Relative paths are relative to the project root (:func:`zoolib.paths.resolve`); image
    paths in the catalogue are relative to ``images_root`` (default: the catalogue's folder).
    ``out`` may contain ``{i}`` and ``{n}``, filled in with the shard numbers. ``questions``:
    see :func:`model_questions`. ``crop_fraction``: None applies the model card's (how it was
    trained; 1.0 where the card records none), a value overrides it with a warning when they
    differ. A catalogue row whose image path leads outside ``images_root`` (``..`` or absolute)
    is refused, as notebook 01 refuses it, unless ``allow_outside_root``; with
    ``on_error="skip"`` it is left out and listed. ``workers`` decoding threads (default: CPU
    count, at most 16) run up to ``prefetch`` blocks ahead. Returns the path written, or None
    when ``out`` exists and ``overwrite`` is False (a message says so). ``stop_after``: stop after
    writing that many blocks, as a killed run would (for tests); returns None. ``precision``:
    ``float32``, ``mixed_bfloat16`` or ``auto`` (:func:`zoolib.cnn.precision.choose` for
    prediction); the policy used is in the metadata, and blocks of another precision are not
    resumed. Shards meant to be concatenated should name the same policy, not ``auto``, when
    they run on different machines. ``representations``: also write the model's trunk features
    (``feature_000`` ..., float32, deterministic: the trunk has no dropout), for
    :mod:`zoolib.cnn.similarity`.
    """
    i, n = parse_shard(shard)
    zprecision.check(precision)
    n_samples, block_size, seed, expected_votes, prefetch = _check_settings(
        n_samples, block_size, seed, expected_votes, prefetch, crop_fraction, on_error
    )
    out = paths.resolve(str(out).replace("{i}", str(i)).replace("{n}", str(n)))
    if out.exists() and not overwrite:
        print(f"shard {i}/{n}: {out} exists, skipped (pass --overwrite to replace it)")
        return None
    model_path = paths.SHIPPED_MODELS.get(str(model_path)) or paths.resolve(model_path)
    catalog_path = paths.resolve(catalog_path)
    if not model_path.is_file():
        raise FileNotFoundError(f"model file not found: {model_path}")
    targets = read_targets(catalog_path)
    root = paths.resolve(images_root) if images_root is not None else catalog_path.parent
    image_files = [root / f for f in targets[FILE_COLUMN]]
    refused = _outside(targets[FILE_COLUMN], root, allow_outside_root)
    ids = targets[ID_COLUMN].to_numpy()
    blocks = shard_blocks(len(targets), block_size, i, n)
    row_range = [min(b * block_size, len(ids)) for b in (blocks.start, blocks.stop)]
    if on_error == "raise":
        _bad_files(image_files, ids, np.arange(*row_range), refused, i, n)
    card = cards.ModelCard.read_beside(model_path)
    crop_fraction, warned, noted = image_settings(card, crop_fraction)
    warned += [w for w in [format_warning(card, image_files)] if w]
    for text in warned:
        warnings.warn(text, UserWarning, stacklevel=2)
    for text in noted:
        print(text)

    import keras
    import tensorflow as tf

    from zoolib.cnn.models import load_model

    model = load_model(model_path)
    choice = zprecision.choose(precision, "predict")
    if precision == zprecision.AUTO:
        print(choice, flush=True)
    policy = choice.policy
    zprecision.apply(model, policy)
    shape = tuple(model.input_shape)
    if len(shape) != 4 or shape[1] is None or shape[1] != shape[2] or shape[3] not in (1, 3):
        raise ValueError(f"{model_path}: input shape {shape}; expected (None, S, S, 1 or 3)")
    size, channels = shape[1], shape[3]
    questions = model_outputs(model_path, model.output_shape[-1], questions, card)
    n_features = feature_count(model, model_path) if representations else 0
    tree = questions if isinstance(questions, trees.Tree) else None
    likelihood = (card.extra.get("likelihood") if card else None) or "multinomial"
    meta = dict(
        zoolib_version=zoolib.__version__, tensorflow_version=tf.__version__,
        keras_version=keras.__version__, model_file=str(model_path),
        model_sha256=files.sha256(model_path), catalog_file=str(catalog_path),
        catalog_sha256=files.sha256(catalog_path), catalog_rows=len(ids),
        images_root=str(root), image_size=size, channels=channels,
        crop_fraction=crop_fraction, allow_outside_root=allow_outside_root,
        questions=tree.questions if tree else list(questions),
        answers=tree.to_mapping() if tree else answers(questions), n_samples=n_samples,
        seed=seed, block_size=block_size, expected_votes=expected_votes, shard=f"{i}/{n}",
        blocks=[blocks.start, blocks.stop], rows=row_range, on_error=on_error, precision=policy,
        **({"likelihood": likelihood} if tree else {}),
        **({"representations": n_features} if representations else {}),
    )  # fmt: skip
    folder = blocks_folder(out)
    finished = _finished_blocks(folder, meta)
    todo = [b for b in blocks if b not in finished]
    if finished:
        print(f"shard {i}/{n}: resuming after {len(finished)} finished block(s) of {len(blocks)}")

    refused_files = {image_files[r]: why for r, why in refused.items()}

    def load(path):
        if path in refused_files:
            raise ValueError(refused_files[path])
        return images.load_image(path, size, channels, crop_fraction)

    start, done, written_blocks = time.perf_counter(), 0, 0
    workers = workers or min(16, os.cpu_count() or 1)
    stream = _stream(
        image_files, ids, todo, block_size, load, workers, prefetch, on_error == "skip"
    )
    bar = tqdm(total=len(todo), desc=f"shard {i}/{n}", unit="block", disable=not progress)
    with closing(stream), bar:
        for b, rows, pixels, skipped in stream:
            stats = {}
            if len(rows):  # one pass: the trunk's features come with the dropout samples
                logits, features = posteriors.sample_logits(
                    model, pixels, n_samples, block_size, block_seed(seed, b), with_features=True
                )
                stats = (summarize_tree(logits, tree, expected_votes, block_seed(seed, b),
                                        likelihood) if tree is not None  # fmt: skip
                         else summarize(posteriors.to_rho(logits), questions, expected_votes))
                stats["features"] = features
            _write_block(folder, b, ids, rows, stats, questions, skipped, n_features)
            done, written_blocks = done + len(rows), written_blocks + 1
            bar.update(1)
            if stop_after is not None and written_blocks >= stop_after:
                return None
    written = _assemble(folder, blocks, meta, ids, questions, out, n_features)
    seconds = time.perf_counter() - start
    skipped = len(meta["skipped"])
    note = f", {skipped} skipped (listed in the output's metadata)" if skipped else ""
    print(
        f"shard {i}/{n}: {written} galaxies ({done} predicted now) in {seconds:.1f} s "
        f"({done / max(seconds, 1e-9):.1f} galaxies/s){note} -> {out}"
    )
    return out
