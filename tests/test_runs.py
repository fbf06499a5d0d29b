"""Run state: settings checks and digests, independent random streams."""

import numpy as np
import pytest

from zoolib.active import heads, runs


def test_settings_name_the_bad_field():
    with pytest.raises(ValueError, match="Settings.regime='gpu'"):
        runs.Settings(regime="gpu")
    with pytest.raises(ValueError, match="Settings.strategies=.*must include 'random'"):
        runs.Settings(strategies=("bald",))
    with pytest.raises(ValueError, match="Settings.n_seeds=0"):
        runs.Settings(n_seeds=0)
    with pytest.raises(ValueError, match="unknown settings \\['n_seed'\\]"):
        runs.Settings.from_dict({"n_seed": 3})


def test_settings_round_trip_and_digest_follows_every_field():
    s = runs.Settings(head=heads.HeadSettings(steps=10), expected_votes={"bar": 10})
    again = runs.Settings.from_dict(s.to_dict())
    assert again == s and again.digest() == s.digest()
    assert (
        runs.Settings(head=heads.HeadSettings(steps=11)).digest()
        != runs.Settings(head=heads.HeadSettings(steps=10)).digest()
    )
    assert runs.Settings(n_seeds=3).seeds == [0, 1, 2] and runs.Settings(
        n_rounds=2, n_initial=5, acquire_per_round=3
    ).budget == [5, 8, 11]


def test_streams_repeat_and_differ_by_seed_round_and_purpose():
    draw = lambda *a: runs.stream(*a).random(4)  # noqa: E731
    np.testing.assert_array_equal(draw(1, 2, "train"), draw(1, 2, "train"))
    others = [draw(2, 1, "train"), draw(1, 3, "train"), draw(1, 2, "acquire"), draw(2, 2, "train")]
    for o in others:
        assert not np.allclose(o, draw(1, 2, "train"))
    # the old scheme's collision (repeat s, round r == repeat s + 1, round r - 1) is gone
    assert not np.allclose(draw(0, 1, "train"), draw(1, 0, "train"))
    with pytest.raises(ValueError, match="purpose"):
        runs.stream(0, 0, "fun")


def test_settings_defaults_are_notebook_04s_parameter_cell():
    """What a student runs in notebook 04 is what Settings() and HeadSettings() mean, so the
    experiments that import them run the notebook's settings (precision: the notebook's auto is
    resolved before it reaches Settings)."""
    import ast
    import json
    from dataclasses import fields

    from zoolib import paths

    nb = json.loads((paths.NOTEBOOKS_DIR / "04_active_learning.ipynb").read_text())
    (cell,) = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
    values = {node.target.id: ast.literal_eval(node.value)
              for node in ast.parse("".join(cell["source"])).body}  # fmt: skip
    defaults, head = runs.Settings(), heads.HeadSettings()
    head_names = {"head_steps": "steps", "head_learning_rate": "learning_rate", "head_l2": "l2"}
    for name, field_name in head_names.items():
        assert values[name] == getattr(head, field_name), name
    compared = [f.name for f in fields(runs.Settings) if f.name in values and f.name != "precision"]
    assert len(compared) >= 20
    for name in compared:
        want = tuple(values[name]) if name == "strategies" else values[name]
        assert getattr(defaults, name) == want, name
