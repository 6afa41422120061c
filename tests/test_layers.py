"""Behaviour of the layers on the active backend (CI runs this file under TensorFlow and JAX;
it also runs under torch where a user has it): noise statistics, inference, seeding,
gradients, Keras' layer-test habits (symbolic vs eager shapes, dtypes, config round trip,
mixed precision), serialization, bad input."""

import keras
import numpy as np
import pytest
from keras import ops

import ibvae
from ibvae import (
    ConvBNReLU,
    GaussianSampler,
    InformationConv2D,
    InformationDense,
    InformationDropout,
    InformationPoolBN,
    PaddedConv2D,
)

rng = np.random.default_rng(1)


def np_(x):
    return np.asarray(ops.convert_to_numpy(x))


def logit_for(alpha: float, max_alpha: float = 0.7, min_alpha: float = 0.001) -> float:
    p = (alpha - min_alpha) / max_alpha
    return float(np.log(p / (1 - p)))


@pytest.mark.parametrize("alpha", [0.05, 0.3, 0.65])
def test_log_noise_has_mean_zero_and_std_alpha(alpha):
    n = 400_000
    features = rng.uniform(0.5, 2.0, size=(n // 100, 100)).astype("float32")
    logits = np.full_like(features, logit_for(alpha))
    out = np_(InformationDropout(seed=3)([features, logits], training=True))
    log_eps = np.log(out.astype("float64") / features)
    # Standard errors of the sample mean (alpha / sqrt n) and std (alpha / sqrt(2n)).
    assert abs(log_eps.mean()) < 4 * alpha / np.sqrt(n)
    assert abs(log_eps.std() - alpha) < 4 * alpha / np.sqrt(2 * n)


def test_gaussian_sampler_noise_statistics():
    n = 200_000
    mean = np.full((n // 50, 50), 1.5, "float32")
    log_var = np.full_like(mean, np.log(0.25))
    out = np_(GaussianSampler(seed=5)([mean, log_var], training=True)).astype("float64")
    assert abs(out.mean() - 1.5) < 4 * 0.5 / np.sqrt(n)
    assert abs(out.std() - 0.5) < 4 * 0.5 / np.sqrt(2 * n)


@pytest.mark.parametrize(
    "layer", [InformationDropout(), InformationDropout(prior="log_normal"), GaussianSampler()]
)
def test_inference_returns_input_exactly(layer):
    a = rng.exponential(size=(8, 7)).astype("float32")
    b = rng.normal(size=(8, 7)).astype("float32")
    np.testing.assert_array_equal(np_(layer([a, b], training=False)), a)
    np.testing.assert_array_equal(np_(layer([a, b])), a)


def test_monte_carlo_sampling_at_inference_on_request():
    a = np.ones((4, 1000), "float32")
    b = np.zeros_like(a)
    noisy = np_(InformationDropout(seed=1)([a, b], training=False, sample=True))
    assert np.std(np.log(noisy)) > 0.1
    flagged = InformationDropout(sample_at_inference=True, seed=1)
    assert np.std(np.log(np_(flagged([a, b], training=False)))) > 0.1
    np.testing.assert_array_equal(np_(flagged([a, b], training=False, sample=False)), a)


def test_fixed_seed_repeats_and_seeds_differ():
    a = np.ones((16, 32), "float32")
    b = np.zeros_like(a)
    first = np_(InformationDropout(seed=42)([a, b], training=True))
    again = np_(InformationDropout(seed=42)([a, b], training=True))
    other = np_(InformationDropout(seed=43)([a, b], training=True))
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    layer = InformationDropout(seed=42)
    assert not np.allclose(np_(layer([a, b], training=True)), np_(layer([a, b], training=True)))


def _gradients(fn, *args):
    """d sum(fn(*args)) / d args, on whichever backend is active."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.grad(lambda *a: fn(*a), argnums=tuple(range(len(args))))(*args)
    if backend == "tensorflow":
        import tensorflow as tf

        args = [tf.constant(a) for a in args]
        with tf.GradientTape() as tape:
            tape.watch(args)
            y = fn(*args)
        return tape.gradient(y, args)
    if backend == "torch":
        import torch

        args = [torch.tensor(np.asarray(a), requires_grad=True) for a in args]
        return torch.autograd.grad(fn(*args), args)
    raise NotImplementedError(backend)


@pytest.mark.parametrize(
    "prior, prior_shape",
    [("log_uniform", "layer"), ("log_normal", "layer"), ("log_normal", "unit")],
)
def test_gradients_reach_both_inputs_and_prior_parameters(prior, prior_shape):
    layer = InformationDropout(prior=prior, prior_shape=prior_shape, seed=0, kl_weight=1.0)
    features = rng.uniform(0.5, 2.0, size=(8, 4)).astype("float32")
    logits = rng.normal(size=(8, 4)).astype("float32")
    layer.build([features.shape, logits.shape])
    trainable = [np_(v) for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]

    def objective(f, g, *weights):
        result = layer.stateless_call(
            list(weights), non_trainable, [f, g], training=True, return_losses=True
        )
        out, losses = result[0], result[2]
        return ops.sum(out) + sum(losses)

    grads = [np_(g) for g in _gradients(objective, features, logits, *trainable)]
    assert len(grads) == 2 + (2 if prior == "log_normal" else 0)
    for g in grads:
        assert np.all(np.isfinite(g)) and np.any(g != 0)
    if prior_shape == "unit":  # one gradient per unit for mu and for log sigma, each non-zero
        for g in grads[2:]:
            assert g.shape == (4,) and np.all(g != 0) and len(np.unique(g)) == 4


def test_kl_weight_pushes_alpha_up_when_kl_is_the_only_loss():
    """A model that learns: with only the KL to minimise, alpha rises towards max_alpha."""
    keras.utils.set_random_seed(0)
    x = rng.normal(size=(256, 10)).astype("float32")
    inputs = keras.Input((10,))
    pool = InformationDense(8, kl_weight=1.0, seed=0)
    outputs = pool(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(0.05), loss=lambda y, p: 0.0 * ops.sum(p))
    alpha_before = np_(pool.dropout.alpha(pool.alpha_logits(x))).mean()
    model.fit(x, np.zeros((256, 8), "float32"), epochs=20, batch_size=64, verbose=0)
    alpha_after = np_(pool.dropout.alpha(pool.alpha_logits(x))).mean()
    assert alpha_before < 0.45 and alpha_after > 0.6


def _roundtrip_model(layers_under_test):
    dense_in = keras.Input((6,), name="dense_in")
    image_in = keras.Input((12, 12, 3), name="image_in")
    f = keras.layers.Dense(5, activation="relu")(dense_in)
    g = keras.layers.Dense(5)(dense_in)
    outputs = [
        InformationDropout(prior="log_uniform", seed=1)([f, g]),
        InformationDropout(prior="log_normal", seed=2)(
            [keras.layers.Dense(5, activation="softplus")(dense_in), g]
        ),
        GaussianSampler(seed=3)([f, g]),
        InformationDense(4, prior="log_normal", seed=4)(dense_in),
        InformationDropout(prior="log_normal", prior_shape="unit", seed=7)(
            [keras.layers.Dense(5, activation="softplus")(dense_in), g]
        ),
        InformationConv2D(3, 3, strides=2, padding="same", seed=5)(image_in),
        InformationConv2D(3, 3, strides=2, padding="symmetric", max_alpha=1.0, seed=6)(image_in),
    ]
    return keras.Model([dense_in, image_in], outputs)


def test_models_with_every_layer_save_and_reload_without_custom_objects(tmp_path):
    model = _roundtrip_model(None)
    # Move the log-normal priors away from their initial values so reloading must restore them.
    for layer in model.layers:
        for var in getattr(layer, "trainable_variables", []):
            if "prior_" in var.path:
                var.assign(np.full(var.shape, 0.37, "float32"))
    inputs = [
        rng.normal(size=(5, 6)).astype("float32"),
        rng.uniform(size=(5, 12, 12, 3)).astype("float32"),
    ]
    expected = [np_(o) for o in model(inputs, training=False)]
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    for a, b in zip(expected, reloaded(inputs, training=False), strict=True):
        np.testing.assert_array_equal(a, np_(b))
    kinds = {type(layer).__name__ for layer in reloaded.layers}
    assert {
        "InformationDropout",
        "GaussianSampler",
        "InformationDense",
        "InformationConv2D",
    } <= kinds
    priors = [np_(v) for v in reloaded.trainable_variables if "prior_" in v.path]
    assert len(priors) == 6 and all(np.allclose(v, 0.37) for v in priors)


def test_a_per_unit_prior_keeps_each_units_values_through_save_and_reload(tmp_path):
    inputs = keras.Input((3, 4))
    f = keras.layers.Dense(4, activation="softplus")(inputs)
    g = keras.layers.Dense(4)(inputs)
    model = keras.Model(inputs, InformationDropout(prior="log_normal", prior_shape="unit")([f, g]))
    layer = model.layers[-1]
    mu, log_sigma = rng.normal(size=(2, 3, 4)).astype("float32")
    layer.prior_mu.assign(mu)
    layer.prior_log_sigma.assign(log_sigma)
    path = tmp_path / "unit.keras"
    model.save(path)
    again = keras.models.load_model(path).layers[-1]
    assert again.prior_shape == "unit" and tuple(again.prior_mu.shape) == (3, 4)
    np.testing.assert_array_equal(np_(again.prior_mu), mu)
    np.testing.assert_array_equal(np_(again.prior_log_sigma), log_sigma)
    features = rng.uniform(0.1, 2.0, size=(2, 3, 4)).astype("float32")
    logits = rng.normal(size=(2, 3, 4)).astype("float32")
    np.testing.assert_array_equal(np_(again.kl(features, logits)), np_(layer.kl(features, logits)))


def test_conv_pool_shapes_and_kl_map():
    x = rng.uniform(size=(2, 96, 96, 3)).astype("float32")
    for padding in ("same", "symmetric"):
        pool = InformationConv2D(4, 3, strides=2, padding=padding)
        assert tuple(pool(x).shape) == (2, 48, 48, 4)
        kl_map = np_(pool.kl(x))
        assert kl_map.shape == (2, 48, 48, 4) and np.all(kl_map >= -1e-6)
    assert tuple(InformationConv2D(4, 3, padding="valid")(x).shape) == (2, 94, 94, 4)


def test_pool_output_is_features_at_inference():
    x = rng.normal(size=(3, 6)).astype("float32")
    pool = InformationDense(5, seed=0)
    features, _ = pool.project(x)
    np.testing.assert_array_equal(np_(pool(x, training=False)), np_(features))
    assert np.all(np_(features) >= 0)


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: InformationDropout(prior="gaussian"), ["prior", "log_uniform", "'gaussian'"]),
        (lambda: InformationDropout(max_alpha=0.0), ["max_alpha", "> 0", "0.0"]),
        (lambda: InformationDropout(max_alpha=-1), ["max_alpha", "> 0", "-1"]),
        (lambda: InformationDropout(min_alpha=-0.1), ["min_alpha", ">= 0", "-0.1"]),
        (lambda: InformationDense(3, prior="uniform"), ["prior", "log_normal", "'uniform'"]),
        (lambda: InformationDropout(prior_shape="cell"), ["prior_shape", "unit", "'cell'"]),
        (lambda: InformationDropout(prior_shape="unit"), ["prior_shape='unit'", "log_normal"]),
        (lambda: InformationConv2D(3, padding="full"), ["padding", "symmetric", "'full'"]),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(make, words):
    with pytest.raises(ValueError) as info:
        make()
    for word in words:
        assert word in str(info.value)
    assert isinstance(info.value, ibvae.IbvaeError)


def test_a_per_unit_prior_needs_a_known_unit_shape():
    with pytest.raises(ibvae.IbvaeError, match="fully known"):
        InformationDropout(prior="log_normal", prior_shape="unit").build([(None, None, 4)] * 2)


def test_mismatched_shapes_raise_value_error():
    layer = InformationDropout()
    with pytest.raises(
        ValueError, match=r"features and alpha_logits must have the same shape.*\(4, 3\).*\(4, 5\)"
    ):
        layer([np.ones((4, 3), "float32"), np.ones((4, 5), "float32")])
    with pytest.raises(ValueError, match="mean and log_var"):
        GaussianSampler()([np.ones((2, 3), "float32"), np.ones((2, 4), "float32")])


# --------------------------------------------------------------------------- Keras' habits


def layer_cases():
    """(layer factory, input shapes) for every layer; a list of shapes means a list input."""
    return [
        (lambda: InformationDropout(seed=1), [(3, 5), (3, 5)]),
        (lambda: InformationDropout(prior="log_normal", seed=1), [(3, 2, 4), (3, 2, 4)]),
        (lambda: InformationDropout(prior="log_normal", prior_shape="unit", seed=1),
         [(3, 2, 4), (3, 2, 4)]),
        (lambda: GaussianSampler(seed=1), [(3, 5), (3, 5)]),
        (lambda: InformationDense(6, prior="log_normal", seed=1), (3, 5)),
        (lambda: InformationConv2D(4, 3, strides=2, padding="symmetric", seed=1), (2, 10, 10, 3)),
        (lambda: InformationConv2D(4, 3, strides=2, padding="valid", seed=1), (2, 9, 9, 3)),
        (lambda: InformationPoolBN(4, padding="same", seed=1), (2, 8, 8, 3)),
        (lambda: ConvBNReLU(4, 3, strides=2, padding="symmetric"), (2, 8, 8, 3)),
        (lambda: PaddedConv2D(4, 3, strides=2, padding="symmetric"), (2, 8, 8, 3)),
    ]


def make_inputs(shapes, dtype="float32"):
    if isinstance(shapes, list):
        return [rng.uniform(0.1, 2.0, size=s).astype(dtype) for s in shapes]
    return rng.uniform(0.1, 2.0, size=shapes).astype(dtype)


def symbolic(shapes):
    if isinstance(shapes, list):
        return [keras.Input(batch_shape=(None, *s[1:])) for s in shapes]
    return keras.Input(batch_shape=(None, *shapes[1:]))


@pytest.mark.parametrize("case", range(len(layer_cases())))
def test_symbolic_and_eager_shapes_agree_and_config_round_trips(case):
    make, shapes = layer_cases()[case]
    layer = make()
    eager = [np_(layer(make_inputs(shapes), training=t)) for t in (True, False)]
    sym = make()(symbolic(shapes))
    for out in eager:
        assert out.shape[1:] == tuple(sym.shape[1:]) and out.dtype == np.float32
    assert tuple(layer.compute_output_shape(
        [(None, *s[1:]) for s in shapes] if isinstance(shapes, list) else (None, *shapes[1:])
    ))[1:] == eager[0].shape[1:]
    config = layer.get_config()
    again = type(layer).from_config(config)
    assert again.get_config() == config


@pytest.mark.parametrize("case", range(len(layer_cases())))
def test_mixed_precision_keeps_the_compute_dtype_in_training_and_inference(case):
    make, shapes = layer_cases()[case]
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        layer = make()
        x = make_inputs(shapes)
        for training in (True, False):
            assert keras.backend.standardize_dtype(layer(x, training=training).dtype) == "float16"
        kl = getattr(layer, "kl", None)
        if kl is not None:  # the KL is a loss term: computed in float32
            out = kl(*x) if isinstance(x, list) else kl(x)
            assert keras.backend.standardize_dtype(out.dtype) == "float32"
            assert np.all(np.isfinite(np_(out)))
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_kl_of_a_layer_that_was_never_called_builds_it():
    a = rng.uniform(0.5, 2.0, size=(4, 3)).astype("float32")
    b = rng.normal(size=(4, 3)).astype("float32")
    layer = InformationDropout(prior="log_normal")
    kl = np_(layer.kl(a, b))  # the prior's mu and sigma are created on the way
    assert kl.shape == (4, 3) and layer.built and np.all(kl >= 0)
    pool = InformationConv2D(2, prior="log_normal")
    assert np_(pool.kl(rng.uniform(size=(1, 6, 6, 1)).astype("float32"))).shape == (1, 6, 6, 2)


def test_symmetric_padding_pads_every_side_then_convolves_valid():
    x = rng.normal(size=(1, 8, 8, 2)).astype("float32")
    conv = PaddedConv2D(3, 3, strides=2, padding="symmetric", use_bias=False)
    out = np_(conv(x))
    valid = keras.layers.Conv2D(3, 3, strides=2, padding="valid", use_bias=False)
    valid.build((1, 10, 10, 2))
    valid.set_weights(conv.get_weights())
    expected = np_(valid(np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert out.shape == (1, 4, 4, 3)
