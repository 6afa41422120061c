"""Occluded Fashion-MNIST generator on synthetic stand-ins (never the Debian package): shapes,
determinism, the nuisance label is the pasted digit's, the occluder inside the image, IDX
input, the script and its one-line errors."""

import gzip
from pathlib import Path

import numpy as np
import pytest
from script_loader import load_script as _script

from ibvae.classifier.config import OccludedConfig
from ibvae.classifier.data import load_classification_npz
from ibvae.classifier.occluded import make_occluded, occlude
from ibvae.errors import IbvaeError, script_entry
from ibvae.files import write_npz
from ibvae.resample import resize_square

ROOT = Path(__file__).resolve().parents[1]


def _digits(n=30, seed=0):
    """Synthetic 28x28 'digits': a bright 12x12 square at a random place, one unique pixel
    each (so a pasted digit can be identified), labels index % 10."""
    rng = np.random.default_rng(seed)
    d = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        r, c = rng.integers(0, 17, 2)
        d[i, r : r + 12, c : c + 12] = 200
        d[i, 2 * (i // 28), i % 28] = 255
    return d, np.arange(n) % 10


def _tasks(n=40, side=28, channels=None, seed=1):
    rng = np.random.default_rng(seed)
    shape = (n, side, side) if channels is None else (n, side, side, channels)
    return rng.integers(0, 256, shape, dtype=np.uint8), rng.integers(0, 10, n)


def _npz(path, x_train, y_train, x_test, y_test):
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return str(path)


@pytest.fixture
def files(tmp_path):
    (xt, yt), (xs, ys) = _tasks(60), _tasks(20, seed=2)
    (dt, lt), (ds, ls) = _digits(30), _digits(30, seed=3)
    return (_npz(tmp_path / "task.npz", xt, yt, xs, ys),
            _npz(tmp_path / "digits.npz", dt, lt, ds, ls))


def config(files, **kwargs):
    task, digits = files
    return OccludedConfig(**{"task_data": task, "occluder_data": digits, "train": 24,
                             "valid": 8, "test": 12, **kwargs})


def test_resize_digits_is_an_area_average():
    d, _ = _digits(3)
    small = resize_square(d, 14)
    expected = d.reshape(3, 14, 2, 14, 2).astype(float).mean(axis=(2, 4))
    np.testing.assert_array_equal(small, np.rint(expected).astype(np.uint8))
    assert resize_square(d, 28) is not d and resize_square(d[..., None], 9).shape == (3, 9, 9)


@pytest.mark.parametrize("size", [14, 9, 28])
def test_shapes_labels_and_the_occluder_inside_the_image(size):
    tasks, task_labels = _tasks()
    tasks = np.zeros_like(tasks)[..., None]  # black task images: every lit pixel is the digit's
    digits, digit_labels = _digits()
    cfg = OccludedConfig(occluder_size=size)
    x, y, nuisance, boxes = occlude(tasks, task_labels, digits, digit_labels, 50,
                                    np.random.default_rng(0), cfg, chunk=16)
    assert x.shape == (50, 28, 28, 1) and x.dtype == np.uint8
    assert y.shape == nuisance.shape == (50,) and boxes.shape == (50, 4)
    assert (boxes[:, 2:] == size).all() and (boxes[:, :2] >= 0).all()
    assert (boxes[:, :2] + size <= 28).all()  # wholly inside the image
    shrunk = resize_square(digits, size)
    for img, (top, left, h, w), label in zip(x[..., 0], boxes, nuisance, strict=True):
        outside = img.copy()
        outside[top : top + h, left : left + w] = 0
        assert outside.max() == 0  # nothing but the digit, inside its box
        patch = img[top : top + h, left : left + w]
        match = [i for i in range(len(digits)) if np.array_equal(shrunk[i], patch)]
        assert match and all(digit_labels[i] == label for i in match)  # the pasted digit's label
    assert len(set(nuisance.tolist())) > 3
    assert len(set(map(tuple, boxes[:, :2].tolist()))) > (10 if size < 28 else 0)


def test_the_task_image_and_label_survive_outside_the_box():
    tasks, labels = _tasks(40)
    tasks = tasks[..., None]
    digits, digit_labels = _digits()
    x, y, _, boxes = occlude(tasks, labels, digits, digit_labels, 40,
                             np.random.default_rng(1), OccludedConfig(occluder_size=10))
    for img, label, (top, left, h, w) in zip(x, y, boxes, strict=True):
        keep = np.ones((28, 28), bool)
        keep[top : top + h, left : left + w] = False
        source = [i for i in range(40) if np.array_equal(tasks[i][keep], img[keep])]
        assert len(source) == 1 and labels[source[0]] == label
    # every task image used once while the pool lasts
    assert len({x[i][:1].tobytes() for i in range(40)}) > 1


def test_blend_max_keeps_the_image_under_the_strokes_and_colour_gets_the_digit_in_every_channel():
    tasks = np.full((10, 32, 32, 3), 100, np.uint8)
    digits, digit_labels = _digits()
    x, _, nuisance, boxes = occlude(tasks, np.arange(10), digits, digit_labels, 10,
                                    np.random.default_rng(2), OccludedConfig(blend="max"))
    assert x.shape == (10, 32, 32, 3) and x.min() == 100  # no black square with "max"
    shrunk = resize_square(digits, 14)
    for img, (top, left, h, _) in zip(x, boxes, strict=True):
        patch = img[top : top + h, left : left + h]
        assert (patch[..., 0] == patch[..., 2]).all() and patch.max() > 100
        assert any(np.array_equal(np.maximum(shrunk[i], 100), patch[..., 1])
                   for i in range(len(digits)))


def test_make_occluded_files_determinism_and_split_independence(files):
    a = make_occluded(config(files, seed=3))
    b = make_occluded(config(files, seed=3))
    c = make_occluded(config(files, seed=3, train=5))
    d = make_occluded(config(files, seed=4))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    for k in ("x_test", "y_test", "nuisance_test", "occluder_boxes_test"):
        np.testing.assert_array_equal(a[k], c[k])  # the test set ignores --train
    assert not np.array_equal(a["x_test"], d["x_test"])
    assert a["x_train"].shape == (24, 28, 28, 1) and a["nuisance_valid"].shape == (8,)
    assert a["y_test"].dtype == np.int64 and str(a["blend"]) == "paste"
    # train and valid task images come from disjoint parts of the task's train set
    with np.load(files[0]) as f:
        pool = f["x_train"]
    def sources(x, boxes):
        out = set()
        for img, (top, left, h, w) in zip(x[..., 0], boxes, strict=True):
            keep = np.ones((28, 28), bool)
            keep[top : top + h, left : left + w] = False
            out |= {i for i in range(len(pool)) if np.array_equal(pool[i][keep], img[keep])}
        return out
    assert not sources(a["x_train"], a["occluder_boxes_train"]) & sources(
        a["x_valid"], a["occluder_boxes_valid"])


def test_occluder_size_zero_is_the_unoccluded_control(files):
    plain = make_occluded(config(files, occluder_size=0))
    occluded = make_occluded(config(files))
    np.testing.assert_array_equal(plain["y_test"], occluded["y_test"])
    np.testing.assert_array_equal(plain["nuisance_test"], occluded["nuisance_test"])
    with np.load(files[0]) as f:
        pool = f["x_test"]
    for img in plain["x_test"][..., 0]:
        assert any(np.array_equal(img, p) for p in pool)  # a task image, untouched


def test_the_written_file_is_a_classification_npz_with_nuisance_labels(files, tmp_path):
    path = write_npz(lambda: make_occluded(config(files)), tmp_path / "occ.npz")
    splits = load_classification_npz(path)  # what train_classifier reads: extra keys ignored
    assert set(splits) == {"train", "valid", "test"} and splits["test"].boxes is None
    assert splits["train"].x.shape == (24, 28, 28, 1) and splits["train"].x.max() <= 1
    with np.load(path) as f:
        assert {"nuisance_train", "nuisance_valid", "nuisance_test",
                "occluder_boxes_test"} <= set(f.files)


def _write_idx(path, array, gz):
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    data = header + array.tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


def test_task_data_from_an_idx_folder(tmp_path):
    folder = tmp_path / "fashion"
    folder.mkdir()
    (xt, yt), (xs, ys) = _tasks(30), _tasks(12, seed=5)
    for name, array, gz in (("train-images-idx3-ubyte", xt, True),
                            ("train-labels-idx1-ubyte", yt.astype(np.uint8), False),
                            ("t10k-images-idx3-ubyte", xs, False),
                            ("t10k-labels-idx1-ubyte", ys.astype(np.uint8), True)):
        _write_idx(folder / (name + (".gz" if gz else "")), array, gz)
    digits = _npz(tmp_path / "d.npz", *_digits(20), *_digits(10, seed=1))
    from_idx = make_occluded(OccludedConfig(task_data=str(folder), occluder_data=digits,
                                            train=10, valid=4, test=6))
    from_npz = make_occluded(OccludedConfig(task_data=_npz(tmp_path / "t.npz", xt, yt, xs, ys),
                                            occluder_data=digits, train=10, valid=4, test=6))
    for k in from_npz:
        np.testing.assert_array_equal(from_idx[k], from_npz[k])


@pytest.mark.parametrize(
    "change, msg",
    [
        (dict(task_data=None), "no task data: pass --task-data"),
        (dict(occluder_size=29), "occluder_size must be <= the task images' side 28"),
        (dict(task_data="nowhere.npz"), "not found"),
    ],
)
def test_bad_options(files, change, msg):
    with pytest.raises(IbvaeError, match=msg):
        make_occluded(config(files, **change))


def test_bad_files(tmp_path):
    digits = _npz(tmp_path / "d.npz", *_digits(20), *_digits(10, seed=1))
    (xt, yt), (xs, ys) = _tasks(30), _tasks(12)
    bad = {
        "labels": (_npz(tmp_path / "l.npz", xt, yt[:5], xs, ys), "5 labels for 30 images"),
        "keys": (str(tmp_path / "k.npz"), "lacks key"),
        "sizes": (_npz(tmp_path / "s.npz", xt, yt, xs[:, :20, :20], ys), "x_test images"),
    }
    np.savez(tmp_path / "k.npz", x_train=xt, y_train=yt)
    for path, msg in bad.values():
        with pytest.raises(IbvaeError, match=msg):
            make_occluded(OccludedConfig(task_data=path, occluder_data=digits, train=4, valid=0,
                                         test=4))
    rect = _npz(tmp_path / "r.npz", xt[:, :, :20], yt, xs[:, :, :20], ys)
    with pytest.raises(IbvaeError, match="must be square and grey"):
        make_occluded(OccludedConfig(task_data=digits, occluder_data=rect, train=4, test=4))


# --------------------------------------------------------------------------- the script


make = script_entry(_script("make_occluded").main)


def test_script_writes_the_file_and_refuses_to_overwrite(files, tmp_path, capsys):
    out = tmp_path / "occ.npz"
    argv = ["--task-data", files[0], "--occluder-data", files[1], "--out", str(out),
            "--train", "16", "--valid", "4", "--test", "8", "--seed", "2"]
    assert make(argv) == 0, capsys.readouterr().err
    assert "wrote" in capsys.readouterr().out
    with np.load(out) as f:
        assert f["x_train"].shape == (16, 28, 28, 1) and f["nuisance_test"].shape == (8,)
    stamp = out.stat().st_mtime_ns
    assert make(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0] and out.stat().st_mtime_ns == stamp


@pytest.mark.parametrize(
    "argv, needle",
    [
        ([], "no task data: pass --task-data"),
        (["--task-data", "{task}", "--occluder-size", "40"], "occluder_size must be <="),
        (["--task-data", "{task}", "--occluder-size", "-1"], "occluder_size must be >= 0"),
        (["--task-data", "{task}", "--train", "-3"], "train must be >= 0"),
        (["--task-data", "{missing}"], "not found"),
        (["--task-data", "{digits}", "--occluder-data", "{task_dir}"], "lacks train-images"),
    ],
)
def test_script_bad_input_is_one_error_line_and_no_file(files, tmp_path, capsys, argv, needle):
    (tmp_path / "empty").mkdir()
    paths = {"task": files[0], "digits": files[1], "missing": str(tmp_path / "none.npz"),
             "task_dir": str(tmp_path / "empty")}
    out = tmp_path / "occ.npz"
    argv = ["--out", str(out), "--train", "4", "--valid", "0", "--test", "4",
            *[a.format(**paths) for a in argv]]
    if "--occluder-data" not in argv:
        argv += ["--occluder-data", files[1]]
    assert make(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and needle in err[0], err
    assert not out.exists() and not list(tmp_path.glob("*.tmp*"))
