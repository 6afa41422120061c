"""The compiled importance-weighted NLL (ibvae.vae.evaluate.iw_nll) against a plain NumPy
reference on small fixed models, for every latent with a proper prior.

The reference is the former algorithm: NumPy noise, every image repeated against its codes,
log-weights ``log p(x | z) + log p(u) - log q(u | x)`` in float64 (the decoder too, its Dense
layers in NumPy) and a log-mean-exp in NumPy.
Two comparisons:

* the same noise (the test draws, outside the compiled function, the stream that iw_nll draws
  inside it): the estimates must agree to float32 round-off;
* independent noise: the two estimates must agree within their Monte-Carlo error, four
  standard deviations of the difference, the standard deviation of one estimate taken from
  the spread of 16 independent reference runs. (The delta-method error from one run's
  weights, ``Var(w / mean w) / k``, came out 1.5x too small on these skewed weights.)
"""

import keras
import numpy as np
import pytest
from scipy.special import logsumexp

from ibvae import IbvaeError
from ibvae.vae import evaluate as ev
from ibvae.vae.config import VAEModelConfig
from ibvae.vae.model import build_vae
from ibvae.vae.nets import HEAD_NAMES

IMAGE = (6, 6, 1)
N_IMAGES, K = 20, 500
REPLICATES = 16  # independent reference runs, whose spread gives the Monte-Carlo error
CASES = [
    ("gaussian", "layer"),
    ("information_dropout_lognormal", "layer"),
    ("information_dropout_lognormal", "unit"),
]


def fixed_model(latent, prior_shape="layer"):
    """A 36-16-4 VAE with fixed random weights (Glorot-normal from NumPy). The encoder's heads are set so that the
    posterior differs from image to image and from the prior, and is wider than the prior
    (alpha ~ 0.6 against a log-normal sigma <= 0.5; std ~ 1.3 against N(0, 1)): then
    ``p(u) / q(u | x)`` is bounded, the weights have a finite variance and the standard error
    below means what it says. The log-normal prior is moved off N(0, 1), a different one per
    unit for ``prior_shape="unit"``."""
    config = VAEModelConfig(latent=latent, latent_dim=4, hidden=[16], prior_shape=prior_shape)
    model = build_vae(config, IMAGE, seed=0)
    rng = np.random.default_rng(0)  # the same weights on every backend
    for net in (model.encoder, model.decoder):
        for layer in net.layers:
            if layer.get_weights():
                kernel, bias = layer.get_weights()
                scale = np.sqrt(2.0 / (kernel.shape[0] + kernel.shape[1]))
                layer.set_weights([scale * rng.standard_normal(kernel.shape), np.zeros_like(bias)])
    a_head, b_head = (model.encoder.get_layer(n) for n in HEAD_NAMES[latent])
    kernel, bias = a_head.get_weights()
    a_head.set_weights([kernel, bias + 0.5])
    kernel, bias = b_head.get_weights()
    b_head.set_weights([0.3 * kernel, bias + (0.5 if latent == "gaussian" else 2.0)])
    if latent == "information_dropout_lognormal":
        layer = model.latent_layer
        shape = tuple(layer.prior_mu.shape)
        mu = np.resize([-0.3, 0.1, -0.2, 0.2], shape) if shape else -0.1
        sigma = np.resize([0.4, 0.5, 0.35, 0.45], shape) if shape else 0.45
        layer.prior_mu.assign(np.asarray(mu, np.float32))
        layer.prior_log_sigma.assign(np.log(np.asarray(sigma, np.float32)))
    return model


@pytest.fixture(scope="module")
def models():
    """Each fixed model built once for the module (``models[latent, prior_shape]``)."""
    built = {}

    def get(latent, prior_shape="layer"):
        if (latent, prior_shape) not in built:
            built[latent, prior_shape] = fixed_model(latent, prior_shape)
        return built[latent, prior_shape]

    return get


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(7)
    p = rng.uniform(0.1, 0.9, size=(N_IMAGES, *IMAGE))
    return (rng.random(p.shape) < p).astype(np.float32)


def _log_normal(u, mean, std):
    return np.sum(-0.5 * np.square((u - mean) / std) - np.log(std) - 0.5 * np.log(2 * np.pi), -1)


def numpy_decoder(model, z):
    """The decoder's logits in float64 NumPy: its Dense layers (ReLU but the last)."""
    dense = [layer for layer in model.decoder.layers if layer.get_weights()]
    h = z
    for i, layer in enumerate(dense):
        kernel, bias = (np.asarray(w, np.float64) for w in layer.get_weights())
        h = h @ kernel + bias
        h = np.maximum(h, 0.0) if i < len(dense) - 1 else h
    return h


def reference_log_weights(model, x, eps, posterior=None):
    """``(N, k)`` log importance weights of the former NumPy algorithm for noise ``eps``
    (``posterior``: ``model.posterior(x)`` if already computed)."""
    n, k, d = eps.shape
    mean, std = model.posterior_u(*(posterior or model.posterior(x)))
    mean, std = mean[:, None, :], std[:, None, :]
    u = mean + std * eps
    logits = numpy_decoder(model, model.u_to_z(u).reshape(n * k, d)).reshape(n, k, -1)
    target = np.repeat(x, k, axis=0).reshape(n, k, -1)
    log_lik = -np.sum(np.logaddexp(0.0, logits) - target * logits, axis=-1)
    mu, sigma = model.prior()
    return log_lik + _log_normal(u, mu, sigma) - _log_normal(u, mean, std)


def reference_estimate(log_w):
    """The IW-NLL (nats per image) of log-weights ``(N, k)``."""
    return float(np.mean(np.log(log_w.shape[1]) - logsumexp(log_w, axis=1)))


@pytest.mark.parametrize(("latent", "prior_shape"), CASES)
def test_iw_nll_matches_the_reference_given_the_same_noise(models, images, latent, prior_shape):
    """One compiled call (chunk = N k): its noise is one normal draw of shape (N, k, d) from
    a generator seeded with ``seed``."""
    model = models(latent, prior_shape)
    k = 50
    eps = keras.random.normal((N_IMAGES, k, model.latent_dim), seed=keras.random.SeedGenerator(3))
    expected = reference_estimate(reference_log_weights(model, images, np.asarray(eps)))
    assert ev.iw_nll(model, images, k=k, seed=3, chunk=N_IMAGES * k) == pytest.approx(
        expected, abs=2e-3
    )


def test_k_above_the_chunk_is_split_into_blocks_and_a_seed_gives_one_estimate(models, images):
    """k = 10 in chunks of 4: three calls of 4 codes, the last with 2 that count, combined
    with logaddexp; the same noise stream as three draws of a generator seeded with ``seed``.
    The same seed gives the same number again after another seed ran."""
    model, x = models("gaussian"), images[:1]
    generator = keras.random.SeedGenerator(5)
    draws = [keras.random.normal((1, 4, model.latent_dim), seed=generator) for _ in range(3)]
    eps = np.concatenate([np.asarray(e) for e in draws], axis=1)[:, :10]
    expected = reference_estimate(reference_log_weights(model, x, eps))
    first = ev.iw_nll(model, x, k=10, seed=5, chunk=4)
    assert first == pytest.approx(expected, abs=2e-3)
    other = ev.iw_nll(model, x, k=10, seed=6, chunk=4)
    assert other != first
    assert ev.iw_nll(model, x, k=10, seed=5, chunk=4) == first  # the compiled function reused


@pytest.mark.parametrize(("latent", "prior_shape"), CASES)
def test_iw_nll_agrees_with_the_reference_within_its_monte_carlo_error(
    models, images, latent, prior_shape
):
    model = models(latent, prior_shape)
    rng, posterior = np.random.default_rng(11), model.posterior(images)
    shape = (N_IMAGES, K, model.latent_dim)
    estimates = [
        reference_estimate(
            reference_log_weights(model, images, rng.standard_normal(shape), posterior)
        )
        for _ in range(REPLICATES)
    ]
    expected, spread = np.mean(estimates), np.std(estimates, ddof=1)
    # One run's error is ~spread, the reference mean's spread / sqrt(REPLICATES); the same k
    # for both, so their (small) bias is the same.
    tolerance = 4 * spread * np.sqrt(1 + 1 / REPLICATES)
    assert 1e-3 < tolerance < 0.5, tolerance  # a spread that makes the comparison mean something
    got = ev.iw_nll(model, images, k=K, seed=0, chunk=1000)  # 2 images per call, 10 calls
    assert abs(got - expected) < tolerance, (got, expected, spread)
    # The estimate is not the ELBO: a one-sample estimate is higher by more than the error.
    assert ev.iw_nll(model, images, k=1, seed=0) > expected + tolerance


def test_iw_nll_refuses_the_log_uniform_latent_and_bad_arguments(models, images):
    with pytest.raises(IbvaeError, match="improper"):
        ev.iw_nll(models("information_dropout"), images, k=5)
    model = models("gaussian")
    with pytest.raises(IbvaeError, match="importance samples"):
        ev.iw_nll(model, images, k=0)
    with pytest.raises(IbvaeError, match="chunk"):
        ev.iw_nll(model, images, k=5, chunk=0)
