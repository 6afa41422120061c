"""All-CNN models: shapes in every pool mode, KL losses and their scale, BN recalibration,
save/reload, config validation; the Python API ``train_classifier`` with and without a run
directory."""

import json

import keras
import numpy as np
import pytest

from ibvae import runs
from ibvae.callbacks import has_tensorboard
from ibvae.classifier.batchnorm import recalibrate_batchnorm
from ibvae.classifier.config import ClassifierConfig, ClassifierModelConfig, ClassifierTrainConfig
from ibvae.classifier.data import Split
from ibvae.classifier.models import AllCNN, build_classifier, load_classifier
from ibvae.classifier.train import error_percent, lr_schedule, train_classifier
from ibvae.errors import IbvaeError

M = ClassifierModelConfig

X = np.random.default_rng(0).random((4, 32, 32, 1), dtype=np.float32)


@pytest.mark.parametrize("dropout", ["information", "lognormal", "binary", "none"])
@pytest.mark.parametrize("width", [0.125, 0.25])
def test_output_shapes_every_mode_and_width(dropout, width):
    model = build_classifier(M(dropout=dropout, width=width), (32, 32, 1), 100)
    assert tuple(model(X, training=True).shape) == (4, 10)
    assert tuple(model(X, training=False).shape) == (4, 10)
    # filters scale with the width multiplier: block 4 has int(192 * width) channels
    assert model.pools[3].compute_output_shape((None, 4, 4, 1))[-1] == int(192 * width)
    if dropout == "information":
        assert [tuple(m.shape) for m in model.kl_maps(X)] == [(4, 16, 16), (4, 8, 8),
                                                             (4, 4, 4), (4, 2, 2)]


def test_allcnn32_shapes():
    model = build_classifier(M(arch="allcnn32", width=0.125, input_keep_prob=0.8),
                             (32, 32, 3), 100)
    x = np.random.default_rng(1).random((2, 32, 32, 3), dtype=np.float32)
    assert tuple(model(x, training=True).shape) == (2, 10)
    assert [tuple(m.shape) for m in model.kl_maps(x)] == [(2, 16, 16, ), (2, 8, 8)]


def test_kl_losses_only_in_information_mode_and_scaled_by_beta_over_n():
    n_train, beta = 1000, 2.0
    info = build_classifier(M(width=0.125, beta=beta), (32, 32, 1), n_train)
    info(X, training=False)
    losses = [float(v) for v in info.losses]
    assert len(losses) == 4 and all(v > 0 for v in losses)
    # each loss is beta / N_train x (KL summed over units, averaged over the batch)
    expected = [beta / n_train * float(np.mean(np.sum(np.asarray(m), axis=(1, 2))))
                for m in info.kl_maps(X)]
    np.testing.assert_allclose(losses, expected, rtol=1e-5)
    for dropout in ("lognormal", "binary", "none"):
        other = build_classifier(M(width=0.125, dropout=dropout), (32, 32, 1), 10)
        other(X, training=True)
        assert other.losses == []


def test_noise_only_in_training_and_switchable():
    model = build_classifier(M(width=0.125), (32, 32, 1), 100)
    a, b = np.asarray(model(X, training=False)), np.asarray(model(X, training=False))
    np.testing.assert_array_equal(a, b)
    noisy = [np.asarray(model(X, training=True)) for _ in range(2)]
    assert np.abs(noisy[0] - noisy[1]).max() > 1e-4
    quiet = [np.asarray(model(X, training=True, noise=False)) for _ in range(2)]
    np.testing.assert_allclose(quiet[0], quiet[1], atol=1e-6)


def test_recalibration_sets_running_stats_to_average_of_batch_stats():
    model = build_classifier(M(width=0.125), (32, 32, 1), 100)
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
    model = build_classifier(M(width=0.125, max_alpha=1.0), (32, 32, 1), 100)
    x = np.random.default_rng(3).random((64, 32, 32, 1), dtype=np.float32)
    bns = [layer.bn for layer in model.conv_bn_layers()]
    assert len(bns) == 4 * 3 + 3  # two convs and a pool per block, three in the head
    for bn in bns:
        bn.momentum = 0.0  # running stats := last noisy batch's statistics
    model(x, training=True)
    for bn in bns:
        bn.momentum = 0.99
    target = np.asarray(model(x, training=True, noise=False))
    before = np.abs(np.asarray(model(x, training=False)) - target).mean()
    recalibrate_batchnorm(model, x, batch_size=64)
    after = np.abs(np.asarray(model(x, training=False)) - target).mean()
    assert after < 0.1 * before


def test_save_reload_without_custom_objects(tmp_path):
    model = build_classifier(M(width=0.125, beta=0.3), (32, 32, 1), 50)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(again, AllCNN) and again.get_config() == model.get_config()
    np.testing.assert_allclose(np.asarray(again(X)), np.asarray(model(X)), atol=1e-6)
    np.testing.assert_allclose(np.asarray(again.kl_maps(X)[2]), np.asarray(model.kl_maps(X)[2]),
                               atol=1e-5)


def test_lr_schedule_steps_down_at_the_given_epochs():
    sched = lr_schedule(ClassifierTrainConfig(learning_rate=0.01, lr_drops=[2, 4], epochs=6), 10)
    lrs = [float(sched(s)) for s in (0, 19, 20, 39, 40, 59)]
    np.testing.assert_allclose(lrs, [0.01, 0.01, 0.001, 0.001, 0.0001, 0.0001], rtol=1e-5)
    assert lr_schedule(ClassifierTrainConfig(lr_drops=[30], epochs=5), 10) == 0.01


def test_cosine_lr_schedule_falls_from_the_rate_to_zero_over_the_run():
    train = ClassifierTrainConfig(learning_rate=0.002, lr_schedule="cosine", lr_drops=[1], epochs=4)
    sched = lr_schedule(train, 10)  # 40 steps; lr_drops is ignored
    lrs = np.array([float(sched(s)) for s in range(41)])
    np.testing.assert_allclose(lrs[[0, 20, 40]], [0.002, 0.001, 0.0], atol=1e-7)
    np.testing.assert_allclose(lrs[10], 0.001 * (1 + np.cos(np.pi / 4)), rtol=1e-5)
    assert np.all(np.diff(lrs) < 0)


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
        ClassifierModelConfig(**kwargs)
    with pytest.raises(IbvaeError, match=msg):  # the same check from a YAML-like mapping
        ClassifierConfig(model=kwargs)


def test_bad_model_arguments():
    with pytest.raises(IbvaeError, match="dropout must be one of"):
        AllCNN({"dropout": "spatial"})
    with pytest.raises(IbvaeError, match="width must be > 0"):
        AllCNN({"width": 0})
    with pytest.raises(IbvaeError, match="unknown config key"):
        AllCNN({"widht": 0.5})
    with pytest.raises(IbvaeError, match="kl_weight must be >= 0"):
        AllCNN(M(width=0.125), kl_weight=-1.0)


def test_model_is_built_from_its_config_and_stores_it():
    model = AllCNN({"width": 0.125, "dropout": "binary"}, num_classes=12)
    assert model.model_config == M(width=0.125, dropout="binary")
    config = model.get_config()
    assert config["config"]["dropout"] == "binary" and config["num_classes"] == 12
    again = AllCNN.from_config(config)
    assert again.model_config == model.model_config and again.num_classes == 12


# --------------------------------------------------------------------------- train_classifier


def _arrays(n_train=48, n_test=16, size=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n_train + n_test, size, size), dtype=np.uint8)
    y = rng.integers(0, 10, n_train + n_test)
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


def _tiny_config(**train):
    return ClassifierConfig(
        model=M(width=0.125),
        train=ClassifierTrainConfig(epochs=1, batch_size=16, **train),
    )


class _Epochs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append(epoch)


def test_train_on_arrays_without_run_dir_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seen = _Epochs()
    model, metrics = train_classifier(
        _tiny_config(), data=_arrays(), run_dir=None, callbacks=[seen], verbose=0
    )
    assert isinstance(model, AllCNN) and seen.seen == [0]
    assert 0 <= metrics["test_error"] <= 100 and 0 <= metrics["test_error_no_recalibration"] <= 100
    assert metrics["n_train"] == 48 and metrics["epochs_run"] == 1
    assert metrics["data_source"] == "arrays" and "run_dir" not in metrics
    json.dumps(metrics)  # plain Python values
    assert list(tmp_path.iterdir()) == []  # nothing written, not even runs/


def test_train_creates_a_new_run_dir(tmp_path):
    (x, y), (xt, yt) = _arrays()
    data = {"train": (x, y), "valid": Split(xt[:8] / 255.0, yt[:8]), "test": (xt, yt)}
    run = tmp_path / "new" / "run"  # neither exists yet
    config = _tiny_config(train_size=32, recalibrate=False)  # recalibrated in the test above
    model, metrics = train_classifier(config, data=data, run_dir=run, verbose=0)
    for name in ("config.yaml", "model.keras", "best_model.keras", "history.csv",
                 "metrics.json", "figures/confusion.png"):
        assert (run / name).is_file(), name
    if has_tensorboard():
        assert (run / "logs").is_dir()
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["n_train"] == 32 and "valid_error" in saved
    assert metrics["run_dir"] == str(run) and metrics["test_error"] == saved["test_error"]
    assert runs.read_run_config(run, ClassifierConfig) == config
    again = load_classifier(run)
    x_test = _arrays()[1][0][..., None] / 255.0
    np.testing.assert_allclose(np.asarray(again(x_test)), np.asarray(model(x_test)), atol=1e-5)


def test_train_checks_data_before_making_the_run_dir(tmp_path):
    (x, y), test = _arrays()
    run = tmp_path / "run"
    with pytest.raises(IbvaeError, match="3 labels for 48 images"):
        train_classifier(_tiny_config(), data=((x, y[:3]), test), run_dir=run)
    with pytest.raises(IbvaeError, match="exceeds the 48 training images"):
        train_classifier(_tiny_config(train_size=100), data=((x, y), test), run_dir=run)
    with pytest.raises(IbvaeError, match="no data"):
        train_classifier(_tiny_config(), run_dir=run)
    with pytest.raises(IbvaeError, match="data must be"):
        train_classifier(_tiny_config(), data=x, run_dir=run)
    with pytest.raises(IbvaeError, match="is not a run directory"):
        train_classifier(_tiny_config(), data=((x, y), test), run_dir=run, resume=True)
    with pytest.raises(IbvaeError, match="needs run_dir"):
        train_classifier(_tiny_config(), data=((x, y), test), resume=True)
    assert not run.exists()


def test_load_classifier_errors(tmp_path):
    with pytest.raises(IbvaeError, match="not found"):
        load_classifier(tmp_path / "missing.keras")
    model = build_classifier(M(width=0.125, dropout="none"), (32, 32, 1), 10)
    model.save(tmp_path / "m.keras")
    data = (tmp_path / "m.keras").read_bytes()
    (tmp_path / "cut.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(IbvaeError, match="not a readable .keras archive") as e:
        load_classifier(tmp_path / "cut.keras")
    assert "\n" not in str(e.value)
    assert isinstance(load_classifier(tmp_path / "m.keras"), AllCNN)
