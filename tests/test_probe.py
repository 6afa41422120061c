"""The nuisance probe on a tiny case (its noisy read-out, its information bound on labels
with known answers), and All-CNN-32 on one grey channel end to end through the scripts:
make_occluded.py -> train_classifier.py -> probe_nuisance.py."""

import json
from pathlib import Path

import numpy as np
import pytest
from script_loader import load_script as _script

from ibvae import config as cfg
from ibvae import runs
from ibvae.classifier.config import ClassifierConfig, ClassifierModelConfig
from ibvae.classifier.models import build_classifier
from ibvae.classifier.probe import ProbeOptions, fit_probe, label_entropy, probe_information
from ibvae.classifier.representations import pool_features, pool_representation
from ibvae.errors import IbvaeError, script_entry
from ibvae.flags import flag_name

ROOT = Path(__file__).resolve().parents[1]


make = script_entry(_script("make_occluded").main)
train = script_entry(_script("train_classifier").main)
probe_script = _script("probe_nuisance")
probe = script_entry(probe_script.main)


def test_pool_features_shapes_for_every_grid():
    model = build_classifier(ClassifierModelConfig(arch="allcnn32", width=0.125), (28, 28, 1), 10)
    x = np.random.default_rng(0).random((5, 28, 28, 1), dtype=np.float32)
    # pools of 14x14x12 and 7x7x24; a grid larger than a map stops at the map's size
    for grid, dims in ((1, [12, 24]), (4, [16 * 12, 16 * 24]), (10, [100 * 12, 49 * 24])):
        feats = pool_features(model, x, grid, batch_size=2)
        assert [f.shape for f in feats] == [(5, d) for d in dims]
    # grid 1 is the global average of the pool's inference output
    outputs = [np.asarray(o) for o in model.pool_outputs(x)]
    np.testing.assert_allclose(pool_features(model, x, 1)[1], outputs[1].mean(axis=(1, 2)),
                               rtol=1e-5, atol=1e-6)


def test_noisy_pool_outputs_are_one_draw_of_each_dropouts_noise():
    x = np.random.default_rng(1).random((8, 28, 28, 1), dtype=np.float32)
    info = build_classifier(ClassifierModelConfig(arch="allcnn32", width=0.125), (28, 28, 1), 10)
    clean = [np.asarray(o) for o in info.pool_outputs(x)]
    noisy = [np.asarray(o) for o in info.pool_outputs(x, noise=True)]
    # the first pool sees the same input in both passes (deeper ones see noisy inputs)
    f, z = clean[0], noisy[0]
    on = f > 1e-3
    log_eps = np.log(z[on] / f[on])  # log eps ~ N(0, alpha^2), alpha in [0.001, 0.701]
    assert on.mean() > 0.2 and abs(log_eps.mean()) < 0.05
    assert 0.05 < log_eps.std() < 0.71
    np.testing.assert_array_equal(z[~on] == 0, f[~on] == 0)
    assert not np.allclose(clean[1], noisy[1])
    binary = build_classifier(ClassifierModelConfig(arch="allcnn32", width=0.125,
                                                    dropout="binary"), (28, 28, 1), 10)
    f, z = (np.asarray(binary.pool_outputs(x, noise=n)[0]) for n in (False, True))
    on = f > 0
    kept = z[on] != 0
    assert abs(kept.mean() - 0.5) < 0.05  # keep_prob 0.5, kept units scaled by 1 / 0.5
    np.testing.assert_allclose(z[on][kept], 2 * f[on][kept], rtol=1e-5)


def test_noisy_features_draw_each_pools_own_noise_on_the_noise_free_pass():
    """With a grid as fine as the map the features are the map itself: every draw of pool
    k's read-out is f_k exp(alpha_k eps) with f_k, alpha_k of the noise-free pass (no noise
    upstream, so the batch norms see what they were calibrated on), eps ~ N(0, 1) fresh per
    draw and per batch."""
    model = build_classifier(ClassifierModelConfig(arch="allcnn32", width=0.125), (28, 28, 1), 10)
    x = np.random.default_rng(1).random((6, 28, 28, 1), dtype=np.float32)
    x = np.concatenate([x, x])  # the same images again, in another batch
    parts = [(np.asarray(f), np.asarray(a)) for f, a in model.pool_parts(x)]
    clean = pool_representation(model, x, grid=14, batch_size=6)
    rep = pool_representation(model, x, grid=14, batch_size=6, noise=True, draws=4)
    for k, (f, alpha) in enumerate(parts):
        np.testing.assert_allclose(clean["features"][k], f.reshape(12, -1), rtol=1e-5, atol=1e-6)
        z = rep["features"][k].reshape(12, 4, *f.shape[1:])
        on = np.broadcast_to((f > 1e-3)[:, None], z.shape)
        eps = (np.log(z[on] / np.broadcast_to(f[:, None], z.shape)[on])
               / np.broadcast_to(alpha[:, None], z.shape)[on])
        assert on.mean() > 0.2 and abs(eps.mean()) < 0.05 and abs(eps.std() - 1) < 0.05, k
        assert (z[~on & np.broadcast_to((f == 0)[:, None], z.shape)] == 0).all()
        assert not np.allclose(z[:, 0], z[:, 1]) and not np.allclose(z[:6], z[6:])
        np.testing.assert_allclose(rep["alpha"][k], alpha.mean(axis=(1, 2, 3)), rtol=1e-5)
    assert [r.shape for r in rep["kl"]] == [(12,), (12,)] and (rep["kl"][0] > 0).all()
    binary = build_classifier(ClassifierModelConfig(arch="allcnn32", width=0.125,
                                                    dropout="binary"), (28, 28, 1), 10)
    (f, none), _ = binary.pool_parts(x)
    assert none is None
    f = np.asarray(f)
    rep = pool_representation(binary, x, grid=14, noise=True, draws=2)
    assert rep["alpha"] == [] and rep["kl"] == []
    z = rep["features"][0].reshape(12, 2, *f.shape[1:])
    fb = np.broadcast_to(f[:, None], z.shape)
    kept = z[fb > 0] != 0
    assert abs(kept.mean() - 0.5) < 0.05  # keep_prob 0.5, kept units scaled by 1 / 0.5
    np.testing.assert_allclose(z[fb > 0][kept], 2 * fb[fb > 0][kept], rtol=1e-5)
    # the fixed-alpha control: the same read-out with log eps ~ N(0, fixed_alpha^2), no KL
    fixed = build_classifier(ClassifierModelConfig(arch="allcnn32", width=0.125,
                                                   dropout="lognormal", fixed_alpha=0.3),
                             (28, 28, 1), 10)
    f = np.asarray(fixed.pool_parts(x)[0][0])
    rep = pool_representation(fixed, x, grid=14, noise=True, draws=4)
    assert rep["alpha"] == [] and rep["kl"] == [] and fixed.n_information_pools == 0
    z = rep["features"][0].reshape(12, 4, *f.shape[1:])
    fb = np.broadcast_to(f[:, None], z.shape)
    on = fb > 1e-3
    log_eps = np.log(z[on] / fb[on])
    assert on.mean() > 0.2 and abs(log_eps.mean()) < 0.02 and abs(log_eps.std() - 0.3) < 0.01


def test_fit_probe_reads_a_linear_nuisance_and_not_noise():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    f = rng.normal(size=(300, 8))
    f[:, 0] += 4 * y  # the nuisance is in feature 0
    r = fit_probe(f[:200], y[:200], f[200:], y[200:])
    assert r["test_error"] < 5 and r["converged"]
    r = fit_probe(rng.normal(size=(200, 8)), y[:200], rng.normal(size=(100, 8)), y[200:])
    assert r["test_error"] > 45  # chance is ~67 % for three classes


def test_the_information_bound_is_the_label_entropy_for_the_label_and_zero_for_noise():
    """A representation that is the task label (one-hot, a little jitter) and says nothing
    of the nuisance: the bound is H(task) for the task, ~0 (or below) for the nuisance."""
    rng = np.random.default_rng(0)
    n = 3000
    task = rng.integers(0, 4, n)
    nuisance = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    rep = np.eye(4)[task] + 0.01 * rng.standard_normal((n, 4))
    rep = np.concatenate([rep, rng.standard_normal((n, 6))], axis=1)
    tr, te = slice(0, 2000), slice(2000, None)
    h_task, h_nuis = label_entropy(task[te]), label_entropy(nuisance[te])
    assert h_task == pytest.approx(np.log(4), abs=0.01)
    assert h_nuis == pytest.approx(-(0.5 * np.log(0.5) + 0.3 * np.log(0.3) + 0.2 * np.log(0.2)),
                                   abs=0.02)
    cs = [0.01, 0.1, 1.0]
    t = probe_information(rep[tr], task[tr], rep[te], task[te], cs)
    assert t["entropy_nats"] == h_task and t["test_error"] == 0.0
    assert t["info_nats"] == pytest.approx(h_task, abs=0.03)
    assert t["C"] == 1.0 and len(t["valid_cross_entropy"]) == 3  # the weakest penalty wins
    u = probe_information(rep[tr], nuisance[tr], rep[te], nuisance[te], cs)
    assert -0.05 < u["info_nats"] < 0.02 and u["info_nats"] <= t["info_nats"] - 1
    assert u["C"] == 0.01  # on noise the strongest penalty wins
    # draws of one image stay on one side of the validation split (grouped by image)
    groups = np.repeat(np.arange(1000), 2)
    g = probe_information(rep[:2000], task[:2000], rep[te], task[te], cs, groups=groups)
    assert g["info_nats"] == pytest.approx(h_task, abs=0.03)


def _stand_ins(tmp_path):
    """Task: noise images with labels that follow their mean brightness (learnable); the
    occluders: two 'digit' classes, 0 a black square, 1 a white one: an easy nuisance."""
    rng = np.random.default_rng(0)

    def tasks(n):
        y = rng.integers(0, 2, n)
        x = rng.integers(0, 120, (n, 28, 28)).astype(np.uint8) + (y * 100)[:, None, None]
        return x.astype(np.uint8), y

    (xt, yt), (xs, ys) = tasks(200), tasks(100)
    digits = np.zeros((40, 28, 28), np.uint8)
    digits[1::2] = 255
    labels = np.arange(40) % 2
    task = tmp_path / "task.npz"
    np.savez(task, x_train=xt, y_train=yt, x_test=xs, y_test=ys)
    occ = tmp_path / "digits.npz"
    np.savez(occ, x_train=digits, y_train=labels, x_test=digits[:10], y_test=labels[:10])
    return task, occ


@pytest.fixture(scope="module")
def occluded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("occ")
    task, occ = _stand_ins(tmp)
    out = tmp / "occluded.npz"
    assert make(["--task-data", str(task), "--occluder-data", str(occ), "--out", str(out),
                 "--train", "128", "--valid", "32", "--test", "96"]) == 0
    return out


def _one_error_line(capsys, rc, needle):
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error:") and needle in err[0], err


@pytest.mark.slow
def test_allcnn32_grey_trains_on_the_occluded_file_and_the_probe_beats_chance(
        occluded, tmp_path, capsys):
    run = tmp_path / "id"
    rc = train(["--config", str(ROOT / "configs" / "allcnn32_fashion.yaml"), "--data",
                str(occluded), "--width", "0.125", "--epochs", "1", "--train-size", "128",
                "--batch-size", "32", "--out", str(run)])
    assert rc == 0, capsys.readouterr().err
    assert "test error" in capsys.readouterr().out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_train"] == 128 and 0 <= metrics["test_error"] <= 100
    config = runs.read_run_config(run, ClassifierConfig)
    assert config.model.arch == "allcnn32" and config.train.data == str(occluded)
    # the probe reads the run's own data by default
    rc = probe([str(run), "--n-train", "128", "--grid", "2"])
    assert rc == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "nuisance_error" in printed and "chance" in printed
    metrics = json.loads((run / "metrics.json").read_text())
    errors, chance = metrics["nuisance_error"], metrics["nuisance_chance_error"]
    assert len(errors) == 2 and 30 < chance <= 70  # two nuisance classes, about balanced
    assert max(errors) < chance - 20, (errors, chance)  # black vs white square: easy
    p = metrics["nuisance_probe"]
    assert p["n_train"] == 128 and p["n_test"] == 96 and p["grid"] == 2
    assert p["feature_dims"] == [4 * 12, 4 * 24] and p["data"] == str(occluded)
    assert metrics["test_error"] is not None and "kl_lift" not in metrics  # nothing else changed
    # both labels, as errors and as information in nats (a bound: at most the entropy)
    for label in ("task", "nuisance"):
        h = metrics[f"{label}_entropy_nats"]
        assert 0.6 < h <= np.log(2) + 1e-9  # two classes, about balanced
        assert len(metrics[f"{label}_info_nats"]) == 2 and len(metrics[f"{label}_error"]) == 2
        assert all(v <= h for v in metrics[f"{label}_info_nats"])
    assert max(metrics["nuisance_info_nats"]) > 0.2  # black vs white square: easy to read
    assert len(metrics["mean_alpha"]) == 2 and all(0 < a < 1 for a in metrics["mean_alpha"])
    assert all(v > 0 for v in metrics["probe_kl_nats"])
    assert all(c in p["C_grid"] for c in p["C"] + p["C_task"])
    # --noise probes z = f(x) eps and keeps the noise-free probe's keys beside its own
    assert probe([str(run), "--n-train", "128", "--grid", "2", "--noise", "--draws", "3"]) == 0
    assert "nuisance_error_noisy" in capsys.readouterr().out
    noisy = json.loads((run / "metrics.json").read_text())
    assert noisy["nuisance_error"] == errors and len(noisy["nuisance_error_noisy"]) == 2
    assert noisy["nuisance_probe_noisy"]["noise"] and not noisy["nuisance_probe"]["noise"]
    assert noisy["nuisance_probe_noisy"]["draws"] == 3 and len(noisy["task_info_nats_noisy"]) == 2
    assert noisy["mean_alpha"] == metrics["mean_alpha"]  # the same noise-free alphas


@pytest.mark.slow
def test_a_binary_run_is_probed_too_and_bad_input_is_one_line(occluded, tmp_path, capsys):
    run = tmp_path / "bin"
    assert train(["--config", str(ROOT / "configs" / "allcnn32_fashion.yaml"), "--data",
                  str(occluded), "--width", "0.125", "--epochs", "1", "--dropout", "binary",
                  "--train-size", "64", "--batch-size", "32", "--out", str(run)]) == 0
    capsys.readouterr()
    assert probe([str(run), "--data", str(occluded), "--n-train", "64", "--n-test", "32"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(metrics["nuisance_error"]) == 2 and metrics["nuisance_probe"]["n_test"] == 32
    assert metrics["mean_alpha"] == [None, None] and len(metrics["task_info_nats"]) == 2
    capsys.readouterr()
    before = (run / "metrics.json").read_text()
    _one_error_line(capsys, probe([str(run), "--n-train", "0"]), "n_train must be >= 1")
    plain = tmp_path / "plain.npz"
    with np.load(occluded) as f:
        np.savez(plain, **{k: f[k] for k in f.files if not k.startswith("nuisance")})
    _one_error_line(capsys, probe([str(run), "--data", str(plain)]), "has no nuisance_train")
    rgb = tmp_path / "rgb.npz"
    with np.load(occluded) as f:
        np.savez(rgb, **{k: np.repeat(f[k], 3, axis=-1) if k.startswith("x_") else f[k]
                         for k in f.files})
    _one_error_line(capsys, probe([str(run), "--data", str(rgb)]), "takes 1")
    _one_error_line(capsys, probe([str(tmp_path)]), "is not a run directory")
    _one_error_line(capsys, probe([str(run), "--grid", "0"]), "grid must be >= 1")
    assert (run / "metrics.json").read_text() == before  # nothing half-written


def test_every_probe_option_has_a_flag(capsys):
    with pytest.raises(SystemExit) as e:
        probe_script.main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for leaf in cfg.leaves(ProbeOptions):
        assert flag_name(leaf) in text, leaf.name
    with pytest.raises(IbvaeError, match="probe_c must be > 0"):
        ProbeOptions(probe_c=[0.1, 0])
    with pytest.raises(IbvaeError, match="probe_c must list at least one value"):
        ProbeOptions(probe_c=[])
    with pytest.raises(IbvaeError, match="draws must be >= 1"):
        ProbeOptions(draws=0)
