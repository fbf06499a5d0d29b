import numpy as np
import pytest
from scipy import stats

from zoolib.active import acquisition as acq


def brute_force(rho_row, n):
    """Per-galaxy reference with scipy.stats.binom and explicit loops."""
    ks = np.arange(n + 1)
    pmfs = [stats.binom.pmf(ks, n, r) for r in rho_row]
    mixture = np.mean(pmfs, axis=0)
    pred = stats.entropy(mixture) if n > 0 else 0.0
    expected = np.mean([stats.binom(n, r).entropy() if n > 0 else 0.0 for r in rho_row])
    return pred, expected, pred - expected


def test_entropies_match_brute_force_loop(rng):
    rho = rng.beta(0.7, 0.7, size=(60, 12))
    n = rng.integers(0, 70, size=60)
    pred, expected = acq.entropies(rho, n)
    mi = acq.mutual_information(rho, n)
    ref = np.array([brute_force(rho[i], n[i]) for i in range(len(n))])
    np.testing.assert_allclose(pred, ref[:, 0], atol=1e-10)
    np.testing.assert_allclose(expected, ref[:, 1], atol=1e-10)
    np.testing.assert_allclose(mi, np.maximum(ref[:, 2], 0), atol=1e-10)
    np.testing.assert_allclose(acq.predictive_entropy(rho, n), pred)


def test_exact_zero_and_one_probabilities(rng):
    rho = np.array([[0.0, 1.0, 0.5], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    pred, expected = acq.entropies(rho, 10)
    ref = np.array([brute_force(r, 10) for r in rho])
    np.testing.assert_allclose(pred, ref[:, 0], atol=1e-12)
    np.testing.assert_allclose(expected, ref[:, 1], atol=1e-12)
    assert np.isfinite(pred).all() and np.isfinite(expected).all()


def test_multi_question_shape_and_per_question_n(rng):
    rho = rng.random((20, 2, 8))
    n = np.stack([np.full(20, 40), rng.integers(0, 40, 20)], axis=1)
    mi = acq.mutual_information(rho, n)
    assert mi.shape == (20, 2)
    for i in range(20):
        for q in range(2):
            assert mi[i, q] == pytest.approx(max(brute_force(rho[i, q], n[i, q])[2], 0), abs=1e-10)
    np.testing.assert_allclose(acq.sum_over_questions(mi), mi.sum(axis=1))


def test_small_chunks_give_the_same_answer(rng):
    rho = rng.random((300, 10))
    n = rng.integers(1, 50, 300)
    np.testing.assert_allclose(
        acq.mutual_information(rho, n, chunk_elements=500), acq.mutual_information(rho, n)
    )


def test_mutual_information_properties(rng):
    rho = rng.random((500, 20))
    pred, expected = acq.entropies(rho, 40)
    assert np.all(pred - expected >= -1e-12)  # Jensen: entropy of the mixture is larger
    same = np.repeat(rng.random((50, 1)), 20, axis=1)
    np.testing.assert_allclose(acq.mutual_information(same, 40), 0.0, atol=1e-12)
    # confident disagreement beats agreement on 0.5 and mild spread
    disagree = np.array([[0.02] * 10 + [0.98] * 10])
    agree_half = np.full((1, 20), 0.5)
    mild = np.array([np.linspace(0.4, 0.6, 20)])
    mi = acq.mutual_information(np.vstack([disagree, agree_half, mild]), 40)
    assert mi[0] > mi[2] > mi[1]
    assert mi[0] > 0.5  # close to log 2 for two well-separated modes
    assert mi[0] <= np.log(2) + 1e-9


@pytest.mark.parametrize("n", [5000, 100_000])
def test_entropies_at_large_n_against_scipy(n, rng):
    # scipy.stats.binom's pmf (Boost) is accurate to a few ulp: checked against 40-digit
    # decimal arithmetic it gives the entropy at n = 5000 to 6e-15. Measured errors here are
    # 2e-12 (n = 5000) and 2e-11 (n = 1e5); the former code was off by 1e-8 and 4e-6.
    tol = {5000: 1e-11, 100_000: 1e-10}[n]
    rho = np.vstack([rng.random((2, 4)), [[1e-6, 0.5, 0.999, 0.3]]])
    pred, expected = acq.entropies(rho, n)
    ks = np.arange(n + 1)
    for i, row in enumerate(rho):
        want_expected = np.mean([stats.binom(n, r).entropy() for r in row])
        want_pred = stats.entropy(np.mean([stats.binom.pmf(ks, n, r) for r in row], axis=0))
        assert abs(expected[i] - want_expected) < tol
        assert abs(pred[i] - want_pred) < tol


@pytest.mark.parametrize("n", [5000, 100_000])
def test_identical_samples_give_zero_information_at_large_n(n, rng):
    same = np.repeat(rng.random((4, 1)), 8, axis=1)
    pred, expected = acq.entropies(same, n)
    assert np.all(np.abs(pred - expected) < 1e-13)  # measured below 1e-14 up to n = 1e6
    mi = acq.mutual_information(same, n)
    assert np.all((mi >= 0) & (mi < 1e-13))


def test_only_tiny_negative_information_is_clipped(monkeypatch):
    pred = np.zeros(4)
    expected = np.array([1e-13, acq.MI_ROUNDING, 1e-6, -0.5])
    monkeypatch.setattr(acq, "entropies", lambda *args, **kwargs: (pred, expected))
    got = acq.mutual_information(np.full((4, 2), 0.5), 10)
    np.testing.assert_array_equal(got[:2], 0.0)
    assert got[2] == pytest.approx(-1e-6) and got[3] == pytest.approx(0.5)


def test_per_galaxy_n_is_left_aligned_even_when_galaxies_equal_questions(rng):
    rho = rng.random((3, 3, 6))
    n = np.array([0, 7, 30])  # one n per galaxy, shared by its questions
    mi = acq.mutual_information(rho, n)
    for i in range(3):
        for q in range(3):
            assert mi[i, q] == pytest.approx(max(brute_force(rho[i, q], n[i])[2], 0), abs=1e-12)
    for bad in (np.ones(4), np.ones((3, 1)), np.ones((2, 3))):
        with pytest.raises(ValueError, match=r"n must be a scalar, per galaxy \(3,\)"):
            acq.entropies(rho, bad)


def test_zero_votes_carry_no_information(rng):
    np.testing.assert_array_equal(acq.mutual_information(rng.random((5, 7)), 0), 0.0)


@pytest.mark.parametrize("bad_n, message", [(40.5, "whole"), (-1, "non-negative")])
def test_bad_expected_votes_are_rejected(bad_n, message, rng):
    with pytest.raises(ValueError, match=message):
        acq.mutual_information(rng.random((3, 4)), bad_n)


def test_rho_outside_unit_interval_is_rejected():
    with pytest.raises(ValueError, match=r"index \(1, 0\)"):
        acq.mutual_information(np.array([[0.1, 0.2], [1.2, 0.3]]), 5)


def test_select_top_takes_highest_with_deterministic_ties():
    scores = np.array([0.1, 0.9, 0.5, 0.9, 0.5, 0.0])
    np.testing.assert_array_equal(acq.select_top(scores, 4), [1, 3, 2, 4])
    np.testing.assert_array_equal(acq.select_top(scores, 0), [])
    with pytest.raises(ValueError, match="batch_size"):
        acq.select_top(scores, 7)
    with pytest.raises(ValueError, match="position 2"):
        acq.select_top(np.array([0.1, 0.2, np.nan]), 1)


# The multiplicative recurrence (1 <= n <= RECURRENCE_MAX_N) against scipy.stats, with edge rows
# that need its special handling (rho near 1: built from k = n; identical and nearly identical
# samples; rho exactly 0 or 1) and rows that fall back to the exact path, all in one call.

EDGE_RHO = [0.0, 1.0, 1e-300, 1e-12, 1e-7, 1 - 1e-7, 1 - 1e-9, 1 - 1e-12, 1 - 2**-53, 0.5]


def spy(monkeypatch, name):
    """Record (rows, n) of every call of acquisition.<name> while still calling it."""
    calls = []
    original = getattr(acq, name)

    def record(rho, n):
        calls.append((rho.copy(), n))
        return original(rho, n)

    monkeypatch.setattr(acq, name, record)
    return calls


def test_recurrence_matches_scipy_with_edge_rows_mixed_in(monkeypatch, rng):
    g, t = 40, 9
    rho = rng.beta(0.8, 0.8, size=(g, 2, t))
    rho = np.where(rng.random(rho.shape) < 0.3, rng.choice(EDGE_RHO, size=rho.shape), rho)
    rho[0, 0] = 1 - 1e-9  # (1 - rho)^40 underflows in every sample
    rho[1, 0] = 0.3  # identical samples
    rho[2, 0] = 0.3 + 1e-10 * np.arange(t)  # nearly identical: BALD ~ 1e-18
    rho[3, 0] = [0.0, 1.0] * 4 + [0.5]
    rho[4, 0] = rng.choice(EDGE_RHO, size=t)
    n = np.stack([np.full(g, 40), rng.integers(0, 70, g)], axis=1)
    big = acq.RECURRENCE_MAX_N
    n[:5, 1] = [0, 1, 2, big, big + 88]  # n = 0 and n > RECURRENCE_MAX_N: exact path
    recurrence = spy(monkeypatch, "_entropies_recurrence")
    exact = spy(monkeypatch, "_entropies_one_n")
    pred, expected = acq.entropies(rho, n)
    mi = acq.mutual_information(rho, n)
    for i in range(g):
        for q in range(2):
            want = brute_force(rho[i, q], n[i, q])
            assert pred[i, q] == pytest.approx(want[0], abs=1e-12)
            assert expected[i, q] == pytest.approx(want[1], abs=1e-12)
            assert mi[i, q] == pytest.approx(max(want[2], 0), abs=1e-12)
    assert mi[1, 0] == 0.0 and pred[1, 0] == expected[1, 0]
    assert abs(mi[2, 0]) < 1e-14
    # the paths were taken: the recurrence for 1 <= n <= big, rows built from k = n, the exact
    # path for n = 0, n > big and the nearly identical galaxy (rescored)
    assert {m for _, m in recurrence} == set(np.unique(n[(n > 0) & (n <= big)]))
    assert any(((1 - r) ** m < acq.TINY_BASE).any() for r, m in recurrence)
    assert {m for _, m in exact} == {0, 40, big + 88}
    rescored = np.vstack([r for r, m in exact if m == 40])
    assert any(np.array_equal(row, rho[2, 0]) for row in rescored)


@pytest.mark.parametrize("n", [acq.RECURRENCE_MAX_N, acq.RECURRENCE_MAX_N + 1])
def test_recurrence_limit_against_scipy(n, monkeypatch, rng):
    rho = np.vstack(
        [
            rng.random((2, 5)),
            [1e-9, 0.5, 1 - 1e-9, 0.999, 0.2],  # (1 - rho)^n underflows in three of them
            [0.0, 1.0, 0.5, 1e-300, 1 - 1e-12],
            np.full(5, 0.37),
        ]
    )
    recurrence = spy(monkeypatch, "_entropies_recurrence")
    pred, expected = acq.entropies(rho, n)
    assert bool(recurrence) == (n <= acq.RECURRENCE_MAX_N)
    for i, row in enumerate(rho):
        want = brute_force(row, n)
        assert abs(pred[i] - want[0]) < 1e-11  # measured 8e-15 (recurrence), 2e-13 (exact)
        assert abs(expected[i] - want[1]) < 1e-11
    assert abs(pred[-1] - expected[-1]) < 1e-14


def test_recurrence_agrees_with_exact_path(rng):
    rho = rng.beta(0.5, 0.5, size=(3000, 20))
    rho[::7, 3] = rng.choice(EDGE_RHO, size=len(rho[::7]))
    n = rng.integers(1, 100, 3000)
    fast = acq.entropies(rho, n)
    exact = acq.entropies(rho, n, recurrence=False)
    for a, b in zip(fast, exact, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-13)  # both within ~3e-14 of exact


def test_recurrence_keeps_near_zero_information_accurate(monkeypatch, rng):
    same = np.repeat(rng.random((20, 1)), 12, axis=1)
    near = np.clip(same + 1e-10 * rng.standard_normal(same.shape), 0, 1)
    exact = spy(monkeypatch, "_entropies_one_n")
    pred, expected = acq.entropies(np.vstack([same, near]), 40)
    np.testing.assert_array_equal(pred[:20], expected[:20])  # identical: exactly no information
    assert np.all(np.abs(pred[20:] - expected[20:]) < 1e-14)  # true BALD ~ 1e-18
    rescored = {tuple(row) for r, _ in exact for row in r}
    assert {tuple(row) for row in near} <= rescored
    assert not {tuple(row) for row in same} & rescored
    for i in range(0, 20, 5):
        want = brute_force(same[i], 40)
        assert pred[i] == pytest.approx(want[0], abs=1e-14)


def test_recurrence_is_accurate_for_rho_near_one(rng):
    # built from k = n with rho and 1 - rho exchanged, these rows need no large cancelling
    # terms; the exact path's n logit(rho) + n log(1 - rho) cancels ~1100 to ~4e-11 here and is
    # off by 5e-14 (measured)
    rho = 1 - 10 ** -rng.uniform(4, 12, size=(10, 6))
    pred, expected = acq.entropies(rho, 40)
    for i, row in enumerate(rho):
        want = brute_force(row, 40)
        assert abs(pred[i] - want[0]) < 1e-14
        assert abs(expected[i] - want[1]) < 1e-14
