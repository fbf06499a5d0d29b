"""A CNN on a whole tree: TreeLoss trains it, answers come out as a softmax per question."""

import numpy as np
import pytest

from zoolib import losses, models, multinomial, pipeline, posteriors, training, trees


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
