"""The latent statistics of ibvae.vae.metrics on constructed codes with known answers: the
Gaussian-copula total correlation (known TC, its floor- and space-independence, dead units,
the shuffled baseline), the one active-unit rule, and the aggregate posterior's censoring."""

import numpy as np
import pytest

from ibvae.errors import IbvaeError
from ibvae.vae import metrics
from ibvae.vae.sampling import censored_log_codes


@pytest.fixture
def rng():
    """A generator per test, so no draw depends on which tests ran before on this worker."""
    return np.random.default_rng(0)

COV = np.array([[1.0, 0.6, 0.3], [0.6, 1.0, 0.5], [0.3, 0.5, 1.0]])
KNOWN_TC = 0.5 * (np.sum(np.log(np.diag(COV))) - np.linalg.slogdet(COV)[1])  # 0.336 nats


def test_known_tc_of_a_gaussian_is_recovered_whatever_the_increasing_map_of_each_unit(rng):
    u = rng.multivariate_normal(np.zeros(3), COV, size=20000)
    as_is = metrics.copula_total_correlation(u)
    assert as_is["total_correlation"] == pytest.approx(KNOWN_TC, rel=0.03)
    # Each unit through its own increasing map (log-normal codes, a cube, an affine map):
    # the ranks, and so the TC, are exactly the same.
    mapped = np.stack([np.exp(0.5 * u[:, 0]), u[:, 1] ** 3, 7.0 + 1e-3 * u[:, 2]], axis=1)
    again = metrics.copula_total_correlation(mapped)
    assert again["total_correlation"] == pytest.approx(as_is["total_correlation"], abs=1e-12)
    # The shuffled baseline is the estimator's bias for independent units, ~ d(d-1)/(4N).
    assert as_is["total_correlation_shuffled"] == pytest.approx(3 * 2 / (4 * 20000), abs=2e-4)
    assert as_is["total_correlation_excess"] == pytest.approx(KNOWN_TC, rel=0.03)
    assert as_is["tc_units"] == 3


def test_the_shuffled_baseline_removes_the_upward_bias_of_independent_codes(rng):
    n, d = 10000, 40
    report = metrics.copula_total_correlation(rng.standard_normal((n, d)))
    bias = d * (d - 1) / (4 * n)  # 0.039 nats
    assert report["total_correlation"] == pytest.approx(bias, abs=0.01)
    assert report["total_correlation_shuffled"] == pytest.approx(bias, abs=0.005)
    assert abs(report["total_correlation_excess"]) < 0.01


def test_tc_of_codes_with_exact_zeros_is_the_same_with_any_floor_on_log_z(rng):
    """ReLU-like codes: z = 0 exactly where a unit is off. z itself, log max(z, 1e-4) and
    log max(z, 1e-8) give the same number (the floor only relabels the tied zeros)."""
    u = rng.multivariate_normal(np.zeros(3), COV, size=5000)
    z = np.where(u > -0.3, np.exp(u), 0.0)  # each unit off ~38% of the time, together
    assert 0.2 < np.mean(z == 0) < 0.5
    tcs = [metrics.copula_total_correlation(codes)["total_correlation"]
           for codes in (z, np.log(np.maximum(z, 1e-4)), np.log(np.maximum(z, 1e-8)))]
    assert tcs[0] > 0.1
    assert tcs[1] == pytest.approx(tcs[0], abs=1e-12) and tcs[2] == pytest.approx(tcs[0], abs=1e-12)


def test_a_unit_that_is_always_off_is_dropped(rng):
    u = rng.multivariate_normal(np.zeros(3), COV, size=5000)
    with_dead = np.concatenate([u, np.zeros((5000, 1)), np.full((5000, 1), 2.5)], axis=1)
    report = metrics.copula_total_correlation(with_dead)
    assert report["tc_units"] == 3
    assert report["total_correlation"] == metrics.copula_total_correlation(u)["total_correlation"]
    nothing = metrics.copula_total_correlation(np.zeros((100, 4)))
    assert nothing["tc_units"] == 0 and nothing["total_correlation"] == 0.0
    too_few = metrics.copula_total_correlation(rng.standard_normal((10, 20)))
    assert too_few["total_correlation"] is None and too_few["tc_units"] == 20


def test_normal_scores_share_the_average_rank_of_ties():
    scores = metrics.normal_scores(np.array([[0.0], [0.0], [3.0], [1.0]]))[:, 0]
    assert scores[0] == scores[1] < scores[3] < scores[2]
    # Average ranks 1.5, 1.5, 4, 3 over N + 1 = 5: Phi^-1(0.3), Phi^-1(0.8), Phi^-1(0.6).
    np.testing.assert_allclose(scores, [-0.5244005, -0.5244005, 0.8416212, 0.2533471], atol=1e-6)


def test_one_active_unit_rule_on_a_constructed_case(rng):
    """Posterior means and variances (N images x 6 units) with known activities:
    activity = Var_x(mean) / (Var_x(mean) + E_x[var])."""
    n = 4000
    varying = rng.standard_normal(n)
    mean = np.stack([
        varying,  # explains 99% of its variance: active
        np.full(n, 3.0),  # the same posterior for every image: inactive
        np.sqrt(0.005) * varying,  # 0.5% explained: inactive
        np.sqrt(0.05) * varying,  # 5% explained: active
        np.zeros(n),  # a dead unit, no variance at all: inactive
        1000 * np.sqrt(0.05) * varying,  # unit 3 in other units of z: the same answer
    ], axis=1)
    var = np.stack([np.full(n, v) for v in (0.01, 1.0, 0.995, 0.95, 0.0, 1e6 * 0.95)], axis=1)
    activity = metrics.unit_activity(mean, var)
    expected = [1 / 1.01, 0.0, 0.005, 0.05, 0.0, 0.05]
    np.testing.assert_allclose(activity, expected, rtol=0.05, atol=1e-12)
    assert metrics.count_active(activity) == 3
    assert activity[5] == pytest.approx(activity[3], rel=1e-9)


def test_censored_zeros_lie_below_every_positive_log_code():
    # Its own generator, so the draw does not depend on which tests ran before it on this
    # worker; Student-t (2 degrees of freedom) log codes have the long lower tail that matters.
    draw = np.random.default_rng(11)
    n = 5000
    log_z = draw.standard_t(2, (n, 3))
    z = np.exp(log_z)
    z[draw.random((n, 3)) < np.array([0.3, 0.0, 1.0])] = 0.0
    y, zero = censored_log_codes(z)
    for j in range(2):
        if zero[:, j].any():
            assert y[zero[:, j], j].max() < y[~zero[:, j], j].min()
        np.testing.assert_allclose(y[~zero[:, j], j], np.log(z[~zero[:, j], j]))
    assert np.all(y[:, 2] == 0.0) and zero[:, 2].all()  # never positive
    # The former value (1% quantile - 1) was above some positive codes of a long lower tail.
    positive = y[~zero[:, 0], 0]
    assert np.sum(positive < np.quantile(positive, 0.01) - 1.0) > 0


# ------------------------------------------------------------- total correlation, point masses


def _binary_pair(rng, n, corr=0.9):
    """Two fair binary units at correlation ``corr``: P(1, 1) = P(0, 0) = (1 + corr) / 4."""
    p = np.array([1 + corr, 1 - corr, 1 - corr, 1 + corr]) / 4
    idx = rng.choice(4, n, p=p)
    exact = float(np.sum(p * np.log(p / 0.25)))  # MI = TC of two units: 0.4947 nats at 0.9
    return np.stack([idx // 2, idx % 2], axis=1).astype(float), exact


def test_two_binary_units_give_their_exact_mutual_information(rng):
    codes, exact = _binary_pair(rng, 40000)
    assert exact == pytest.approx(0.4947, abs=1e-4)
    report = metrics.copula_total_correlation(codes)
    assert report["total_correlation"] == pytest.approx(exact, abs=0.01)
    assert report["total_correlation_continuous"] == 0.0  # two values: all point masses
    assert report["tc_point_mass_units"] == 2 and report["tc_discrete_estimator"] == "counts"
    # two units: the Chow-Liu tree is the pair itself, the same number
    tree, how = metrics.discrete_total_correlation(codes > 0, method="tree")
    assert how == "tree" and tree == pytest.approx(report["total_correlation"], abs=1e-9)
    with pytest.raises(IbvaeError, match="method must be one of"):
        metrics.discrete_total_correlation(codes > 0, method="plugin")
    # the plain copula (one normal score per tied value) overstates it: ~0.83 nats
    plain = metrics.gaussian_total_correlation(metrics.normal_scores(codes))
    assert plain == pytest.approx(-0.5 * np.log(1 - 0.9**2), abs=0.02)
    # any two values, any order: the same number
    relabelled = np.stack([5.0 - 3 * codes[:, 0], np.exp(codes[:, 1])], axis=1)
    again = metrics.copula_total_correlation(relabelled)["total_correlation"]
    assert again == pytest.approx(report["total_correlation"], abs=1e-12)


def test_independent_units_with_point_masses_have_no_total_correlation(rng):
    n = 20000
    z = np.where(rng.random((n, 4)) < 0.6, 0.0, np.exp(rng.standard_normal((n, 4))))
    report = metrics.copula_total_correlation(z)
    assert report["tc_point_mass_units"] == 4
    assert abs(report["total_correlation"]) < 0.005
    assert abs(report["total_correlation_excess"]) < 0.005
    # the zero pattern shared, the on-values independent: TC = the patterns' TC, log 2
    off = rng.random(n) < 0.5
    shared = np.where(off[:, None], 0.0, np.exp(rng.standard_normal((n, 2))))
    r = metrics.copula_total_correlation(shared)
    assert r["total_correlation_discrete"] == pytest.approx(np.log(2), abs=0.01)
    assert abs(r["total_correlation_continuous"]) < 0.01


def test_continuous_units_still_give_the_analytic_gaussian_tc(rng):
    u = rng.multivariate_normal(np.zeros(3), COV, size=20000)
    report = metrics.copula_total_correlation(u)
    assert report["tc_point_mass_units"] == 0 and report["total_correlation_discrete"] == 0.0
    assert report["total_correlation"] == pytest.approx(KNOWN_TC, rel=0.03)
    # on-values of ReLU-like units keep their copula: units on together, values correlated
    z = np.where(rng.random((20000, 1)) < 0.3, 0.0, np.exp(u))
    mixed = metrics.copula_total_correlation(z)
    h = -(0.3 * np.log(0.3) + 0.7 * np.log(0.7))  # one off-pattern shared by the 3 units
    assert mixed["total_correlation_discrete"] == pytest.approx(3 * h - h, abs=0.02)
    assert mixed["total_correlation_continuous"] == pytest.approx(0.7 * KNOWN_TC, rel=0.05)


def test_many_binary_units_use_the_chow_liu_bound_which_is_exact_on_a_chain(rng):
    """20 binary units in a Markov chain (each copies the previous, flipped with p = 0.1):
    2^20 patterns for 5000 draws, so the counts would mostly measure their own bias; the
    chain is a tree, so the Chow-Liu bound is its TC, 19 (log 2 - H(0.1)) = 6.99 nats."""
    n, d, flip = 5000, 20, 0.1
    b = np.empty((n, d), bool)
    b[:, 0] = rng.random(n) < 0.5
    for j in range(1, d):
        b[:, j] = b[:, j - 1] ^ (rng.random(n) < flip)
    exact = (d - 1) * (np.log(2) + flip * np.log(flip) + (1 - flip) * np.log(1 - flip))
    tc, how = metrics.discrete_total_correlation(b)
    assert how == "tree" and tc == pytest.approx(exact, rel=0.02)
    report = metrics.copula_total_correlation(b.astype(float))
    assert report["tc_discrete_estimator"] == "tree"
    assert report["total_correlation"] == pytest.approx(exact, rel=0.02)
    assert abs(report["total_correlation_shuffled"]) < 0.05  # independent: the bound is ~0
