"""The training core: a task of one's own trains through the same skeleton as the VAE and the
classifier (run directory, callbacks, failure, run facts, resume), and the shared config
fields are declared once."""

from __future__ import annotations

import dataclasses
import json
from typing import ClassVar

import keras
import numpy as np
import pytest

from ibvae import IbvaeError
from ibvae import config as cfg
from ibvae.classifier.config import ClassifierConfig, ClassifierTrainConfig
from ibvae.config_sections import TrainingSection
from ibvae.flags import resume_note
from ibvae.training import TASKS, Loaded, Task, get_task, register_task, task_of, train
from ibvae.vae.config import VAEConfig, VAETrainConfig


@dataclasses.dataclass
class LineModel(cfg.Config):
    units: int = cfg.option(4, "hidden units", ge=1)


@cfg.config_class(epochs=2, batch_size=20, learning_rate=0.05)
class LineTrain(TrainingSection):
    pass


@dataclasses.dataclass
class LineConfig(cfg.Config):
    resumable: ClassVar[tuple[str, ...]] = ("epochs",)
    model: LineModel = cfg.section(LineModel, "the model")
    train: LineTrain = cfg.section(LineTrain, "training")


class LineTask(Task):
    """A regression y = 3x - 1 on arrays: the smallest task the core can drive."""

    name = "line"
    config_class = LineConfig

    def load(self, config, data, log):
        x, y = data
        log(f"data: {len(x)} points")
        return Loaded(data, "in-memory line", x[:80], y[:80], x[80:], y[80:])

    def build(self, config, loaded):
        return keras.Sequential([keras.Input((1,)), keras.layers.Dense(config.model.units,
                                 activation="relu"), keras.layers.Dense(1)])

    def compile(self, model, config, steps_per_epoch):
        model.compile(optimizer=keras.optimizers.Adam(config.train.learning_rate), loss="mse")

    def report(self, model, config, loaded, run_dir):
        x, y = loaded.x_valid, loaded.y_valid
        return {"test_mse": float(np.mean((model.predict(x, verbose=0)[:, 0] - y) ** 2))}


@pytest.fixture(scope="module")
def line_data():
    x = np.random.default_rng(0).uniform(-1, 1, (100, 1)).astype("float32")
    return x, (3 * x[:, 0] - 1).astype("float32")


def test_a_task_of_ones_own_trains_into_a_run_directory_and_resumes(line_data, tmp_path):
    task = register_task(LineTask())
    assert get_task("line") is task and task_of(LineConfig()) is task
    lines = []
    run = tmp_path / "run"
    model, m = task.train(LineConfig(), line_data, run, verbose=0, log=lines.append)
    assert lines[0] == "data: 100 points" and lines[1].startswith(f"run directory: {run}")
    on_disk = json.loads((run / "metrics.json").read_text())
    assert on_disk["status"] == "completed" and on_disk["test_mse"] == m["test_mse"]
    assert (on_disk["n_train"], on_disk["n_val"], on_disk["epochs_run"]) == (80, 20, 2)
    assert on_disk["data_source"] == "in-memory line"
    assert (run / "best_model.keras").is_file() and (run / "config.yaml").is_file()
    more = cfg.from_dict(LineConfig, {"train": {"epochs": 4}})
    _, m2 = train(task, more, line_data, run, resume=True, verbose=0)
    history = (run / "history.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in history[1:]] == ["0", "1", "2", "3"]
    assert m2["epochs_run"] == 4 and m2["test_mse"] < m["test_mse"]  # it kept learning
    with pytest.raises(IbvaeError, match="only epochs may change"):
        train(task, cfg.from_dict(LineConfig, {"model": {"units": 5}}), line_data, run,
              resume=True, verbose=0)
    del TASKS["line"]


def test_a_task_that_diverges_records_its_failure(line_data, tmp_path):
    task = LineTask()
    with pytest.raises(IbvaeError, match="training stopped: the training loss became"):
        task.train(cfg.from_dict(LineConfig, {"train": {"learning_rate": 1e30}}),
                   (line_data[0], line_data[1] * 1e30), tmp_path / "nan", verbose=0)
    assert json.loads((tmp_path / "nan" / "metrics.json").read_text())["status"] == "failed"


def test_the_core_refuses_a_config_of_another_task_and_an_unknown_task(line_data):
    with pytest.raises(IbvaeError, match="the line task trains a LineConfig, got VAEConfig"):
        LineTask().train(VAEConfig(), line_data)
    with pytest.raises(IbvaeError, match="task must be one of"):
        get_task("gan")
    with pytest.raises(IbvaeError, match="no task trains a LineConfig"):
        task_of(LineConfig())


def test_shared_training_fields_are_declared_once_with_each_configs_defaults():
    shared = {f.name: f for f in dataclasses.fields(TrainingSection)}
    for cls, defaults in ((VAETrainConfig, {"epochs": 20, "batch_size": 100,
                                            "learning_rate": 0.001, "steps_per_execution": 10}),
                          (ClassifierTrainConfig, {"epochs": 80, "batch_size": 128,
                                                   "learning_rate": 0.01,
                                                   "steps_per_execution": 1})):
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for name, field in shared.items():
            assert dict(fields[name].metadata) == dict(field.metadata), (cls, name)
        assert {k: getattr(cls(), k) for k in defaults} == defaults
    with pytest.raises(IbvaeError, match="epochs must be >= 1"):
        VAETrainConfig(epochs=0)  # the base's bounds hold in every config
    with pytest.raises(TypeError, match="no inherited field"):
        cfg.config_class(epoch=3)(type("Bad", (TrainingSection,), {}))


@pytest.mark.parametrize("cls", [VAEConfig, ClassifierConfig])
def test_the_resume_sentence_is_made_from_the_resumable_fields(cls):
    note = resume_note(cls)
    for name in cls.resumable:
        assert "--" + name.replace("_", "-") in note
    assert note.count("--") == len(cls.resumable) + 1  # and --resume itself
