"""EPIG and greedy variance reduction against brute-force references (scipy.stats, explicit
covariance matrices), and the shared-mask samples they need."""

import numpy as np
import pytest
from scipy import special, stats

from zoolib.active import acquisition, heads, strategies, targeted


def brute_epig(rho, n, targets, weights):
    """Mutual information of each (candidate, target) pair from the explicit joint table."""
    p_count, q_count, t_count = rho.shape
    out = np.zeros((p_count, q_count))
    for i in range(p_count):
        for q in range(q_count):
            votes = int(n[i, q])
            total = 0.0
            for j in range(len(targets)):
                joint = np.zeros((votes + 1, 2))
                for t in range(t_count):
                    py = stats.binom.pmf(np.arange(votes + 1), votes, rho[i, q, t])
                    joint[:, 1] += py * targets[j, q, t] / t_count
                    joint[:, 0] += py * (1 - targets[j, q, t]) / t_count
                outer = joint.sum(axis=1, keepdims=True) * joint.sum(axis=0, keepdims=True)
                total += weights[j, q] * special.rel_entr(joint, outer).sum()
            out[i, q] = total / len(targets)
    return out


def test_epig_matches_the_explicit_joint_distribution():
    rng = np.random.default_rng(0)
    rho = rng.uniform(0.02, 0.98, (9, 2, 6))
    targets = rng.uniform(0.02, 0.98, (5, 2, 6))
    n = rng.integers(0, 7, (9, 2))
    weights = rng.uniform(0, 1, (5, 2))
    got = targeted.epig(rho, n, targets, weights, chunk_elements=50)  # several chunks
    np.testing.assert_allclose(got, brute_epig(rho, n, targets, weights), rtol=1e-10, atol=1e-15)
    assert np.all(got[n == 0] == 0)  # nobody asked: nothing to learn


def test_epig_is_at_most_bald_and_zero_when_the_samples_agree():
    rng = np.random.default_rng(1)
    rho = rng.beta(0.7, 0.7, (40, 3, 12))
    n = rng.integers(1, 41, (40, 3))
    targets = rho[rng.choice(40, 15, replace=False)]
    epig = targeted.epig(rho, n, targets)  # weights 1: each target's information is <= BALD
    bald = acquisition.mutual_information(rho, n)
    assert np.all(epig <= bald + 1e-12) and epig.max() > 0.01
    agree = np.repeat(rho[:, :, :1], 12, axis=2)  # every network predicts the same
    assert np.abs(targeted.epig(agree, n, agree[:15])).max() < 1e-12


def brute_variance_batch(rho, n, targets, k, weights):
    """Greedy picks with the explicit (pool + targets) covariance and the rank-one update."""
    p_count, q_count, t = rho.shape
    both = np.concatenate([rho, targets])
    phi = (both - both.mean(axis=-1, keepdims=True)) / np.sqrt(t)
    cov = [phi[:, q] @ phi[:, q].T for q in range(q_count)]
    noise = targeted.observation_noise(rho, n)
    picks, gains = [], []
    for _ in range(k):
        gain = np.zeros(p_count)
        for q in range(q_count):
            c = cov[q]
            for i in range(p_count):
                if np.isfinite(noise[i, q]):
                    cross = c[i, p_count:] ** 2 @ weights[:, q] / len(targets)
                    gain[i] += cross / (c[i, i] + noise[i, q])
        gain[picks] = -np.inf
        a = int(np.argmax(gain))
        picks.append(a)
        gains.append(gain[a])
        for q in range(q_count):
            if np.isfinite(noise[a, q]):
                c = cov[q]
                cov[q] = c - np.outer(c[:, a], c[a, :]) / (c[a, a] + noise[a, q])
    return np.array(picks), np.array(gains)


def test_variance_batch_equals_the_explicit_greedy_update():
    rng = np.random.default_rng(2)
    rho = rng.uniform(0.05, 0.95, (30, 2, 8))
    n = rng.integers(0, 20, (30, 2))
    targets = rng.uniform(0.05, 0.95, (12, 2, 8))
    weights = rng.uniform(0, 1, (12, 2))
    picks, gains = targeted.variance_batch(rho, n, targets, 10, weights)
    want_picks, want_gains = brute_variance_batch(rho, n, targets, 10, weights)
    np.testing.assert_array_equal(picks, want_picks)
    np.testing.assert_allclose(gains, want_gains, rtol=1e-9)
    assert len(set(picks)) == 10 and np.all(np.diff(gains) <= 1e-12)  # greedy: gains fall


def test_variance_batch_avoids_duplicates():
    """Two identical galaxies that each alone would teach the most: a joint batch takes one of
    them and then a different galaxy, whereas top-k by the same single-pick gain takes both."""
    rng = np.random.default_rng(3)
    rho = rng.uniform(0.25, 0.75, (20, 1, 16))
    rho[0, 0] = rho[1, 0] = np.where(np.arange(16) % 2, 0.1, 0.9)  # the widest spread
    n = np.full((20, 1), 400)  # precise labels: a second look at the same galaxy adds little
    picks, gains = targeted.variance_batch(rho, n, rho, 3)
    assert picks[0] == 0 and 1 not in picks[1:]
    first_gains = single_pick_gains(rho, n)
    assert set(np.argsort(-first_gains)[:2]) == {0, 1}  # top-k would take both twins
    assert gains[1] < first_gains[1]  # the twin's information was already bought


def single_pick_gains(rho, n):
    """Each galaxy's gain if it were the only pick, targets = the pool (one question)."""
    phi = (rho[:, 0] - rho[:, 0].mean(axis=-1, keepdims=True)) / np.sqrt(rho.shape[-1])
    c = phi @ phi.T
    noise = targeted.observation_noise(rho, n)[:, 0]
    return (c**2).mean(axis=1) / (np.diag(c) + noise)


def test_shared_masks_are_one_network_per_sample():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(6, 10)).astype(np.float32)
    x[3] = x[0]  # the same features: the same prediction in every sample, only if masks are shared
    w, b = rng.normal(size=(10, 2)), rng.normal(size=2)
    shared = heads.sample_rho_shared(x, w, b, 50, 0.5, np.random.default_rng(5))
    assert shared.shape == (6, 2, 50)
    np.testing.assert_array_equal(shared[0], shared[3])
    apart = heads.sample_rho(x, w, b, 50, 0.5, np.random.default_rng(5))
    assert not np.allclose(apart[0], apart[3])
    masks = heads.masks(np.random.default_rng(5), (50, 10), 0.5)  # the same draw, by hand
    want = special.expit(np.einsum("gf,tf,fq->gqt", x, masks, w) + b[:, None])
    np.testing.assert_allclose(shared, want, rtol=1e-5)


def test_strategies_table_dispatches_the_targeted_rules():
    rng = np.random.default_rng(6)
    rho = rng.uniform(0.05, 0.95, (50, 2, 10))
    n = rng.integers(1, 20, (50, 2)).astype(float)
    joint = strategies.Joint(rho, n, rho[:20], np.ones((20, 2)))
    score = strategies.scores("epig", rho, n, joint)
    np.testing.assert_allclose(score, targeted.epig(rho, n, rho[:20]).sum(axis=1))
    assert set(strategies.select("epig", 50, 5, score, 0)) == set(np.argsort(-score)[:5])
    batch = strategies.select("variance", 50, 5, None, 0, joint=joint)
    np.testing.assert_array_equal(batch, targeted.variance_batch(rho, n, rho[:20], 5)[0])
    with pytest.raises(ValueError, match="joint"):
        strategies.scores("epig", rho, n)
    assert strategies.lookup("random_3").index == 2 and strategies.lookup("random_3").random_like
    with pytest.raises(ValueError, match="unknown strategy"):
        strategies.lookup("random_1")
