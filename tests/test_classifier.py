"""All-CNN models: shapes in every pool mode, KL losses and their scale, BN recalibration,
save/reload, config validation."""

import keras
import numpy as np
import pytest

from ibvae.classifier import (
    AllCNN,
    ClassifierConfig,
    build_classifier,
    error_percent,
    lr_schedule,
    recalibrate_batchnorm,
)
from ibvae.errors import IbvaeError

X = np.random.default_rng(0).random((4, 32, 32, 1), dtype=np.float32)


@pytest.mark.parametrize("dropout", ["information", "binary", "none"])
@pytest.mark.parametrize("width", [0.125, 0.25])
def test_output_shapes_every_mode_and_width(dropout, width):
    model = build_classifier(ClassifierConfig(dropout=dropout, width=width), (32, 32, 1), 100)
    assert tuple(model(X, training=True).shape) == (4, 10)
    assert tuple(model(X, training=False).shape) == (4, 10)
    # filters scale with the width multiplier: block 4 has int(192 * width) channels
    assert model.pools[3].compute_output_shape((None, 4, 4, 1))[-1] == int(192 * width)
    if dropout == "information":
        assert [tuple(m.shape) for m in model.kl_maps(X)] == [(4, 16, 16), (4, 8, 8),
                                                             (4, 4, 4), (4, 2, 2)]


def test_allcnn32_shapes():
    model = build_classifier(ClassifierConfig(arch="allcnn32", width=0.125, input_keep_prob=0.8),
                             (32, 32, 3), 100)
    x = np.random.default_rng(1).random((2, 32, 32, 3), dtype=np.float32)
    assert tuple(model(x, training=True).shape) == (2, 10)
    assert [tuple(m.shape) for m in model.kl_maps(x)] == [(2, 16, 16, ), (2, 8, 8)]


def test_kl_losses_only_in_information_mode_and_scaled_by_beta_over_n():
    n_train, beta = 1000, 2.0
    info = build_classifier(ClassifierConfig(width=0.125, beta=beta), (32, 32, 1), n_train)
    info(X, training=False)
    losses = [float(v) for v in info.losses]
    assert len(losses) == 4 and all(v > 0 for v in losses)
    # each loss is beta / N_train x (KL summed over units, averaged over the batch)
    expected = [beta / n_train * float(np.mean(np.sum(np.asarray(m), axis=(1, 2))))
                for m in info.kl_maps(X)]
    np.testing.assert_allclose(losses, expected, rtol=1e-5)
    for dropout in ("binary", "none"):
        other = build_classifier(ClassifierConfig(width=0.125, dropout=dropout), (32, 32, 1), 10)
        other(X, training=True)
        assert other.losses == []


def test_noise_only_in_training_and_switchable():
    model = build_classifier(ClassifierConfig(width=0.125), (32, 32, 1), 100)
    a, b = np.asarray(model(X, training=False)), np.asarray(model(X, training=False))
    np.testing.assert_array_equal(a, b)
    noisy = [np.asarray(model(X, training=True)) for _ in range(2)]
    assert np.abs(noisy[0] - noisy[1]).max() > 1e-4
    quiet = [np.asarray(model(X, training=True, noise=False)) for _ in range(2)]
    np.testing.assert_allclose(quiet[0], quiet[1], atol=1e-6)


def test_recalibration_sets_running_stats_to_average_of_batch_stats():
    model = build_classifier(ClassifierConfig(width=0.125), (32, 32, 1), 100)
    bn = model.convs[0][0].bn
    x = np.random.default_rng(2).random((96, 32, 32, 1), dtype=np.float32) * 3
    conv = model.convs[0][0].conv
    pre = np.asarray(conv(x))  # the first BN's input does not depend on any other BN
    n = recalibrate_batchnorm(model, x, batch_size=32)
    assert n == 3
    batch_means = [pre[i : i + 32].mean(axis=(0, 1, 2)) for i in range(0, 96, 32)]
    batch_vars = [pre[i : i + 32].var(axis=(0, 1, 2)) for i in range(0, 96, 32)]
    np.testing.assert_allclose(np.asarray(bn.moving_mean), np.mean(batch_means, 0), rtol=1e-4,
                               atol=1e-6)
    np.testing.assert_allclose(np.asarray(bn.moving_variance), np.mean(batch_vars, 0),
                               rtol=1e-3, atol=1e-6)


def test_recalibration_fixes_noise_shifted_statistics():
    """BN statistics learned with the noise on mis-normalise a noise-free pass; the
    recalibration puts the inference output back next to the noise-free training-mode one."""
    model = build_classifier(ClassifierConfig(width=0.125, max_alpha=1.0), (32, 32, 1), 100)
    x = np.random.default_rng(3).random((64, 32, 32, 1), dtype=np.float32)
    for bn in [lay for lay in model._flatten_layers() if isinstance(lay, keras.layers.BatchNormalization)]:
        bn.momentum = 0.0  # running stats := last noisy batch's statistics
    model(x, training=True)
    for bn in [lay for lay in model._flatten_layers() if isinstance(lay, keras.layers.BatchNormalization)]:
        bn.momentum = 0.99
    target = np.asarray(model(x, training=True, noise=False))
    before = np.abs(np.asarray(model(x, training=False)) - target).mean()
    recalibrate_batchnorm(model, x, batch_size=64)
    after = np.abs(np.asarray(model(x, training=False)) - target).mean()
    assert after < 0.1 * before


def test_save_reload_without_custom_objects(tmp_path):
    model = build_classifier(ClassifierConfig(width=0.125, beta=0.3), (32, 32, 1), 50)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(again, AllCNN) and again.get_config() == model.get_config()
    np.testing.assert_allclose(np.asarray(again(X)), np.asarray(model(X)), atol=1e-6)
    np.testing.assert_allclose(np.asarray(again.kl_maps(X)[2]), np.asarray(model.kl_maps(X)[2]),
                               atol=1e-5)


def test_lr_schedule_steps_down_at_the_given_epochs():
    sched = lr_schedule(ClassifierConfig(learning_rate=0.01, lr_drops=[2, 4], epochs=6), 10)
    lrs = [float(sched(s)) for s in (0, 19, 20, 39, 40, 59)]
    np.testing.assert_allclose(lrs, [0.01, 0.01, 0.001, 0.001, 0.0001, 0.0001], rtol=1e-5)
    assert lr_schedule(ClassifierConfig(lr_drops=[30], epochs=5), 10) == 0.01


def test_error_percent():
    logits = np.eye(10)[[1, 2, 3, 4]]
    assert error_percent(logits, np.array([1, 2, 0, 0])) == 50.0


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        (dict(dropout="gaussian"), "dropout must be one of"),
        (dict(width=0.0), "width must be > 0"),
        (dict(width=-1.0), "width must be > 0"),
        (dict(arch="resnet"), "arch must be one of"),
        (dict(padding="reflect"), "padding must be one of"),
        (dict(beta=-0.1), "beta must be >= 0"),
    ],
)
def test_bad_config(kwargs, msg):
    with pytest.raises(IbvaeError, match=msg):
        ClassifierConfig(**kwargs).validate()


def test_bad_model_arguments():
    with pytest.raises(IbvaeError, match="dropout must be one of"):
        AllCNN(dropout="spatial")
    with pytest.raises(IbvaeError, match="width must be > 0"):
        AllCNN(width=0)
