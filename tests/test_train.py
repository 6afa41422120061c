"""Run directories, metrics.json and the script entry wrapper shared by every script."""

import json

import numpy as np
import pytest

from ibvae import IbvaeError, train


def make_run(path):
    path.mkdir(parents=True)
    (path / train.CONFIG_FILE).write_text("latent: gaussian\n")
    return path


def test_default_run_dir_is_timestamped_under_runs():
    path = train.resolve_run_dir(None, "vae", resume=False, overwrite=False)
    assert path.parent.name == "runs" and path.name.startswith("vae-") and not path.exists()


def test_an_existing_run_is_not_clobbered(tmp_path):
    run = make_run(tmp_path / "run")
    with pytest.raises(IbvaeError, match="already exists"):
        train.resolve_run_dir(run, "vae", resume=False, overwrite=False)
    assert train.resolve_run_dir(run, "vae", resume=True, overwrite=False) == run
    assert train.resolve_run_dir(run, "vae", resume=False, overwrite=True) == run
    (tmp_path / "empty").mkdir()  # an empty directory is free to use
    assert train.resolve_run_dir(tmp_path / "empty", "vae", False, False) == tmp_path / "empty"


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
        train.resolve_run_dir(out, "vae", resume, overwrite)


def test_a_failed_start_leaves_no_directory(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(IbvaeError), train.run_directory(run, resume=False, overwrite=False):
        assert (run / "figures").is_dir()
        raise IbvaeError("bad data")
    assert not run.exists()


def test_a_failed_resume_keeps_the_existing_run(tmp_path):
    run = make_run(tmp_path / "run")
    with pytest.raises(IbvaeError), train.run_directory(run, resume=True, overwrite=False):
        raise IbvaeError("bad data")
    assert (run / train.CONFIG_FILE).is_file()


def test_overwrite_starts_from_an_empty_directory(tmp_path):
    run = make_run(tmp_path / "run")
    with train.run_directory(run, resume=False, overwrite=True):
        assert not (run / train.CONFIG_FILE).exists() and (run / "figures").is_dir()


def test_update_metrics_merges_and_converts_numpy(tmp_path):
    assert train.read_metrics(tmp_path) == {}
    train.update_metrics(tmp_path, {"a": np.float32(1.5), "b": np.arange(3)})
    merged = train.update_metrics(tmp_path, {"b": None, "c": {"d": np.int64(4)}})
    on_disk = json.loads((tmp_path / train.METRICS_FILE).read_text())
    assert on_disk == merged == {"a": 1.5, "b": None, "c": {"d": 4}}


def test_script_entry_turns_user_errors_into_one_line_and_exit_2(capsys):
    def main(argv):
        raise IbvaeError(f"bad {argv[0]}")

    assert train.script_entry(main)(["flag"]) == 2
    assert capsys.readouterr().err == "error: bad flag\n"
    assert train.script_entry(lambda argv: None)([]) == 0

    def buggy(argv):
        raise KeyError("a programming error keeps its traceback")

    with pytest.raises(KeyError):
        train.script_entry(buggy)([])


def test_fit_callbacks_resume_appends_to_the_history(tmp_path):
    import keras

    callbacks = train.fit_callbacks(tmp_path, resume=True, monitor="loss")
    kinds = {type(c) for c in callbacks}
    assert kinds == {
        keras.callbacks.BackupAndRestore,
        keras.callbacks.CSVLogger,
        keras.callbacks.ModelCheckpoint,
    }
    csv_logger = next(c for c in callbacks if isinstance(c, keras.callbacks.CSVLogger))
    assert csv_logger.append is True
