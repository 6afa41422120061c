"""No data loss around a training: --overwrite keeps the old run until the new one can replace
it, a resume refuses changed data and rewrites config.yaml only once it has started, Ctrl-C
stops at a step boundary with the run resumable, and a tool given other data says so in the
numbers it writes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from script_loader import script_main as script

import ibvae
from ibvae import IbvaeError
from ibvae.interrupts import Interrupted

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
CONFIG = ibvae.VAEConfig(model={"latent": "gaussian", "hidden": [8], "latent_dim": 2},
                         train={"epochs": 1, "batch_size": 50})


def images(seed=0, n=300):
    return np.random.default_rng(seed).random((n, 28, 28)).astype(np.float32)


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != ".lock"}


class RaiseAt(keras.callbacks.Callback):
    """Raises ``error`` at step ``step`` of epoch ``epoch`` (of this fit call)."""

    def __init__(self, error, epoch=0, step=1):
        super().__init__()
        self.error, self.at, self.step, self.epoch = error, epoch, step, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch >= self.at and batch >= self.step:
            raise self.error


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError("a crash")])
def test_an_overwrite_stopped_in_its_first_epoch_keeps_the_old_run(tmp_path, error):
    x, run = images(), tmp_path / "r"
    ibvae.train_vae(CONFIG, data=(x, x[:50]), run_dir=run, verbose=0)
    before = files(run)
    with pytest.raises(type(error) if isinstance(error, Exception) else error):
        ibvae.train_vae(CONFIG, data=(x, x[:50]), run_dir=run, overwrite=True,
                        callbacks=[RaiseAt(error)], verbose=0)
    assert files(run) == before and sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_an_overwrite_that_finishes_replaces_the_old_run(tmp_path):
    x, run = images(), tmp_path / "r"
    ibvae.train_vae(CONFIG, data=(x, x[:50]), run_dir=run, verbose=0)
    config = ibvae.VAEConfig(model=CONFIG.model, train={**vars(CONFIG.train), "epochs": 2})
    _, metrics = ibvae.train_vae(config, data=(x, x[:50]), run_dir=run, overwrite=True,
                                 verbose=0)
    assert metrics["run_dir"] == str(run) and metrics["epochs_run"] == 2
    assert json.loads((run / "metrics.json").read_text())["epochs_run"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_overwrite_through_a_symlinked_run_directory(tmp_path):
    x = images()
    (tmp_path / "disk").mkdir()
    (tmp_path / "r").symlink_to(tmp_path / "disk", target_is_directory=True)
    ibvae.train_vae(CONFIG, data=(x, x[:50]), run_dir=tmp_path / "r", verbose=0)
    ibvae.train_vae(CONFIG, data=(x, x[:50]), run_dir=tmp_path / "r", overwrite=True, verbose=0)
    assert (tmp_path / "r").is_symlink() and (tmp_path / "disk" / "model.keras").is_file()


def npz_config(path, epochs):
    return ibvae.VAEConfig(model=CONFIG.model,
                           train={**vars(CONFIG.train), "dataset": "npz", "data": str(path),
                                  "epochs": epochs})


def test_a_resume_refuses_changed_data_and_keeps_its_config_until_it_has_started(tmp_path):
    data, run = tmp_path / "d.npz", tmp_path / "r"
    np.savez(data, x_train=images(0), x_test=images(0, 50))
    ibvae.train_vae(npz_config(data, 1), run_dir=run, verbose=0)
    assert "sha256" in json.loads((run / "metrics.json").read_text())["data_fingerprint"]
    saved = (run / "config.yaml").read_text()
    np.savez(data, x_train=images(1), x_test=images(0, 50))  # other images, same path
    with pytest.raises(IbvaeError, match=r"cannot resume .*training data changed since it "
                                         r"started \(same shapes, SHA-256"):
        ibvae.train_vae(npz_config(data, 3), run_dir=run, resume=True, verbose=0)
    np.savez(data, x_train=images(0), x_test=images(0, 50))
    with pytest.raises(RuntimeError):  # crashes in its first resumed epoch
        ibvae.train_vae(npz_config(data, 3), run_dir=run, resume=True, verbose=0,
                        callbacks=[RaiseAt(RuntimeError("crash"))])
    assert (run / "config.yaml").read_text() == saved  # still epochs 1
    assert json.loads((run / "metrics.json").read_text())["status"] == "started"  # not done
    _, metrics = ibvae.train_vae(npz_config(data, 3), run_dir=run, resume=True, verbose=0)
    assert metrics["epochs_run"] == 3 and "epochs: 3" in (run / "config.yaml").read_text()


class SigintAt(keras.callbacks.Callback):
    """Sends this process SIGINT in the middle of epoch ``epoch``."""

    def __init__(self, epoch):
        super().__init__()
        self.at, self.epoch = epoch, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.epoch == self.at and batch == 2:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.fixture
def sigint_default():
    """Python's own SIGINT handler for the test, whatever the runner started with (a job
    started in the background of a non-interactive shell has SIGINT ignored, which a
    training rightly leaves ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _default_sigint_in_child() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Python then installs its own handler


def test_ctrl_c_stops_at_a_step_records_it_and_restores_the_handler(tmp_path, sigint_default):
    x, run = images(), tmp_path / "r"
    config = ibvae.VAEConfig(model=CONFIG.model,
                             train={**vars(CONFIG.train), "epochs": 3, "batch_size": 25,
                                    "steps_per_execution": 1})
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(Interrupted, match=r"keeps its last finished epoch: continue it with "
                                          r"--resume --out .*r \(Python: resume=True\)"):
        ibvae.train_vae(config, data=(x, x[:50]), run_dir=run, callbacks=[SigintAt(1)],
                        verbose=0)
    assert signal.getsignal(signal.SIGINT) is handler
    assert json.loads((run / "metrics.json").read_text())["status"] == "interrupted"
    _, metrics = ibvae.train_vae(config, data=(x, x[:50]), run_dir=run, resume=True, verbose=0)
    assert metrics["status"] == "completed" and metrics["epochs_run"] == 3
    with pytest.raises(Interrupted, match="before its first epoch ended; nothing was kept"):
        ibvae.train_vae(config, data=(x, x[:50]), run_dir=tmp_path / "new",
                        callbacks=[SigintAt(0)], verbose=0)
    assert not (tmp_path / "new").exists()


def history_epochs(run: Path) -> list[str]:
    path = run / "history.csv"
    if not path.is_file():
        return []
    return [line.split(",")[0] for line in path.read_text().splitlines()[1:]]


@pytest.mark.slow
def test_sigint_mid_epoch_on_jax_exits_130_with_one_line_and_resumes(tmp_path):
    data, run = tmp_path / "d.npz", tmp_path / "r"
    np.savez(data, x_train=(images(0, 400) * 255).astype(np.uint8),
             x_test=(images(1, 50) * 255).astype(np.uint8))
    # this checkout's ibvae, not an installed one (a script's sys.path starts at scripts/)
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": path}
    common = [sys.executable, str(SCRIPTS / "train_vae.py"), "--out", str(run)]
    flags = ["--dataset", "npz", "--data", str(data), "--latent", "gaussian", "--hidden", "8",
             "--latent-dim", "2", "--batch-size", "10", "--steps-per-execution", "1"]
    proc = subprocess.Popen([*common, *flags, "--epochs", "500"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint_in_child)
    try:
        deadline = time.time() + 180
        while not history_epochs(run) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert history_epochs(run), "the training never finished an epoch"
        time.sleep(0.3)  # well inside the next epoch
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-3000:]
    line = err.strip().splitlines()[-1]
    assert line.startswith("interrupted: training interrupted (Ctrl-C); ") and "--resume" in line
    assert json.loads((run / "metrics.json").read_text())["status"] == "interrupted"
    done = len(history_epochs(run))
    resumed = subprocess.run([*common, "--resume", "--epochs", str(done + 1)], env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert history_epochs(run) == [str(i) for i in range(done + 1)]
    assert json.loads((run / "metrics.json").read_text())["status"] == "completed"


@pytest.mark.slow
def test_kl_maps_on_other_data_record_which_data(tmp_path):
    cl = tmp_path / "cl.npz"
    assert script("make_cluttered_mnist")(["--out", str(cl), "--train", "32", "--valid", "0",
                                            "--test", "8", "--canvas", "32",
                                            "--distractors", "1"]) == 0
    other = tmp_path / "other.npz"
    assert script("make_cluttered_mnist")(["--out", str(other), "--train", "8", "--valid", "0",
                                            "--test", "8", "--canvas", "32", "--seed", "1",
                                            "--distractors", "1"]) == 0
    run = tmp_path / "cls"
    assert script("train_classifier")(["--data", str(cl), "--width", "0.125", "--epochs", "1",
                                       "--batch-size", "16", "--out", str(run)]) == 0
    assert script("plot_kl_maps")([str(run), "--n", "2"]) == 0
    own = json.loads((run / "metrics.json").read_text())
    assert own["kl_data_source"] == own["data_source"] == str(cl)
    assert script("plot_kl_maps")([str(run), "--n", "2", "--data", str(other)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["kl_data_source"] == str(other) and metrics["data_source"] == str(cl)


def test_an_ignored_sigint_stays_ignored_during_fit(tmp_path):
    x = images()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as for a background job
    try:
        _, metrics = ibvae.train_vae(CONFIG, data=(x, x[:50]), run_dir=tmp_path / "r",
                                     callbacks=[SigintAt(0)], verbose=0)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    assert metrics["status"] == "completed"
