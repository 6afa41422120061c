"""The API surface gives no silent wrong result: images are scaled by what their values say,
every entry point of the VAE checks its input, bad numbers and shapes are one IbvaeError, a
config file naming a key twice is refused."""

import keras
import numpy as np
import pytest

import ibvae
from ibvae import IbvaeError
from ibvae import config as cfg
from ibvae.data import as_dataset
from ibvae.vae.config import VAEConfig, VAEModelConfig
from ibvae.vae.model import VAE, build_vae

SMALL = VAEModelConfig(latent="gaussian", latent_dim=2, hidden=[8])


@pytest.fixture(scope="module")
def grey():
    """uint8 grey-level digits-like images and the same images in [0, 1]."""
    x = np.random.default_rng(0).integers(0, 256, (40, 8, 8), dtype=np.uint8)
    return x, x[..., None].astype(np.float32) / 255


@pytest.fixture(scope="module")
def vae():
    keras.utils.set_random_seed(0)
    model = build_vae(VAEModelConfig(latent="information_dropout_lognormal", latent_dim=2,
                                     hidden=[8], targets="continuous"), (8, 8, 1), seed=0)
    model.compile(keras.optimizers.Adam(1e-3))
    return model


def test_binary_images_stored_as_integers_stay_binary():
    x = np.random.default_rng(0).integers(0, 2, (10, 28, 28), dtype=np.uint8)
    ds = as_dataset((x, x))
    assert ds.x_train.max() == 1.0 and ds.x_test.max() == 1.0
    np.testing.assert_array_equal(ds.x_train[..., 0], x)


def test_grey_levels_and_binary_integers_in_one_dataset_are_refused():
    binary = np.ones((4, 8, 8), np.uint8)
    grey = np.full((4, 8, 8), 200, np.uint8)
    with pytest.raises(IbvaeError, match="different pixel scales.*binary images"):
        as_dataset((binary, grey))


def test_uint8_images_give_the_same_numbers_as_their_unit_floats(vae, grey):
    x8, x01 = grey
    np.testing.assert_allclose(vae.encode(x8), vae.encode(x01), rtol=1e-6)
    a = ibvae.evaluate_vae(vae, x8, iw=2, seed=0)
    b = ibvae.evaluate_vae(vae, x01, iw=2, seed=0)
    assert a["neg_elbo"] == pytest.approx(b["neg_elbo"]) and a["iw_nll"] == pytest.approx(b["iw_nll"])


def test_continuous_targets_train_finite_on_uint8(vae, grey):
    history = vae.fit(grey[0], epochs=1, batch_size=20, verbose=0).history
    assert np.isfinite(history["loss"][0]) and history["loss"][0] > 0


BAD_IMAGES = {
    "nan": (np.full((4, 8, 8, 1), np.nan, np.float32), "NaN or inf"),
    "inf": (np.full((4, 8, 8, 1), np.inf, np.float32), "NaN or inf"),
    "floats above 1": (np.full((4, 8, 8, 1), 3.0, np.float32), r"must lie in \[0, 1\]"),
    "negative floats": (np.full((4, 8, 8, 1), -0.5, np.float32), r"must lie in \[0, 1\]"),
    "another size": (np.zeros((4, 9, 9, 1), np.float32), r"model expects a non-empty batch \(N, 8, 8, 1\)"),
    "no batch": (np.zeros((8, 8, 1), np.float32), r"model expects a non-empty batch \(N, 8, 8, 1\)"),
}
ENTRY_POINTS = {
    "fit": lambda m, x: m.fit(x, epochs=1, verbose=0),
    "encode": lambda m, x: m.encode(x),
    "evaluate_vae": lambda m, x: ibvae.evaluate_vae(m, x, iw=2),
    "eval_targets": lambda m, x: m.eval_targets(x),
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("bad", BAD_IMAGES)
def test_every_entry_point_of_the_vae_refuses_bad_images(vae, entry, bad):
    x, message = BAD_IMAGES[bad]
    with pytest.raises(IbvaeError, match=message):
        ENTRY_POINTS[entry](vae, x)


@pytest.mark.parametrize("z, message", [
    (np.zeros((3, 5), np.float32), r"codes of shape \(3, 5\) but the model expects"),
    (np.full((3, 2), np.nan, np.float32), "NaN or inf"),
])
def test_decode_refuses_codes_of_another_shape_or_not_finite(vae, z, message):
    with pytest.raises(IbvaeError, match=message):
        vae.decode(z)


@pytest.mark.parametrize("options, message", [
    ({"iw": 2.5}, "iw must be an integer >= 0 or None, got 2.5"),
    ({"n_samples": 0}, "n_samples must be an integer >= 1"),
])
def test_evaluate_vae_refuses_counts_that_are_not_whole_numbers(vae, grey, options, message):
    with pytest.raises(IbvaeError, match=message):
        ibvae.evaluate_vae(vae, grey[1], **options)


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5])
def test_a_vae_seed_outside_what_the_backends_take_is_one_error(seed):
    with pytest.raises(IbvaeError, match=r"seed must be None or an integer in \[0, 2\*\*32\)"):
        build_vae(SMALL, (8, 8, 1), seed=seed)


def test_the_largest_seed_builds():
    assert build_vae(SMALL, (8, 8, 1), seed=2**32 - 1).seed == 2**32 - 1


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_config_seeds_are_bounded_where_they_are_declared(seed):
    from ibvae.classifier.config import ClassifierConfig, ClutterConfig

    for build in (lambda: VAEConfig(train={"seed": seed}),
                  lambda: ClassifierConfig(train={"seed": seed}),
                  lambda: ClutterConfig(seed=seed)):
        with pytest.raises(IbvaeError, match=f"seed must be (>= 0|< 4294967296), got {seed}"):
            build()


def test_a_key_given_twice_in_a_config_file_names_the_key_and_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  beta: 0.5\n  latent_dim: 4\n  beta: 2.0\n")
    with pytest.raises(IbvaeError, match=r"c\.yaml: key 'beta' appears twice \(lines 2 and 4\)"):
        cfg.load(VAEConfig, path)


def test_a_per_unit_prior_on_a_conv_latent_evaluates():
    image = keras.Input((28, 28, 1))
    heads = [keras.layers.Conv2D(2, 3, strides=4, padding="same")(image) for _ in range(2)]
    code = keras.Input((7, 7, 2))
    out = keras.layers.Conv2DTranspose(1, 3, strides=4, padding="same")(code)
    model = VAE(keras.Model(image, heads), keras.Model(code, out),
                latent="information_dropout_lognormal", prior_shape="unit", seed=0)
    x = np.random.default_rng(0).random((6, 28, 28, 1)).astype(np.float32)
    report = ibvae.evaluate_vae(model, x, iw=3)
    assert model.latent_shape == (7, 7, 2) and np.isfinite(report["neg_elbo"])
    assert np.isfinite(report["iw_nll"]) and report["iw_k"] == 3
