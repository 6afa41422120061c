"""The three supervised-path scripts end to end on a tiny set, and their user errors."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make = _script("make_cluttered_mnist")
train = _script("train_classifier")
plot = _script("plot_kl_maps")


def _entry(module):
    from ibvae.train import script_entry

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
    for name in ("config.yaml", "model.keras", "history.csv", "metrics.json",
                 "figures/confusion.png"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["test_error"] <= 100 and metrics["n_train"] == 64
    rc = _entry(plot)([str(run), "--n", "2"])
    assert rc == 0, capsys.readouterr().err
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(metrics["kl_lift"]) == 4 and len(metrics["kl_nats"]) == 4
    assert all(v > 0 for v in metrics["kl_nats"])
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
    assert json.loads((run / "metrics.json").read_text())["epochs_run"] == 1


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
        (["--dropout", "gaussian"], "dropout must be one of"),
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
        (["--train", "-1"], "--train must be >= 0"),
    ],
)
def test_generator_bad_input(tmp_path, capsys, argv, needle):
    out = tmp_path / "c.npz"
    rc = _entry(make)(["--out", str(out), "--train", "4", "--valid", "0", "--test", "4", *argv])
    _one_error_line(capsys, rc, needle)
    assert not out.exists()


def test_plot_bad_run_dir(tmp_path, capsys):
    _one_error_line(capsys, _entry(plot)([str(tmp_path)]), "is not a run directory")
