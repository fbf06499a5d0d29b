"""Model cards: what a saved model predicts and how it was made, in ``<model>.card.json``.

A card lives beside its model (``models/bayesian_cnn.keras`` -> ``models/bayesian_cnn.card.json``)
and is the one place later steps read the model's questions (in output order), the image size
and channels it expects, how its training images were made (simulated or real; for real images
the crop and the stretch, which ``predict`` applies) and how it was trained. Notebook 02 writes
it; notebook 03 and ``python -m zoolib predict`` read it. This module owns the file name,
writing (atomic, via :mod:`zoolib.files`) and reading (errors name the file and the missing or
bad entry).
"""

from __future__ import annotations

import dataclasses
import json
import numbers
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zoolib import files
from zoolib.votes import trees
from zoolib.votes.schema import question

SUFFIX = ".card.json"
TRAINING_IMAGES = ("simulated", "real")


def card_path(model_path: str | Path) -> Path:
    """The card's file beside ``model_path``: same folder and stem, suffix ``.card.json``."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + SUFFIX)


def tree_entry(tree: trees.Tree, questions: list[str], likelihood: str) -> dict | None:
    """The ``tree`` a card records for a model of ``questions`` of ``tree``: none for the
    paper's binomial model of zoo's own questions (as every card before trees), else the
    questions' part of the tree (a tree model's answers, or a new label's)."""
    if likelihood == "binomial" and trees.zoos_questions(tree, questions):
        return None
    return tree.part(questions).to_mapping()


@dataclass
class ModelCard:
    """A saved model's card. ``questions`` name its outputs in order (schema names).

    ``extra`` holds any further entries (they round-trip unchanged).
    """

    questions: list[str]
    image_size: int
    channels: int
    model_name: str | None = None
    dataset: str | None = None
    dropout_rate: float | None = None
    epochs_run: int | None = None
    best_epoch: int | None = None
    seed: int | None = None
    # the policy it was trained in (zoolib.cnn.precision); None: float32
    precision: str | None = None
    # how its training images were made (``predict`` applies them): None where not recorded
    training_images: str | None = None  # "simulated" or "real"
    crop_fraction: float | None = None  # central fraction of real images kept (images.load_image)
    stretch: str | None = None  # pixel scaling of FITS images (images.STRETCH)
    # the questions' tree when they are not zoo's three ({question: {answers, asked_if}},
    # zoolib.votes.trees.from_mapping); rho is the probability of a question's first answer
    tree: dict | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.questions = list(self.questions)
        if self.tree is not None:
            own = trees.from_mapping("card", self.tree, "a model card's tree")
            missing = [q for q in self.questions if q not in own.questions]
            if missing:
                raise ValueError(f"a model card's questions {missing} are not in its tree")
        else:
            for q in self.questions:
                question(q)  # unknown names raise, listing the known ones
        if len(set(self.questions)) != len(self.questions):
            raise ValueError(f"a model card's questions must be distinct: {self.questions}")
        for name in ("image_size", "channels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"a model card's {name} must be a positive integer; got {value!r}")
            setattr(self, name, int(value))
        if self.precision not in (None, "float32", "mixed_bfloat16"):
            raise ValueError(
                "a model card's precision must be float32 or mixed_bfloat16; "
                f"got {self.precision!r}"
            )
        if self.training_images not in (None, *TRAINING_IMAGES):
            raise ValueError(
                f"a model card's training_images must be one of {TRAINING_IMAGES}; "
                f"got {self.training_images!r}"
            )
        if self.crop_fraction is not None:
            if isinstance(self.crop_fraction, bool) or not 0 < self.crop_fraction <= 1:
                raise ValueError(
                    f"a model card's crop_fraction must be in (0, 1]; got {self.crop_fraction!r}"
                )
            self.crop_fraction = float(self.crop_fraction)
        shadowed = sorted(set(self.extra) & {f.name for f in dataclasses.fields(self)})
        if shadowed:
            raise ValueError(f"extra entries may not reuse the card's own names: {shadowed}")

    def rho_answers(self) -> dict[str, str]:
        """{question: the answer its rho is the probability of}, in output order."""
        if self.tree is None:
            return {q: question(q).yes for q in self.questions}
        return {q: str(self.tree[q]["answers"][0]) for q in self.questions}

    @property
    def likelihood(self) -> str:
        """``"binomial"`` (one sigmoid rho per question, the paper's model) or a tree model's
        ``"multinomial"`` / ``"dirichlet_multinomial"`` (a softmax or concentrations over each
        question's answers), as notebook 02 records it in ``extra``."""
        return self.extra.get("likelihood") or "binomial"

    def answer_tree(self) -> trees.Tree:
        """The tree of the card's questions: its own, or zoo's three (output order)."""
        whole = trees.THREE if self.tree is None else trees.from_mapping(
            self.model_name or "card", self.tree, "a model card's tree")  # fmt: skip
        return whole.part(self.questions)

    def outputs(self) -> list[str]:
        """The names of what each posterior is over, in output order: the questions (rho of
        :meth:`rho_answers`) for a binomial model, every answer column ``<question>_<answer>``
        for a tree model (each answer's share of its question's votes)."""
        if self.likelihood == "binomial":
            return list(self.questions)
        return self.answer_tree().answer_columns()

    def counts(self, catalog) -> tuple[np.ndarray, np.ndarray]:
        """(k, N), each (galaxies, len(outputs)): the votes each output's posterior is about
        and the totals they are out of."""
        if self.likelihood != "binomial":
            return self.answer_tree().answer_counts(catalog)
        k = [catalog[f"{q}_{a}"].to_numpy(np.float64) for q, a in self.rho_answers().items()]
        n = [catalog[f"{q}_{trees.TOTAL}"].to_numpy(np.float64) for q in self.questions]
        return np.stack(k, axis=1), np.stack(n, axis=1)

    def targets(self, catalog) -> np.ndarray:
        """What the model trains on, float32: (galaxies, Q, 2) [k, N] per question for a
        binomial model (:class:`zoolib.cnn.losses.BinomialLoss`), (galaxies, A) vote vectors for a
        tree model (:class:`zoolib.cnn.losses.TreeLoss`)."""
        if self.likelihood != "binomial":
            columns = self.answer_tree().answer_columns()
            return catalog[columns].to_numpy(np.float32)
        return np.stack(self.counts(catalog), axis=-1).astype(np.float32)

    def to_dict(self) -> dict:
        """Plain entries, ``extra`` merged in at the top level."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**out, **self.extra}

    def write(self, model_path: str | Path) -> Path:
        """Write this card beside ``model_path`` atomically; return the card's path."""
        return files.write_json(card_path(model_path), self.to_dict())

    @classmethod
    def from_dict(cls, entries: dict, source: str = "the model card") -> ModelCard:
        if not isinstance(entries, dict):
            raise ValueError(f"{source}: expected a JSON object, got {type(entries).__name__}")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        missing = [n for n in ("questions", "image_size", "channels") if n not in entries]
        if missing:
            raise ValueError(f"{source} has no {', '.join(missing)}; re-run notebook 02")
        known = {k: v for k, v in entries.items() if k in names}
        try:
            return cls(**known, extra={k: v for k, v in entries.items() if k not in names})
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source}: {err}") from None

    @classmethod
    def read_beside(cls, model_path: str | Path) -> ModelCard | None:
        """The card of ``model_path``, or None where the model has none."""
        return cls.read(model_path) if card_path(model_path).is_file() else None

    @classmethod
    def read(cls, model_path: str | Path) -> ModelCard:
        """The card of ``model_path``; FileNotFoundError if there is none."""
        path = card_path(model_path)
        if not path.is_file():
            raise FileNotFoundError(
                f"no model card {path} beside {model_path}; notebook 02 writes it with the model"
            )
        try:
            entries = json.loads(path.read_text())
        except ValueError as err:
            raise ValueError(f"cannot read the model card {path}: {err}") from err
        return cls.from_dict(entries, str(path))
