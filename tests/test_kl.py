"""The closed-form KLs against TensorFlow Probability, the independent numerical check.

TFP runs on TensorFlow whatever KERAS_BACKEND is, so these checks run under both backends:
the ibvae side is computed with the active backend and compared as NumPy arrays.
"""

import os

import keras
import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow_probability as tfp  # noqa: E402

from ibvae import GaussianSampler, InformationDropout  # noqa: E402
from ibvae import kl as klf  # noqa: E402

tfd = tfp.distributions
rng = np.random.default_rng(0)


def np_(x):
    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)


def log_normal_layer(mu: float, sigma: float) -> InformationDropout:
    layer = InformationDropout(prior="log_normal", max_alpha=0.7)
    layer.build([(None, 5), (None, 5)])
    layer.prior_mu.assign(mu)
    layer.prior_log_sigma.assign(np.log(sigma))
    return layer


def test_log_normal_kl_matches_tfp_closed_form():
    features = rng.exponential(1.0, size=(64, 5)).astype("float32")
    features[:4] = 0.0  # exact zeros are clamped to 1e-4, as in the official code
    logits = rng.normal(0, 2, size=(64, 5)).astype("float32")
    layer = log_normal_layer(mu=0.3, sigma=1.7)
    ours = np_(layer.kl(features, logits))
    alpha = np_(layer.alpha(logits))
    loc = np.log(np.maximum(features, klf.FEATURE_FLOOR)).astype("float64")
    expected = tfd.kl_divergence(
        tfd.Normal(loc, alpha), tfd.Normal(np.float64(0.3), np.float64(1.7))
    ).numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5)
    assert ours.shape == features.shape


@pytest.mark.parametrize("unit_shape", [(5,), (2, 3, 4)])
def test_per_unit_log_normal_kl_matches_tfp(unit_shape):
    """prior_shape='unit': one (mu, sigma) per unit, broadcast over the batch."""
    shape = (16, *unit_shape)
    features = rng.exponential(1.0, size=shape).astype("float32")
    features.reshape(16, -1)[:3, :2] = 0.0  # a few exact zeros, clamped like the layer prior
    logits = rng.normal(0, 2, size=shape).astype("float32")
    mu = rng.normal(0, 1, size=unit_shape).astype("float32")
    sigma = rng.uniform(0.3, 2.0, size=unit_shape).astype("float32")
    layer = InformationDropout(prior="log_normal", prior_shape="unit")
    layer.build([(None, *unit_shape)] * 2)
    assert tuple(layer.prior_mu.shape) == unit_shape == tuple(layer.prior_log_sigma.shape)
    layer.prior_mu.assign(mu)
    layer.prior_log_sigma.assign(np.log(sigma))
    ours = np_(layer.kl(features, logits))
    loc = np.log(np.maximum(features, klf.FEATURE_FLOOR)).astype("float64")
    expected = tfd.kl_divergence(
        tfd.Normal(loc, np_(layer.alpha(logits))),
        tfd.Normal(mu.astype("float64"), sigma.astype("float64")),  # broadcast over the batch
    ).numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5)
    # The same values as a layer-wide prior equal to one unit's parameters, on that unit.
    flat = (slice(None), *([0] * len(unit_shape)))
    single = log_normal_layer(float(mu[flat[1:]]), float(sigma[flat[1:]]))
    np.testing.assert_allclose(ours[flat], np_(single.kl(features, logits))[flat], rtol=1e-5)


@pytest.mark.parametrize("f, logit", [(0.5, -1.0), (2.0, 1.5), (1e-6, 0.0)])
def test_log_normal_kl_matches_monte_carlo_of_tfp_lognormal(f, logit):
    """KL(q || p) = E_q[log q(z) - log p(z)] over z = f * eps, estimated with TFP LogNormals."""
    mu, sigma = -0.4, 0.8
    layer = log_normal_layer(mu, sigma)
    closed = float(np_(layer.kl(np.array([[f]], "float32"), np.array([[logit]], "float32")))[0, 0])
    alpha = float(np_(layer.alpha(np.array([logit], "float32")))[0])
    q = tfd.LogNormal(np.float64(np.log(max(f, klf.FEATURE_FLOOR))), np.float64(alpha))
    p = tfd.LogNormal(np.float64(mu), np.float64(sigma))
    n = 200_000
    z = q.sample(n, seed=7)
    ratio = (q.log_prob(z) - p.log_prob(z)).numpy().astype("float64")
    estimate, std_err = ratio.mean(), ratio.std(ddof=1) / np.sqrt(n)
    assert abs(estimate - closed) < 4 * std_err + 1e-6, (estimate, closed, std_err)


def test_log_uniform_kl_is_minus_entropy_plus_constant():
    layer = InformationDropout(prior="log_uniform", max_alpha=0.7, min_alpha=0.001)
    logits = np.linspace(-8, 8, 41).astype("float32")
    ours = np_(layer.kl(np.ones_like(logits), logits))
    alpha = np_(layer.alpha(logits))
    entropy = tfd.Normal(0.0, alpha).entropy().numpy()
    # KL(a_i) - KL(a_j) = -(H(a_i) - H(a_j)) for every pair.
    np.testing.assert_allclose(
        ours[:, None] - ours[None, :], -(entropy[:, None] - entropy[None, :]), atol=1e-5
    )
    # The official constant: zero at the largest alpha, positive below it, independent of f.
    top = np_(layer.kl(np.array([3.0], "float32"), np.array([40.0], "float32")))
    assert abs(top[0]) < 1e-6
    assert np.all(ours > 0)
    np.testing.assert_allclose(np_(layer.kl(np.full_like(logits, 7.0), logits)), ours)


def test_gaussian_sampler_kl_matches_tfp_multivariate():
    mean = rng.normal(0, 1.5, size=(32, 6)).astype("float32")
    log_var = rng.normal(0, 1.0, size=(32, 6)).astype("float32")
    ours = np_(GaussianSampler().kl(mean, log_var)).sum(axis=1)
    q = tfd.MultivariateNormalDiag(mean.astype("float64"), np.exp(0.5 * log_var.astype("float64")))
    p = tfd.MultivariateNormalDiag(np.zeros(6), np.ones(6))
    np.testing.assert_allclose(ours, tfd.kl_divergence(q, p).numpy(), rtol=1e-4, atol=1e-5)


def test_added_loss_is_weighted_batch_mean_of_summed_kl():
    features = rng.exponential(1.0, size=(16, 3, 4)).astype("float32")
    logits = rng.normal(size=(16, 3, 4)).astype("float32")
    for layer in (
        InformationDropout(prior="log_uniform", kl_weight=0.25),
        InformationDropout(prior="log_normal", kl_weight=0.25),
    ):
        layer([features, logits], training=True)
        (loss,) = layer.losses
        expected = 0.25 * np_(layer.kl(features, logits)).sum(axis=(1, 2)).mean()
        np.testing.assert_allclose(float(np_(loss)), expected, rtol=1e-5)
    silent = InformationDropout(kl_weight=0.0)
    silent([features, logits], training=True)
    assert silent.losses == []
