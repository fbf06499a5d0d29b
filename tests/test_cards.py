"""Model cards: file name beside the model, round trip, errors that name the file."""

import json
import os

import numpy as np
import pytest

from zoolib.cnn import cards


def test_round_trip_beside_the_model(tmp_path):
    model = tmp_path / "models" / "cnn.keras"
    model.parent.mkdir()
    card = cards.ModelCard(["smooth-or-featured", "bar"], image_size=64, channels=1,
                           best_epoch=3, extra={"init": "pretrained"})  # fmt: skip
    path = card.write(model)
    assert path == tmp_path / "models" / "cnn.card.json"
    assert json.loads(path.read_text())["init"] == "pretrained"
    assert cards.ModelCard.read(model) == card
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_missing_and_bad_cards_are_named(tmp_path):
    model = tmp_path / "m.keras"
    with pytest.raises(FileNotFoundError, match="m.card.json"):
        cards.ModelCard.read(model)
    cards.card_path(model).write_text('{"questions": ["bar"], "channels": 1}')
    with pytest.raises(ValueError, match=r"m\.card\.json has no image_size"):
        cards.ModelCard.read(model)
    cards.card_path(model).write_text('{"questions": ["spiral"], "image_size": 8, "channels": 1}')
    with pytest.raises(ValueError, match="m.card.json.*unknown question 'spiral'"):
        cards.ModelCard.read(model)
    cards.card_path(model).write_text("{not json")
    with pytest.raises(ValueError, match="cannot read the model card"):
        cards.ModelCard.read(model)
    with pytest.raises(ValueError, match="image_size must be a positive integer"):
        cards.ModelCard(["bar"], image_size="32", channels=1)
    with pytest.raises(ValueError, match="reuse the card's own names"):
        cards.ModelCard(["bar"], image_size=32, channels=1, extra={"questions": ["bar"]})
    assert cards.ModelCard(["bar"], image_size=np.int64(32), channels=1).image_size == 32


def test_how_the_images_were_made_round_trips_and_is_checked(tmp_path):
    card = cards.ModelCard(["smooth-or-featured"], 64, 3, training_images="real",
                           crop_fraction=0.4, stretch="asinh")  # fmt: skip
    card.write(tmp_path / "m.keras")
    back = cards.ModelCard.read(tmp_path / "m.keras")
    assert (back.training_images, back.crop_fraction, back.stretch) == ("real", 0.4, "asinh")
    with pytest.raises(ValueError, match="training_images must be one of"):
        cards.ModelCard(["bar"], 64, 1, training_images="sdss")
    for bad in (0.0, 1.5, True):
        with pytest.raises(ValueError, match="crop_fraction must be in"):
            cards.ModelCard(["bar"], 64, 1, crop_fraction=bad)


def test_a_card_with_its_own_tree_names_a_new_question(tmp_path):
    tree = {"ring": {"answers": ["yes", "no"]}}
    card = cards.ModelCard(["ring"], 64, 1, tree=tree)
    card.write(tmp_path / "m.keras")
    back = cards.ModelCard.read(tmp_path / "m.keras")
    assert back.tree == tree and back.rho_answers() == {"ring": "yes"}
    assert cards.ModelCard(["bar"], 64, 1).rho_answers() == {"bar": "yes"}
    with pytest.raises(ValueError, match=r"questions \['bar'\] are not in its tree"):
        cards.ModelCard(["bar"], 64, 1, tree=tree)
    with pytest.raises(ValueError, match="unknown question 'ring'"):
        cards.ModelCard(["ring"], 64, 1)  # without a tree only zoo's questions are known
