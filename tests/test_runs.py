"""Run directories, reading a run's config back, resume checks, metrics.json, callbacks and
the script entry wrapper shared by every script."""

import json
import os

import numpy as np
import pytest

from ibvae import IbvaeError, callbacks, runs
from ibvae.errors import script_entry
from ibvae.vae.config import VAEConfig


def make_run(path):
    path.mkdir(parents=True)
    runs.save_config(VAEConfig(), path)
    return path


def test_default_run_dir_is_timestamped_under_runs():
    path = runs.resolve_run_dir(None, "vae", resume=False, overwrite=False)
    assert path.parent.name == "runs" and path.name.startswith("vae-") and not path.exists()


def test_an_existing_run_is_not_clobbered(tmp_path):
    run = make_run(tmp_path / "run")
    with pytest.raises(IbvaeError, match="already exists"):
        runs.resolve_run_dir(run, "vae", resume=False, overwrite=False)
    assert runs.resolve_run_dir(run, "vae", resume=True, overwrite=False) == run
    assert runs.resolve_run_dir(run, "vae", resume=False, overwrite=True) == run
    (tmp_path / "empty").mkdir()  # an empty directory is free to use
    assert runs.resolve_run_dir(tmp_path / "empty", "vae", False, False) == tmp_path / "empty"


@pytest.mark.parametrize(
    "out, resume, overwrite, message",
    [
        ("run", True, True, "exclude each other"),
        (None, True, False, "--resume needs --out"),
        ("not_a_run", True, False, "is not a run directory"),
    ],
)
def test_resolve_run_dir_refusals(tmp_path, out, resume, overwrite, message):
    (tmp_path / "not_a_run").mkdir()
    out = None if out is None else tmp_path / out
    with pytest.raises(IbvaeError, match=message):
        runs.resolve_run_dir(out, "vae", resume, overwrite)


CONFIG = VAEConfig(model={"latent": "gaussian"})


def test_a_failed_start_leaves_no_directory(tmp_path):
    run = tmp_path / "run"
    for error in (IbvaeError("bad data"), RuntimeError("a crash"), KeyboardInterrupt()):
        with pytest.raises(type(error)), runs.run_directory(run, CONFIG, False, False):
            assert (run / "figures").is_dir() and (run / runs.CONFIG_FILE).is_file()
            raise error
        assert not run.exists() and list(tmp_path.iterdir()) == []  # no staging left either


def test_a_run_with_a_finished_epoch_is_kept_for_resume(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(RuntimeError), runs.run_directory(run, CONFIG, False, False):
        (run / "history.csv").write_text("epoch,loss\n0,1.0\n")
        raise RuntimeError("killed in epoch 1")
    assert runs.read_run_config(run, VAEConfig) == CONFIG


def test_a_failed_resume_keeps_the_existing_run(tmp_path):
    run = make_run(tmp_path / "run")
    with pytest.raises(IbvaeError), runs.run_directory(run, CONFIG, True, False):
        raise IbvaeError("bad data")
    assert (run / runs.CONFIG_FILE).is_file()


def test_overwrite_builds_the_new_run_beside_the_old_one_and_swaps_it_in(tmp_path):
    run = make_run(tmp_path / "run")
    (run / "model.keras").write_text("old")
    with runs.run_directory(run, CONFIG, False, True) as here:
        assert here != run and not (here / "model.keras").exists() and (here / "figures").is_dir()
        assert (run / "model.keras").read_text() == "old"  # untouched while the new one trains
    assert runs.read_run_config(run, VAEConfig) == CONFIG and not (run / "model.keras").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


@pytest.mark.parametrize("error", [KeyboardInterrupt(), RuntimeError("a crash")])
def test_an_overwrite_stopped_before_its_first_epoch_keeps_the_old_run(tmp_path, error):
    run = make_run(tmp_path / "run")
    (run / "model.keras").write_text("old")
    with pytest.raises(type(error)), runs.run_directory(run, CONFIG, False, True):
        raise error
    assert (run / "model.keras").read_text() == "old"
    assert runs.read_run_config(run, VAEConfig) == VAEConfig()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_an_overwrite_stopped_after_an_epoch_replaces_the_old_run_for_resume(tmp_path):
    run = make_run(tmp_path / "run")
    (run / "model.keras").write_text("old")
    with pytest.raises(KeyboardInterrupt), runs.run_directory(run, CONFIG, False, True) as here:
        (here / "history.csv").write_text("epoch,loss\n0,1.0\n")
        raise KeyboardInterrupt
    assert runs.read_run_config(run, VAEConfig) == CONFIG and not (run / "model.keras").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_overwrite_through_a_symbolic_link_writes_where_it_points(tmp_path):
    target = make_run(tmp_path / "disk" / "run")
    (target / "model.keras").write_text("old")
    (tmp_path / "link").symlink_to(target, target_is_directory=True)
    with runs.run_directory(tmp_path / "link", CONFIG, False, True):
        pass
    assert (tmp_path / "link").is_symlink() and runs.read_run_config(target, VAEConfig) == CONFIG
    assert not (target / "model.keras").exists()


def test_a_run_in_use_is_refused_naming_the_pid(tmp_path):
    run = tmp_path / "run"
    with runs.run_directory(run, CONFIG, False, False):
        (run / "history.csv").write_text("epoch,loss\n0,1.0\n")
        for resume, overwrite in ((True, False), (False, True)):
            with pytest.raises(IbvaeError, match=rf"in use by another .*pid {os.getpid()}"):
                with runs.run_directory(run, CONFIG, resume, overwrite):
                    pass
        assert (run / "history.csv").is_file()  # the refused overwrite deleted nothing
    with runs.run_directory(run, CONFIG, True, False):  # released: free again
        pass


def test_an_out_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(IbvaeError, match="is a file, not a directory"):
        runs.resolve_run_dir(tmp_path / "file", "vae", False, True)


def test_a_run_of_another_kind_is_named(tmp_path):
    from ibvae.classifier.config import ClassifierConfig

    runs.save_config(CONFIG, tmp_path)
    with pytest.raises(IbvaeError, match="holds a VAE run, not a Classifier run"):
        runs.read_run_config(tmp_path, ClassifierConfig)


def test_update_metrics_merges_and_converts_numpy(tmp_path):
    assert runs.read_metrics(tmp_path) == {}
    runs.update_metrics(tmp_path, {"a": np.float32(1.5), "b": np.arange(3)})
    merged = runs.update_metrics(tmp_path, {"b": None, "c": {"d": np.int64(4)}})
    on_disk = json.loads((tmp_path / runs.METRICS_FILE).read_text())
    assert on_disk == merged == {"a": 1.5, "b": None, "c": {"d": 4}}


def test_script_entry_turns_user_errors_into_one_line_and_exit_2(capsys):
    def main(argv):
        raise IbvaeError(f"bad {argv[0]}")

    assert script_entry(main)(["flag"]) == 2
    assert capsys.readouterr().err == "error: bad flag\n"
    assert script_entry(lambda argv: None)([]) == 0

    def buggy(argv):
        raise KeyError("a programming error keeps its traceback")

    with pytest.raises(KeyError):
        script_entry(buggy)([])


def test_training_callbacks_run_in_order_and_resume_appends(tmp_path):
    import keras

    fit = callbacks.training_callbacks(tmp_path, resume=True, monitor="loss", extra=["mine"])
    kinds = [type(c) for c in fit.all]
    assert kinds[:2] == [callbacks.EpochTimer, callbacks.StopOnNonFinite]  # before the loggers
    # the history row of an epoch is written before its backup (see HistoryLogger)
    assert kinds[2:-1] == [callbacks.HistoryLogger, callbacks.FiniteBackupAndRestore,
                           callbacks.FiniteModelCheckpoint, keras.callbacks.TensorBoard]
    assert fit.all[-1] == "mine"
    csv_logger = next(c for c in fit.all if isinstance(c, keras.callbacks.CSVLogger))
    assert csv_logger.append is True
    board = next(c for c in fit.all if isinstance(c, keras.callbacks.TensorBoard))
    assert board.log_dir == str(tmp_path / "logs")
    assert len(callbacks.training_callbacks(None, False, "loss").all) == 2  # nothing written


@pytest.mark.parametrize("text", ["", "model:\n  latent: gaussian\n", "model: {latent: gaus"])
def test_an_empty_truncated_or_partial_run_config_is_an_error_naming_the_file(tmp_path, text):
    run = tmp_path / "run"
    run.mkdir()
    (run / runs.CONFIG_FILE).write_text(text)
    with pytest.raises(IbvaeError, match=str(run / runs.CONFIG_FILE)):
        runs.read_run_config(run, VAEConfig)


def test_a_saved_config_reads_back_equal(tmp_path):
    config = VAEConfig(model={"latent": "gaussian", "hidden": [7, 3]}, train={"epochs": 2})
    runs.save_config(config, tmp_path)
    assert runs.read_run_config(tmp_path, VAEConfig) == config


def test_resume_refuses_a_changed_model_but_allows_more_epochs(tmp_path):
    runs.save_config(VAEConfig(model={"latent": "gaussian"}), tmp_path)
    runs.check_resume(tmp_path, VAEConfig(model={"latent": "gaussian"}, train={"epochs": 50}))
    changed = VAEConfig(model={"latent": "information_dropout", "beta": 2.0})
    with pytest.raises(IbvaeError) as err:
        runs.check_resume(tmp_path, changed)
    message = str(err.value)
    assert "beta 1.0 -> 2.0" in message and "latent 'gaussian' -> 'information_dropout'" in message
    assert "only distribution, epochs, mixture_components, steps_per_execution may change" in message
