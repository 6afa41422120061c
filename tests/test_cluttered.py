"""Cluttered MNIST generator: shapes, ranges, determinism, boxes, and bad input."""

import numpy as np
import pytest

from ibvae.classifier.cluttered import (
    clutter,
    make_cluttered_mnist,
)
from ibvae.classifier.config import ClutterConfig
from ibvae.classifier.data import Split, as_splits, load_classification_npz
from ibvae.data import Dataset
from ibvae.errors import IbvaeError
from ibvae.files import save_npz, write_npz


def spec(canvas, distractors, distractor_size, **sizes):
    return ClutterConfig(
        canvas=canvas, distractors=distractors, distractor_size=distractor_size, **sizes
    )


def _digits(n=50, seed=0):
    """Synthetic 28x28 'digits': a bright 12x12 square at a random place, labels = index % 10."""
    rng = np.random.default_rng(seed)
    d = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        r, c = rng.integers(0, 17, 2)
        d[i, r : r + 12, c : c + 12] = 200
        d[i, 27, 27] = i + 1  # makes every digit unique
    return d, np.arange(n) % 10


def test_shapes_dtypes_ranges():
    d, y = _digits()
    x, labels, boxes, _ = clutter(d, y, 30, np.random.default_rng(0), spec(48, 6, 8))
    assert x.shape == (30, 48, 48, 1) and x.dtype == np.uint8
    assert labels.shape == (30,) and boxes.shape == (30, 4)
    assert x.max() <= 255 and x.min() == 0
    assert (boxes[:, 2:] == 28).all()
    assert (boxes[:, :2] >= 0).all() and (boxes[:, :2] + 28 <= 48).all()
    # distractors are present: more lit pixels than the target square alone
    assert ((x[..., 0] > 0).sum(axis=(1, 2)) > 144).mean() > 0.9


def test_target_pixels_inside_box_and_labels_follow_targets():
    d, y = _digits()
    config = spec(60, 0, 8)  # no distractors: every lit pixel belongs to the target
    x, labels, boxes, _ = clutter(d, y, 40, np.random.default_rng(1), config)
    for img, box, lab in zip(x[..., 0], boxes, labels, strict=True):
        t, left, h, w = box
        outside = img.copy()
        outside[t : t + h, left : left + w] = 0
        assert outside.max() == 0
        patch = img[t : t + h, left : left + w]
        # the pasted patch equals one digit of the right class
        match = [i for i in range(len(d)) if np.array_equal(d[i], patch)]
        assert match and all(y[i] == lab for i in match)


def test_deterministic_by_seed_and_split_independent():
    a = make_cluttered_mnist(spec(40, 3, 8, train=20, valid=5, test=10, seed=3))
    b = make_cluttered_mnist(spec(40, 3, 8, train=20, valid=5, test=10, seed=3))
    c = make_cluttered_mnist(spec(40, 3, 8, train=7, valid=5, test=10, seed=3))
    d = make_cluttered_mnist(spec(40, 3, 8, train=20, valid=5, test=10, seed=4))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    np.testing.assert_array_equal(a["x_test"], c["x_test"])  # test set ignores --train
    assert not np.array_equal(a["x_test"], d["x_test"])


def test_clipping_matches_float_recipe():
    d, y = _digits(5)
    d[:] = 200  # saturating digits: the sums must clip at 255
    x, _, _, _ = clutter(d, y, 10, np.random.default_rng(0), spec(30, 8, 8))
    assert x.max() == 255 and (x[x > 6] >= 200).all()


@pytest.mark.parametrize(
    "sizes, msg",
    [
        ((20, 21, 8), "canvas must be >= the digit size 28"),
        ((96, 21, 29), "distractor_size must be in"),
        ((96, -1, 8), "distractors must be >= 0"),
    ],
)
def test_bad_spec(sizes, msg):
    d, y = _digits(5)
    with pytest.raises(IbvaeError, match=msg):
        clutter(d, y, 3, np.random.default_rng(0), spec(*sizes))


def test_sizes_are_checked_against_the_actual_digits():
    d, y = np.zeros((4, 16, 16), np.uint8), np.arange(4)  # 16x16 "digits"
    x, _, boxes, _ = clutter(d, y, 2, np.random.default_rng(0), spec(20, 1, 8))
    assert x.shape == (2, 20, 20, 1) and (boxes[:, 2:] == 16).all()
    with pytest.raises(IbvaeError, match="distractor_size must be in \\[1, 16\\]"):
        clutter(d, y, 2, np.random.default_rng(0), spec(20, 1, 17))


def test_write_checks_the_output_before_generating(tmp_path):
    config = spec(32, 2, 8, train=4, valid=0, test=4)
    path = write_npz(lambda: make_cluttered_mnist(config), tmp_path / "c.npz")
    with np.load(path) as f:
        assert f["x_train"].shape == (4, 32, 32, 1) and "x_valid" not in f
    with pytest.raises(IbvaeError, match="already exists"):
        write_npz(lambda: make_cluttered_mnist(config), path)
    with pytest.raises(IbvaeError, match="must end in .npz"):
        write_npz(lambda: make_cluttered_mnist(config), tmp_path / "c.npy")
    with pytest.raises(IbvaeError, match="canvas must be >= the digit size 28"):
        write_npz(lambda: make_cluttered_mnist(spec(20, 2, 8)), tmp_path / "d.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]


def test_save_and_load_roundtrip(tmp_path):
    arrays = make_cluttered_mnist(spec(32, 2, 8, train=8, valid=4, test=6))
    path = save_npz(arrays, tmp_path / "c.npz")
    splits = load_classification_npz(path)
    assert set(splits) == {"train", "valid", "test"}
    assert splits["train"].x.dtype == np.float32 and splits["train"].x.max() <= 1.0
    np.testing.assert_allclose(splits["test"].x * 255, arrays["x_test"], atol=1e-3)
    np.testing.assert_array_equal(splits["test"].boxes, arrays["boxes_test"])


@pytest.mark.parametrize(
    "change, msg",
    [
        (lambda a: a.update(boxes_test=a["boxes_test"][:-1]), "5 boxes for 6 images"),
        (lambda a: a.update(y_train=a["y_train"][:3]), "3 labels for 8 images"),
        (lambda a: a.update(boxes_test=a["boxes_test"] + 30), "outside"),
        (lambda a: a.pop("y_test"), "lacks key"),
    ],
)
def test_mismatched_user_npz(tmp_path, change, msg):
    arrays = make_cluttered_mnist(spec(32, 2, 8, train=8, valid=0, test=6))
    change(arrays)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(IbvaeError, match=msg):
        load_classification_npz(tmp_path / "bad.npz")


def test_in_memory_forms_give_the_same_checked_splits(tmp_path):
    arrays = make_cluttered_mnist(spec(32, 2, 8, train=8, valid=4, test=6))
    path = save_npz(arrays, tmp_path / "c.npz")
    a = {s: (arrays[f"x_{s}"], arrays[f"y_{s}"], arrays[f"boxes_{s}"]) for s in ("train", "test")}
    forms = [
        str(path),
        (a["train"], a["test"]),
        {"train": Split(arrays["x_train"] / 255.0, arrays["y_train"]), "test": a["test"]},
        Dataset(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], "mem"),
    ]
    for form in forms:
        splits = as_splits(form)
        assert splits["train"].x.dtype == np.float32 and splits["train"].x.shape == (8, 32, 32, 1)
        np.testing.assert_allclose(splits["test"].x * 255, arrays["x_test"], atol=1e-3)
        np.testing.assert_array_equal(splits["test"].y, arrays["y_test"])
    assert as_splits(forms[1])["test"].boxes is not None


@pytest.mark.parametrize(
    "data, msg",
    [
        ({"train": (np.zeros((4, 8, 8)), np.arange(4))}, "no test split"),
        ({"train": (np.zeros((4, 8, 8)), np.arange(4)), "test": (np.zeros((2, 9, 9)), [0, 1])},
         "different image shapes"),
        ({"train": (np.zeros((4, 8, 8)), -np.arange(4)), "test": (np.zeros((2, 8, 8)), [0, 1])},
         "negative labels"),
        ({"train": (np.zeros((4, 8, 8)), np.arange(4)), "test": (np.zeros((2, 8, 8)), [0, 1]),
          "extra": (np.zeros((2, 8, 8)), [0, 1])}, "unknown split"),
        ((np.zeros((4, 8, 8)), np.zeros((2, 8, 8))), "must be a Split or"),
        (np.zeros((4, 8, 8)), "data must be"),
    ],
)
def test_bad_in_memory_data(data, msg):
    with pytest.raises(IbvaeError, match=msg):
        as_splits(data)


def test_distractor_boxes_lie_on_the_canvas_and_cover_the_ink_the_generator_pasted():
    d, y = _digits(20)
    d[:] = 90  # every crop is all ink, so each image is a sum of its boxes
    config = spec(56, 5, 8)
    x, labels, boxes, dboxes = clutter(d, y, 40, np.random.default_rng(2), config)
    assert dboxes.shape == (40, 5, 4) and dboxes.dtype == np.int32
    assert (dboxes[..., 2:] == 8).all() and (dboxes[..., :2] >= 0).all()
    assert (dboxes[..., :2] + 8 <= 56).all()
    assert len(np.unique(dboxes[..., :2].reshape(-1, 2), axis=0)) > 100  # not one place
    # rebuild each image from its boxes: 90 per box over a pixel (target's included), clipped
    count = np.zeros(x.shape[:3], np.int64)
    for i in range(40):
        for t, left, h, w in [*dboxes[i], boxes[i]]:
            count[i, t : t + h, left : left + w] += 1
    np.testing.assert_array_equal(x[..., 0], np.minimum(90 * count, 255))


def test_distractor_boxes_are_saved_and_loaded_and_old_files_still_load(tmp_path):
    arrays = make_cluttered_mnist(spec(32, 3, 8, train=8, valid=4, test=6))
    assert arrays["distractor_boxes_test"].shape == (6, 3, 4)
    path = save_npz(arrays, tmp_path / "c.npz")
    splits = load_classification_npz(path)
    np.testing.assert_array_equal(splits["test"].distractor_boxes, arrays["distractor_boxes_test"])
    assert splits["train"].head(5).distractor_boxes.shape == (5, 3, 4)
    old = {k: v for k, v in arrays.items() if not k.startswith("distractor_boxes")}
    np.savez(tmp_path / "old.npz", **old)
    splits = load_classification_npz(tmp_path / "old.npz")
    assert splits["test"].distractor_boxes is None and splits["test"].boxes is not None
    bad = {**arrays, "distractor_boxes_test": arrays["distractor_boxes_test"] + 30}
    np.savez(tmp_path / "bad.npz", **bad)
    with pytest.raises(IbvaeError, match="distractor_boxes_test has boxes outside"):
        load_classification_npz(tmp_path / "bad.npz")
    flat = {**arrays, "distractor_boxes_test": arrays["distractor_boxes_test"][:, 0]}
    np.savez(tmp_path / "flat.npz", **flat)
    with pytest.raises(IbvaeError, match=r"must have shape \(N, k, 4\)"):
        load_classification_npz(tmp_path / "flat.npz")
