"""The next galaxies to show volunteers, as a Zooniverse subject manifest: ``python -m zoolib
acquire``.

:func:`acquire` takes a model (the paper's CNN: trunk then MC-dropout head), a catalogue of
galaxy images and the ids already labelled, and

1. predicts every unlabelled galaxy once with :func:`zoolib.predict.predict_catalog` and its
   trunk features (resumable by blocks, its provenance in the Parquet file);
2. scores them with the model's own head under a rule of :mod:`zoolib.active.campaign` (every
   question of the model's tree, each counted by its expected volunteers) and picks ``n``;
3. writes a subject manifest for the Panoptes command line (``panoptes subject-set
   upload-subjects SET_ID MANIFEST.csv``): ``image`` (the file: relative to the manifest's
   folder when inside it, where the command line looks, else absolute), then hidden metadata
   ``#id_str`` (read back by ``python -m zoolib votes``), ``#score`` (the rule's score; empty
   for random), ``#rank``, ``#strategy`` and ``#round``;
4. records the round in the campaign folder (``--campaign``; default ``campaign/`` beside the
   manifest, so the manifests of one folder share it): ``round-NNN/`` holds ``pool.csv`` (the
   galaxies scored), ``predictions.parquet``, ``scores.csv`` (every galaxy's score and, for
   the picks, rank) and, written last, ``round.json`` (model and catalogue sha256, the
   labelled ids' count and digest, rule, seed, settings, picks, the rows skipped, time). A
   manifest of another round is never overwritten.

**Resume.** A round is named by what decides it (the model's and catalogue's sha256, the
labelled ids, rule, seed and settings). Run again with the same inputs, a finished round is not
recomputed: its picks are written again, identical; an interrupted one continues (the
prediction resumes after its finished blocks). New labelled ids, or another rule or seed, start
the next round; an unfinished attempt with other inputs (a wrong ``--images-root``) is
replaced, so round numbers count finished rounds. Paths on the command line are relative to
the current folder. ``--labelled`` takes any CSV with the ids in ``id_str``, ``#id_str`` (a
manifest) or the catalogue's own id column (``objid``, ...).

Galaxies picked in an earlier round and not yet in ``--labelled`` are not excluded (a round
may be a trial); the command says how many there are, so that ids still with volunteers can be
added to ``--labelled``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

import zoolib
from zoolib import files, paths, predict
from zoolib.active import campaign, heads
from zoolib.data import catalogs, panoptes
from zoolib.votes.schema import FILE_COLUMN, ID_COLUMN

ROUND = "round-{:03d}"


LABELLED_IDS = (ID_COLUMN, panoptes.ID_KEY, *catalogs.ID_SOURCES[1:])  # first present wins


def read_labelled(path: str | Path | None) -> set[str]:
    """The ids of a CSV's id column: ``id_str``, ``#id_str`` (a manifest) or a catalogue's
    (``objid``, ...), the first present (None: no file, nothing labelled)."""
    if path is None:
        return set()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--labelled file not found: {path}")
    table = pd.read_csv(path, dtype=str)
    column = next((c for c in LABELLED_IDS if c in table), None)
    if column is None:
        raise ValueError(f"--labelled {path}: no id column; name the column of the catalogue's "
                         f"ids one of {list(LABELLED_IDS)}")  # fmt: skip
    ids = table[column].dropna().str.strip()
    return set(ids[ids != ""])


def model_head(model, card, model_path) -> campaign.Head:
    """The :class:`zoolib.active.campaign.Head` of a loaded paper's CNN and its card."""
    from zoolib.cnn import models

    parts = models.split_trunk_head(model)
    if parts is None:
        raise ValueError(f"{model_path}: acquire needs the paper's CNN, a trunk then an "
                         "MC-dropout head (zoolib.cnn.models.split_trunk_head)")  # fmt: skip
    weights, bias = heads.keras_head_weights(parts[1])
    rate = float(parts[1].get_layer("mc_dropout").rate)
    outputs = predict.model_outputs(model_path, len(bias), None, card)
    if isinstance(outputs, dict):
        return campaign.Head(weights, bias, rate, questions=tuple(outputs))
    if card is not None and card.likelihood == "dirichlet_multinomial":
        raise ValueError(f"{model_path}: a Dirichlet-multinomial model; acquire scores binomial "
                         "and multinomial (softmax) heads")  # fmt: skip
    return campaign.Head(weights, bias, rate, tree=outputs)


def round_key(settings: dict) -> str:
    """The digest naming a round: sha256 of its deciding settings, 16 hex digits."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def find_round(folder: Path, key: str) -> tuple[Path, bool]:
    """(the round folder for ``key``, whether it finished): the folder with this key, else the
    number after the finished rounds (an unfinished folder there, from an attempt with other
    inputs, is removed: it never produced a manifest)."""
    existing = sorted(folder.glob("round-[0-9][0-9][0-9]"))
    for path in existing:
        key_file = path / "key.json"
        if key_file.is_file() and json.loads(key_file.read_text())["key"] == key:
            return path, (path / "round.json").is_file()
    finished = [p for p in existing if (p / "round.json").is_file()]
    here = folder / ROUND.format(len(finished) + 1)
    if here.exists():
        print(f"removing {here}: an unfinished attempt with other inputs")
        shutil.rmtree(here)
    return here, False


def other_picks(folder: Path, current: Path) -> set[str]:
    """Ids picked by the campaign's other finished rounds."""
    out = set()
    for path in folder.glob("round-[0-9][0-9][0-9]/round.json"):
        if path.parent != current:
            out |= set(json.loads(path.read_text())["picks"])
    return out


def image_entry(image: Path, folder: Path) -> str:
    """An image as the manifest names it: relative to the manifest's ``folder`` when inside it
    (the Panoptes command line joins the two), else absolute."""
    image = Path(os.path.abspath(image))
    return str(image.relative_to(folder)) if image.is_relative_to(folder) else str(image)


def manifest_rows(ids, image_files, scores, rule: str, number: int, out: Path) -> pd.DataFrame:
    """The manifest's rows for picks in rank order: their ``ids`` and image files (paths),
    ``scores`` (None: random), the rule and the round's number; images as :func:`image_entry`
    names them for a manifest written to ``out``."""
    ids = list(ids)
    return pd.DataFrame({
        "image": [image_entry(Path(f), Path(out).absolute().parent) for f in image_files],
        panoptes.ID_KEY: ids,
        "#score": np.full(len(ids), np.nan) if scores is None else np.asarray(scores, float),
        "#rank": np.arange(1, len(ids) + 1), "#strategy": rule, "#round": number,
    })  # fmt: skip


def acquire(
    model: str | Path,
    catalog: str | Path,
    out: str | Path,
    n: int,
    labelled: str | Path | None = None,
    images_root: str | Path | None = None,
    strategy: str = campaign.DEFAULT_RULE,
    seed: int = 0,
    campaign_dir: str | Path | None = None,
    expected_votes: int = 40,
    n_samples: int = 30,
    beta: float = 1.0,
    on_error: str = "raise",
    progress: bool = True,
    crop_fraction: float | None = None,
) -> dict:
    """Pick ``n`` galaxies of ``catalog`` not in ``labelled`` and write the manifest ``out``
    (see the module docstring); returns the round's record (``round.json``)."""
    out = Path(os.path.abspath(out))
    if out.suffix != ".csv":
        raise ValueError(f"--out {out}: a subject manifest is a .csv file")
    model_path = paths.SHIPPED_MODELS.get(str(model)) or Path(model).absolute()
    catalog_path = Path(catalog).absolute()
    root = Path(images_root).absolute() if images_root is not None else catalog_path.parent
    if not model_path.is_file():
        raise FileNotFoundError(f"model file not found: {model_path}")
    if strategy not in campaign.RULES:
        raise ValueError(f"--strategy {strategy!r}: choose from {campaign.RULES}")
    targets = predict.read_targets(catalog_path)
    done = read_labelled(labelled)
    unknown = sorted(done - set(targets[ID_COLUMN]))
    pool = targets[~targets[ID_COLUMN].isin(done)].reset_index(drop=True)
    if not 1 <= n <= len(pool):
        raise ValueError(f"--n {n}: choose between 1 and the {len(pool)} unlabelled galaxies")
    folder = Path(os.path.abspath(campaign_dir or out.parent / "campaign"))
    decided = dict(
        model_sha256=files.sha256(model_path), catalog_sha256=files.sha256(catalog_path),
        images_root=str(root), labelled=sorted(done), strategy=strategy, seed=seed, n=n,
        expected_votes=expected_votes, n_samples=n_samples, beta=beta, on_error=on_error,
        crop_fraction=crop_fraction,
    )  # fmt: skip
    key = round_key(decided)
    here, finished = find_round(folder, key)
    number = int(here.name.split("-")[1])
    _check_overwrite(out, number)
    if finished:
        record = json.loads((here / "round.json").read_text())
        print(f"{here.name} of {folder} already chose these galaxies: manifest written again")
    else:
        record = _new_round(here, key, decided, pool, model_path, root, n, progress)
        record.update(model_file=str(model_path), catalog_file=str(catalog_path),
                      labelled_count=len(done), labelled_not_in_catalog=unknown)  # fmt: skip
        files.write_json(here / "round.json", record)  # last: the round is finished
    scores = pd.read_csv(here / "scores.csv", dtype={ID_COLUMN: str})
    picked = scores.dropna(subset=["rank"]).sort_values("rank")
    images = [root / f for f in pool.set_index(ID_COLUMN).loc[picked[ID_COLUMN], FILE_COLUMN]]
    shown = None if strategy == "random" else picked["score"]
    rows = manifest_rows(picked[ID_COLUMN], images, shown, strategy, number, out)
    panoptes.write_manifest(rows, out, ["image"])
    _report(record, folder, here, done, unknown, out)
    return record


def _check_overwrite(out: Path, number: int) -> None:
    """Refuse to replace a manifest that another round wrote."""
    if not out.is_file():
        return
    try:
        before = pd.read_csv(out, usecols=["#round"])["#round"]
    except (ValueError, KeyError, pd.errors.ParserError):
        raise ValueError(f"--out {out} exists and is not a manifest of this campaign: "
                         "choose another name") from None  # fmt: skip
    if len(before) and int(before.iloc[0]) != number:
        raise ValueError(f"--out {out} holds round {int(before.iloc[0])}'s manifest; this is "
                         f"round {number}: choose another name, e.g. round-{number:03d}.csv")


def _new_round(here: Path, key: str, decided: dict, pool, model_path, root, n, progress) -> dict:
    """Predict, score and pick the pool of a new (or interrupted) round; write its files."""
    from zoolib.cnn import cards
    from zoolib.cnn.models import load_model

    here.mkdir(parents=True, exist_ok=True)
    files.write_json(here / "key.json", {"key": key})
    pool_file = here / "pool.csv"
    rows = pool.assign(**{FILE_COLUMN: [str(root / f) for f in pool[FILE_COLUMN]]})
    files.write_atomic(pool_file, lambda tmp: rows.to_csv(tmp, index=False))
    predictions = here / "predictions.parquet"
    if not predictions.is_file():  # else: this round's, finished before an interruption
        predict.predict_catalog(
            model_path, pool_file, predictions, images_root="/",
            n_samples=decided["n_samples"], seed=decided["seed"],
            expected_votes=decided["expected_votes"], progress=progress,
            on_error=decided["on_error"], representations=True, allow_outside_root=True,
            crop_fraction=decided["crop_fraction"],
        )  # fmt: skip
    table = pd.read_parquet(predictions)
    meta = predict.read_metadata(predictions)
    if table.empty:
        shutil.rmtree(here)
        first = meta["skipped"][0] if meta["skipped"] else {}
        raise ValueError(f"every one of the {len(pool)} images was skipped as unreadable "
                         f"(first: {first.get('file')}: {first.get('reason')}); check "
                         "--images-root")  # fmt: skip
    features = table[predict.feature_columns(meta["representations"])].to_numpy(np.float32)
    card = cards.ModelCard.read_beside(model_path)
    head = model_head(load_model(model_path), card, model_path)
    n = min(n, len(table))
    picks, score = campaign.choose(
        decided["strategy"], head, features, n, decided["seed"], decided["expected_votes"],
        decided["n_samples"], decided["beta"],
    )  # fmt: skip
    ranks = pd.array([pd.NA] * len(table), dtype="Int64")
    ranks[picks] = np.arange(1, len(picks) + 1)
    scored = pd.DataFrame({ID_COLUMN: table[ID_COLUMN], "rank": ranks,
                           "score": np.nan if score is None else score})  # fmt: skip
    files.write_atomic(here / "scores.csv", lambda tmp: scored.to_csv(tmp, index=False))
    return dict(
        key=key, round=here.name, **{k: v for k, v in decided.items() if k != "labelled"},
        labelled_digest=round_key({"labelled": decided["labelled"]}),
        picks=table[ID_COLUMN].iloc[picks].tolist(), pool=len(pool), scored=len(table),
        skipped=meta["skipped"], zoolib_version=zoolib.__version__,
        finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )  # fmt: skip


def _report(record: dict, folder: Path, here: Path, done, unknown, out: Path) -> None:
    print(f"{here.name}: {len(record['picks'])} galaxies by {record['strategy']} (seed "
          f"{record['seed']}) of {record['scored']} scored, {len(done)} labelled -> {out}")
    if record["skipped"]:
        print(f"{len(record['skipped'])} unreadable image(s) left out, listed in "
              f"{here / 'round.json'}")  # fmt: skip
    if unknown:
        print(f"{len(unknown)} --labelled id(s) not in the catalogue, ignored: "
              f"{', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}")  # fmt: skip
    pending = other_picks(folder, here) - set(done)
    if pending:
        print(f"{len(pending)} galaxies picked in the campaign's other rounds are not in "
              "--labelled: add those still with volunteers, or they may be picked again")
