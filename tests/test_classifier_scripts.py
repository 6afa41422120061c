"""The three supervised-path scripts end to end on a tiny set, their generated flags, and
their user errors."""

import json
from pathlib import Path

import numpy as np
import pytest
from script_loader import load_script as _script

from ibvae import config as cfg
from ibvae import runs
from ibvae.callbacks import has_tensorboard
from ibvae.classifier.config import ClassifierConfig, ClutterConfig, OccludedConfig
from ibvae.classifier.kl_maps import KLMapOptions
from ibvae.errors import script_entry
from ibvae.flags import flag_name

ROOT = Path(__file__).resolve().parents[1]


make = _script("make_cluttered_mnist")
train = _script("train_classifier")
plot = _script("plot_kl_maps")
occluded = _script("make_occluded")


def _entry(module):
    return script_entry(module.main)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    rc = _entry(make)(["--out", str(path), "--train", "64", "--valid", "32", "--test", "32",
                       "--canvas", "32", "--distractors", "2"])
    assert rc == 0
    return path


def _one_error_line(capsys, rc, needle):
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error:") and needle in err[0], err


@pytest.mark.slow
def test_generate_train_and_plot_end_to_end(tiny, tmp_path, capsys):
    with np.load(tiny) as f:
        assert f["x_train"].shape == (64, 32, 32, 1) and f["boxes_test"].shape == (32, 4)
    run = tmp_path / "run"
    rc = _entry(train)(["--data", str(tiny), "--width", "0.125", "--epochs", "1",
                        "--batch-size", "32", "--out", str(run)])
    assert rc == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "test error" in out
    for name in ("config.yaml", "model.keras", "best_model.keras", "history.csv",
                 "metrics.json", "figures/confusion.png"):
        assert (run / name).is_file(), name
    if has_tensorboard():
        assert any((run / "logs").rglob("*tfevents*"))
    config = runs.read_run_config(run, ClassifierConfig)
    assert config.model.width == 0.125 and config.train.data == str(tiny)
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["test_error"] <= 100 and metrics["n_train"] == 64
    rc = _entry(plot)([str(run), "--n", "2"])
    assert rc == 0, capsys.readouterr().err
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(metrics["kl_lift"]) == 4 and len(metrics["kl_nats"]) == 4
    assert all(v > 0 for v in metrics["kl_nats"])
    assert len(metrics["kl_auc"]) == 4 and all(0 <= v <= 1 for v in metrics["kl_auc"])
    assert all(lift <= top + 1e-9 for lift, top in zip(metrics["kl_lift"],
                                                       metrics["kl_lift_max"], strict=True))
    assert (run / "figures" / "kl_maps.png").stat().st_size > 10_000
    # the run refuses to be overwritten by accident
    rc = _entry(train)(["--data", str(tiny), "--out", str(run)])
    _one_error_line(capsys, rc, "already exists")


@pytest.mark.slow
def test_resume_continues_from_the_backup(tiny, tmp_path, capsys):
    run = tmp_path / "res"
    base = ["--data", str(tiny), "--width", "0.125", "--batch-size", "32", "--out", str(run)]
    assert _entry(train)([*base, "--epochs", "1", "--dropout", "none"]) == 0
    assert _entry(train)([*base, "--epochs", "2", "--resume"]) == 0, capsys.readouterr().err
    rows = (run / "history.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1"]  # epoch 0 kept, epoch 1 added
    assert "dropout: none" in (run / "config.yaml").read_text()  # the run's own config
    metrics = json.loads((run / "metrics.json").read_text())
    # epochs_run counts the whole run (history.csv), not only the epochs of the last call
    assert metrics["epochs_run"] == 2 and metrics["status"] == "completed"
    # Timings cover the whole run, across the resume (from history.csv), not the last call.
    assert len(metrics["epoch_seconds"]) == 2
    assert metrics["train_images_per_second"] == pytest.approx(
        64 * 2 / sum(metrics["epoch_seconds"]), rel=0.02)
    # what changes the model or the data may not change on resume
    _one_error_line(capsys, _entry(train)([*base, "--resume", "--width", "0.25"]),
                    "cannot resume")
    _one_error_line(capsys, _entry(train)([*base, "--resume", "--config", "x.yaml"]),
                    "drop --config")


@pytest.mark.slow
def test_binary_run_has_no_kl_maps(tiny, tmp_path, capsys):
    run = tmp_path / "bin"
    rc = _entry(train)(["--data", str(tiny), "--width", "0.125", "--epochs", "1",
                        "--dropout", "binary", "--batch-size", "32", "--out", str(run)])
    assert rc == 0
    capsys.readouterr()
    _one_error_line(capsys, _entry(plot)([str(run)]), "KL maps need --dropout information")


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--width", "0"], "width must be > 0"),
        (["--width", "-0.5"], "width must be > 0"),
        (["--train-size", "1000"], "exceeds the 64 training images"),
    ],
)
def test_train_bad_input(tiny, tmp_path, capsys, argv, needle):
    out = tmp_path / "run"
    rc = _entry(train)(["--data", str(tiny), "--out", str(out), *argv])
    _one_error_line(capsys, rc, needle)
    assert not out.exists()  # no partial output


def test_train_mismatched_boxes_and_labels(tiny, tmp_path, capsys):
    with np.load(tiny) as f:
        arrays = dict(f)
    bad = dict(arrays, boxes_test=arrays["boxes_test"][:5])
    np.savez(tmp_path / "bad_boxes.npz", **bad)
    rc = _entry(train)(["--data", str(tmp_path / "bad_boxes.npz"), "--out", str(tmp_path / "r")])
    _one_error_line(capsys, rc, "5 boxes for 32 images")
    bad = dict(arrays, y_train=arrays["y_train"][:10])
    np.savez(tmp_path / "bad_labels.npz", **bad)
    rc = _entry(train)(["--data", str(tmp_path / "bad_labels.npz"), "--out", str(tmp_path / "r")])
    _one_error_line(capsys, rc, "10 labels for 64 images")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--canvas", "20"], "canvas must be >= the digit size 28"),
        (["--distractor-size", "30"], "distractor_size must be in [1, 28]"),
        (["--train", "-1"], "train must be >= 0"),
        (["--distractors", "-1"], "distractors must be >= 0"),
    ],
)
def test_generator_bad_input(tmp_path, capsys, argv, needle):
    out = tmp_path / "c.npz"
    rc = _entry(make)(["--out", str(out), "--train", "4", "--valid", "0", "--test", "4", *argv])
    _one_error_line(capsys, rc, needle)
    assert not out.exists()


def test_generator_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "c.npz"
    out.write_bytes(b"keep me")
    rc = _entry(make)(["--out", str(out), "--train", "4", "--valid", "0", "--test", "4"])
    _one_error_line(capsys, rc, "already exists")
    assert out.read_bytes() == b"keep me"


def test_plot_bad_run_dir(tmp_path, capsys):
    _one_error_line(capsys, _entry(plot)([str(tmp_path)]), "is not a run directory")
    _one_error_line(capsys, _entry(plot)([str(tmp_path), "--n", "0"]), "n must be >= 1")


@pytest.mark.parametrize(
    "text, needle",
    [
        ("model:\n  widht: 0.5\n", "unknown config key(s) ['widht']"),
        ("model:\n  dropout: gaussian\n", "dropout must be one of"),
        ("train:\n  lr_drops: [0]\n", "every entry of lr_drops must be >= 1"),
    ],
)
def test_bad_yaml_config(tmp_path, capsys, text, needle):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    rc = _entry(train)(["--config", str(bad), "--out", str(tmp_path / "r")])
    _one_error_line(capsys, rc, needle)
    assert not (tmp_path / "r").exists()


def test_flag_outside_its_choices_is_refused_by_argparse(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        train.main(["--dropout", "gaussian", "--out", str(tmp_path / "r")])
    assert e.value.code == 2 and "invalid choice: 'gaussian'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_the_cifar10_config_trains_end_to_end_on_a_cifar_shaped_npz(tmp_path, capsys):
    rng = np.random.default_rng(0)
    path = tmp_path / "cifar10.npz"
    np.savez(path, x_train=rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8),
             y_train=rng.integers(0, 10, 64), x_test=rng.integers(0, 256, (32, 32, 32, 3),
                                                                  dtype=np.uint8),
             y_test=rng.integers(0, 10, 32))
    run = tmp_path / "cifar"
    rc = _entry(train)(["--config", str(ROOT / "configs" / "allcnn32_cifar10.yaml"), "--data",
                        str(path), "--width", "0.0625", "--epochs", "1", "--batch-size", "32",
                        "--out", str(run)])
    assert rc == 0, capsys.readouterr().err
    config = runs.read_run_config(run, ClassifierConfig)
    assert (config.model.arch, config.model.beta, config.model.input_keep_prob,
            config.model.weight_decay, config.train.optimizer) == ("allcnn32", 3.0, 0.8, 0.001,
                                                                   "sgd")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["n_train"] == 64
    assert 0 <= metrics["test_error"] <= 100
    capsys.readouterr()
    _one_error_line(capsys, _entry(plot)([str(run)]), "no boxes_test")  # CIFAR has no digit box


def test_shipped_configs_say_what_they_claim():
    def load(name):
        return cfg.flat_values(cfg.load(ClassifierConfig, ROOT / "configs" / f"{name}.yaml",
                                        complete=True))

    authors, cpu, cifar, fashion = (load(n) for n in (
        "allcnn96_cluttered", "allcnn96_cluttered_cpu", "allcnn32_cifar10", "allcnn32_fashion"))
    assert authors == cfg.flat_values(ClassifierConfig())
    assert {k: cpu[k] for k in ("beta", "width", "max_alpha", "optimizer", "learning_rate",
                                "lr_drops", "epochs", "batch_size", "train_size", "data")} == {
        "beta": 0.2, "width": 0.25, "max_alpha": 0.7, "optimizer": "adam", "learning_rate": 0.002,
        "lr_drops": [6, 8], "epochs": 9, "batch_size": 32, "train_size": 20000,
        "data": "runs/data/cl80.npz"}
    assert {k: cifar[k] for k in ("arch", "beta", "max_alpha", "input_keep_prob", "weight_decay",
                                  "learning_rate", "lr_drops", "epochs", "batch_size")} == {
        "arch": "allcnn32", "beta": 3.0, "max_alpha": 0.7, "input_keep_prob": 0.8,
        "weight_decay": 0.001, "learning_rate": 0.05, "lr_drops": [80, 120, 160], "epochs": 200,
        "batch_size": 100}
    assert {k: fashion[k] for k in ("arch", "beta", "width", "max_alpha", "input_keep_prob",
                                    "optimizer", "learning_rate", "lr_drops", "epochs",
                                    "batch_size", "train_size")} == {
        "arch": "allcnn32", "beta": 1.0, "width": 0.25, "max_alpha": 0.7, "input_keep_prob": 1.0,
        "optimizer": "adam", "learning_rate": 0.002, "lr_drops": [7, 9], "epochs": 10,
        "batch_size": 32, "train_size": 20000}


@pytest.mark.parametrize(
    "module, cls, extra",
    [
        (train, ClassifierConfig, ["--config", "--out", "--resume", "--overwrite", "--lr"]),
        (make, ClutterConfig, ["--out", "--overwrite"]),
        (occluded, OccludedConfig, ["--out", "--overwrite"]),
        (plot, KLMapOptions, []),
    ],
)
def test_every_field_has_a_generated_flag(module, cls, extra, capsys):
    with pytest.raises(SystemExit) as e:
        module.main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    names = [flag_name(leaf) for leaf in cfg.leaves(cls)]
    assert len(names) == len({leaf.path for leaf in cfg.leaves(cls)})
    for flag in [*names, *extra]:
        assert f"{flag} " in text or f"{flag}," in text or f"{flag}\n" in text, flag
    for leaf in cfg.leaves(cls):  # each flag's help is its field's help
        assert leaf.help.split(";")[0][:30] in " ".join(text.split()), leaf.name
