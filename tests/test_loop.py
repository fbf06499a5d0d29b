"""The round loop's LURE weights and the pick probabilities they are built from, against exact
enumeration and Monte Carlo (independent of the formulas they test)."""

import itertools

import numpy as np
import pytest

from zoolib.active import loop, strategies


def test_gumbel_pick_probabilities_match_a_monte_carlo_of_the_picker():
    score, beta, k = np.array([0.5, 2.0, 1.0, 4.0, 0.25]), 1.5, 2
    rng = np.random.default_rng(0)
    draws = 100_000
    seen = {}
    for _ in range(draws):
        picks = tuple(strategies.select("power_bald", len(score), k, score, rng, beta))
        seen[picks] = seen.get(picks, 0) + 1
    for picks, count in seen.items():
        expected = np.prod(strategies.sequential_probabilities(score, np.array(picks), beta))
        assert count / draws == pytest.approx(expected, abs=4 * np.sqrt(expected / draws) + 1e-3)


def test_uniform_picks_weigh_one():
    rounds = [{"labelled": ["a"] * 4, "acquired": ["b"] * 3,
               "probabilities": list(1 / (20 - 4 - np.arange(3)))}]  # fmt: skip
    np.testing.assert_allclose(loop.lure_weights(rounds, 20), 1.0)


def test_lure_is_unbiased_by_exact_enumeration():
    """E[(1/M) sum_m v_m L_{i_m}] over every ordered draw of M = 3 from N = 6 galaxies, drawn
    one at a time with probability proportional to s^beta among those left, is the pool's
    mean loss; the unweighted mean is biased."""
    rng = np.random.default_rng(1)
    n, m, beta = 6, 3, 1.0
    score, loss = rng.uniform(0.1, 3.0, n), rng.uniform(0, 5, n)
    weighted = plain = 0.0
    for order in itertools.permutations(range(n), m):
        q = strategies.sequential_probabilities(score, np.array(order), beta)
        rounds = [{"labelled": [], "acquired": list(order), "probabilities": list(q)}]
        v = loop.lure_weights(rounds, n)
        weighted += np.prod(q) * np.mean(v * loss[list(order)])
        plain += np.prod(q) * np.mean(loss[list(order)])
    assert weighted == pytest.approx(loss.mean(), rel=1e-10)
    assert abs(plain - loss.mean()) > 0.01
