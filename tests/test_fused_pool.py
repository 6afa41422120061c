"""The information pools compute features and alpha logits as one convolution (one matmul)
with the two kernels concatenated at call time. Here: that gives the outputs, the KL loss and
the gradients of two separate convolutions, computed from the same variables with plain
``keras.ops`` (the reference below knows nothing of the fusion), and the saved weight layout
is the one from before the fusion, so older ``.keras`` files load and predict the same."""

import io
import zipfile

import h5py
import keras
import numpy as np
import pytest
from keras import ops

from ibvae import InformationConv2D, InformationDense, InformationDropout, InformationPoolBN
from ibvae import kl as klf
from ibvae.layers.conv import PaddedConv2D, fused_linear

rng = np.random.default_rng(7)
SEED = 11
RTOL, ATOL = 1e-5, 1e-5  # float32 in another order (one wide op; BN written out here)


def np_(x):
    return np.asarray(ops.convert_to_numpy(x))


def pool_cases():
    """(pool factory, input shape): every pool with a features / alpha pair, each padding."""
    return [
        (lambda: InformationConv2D(5, 3, strides=2, padding="symmetric", seed=SEED), (3, 9, 9, 4)),
        (lambda: InformationConv2D(5, 3, strides=2, padding="same", seed=SEED), (3, 8, 8, 4)),
        (lambda: InformationConv2D(5, 3, strides=1, padding="valid", prior="log_normal",
                                   seed=SEED), (3, 7, 7, 4)),
        (lambda: InformationPoolBN(6, padding="symmetric", seed=SEED), (4, 10, 10, 3)),
        (lambda: InformationPoolBN(6, padding="same", max_alpha=0.7, seed=SEED), (4, 8, 8, 3)),
        (lambda: InformationDense(7, seed=SEED), (5, 6)),
    ]


def made(case):
    """A built pool with random weights (non-zero biases, BN statistics away from 0 / 1)
    and an input for it."""
    make, shape = pool_cases()[case]
    pool = make()
    pool.build(shape)
    for v in pool.weights:
        if "seed_generator" in v.path:
            continue
        value = rng.normal(size=v.shape) * 0.4
        if "variance" in v.path or "gamma" in v.path:
            value = 1.0 + np.abs(value)
        v.assign(value.astype("float32"))
    return pool, rng.uniform(0.0, 1.0, size=shape).astype("float32")


def pair(pool):
    """The two projection layers (the features' convolution inside BN-ReLU) and, for
    :class:`InformationPoolBN`, its batch norm."""
    if isinstance(pool, InformationPoolBN):
        return pool.features.conv, pool.alpha_logits, pool.features.bn
    return pool.features, pool.alpha_logits, None


def reference_projections(pool, x, training, values=None):
    """Features and alpha logits as two separate convolutions / matmuls in plain ops, from
    the pool's variables (or ``values``: {variable path: tensor}, for gradients)."""
    values = values or {}
    get = lambda v: values.get(v.path, v.value)  # noqa: E731
    features_layer, alpha_layer, bn = pair(pool)

    def project(layer):
        if isinstance(layer, PaddedConv2D):
            p = layer.pad
            padded = ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]]) if p else x
            y = ops.conv(padded, get(layer.kernel), strides=layer.strides, padding=layer.padding)
        else:
            y = ops.matmul(x, get(layer.kernel))
        return y + get(layer.bias) if layer.use_bias else y

    h, alpha_logits = project(features_layer), project(alpha_layer)
    if bn is None:
        return features_layer.activation(h), alpha_logits
    if training:
        mean, var = ops.moments(h, axes=(0, 1, 2))
    else:
        mean, var = get(bn.moving_mean), get(bn.moving_variance)
    h = (h - mean) / ops.sqrt(var + bn.epsilon) * get(bn.gamma) + get(bn.beta)
    return ops.relu(h), alpha_logits


def reference_dropout(pool):
    """A fresh noise layer with the pool's settings, prior and seed: its first noise draw is
    the pool's first."""
    d = pool.dropout
    layer = InformationDropout(prior=d.prior, max_alpha=d.max_alpha, min_alpha=d.min_alpha,
                               kl_weight=d.kl_weight, seed=SEED)
    if d.prior == "log_normal":
        layer.build([(1,), (1,)])
        layer.prior_mu.assign(d.prior_mu.value)
        layer.prior_log_sigma.assign(d.prior_log_sigma.value)
    return layer


@pytest.mark.parametrize("case", range(len(pool_cases())))
def test_fused_pool_output_and_kl_equal_two_convolutions(case):
    pool, x = made(case)
    reference = reference_dropout(pool)
    for training in (True, False):  # training first: the first noise draw of both layers
        features, alpha_logits = reference_projections(pool, x, training)
        expected = np_(reference([features, alpha_logits], training=training))
        np.testing.assert_allclose(np_(pool(x, training=training)), expected, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(np_(pool.losses[-1]), np_(reference.losses[-1]), rtol=RTOL)
        if not training:  # at inference the pool's output is its features
            np.testing.assert_allclose(np_(pool(x, training=False)), np_(features), rtol=RTOL,
                                       atol=ATOL)
    # The comparison had noise in it: the pool's training output is not its features.
    assert not np.allclose(np_(pool(x, training=True)), np_(pool(x, training=False)), atol=1e-3)


def _gradients(fn, *args):
    """Gradients of the scalar ``fn(*args)`` w.r.t. every argument, on the active backend."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.grad(fn, argnums=tuple(range(len(args))))(*args)
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


@pytest.mark.parametrize("case", range(len(pool_cases())))
def test_fused_pool_gradients_equal_two_convolutions(case):
    """d(weighted output + KL loss) w.r.t. the input and every projection variable (both
    kernels, the biases, BN's gamma and beta), in training mode with the same noise."""
    pool, x = made(case)
    trainable = pool.trainable_variables
    weights = [np_(v) for v in trainable]
    non_trainable = [v.value for v in pool.non_trainable_variables]  # seed state: never drawn
    out_shape = (x.shape[0], *pool.compute_output_shape(x.shape)[1:])
    w_out = rng.normal(size=out_shape).astype("float32")
    eps = keras.random.normal(out_shape, seed=keras.random.SeedGenerator(SEED))  # first draw
    d = pool.dropout

    def fused(x, *weights):
        out, _, losses = pool.stateless_call(
            list(weights), non_trainable, x, training=True, return_losses=True
        )
        return ops.sum(out * w_out) + sum(losses)

    def reference(x, *weights):
        values = {v.path: w for v, w in zip(trainable, weights, strict=True)}
        features, alpha_logits = reference_projections(pool, x, True, values)
        alpha = d.min_alpha + d.max_alpha * ops.sigmoid(alpha_logits)
        out = features * ops.exp(alpha * eps)
        if d.prior == "log_uniform":
            kl = klf.log_uniform_kl(alpha, d.alpha_top)
        else:
            mu, log_sigma = values[d.prior_mu.path], values[d.prior_log_sigma.path]
            kl = klf.log_normal_kl(features, alpha, mu, ops.exp(log_sigma))
        kl_loss = d.kl_weight * ops.mean(ops.sum(ops.reshape(kl, (x.shape[0], -1)), axis=1))
        return ops.sum(out * w_out) + kl_loss

    got = [np_(g) for g in _gradients(fused, x, *weights)]
    expected = [np_(g) for g in _gradients(reference, x, *weights)]
    names = ["inputs", *(v.path for v in trainable)]
    kernels = [n for n in names if n.endswith("kernel")]
    assert len(kernels) == 2  # the features' and the alpha kernel, each its own gradient
    for name, g, e in zip(names, got, expected, strict=True):
        assert np.any(e != 0), name
        scale = np.abs(e).max()
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5 * scale, err_msg=name)


# The weights of a model holding one pool of each kind, as saved before the pools were
# fused (file paths and shapes in model.weights.h5): two kernels per pool, as now.
LAYOUT_BEFORE_FUSION = {
    "layers/information_conv2d/alpha_logits/vars/0": (3, 3, 3, 5),
    "layers/information_conv2d/alpha_logits/vars/1": (5,),
    "layers/information_conv2d/features/vars/0": (3, 3, 3, 5),
    "layers/information_conv2d/features/vars/1": (5,),
    "layers/information_dense/alpha_logits/vars/0": (300, 3),
    "layers/information_dense/alpha_logits/vars/1": (3,),
    "layers/information_dense/features/vars/0": (300, 3),
    "layers/information_dense/features/vars/1": (3,),
    "layers/information_pool_bn/alpha_logits/vars/0": (3, 3, 3, 4),
    "layers/information_pool_bn/alpha_logits/vars/1": (4,),
    "layers/information_pool_bn/features/bn/vars/0": (4,),
    "layers/information_pool_bn/features/bn/vars/1": (4,),
    "layers/information_pool_bn/features/bn/vars/2": (4,),
    "layers/information_pool_bn/features/bn/vars/3": (4,),
    "layers/information_pool_bn/features/conv/vars/0": (3, 3, 3, 4),
}


def saved_layout(path) -> dict[str, tuple[int, ...]]:
    """{dataset path: shape} of the pools' weights in a ``.keras`` file (seed states left
    out: they are the noise layers', untouched by the fusion)."""
    found = {}
    with zipfile.ZipFile(path) as z, h5py.File(io.BytesIO(z.read("model.weights.h5"))) as f:
        f.visititems(lambda name, obj: found.update({name: obj.shape})
                     if isinstance(obj, h5py.Dataset) and "/information_dropout" not in name
                     else None)
    return found


def test_saved_weights_keep_the_layout_of_before_so_old_files_load_and_predict_the_same(tmp_path):
    """The fusion concatenates the kernels at call time and saves them as before, so a file
    written now has the layout a file written before the fusion has (pinned above); such a
    file loads and predicts what two separate convolutions of its weights give."""
    inputs = keras.Input((10, 10, 3))
    pools = [
        InformationPoolBN(4, padding="symmetric", seed=1),
        InformationConv2D(5, 3, strides=2, padding="same", seed=2),
        InformationDense(3, seed=3),
    ]
    outputs = [pools[0](inputs), pools[1](inputs), pools[2](keras.layers.Flatten()(inputs))]
    model = keras.Model(inputs, outputs)
    for v in model.weights:
        if "seed_generator" not in v.path:
            value = rng.normal(size=v.shape) * 0.3 + (1.0 if "variance" in v.path else 0.0)
            v.assign(value.astype("float32"))
    path = tmp_path / "pools.keras"
    model.save(path)
    assert saved_layout(path) == LAYOUT_BEFORE_FUSION
    reloaded = keras.models.load_model(path)
    x = rng.uniform(size=(2, 10, 10, 3)).astype("float32")
    inputs_of = [x, x, x.reshape(2, -1)]
    for pool, inp, out in zip(pools, inputs_of, reloaded(x, training=False), strict=True):
        features, _ = reference_projections(pool, inp, training=False)
        np.testing.assert_allclose(np_(out), np_(features), rtol=RTOL, atol=ATOL)


def test_fused_linear_refuses_layers_of_another_geometry():
    x = np.zeros((1, 8, 8, 2), "float32")
    a = PaddedConv2D(3, 3, strides=2, padding="same")
    b = PaddedConv2D(3, 3, strides=1, padding="same")
    a.build(x.shape), b.build(x.shape)
    with pytest.raises(ValueError, match="geometry"):
        fused_linear(x, [a, b])
