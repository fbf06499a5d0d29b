"""zoolib.votes.multinomial against scipy.stats and against zoo's binomial BALD (K = 2)."""

import numpy as np
import pytest
from scipy import stats

from zoolib.active import acquisition
from zoolib.votes import multinomial


def _votes(rng, shape, k, n_max=12):
    n = rng.integers(0, n_max + 1, shape)
    p = rng.dirichlet(np.ones(k), shape)
    pairs = zip(n.ravel(), p.reshape(-1, k), strict=True)
    return np.stack([rng.multinomial(m, q) for m, q in pairs]).reshape(*shape, k)


def test_multinomial_and_dirichlet_multinomial_match_scipy():
    rng = np.random.default_rng(0)
    counts = _votes(rng, (50,), 4)
    counts[0] = 0  # nobody asked: probability 1
    p = rng.dirichlet(np.ones(4), 50)
    alpha = rng.uniform(0.3, 5.0, (50, 4))
    got = multinomial.multinomial_logpmf(counts, p)
    got_dm = multinomial.dirichlet_multinomial_logpmf(counts, alpha)
    assert got[0] == 0 and got_dm[0] == 0
    for i in range(1, 50):
        n = counts[i].sum()
        assert got[i] == pytest.approx(stats.multinomial.logpmf(counts[i], n, p[i]), abs=1e-10)
        want = stats.dirichlet_multinomial.logpmf(counts[i], alpha[i], n)
        assert got_dm[i] == pytest.approx(want, abs=1e-10)


def test_two_answers_are_the_binomial_and_the_beta_binomial():
    rng = np.random.default_rng(1)
    counts = _votes(rng, (40,), 2, n_max=40)
    rho, alpha = rng.uniform(0.01, 0.99, 40), rng.uniform(0.5, 8.0, (40, 2))
    p = np.stack([rho, 1 - rho], -1)
    k, n = counts[:, 0], counts.sum(-1)
    np.testing.assert_allclose(multinomial.multinomial_logpmf(counts, p),
                               stats.binom.logpmf(k, n, rho), atol=1e-10)  # fmt: skip
    np.testing.assert_allclose(multinomial.dirichlet_multinomial_logpmf(counts, alpha),
                               stats.betabinom.logpmf(k, n, alpha[:, 0], alpha[:, 1]),
                               atol=1e-10)  # fmt: skip


def test_one_answers_marginal_is_binomial_or_beta_binomial_by_summing_the_joint():
    p, alpha, n = np.array([0.2, 0.5, 0.3]), np.array([1.5, 0.7, 2.0]), 7
    vectors = multinomial.vote_vectors(n, 3)
    joint = np.exp(multinomial.multinomial_logpmf(vectors, p))
    joint_dm = np.exp(multinomial.dirichlet_multinomial_logpmf(vectors, alpha))
    for k in range(n + 1):
        rows = vectors[:, 0] == k
        assert joint[rows].sum() == pytest.approx(np.exp(multinomial.answer_logpmf(k, n, p=p[0])))
        want = np.exp(multinomial.answer_logpmf(k, n, alpha=alpha))
        assert joint_dm[rows].sum() == pytest.approx(want)


def test_vote_vectors_are_every_composition_once():
    v = multinomial.vote_vectors(5, 3)
    assert v.shape == (21, 3) and (v.sum(1) == 5).all() and (v >= 0).all()
    assert len({tuple(r) for r in v}) == 21
    brute = {(a, b, 5 - a - b) for a in range(6) for b in range(6 - a)}
    assert {tuple(r) for r in v} == brute
    with pytest.raises(ValueError, match="vote vectors for N = 100, K = 8"):
        multinomial.vote_vectors(100, 8)


def test_exact_bald_over_two_answers_is_zoos_binomial_bald():
    rng = np.random.default_rng(2)
    rho = rng.uniform(0.02, 0.98, (30, 16))
    p = np.stack([rho, 1 - rho], -1)
    for n in (1, 7, 40):
        want = acquisition.mutual_information(rho, n)
        np.testing.assert_allclose(multinomial.mutual_information(p, n), want, atol=1e-9)


def test_bald_over_vote_vectors_is_zero_when_samples_agree_and_counts_disagreement():
    rng = np.random.default_rng(3)
    same = np.repeat(rng.dirichlet(np.ones(4), (5, 1)), 10, axis=1)
    assert np.allclose(multinomial.mutual_information(same, 10), 0, atol=1e-12)
    apart = rng.dirichlet(np.ones(4) * 0.3, (5, 10))
    mi = multinomial.mutual_information(apart, 10)
    assert (mi > 0.05).all()
    # brute force: entropies by a loop over every vote vector with scipy's pmf
    v = multinomial.vote_vectors(10, 4)
    g = apart[0]
    each = np.array([[stats.multinomial.pmf(x, 10, q) for x in v] for q in g])
    mix = each.mean(0)
    h_each = [-(e[e > 0] * np.log(e[e > 0])).sum() for e in each]
    brute = -(mix * np.log(mix)).sum() - np.mean(h_each)
    assert mi[0] == pytest.approx(brute, abs=1e-9)
    zero = apart.copy()
    zero[..., 3] = 0
    zero /= zero.sum(-1, keepdims=True)  # an answer nobody can give
    assert np.isfinite(multinomial.mutual_information(zero, 10)).all()
    assert multinomial.mutual_information(apart, 0).tolist() == [0.0] * 5


def test_bad_counts_and_probabilities_are_named():
    with pytest.raises(ValueError, match=r"counts\[1, 0\] = -1.0 is negative"):
        multinomial.multinomial_logpmf([[1, 2], [-1, 3]], [0.5, 0.5])
    with pytest.raises(ValueError, match="not a whole number"):
        multinomial.multinomial_logpmf([[1.5, 2]], [0.5, 0.5])
    with pytest.raises(ValueError, match="sum to 1"):
        multinomial.multinomial_logpmf([[1, 2]], [0.5, 0.6])
    with pytest.raises(ValueError, match="K >= 2"):
        multinomial.multinomial_logpmf([3], [1.0])
    with pytest.raises(ValueError, match="alpha must be > 0"):
        multinomial.dirichlet_multinomial_logpmf([[1, 2]], [0.0, 1.0])


def test_the_monte_carlo_bald_is_within_its_error_of_the_exact_sum():
    rng = np.random.default_rng(4)
    p = rng.dirichlet(np.ones(5) * 0.5, (6, 20))
    exact = multinomial.mutual_information(p, 12)
    estimate, error = multinomial.mutual_information_mc(p, 12, draws=400, seed=0)
    z = np.abs(estimate - exact) / np.maximum(error, 1e-12)
    assert (z < 4).all(), (estimate, exact, error)
    assert (np.abs(estimate - exact) < 0.05 * exact + 0.01).all()
    # where exact enumeration is refused (N = 40 over 7 answers: 9.4 million vectors) it runs
    big = rng.dirichlet(np.ones(7), (2, 10))
    with pytest.raises(ValueError, match="vote vectors"):
        multinomial.mutual_information(big, 40)
    mi, err = multinomial.mutual_information_mc(big, 40, draws=100)
    assert (mi > 0).all() and (err < 0.2 * mi).all()


def test_exact_bald_refuses_fractional_votes_and_chunks_to_the_same_answer():
    p = np.random.default_rng(5).dirichlet(np.ones(3), (7, 4))
    for bad in (5.7, -1, True):
        with pytest.raises(ValueError, match="whole number of volunteers"):
            multinomial.mutual_information(p, bad)
    whole = multinomial.mutual_information(p, 9)
    np.testing.assert_allclose(multinomial.mutual_information(p, 9, chunk_elements=1), whole)
    assert multinomial.mutual_information(p, 9.0).tolist() == whole.tolist()


def test_dirichlet_outputs_give_expected_fractions_with_one_concentration_map():
    from zoolib.cnn import losses

    x = np.random.default_rng(6).normal(0, 2, (4, 5, 3))  # (G, A, T), sizes 3 + 2
    alpha = multinomial.concentrations(x)
    np.testing.assert_allclose(losses.concentrations(x).numpy(), alpha, rtol=1e-12)
    p = multinomial.answer_probabilities(x, [3, 2], likelihood="dirichlet_multinomial")
    np.testing.assert_allclose(p[:, :3], alpha[:, :3] / alpha[:, :3].sum(1, keepdims=True))
    assert ((alpha >= 1) & (alpha <= 100)).all()
    one = multinomial.answer_probabilities(x[..., 0], [3, 2], axis=-1)  # one output per galaxy
    np.testing.assert_allclose(one[:, 3:].sum(-1), 1.0)
