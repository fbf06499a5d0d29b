"""A CNN on a whole tree: TreeLoss trains it, answers come out as a softmax per question."""

import numpy as np
import pytest

from zoolib.cnn import losses, models, posteriors, training
from zoolib.data import pipeline
from zoolib.votes import multinomial, trees


def _universe(n=256, seed=0):
    """16-px images whose brightness sets a 3-answer and a 2-answer question's probabilities."""
    rng = np.random.default_rng(seed)
    level = rng.uniform(0, 1, n)
    images = (rng.normal(0, 5, (n, 16, 16, 1)) + 40 + 150 * level[:, None, None, None])
    p1 = np.stack([level, (1 - level) * 0.8, (1 - level) * 0.2], -1)
    p2 = np.stack([1 - level, level], -1)
    votes = np.concatenate([np.stack([rng.multinomial(20, q) for q in p1]),
                            np.stack([rng.multinomial(10, q) for q in p2])], 1)  # fmt: skip
    return np.clip(images, 0, 255).astype(np.uint8), votes.astype(np.float32), p1


@pytest.mark.parametrize("likelihood", losses.LIKELIHOODS)
def test_a_tree_model_learns_answer_probabilities(likelihood):
    tree = trees.GZ2.subset("two", ["smooth-or-featured", "disk-edge-on"])
    sizes = [len(n.answers) for n in tree.nodes]
    images, votes, p1 = _universe()
    model = models.build_bayesian_cnn(16, 1, sum(sizes), filters=(8,) * 6, dense_units=16,
                                      seed=0)  # fmt: skip
    ds = pipeline.make_tf_dataset(images[:200], votes[:200], 32, seed=0)
    val = pipeline.make_tf_dataset(images[200:], votes[200:], 64, shuffle=False,
                                   augment_images=False)  # fmt: skip
    history, _, model = training.train(model, ds, val, 25, learning_rate=3e-3, patience=25,
                                       loss=losses.TreeLoss(sizes, likelihood))  # fmt: skip
    assert history["val_loss"][-1] < 0.8 * history["val_loss"][0]
    logits = posteriors.sample_logits(model, images[200:], 8, seed=0)  # (G, A, T)
    assert logits.shape == (56, 5, 8)
    p = multinomial.answer_probabilities(logits, sizes)
    np.testing.assert_allclose(p[:, :3].sum(1), 1.0, atol=1e-9)
    np.testing.assert_allclose(p[:, 3:].sum(1), 1.0, atol=1e-9)
    smooth = p[:, 0].mean(-1)
    assert np.corrcoef(smooth, p1[200:, 0])[0, 1] > 0.8  # it learned the first answer
    with pytest.raises(ValueError, match="6 outputs but the tree has 5 answers"):
        multinomial.answer_probabilities(np.zeros((2, 6, 3)), sizes)


def _tree_card(likelihood="multinomial", questions=("smooth-or-featured", "disk-edge-on")):
    from zoolib.cnn import cards

    tree = trees.THREE.present([c for q in questions for c in
                                [*trees.THREE.node(q).answer_columns, f"{q}_total-votes"]])
    return cards.ModelCard(questions=list(questions), image_size=16, channels=1,
                           tree=tree.to_mapping(), extra={"likelihood": likelihood})


def _catalog(n=40, seed=1):
    import pandas as pd

    rng = np.random.default_rng(seed)
    first = rng.multinomial(12, [0.5, 0.4, 0.1], n)
    edge_yes = rng.binomial(first[:, 1], 0.3)
    return pd.DataFrame({
        "smooth-or-featured_smooth": first[:, 0],
        "smooth-or-featured_featured-or-disk": first[:, 1],
        "smooth-or-featured_artifact": first[:, 2], "smooth-or-featured_total-votes": 12,
        "disk-edge-on_yes": edge_yes, "disk-edge-on_no": first[:, 1] - edge_yes,
        "disk-edge-on_total-votes": first[:, 1],
    })  # fmt: skip


def test_a_tree_cards_outputs_counts_and_targets_are_every_answer():
    card, cat = _tree_card(), _catalog()
    assert card.likelihood == "multinomial"
    assert card.outputs() == ["smooth-or-featured_smooth", "smooth-or-featured_featured-or-disk",
                              "smooth-or-featured_artifact", "disk-edge-on_yes", "disk-edge-on_no"]
    k, n = card.counts(cat)
    for j, name in enumerate(card.outputs()):  # brute force: each answer against its total
        question = name.rsplit("_", 1)[0] if name.startswith("disk") else "smooth-or-featured"
        np.testing.assert_array_equal(k[:, j], cat[name])
        np.testing.assert_array_equal(n[:, j], cat[f"{question}_total-votes"])
    assert card.targets(cat).shape == (40, 5)
    binary = type(card)(questions=["smooth-or-featured", "disk-edge-on"], image_size=16, channels=1)
    assert binary.likelihood == "binomial" and binary.outputs() == binary.questions
    kb, nb = binary.counts(cat)
    np.testing.assert_array_equal(kb[:, 1], cat["disk-edge-on_yes"])
    assert binary.targets(cat).shape == (40, 2, 2)
    np.testing.assert_array_equal(binary.targets(cat)[:, 0, 1], 12)


def test_auto_likelihood_keeps_the_paper_for_zoos_questions_only():
    assert trees.zoos_questions(trees.THREE, ["bar", "disk-edge-on"])
    assert not trees.zoos_questions(trees.DECALS, ["bar"])  # strong / weak / no: not zoo's bar
    assert not trees.zoos_questions(trees.one_label("ring"), ["ring"])
    assert multinomial.choose_likelihood("auto", True) == "binomial"
    assert multinomial.choose_likelihood("auto", False) == "multinomial"
    assert multinomial.choose_likelihood("dirichlet_multinomial", True) == "dirichlet_multinomial"
    with pytest.raises(ValueError, match="likelihood must be one of"):
        multinomial.choose_likelihood("softmax", True)
    from zoolib.cnn import cards

    assert cards.tree_entry(trees.THREE, ["bar"], "binomial") is None
    assert cards.tree_entry(trees.DECALS, ["bar"], "binomial")["bar"]["answers"] == [
        "strong", "weak", "no"]  # the card keeps DECaLS's answers, so counts find its columns


def test_evaluating_answers_scores_each_against_its_questions_total():
    from zoolib.cnn import evaluation
    from zoolib.votes import metrics

    card, cat = _tree_card(), _catalog()
    base = evaluation.baseline_fractions(cat, card.outputs(), card.counts)
    k, n = card.counts(cat)
    np.testing.assert_allclose(base, [k[:, j].sum() / n[:, j].sum() for j in range(5)])
    rng = np.random.default_rng(0)
    samples = rng.dirichlet([2, 2, 1], (40, 4)).transpose(0, 2, 1)  # (G, 3, T)
    samples = np.concatenate([samples, np.stack([samples[:, 0], 1 - samples[:, 0]], 1)], 1)
    cat = cat.assign(**{f"true_p_{c}": 0.3 for c in card.outputs()})
    table = evaluation.evaluate(samples, cat, card.outputs(), base, votes=card.counts)
    row = table.loc[("cnn", "disk-edge-on_no")]
    expected = metrics.rmse(samples.mean(-1)[:, 4:], k[:, 4:], n[:, 4:])[0]
    assert row["rmse"] == pytest.approx(expected)
    assert row["rmse_true"] == pytest.approx(np.sqrt(np.mean((samples[:, 4].mean(-1) - 0.3) ** 2)))
    assert "rmse_asked" not in table.columns  # weighted by the share asked: schema questions only


def test_a_tree_models_outputs_follow_its_card():
    card = _tree_card()
    images, *_ = _universe(24)
    model = models.build_bayesian_cnn(16, 1, 5, filters=(8,) * 6, dense_units=16, seed=0)
    p = posteriors.sample_outputs(model, card, images, 6, seed=0)
    logits = posteriors.sample_logits(model, images, 6, seed=0)
    np.testing.assert_allclose(p, multinomial.answer_probabilities(logits, [3, 2]), atol=1e-12)
    single = posteriors.deterministic_outputs(model, card, images)
    np.testing.assert_allclose(single[:, :3].sum(1), 1.0)
    np.testing.assert_allclose(
        single, multinomial.answer_probabilities(posteriors.deterministic_logits(model, images),
                                                 [3, 2], axis=-1))  # fmt: skip
    binary = type(card)(questions=["bar"], image_size=16, channels=1)
    one = models.build_bayesian_cnn(16, 1, 1, filters=(8,) * 6, dense_units=16, seed=0)
    np.testing.assert_array_equal(posteriors.sample_outputs(one, binary, images, 4, seed=3),
                                  posteriors.sample_rho(one, images, 4, seed=3))  # fmt: skip


def test_the_pretrained_cnn_starts_a_tree_model_at_its_own_answers():
    from zoolib.cnn import pretrained

    images = np.random.default_rng(0).integers(0, 255, (8, 64, 64, 1)).astype(np.uint8)
    binary, _ = pretrained.initial_model(["bar"], seed=0)
    tree, _ = pretrained.initial_model(["bar"], seed=0, outputs=["bar_yes", "bar_no"])
    rho = posteriors.deterministic_rho(binary, images)[:, 0]
    p = multinomial.answer_probabilities(posteriors.deterministic_logits(tree, images), [2], -1)
    np.testing.assert_allclose(p[:, 0], rho, rtol=1e-5)  # a two-answer softmax = the sigmoid
    three = ["smooth-or-featured_smooth", "smooth-or-featured_featured-or-disk",
             "smooth-or-featured_artifact"]
    start, _ = pretrained.initial_model(["smooth-or-featured"], seed=0, outputs=three)
    smooth, _ = pretrained.initial_model(["smooth-or-featured"], seed=0)
    p3 = multinomial.answer_probabilities(posteriors.deterministic_logits(start, images), [3], -1)
    np.testing.assert_allclose(p3[:, 0], posteriors.deterministic_rho(smooth, images)[:, 0],
                               rtol=1e-5)  # three answers too: bias -log 2 on the other two
