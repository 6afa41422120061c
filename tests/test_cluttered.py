"""Cluttered MNIST generator: shapes, ranges, determinism, boxes, and bad input."""

import numpy as np
import pytest

from ibvae.cluttered import (
    ClutterSpec,
    clutter,
    load_classification_npz,
    make_cluttered_mnist,
    save_npz,
)
from ibvae.errors import IbvaeError


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
    x, labels, boxes = clutter(d, y, 30, np.random.default_rng(0), ClutterSpec(48, 6, 8))
    assert x.shape == (30, 48, 48, 1) and x.dtype == np.uint8
    assert labels.shape == (30,) and boxes.shape == (30, 4)
    assert x.max() <= 255 and x.min() == 0
    assert (boxes[:, 2:] == 28).all()
    assert (boxes[:, :2] >= 0).all() and (boxes[:, :2] + 28 <= 48).all()
    # distractors are present: more lit pixels than the target square alone
    assert ((x[..., 0] > 0).sum(axis=(1, 2)) > 144).mean() > 0.9


def test_target_pixels_inside_box_and_labels_follow_targets():
    d, y = _digits()
    spec = ClutterSpec(60, 0, 8)  # no distractors: every lit pixel belongs to the target
    x, labels, boxes = clutter(d, y, 40, np.random.default_rng(1), spec)
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
    a = make_cluttered_mnist(None, {"train": 20, "valid": 5, "test": 10}, seed=3,
                             spec=ClutterSpec(40, 3, 8))
    b = make_cluttered_mnist(None, {"train": 20, "valid": 5, "test": 10}, seed=3,
                             spec=ClutterSpec(40, 3, 8))
    c = make_cluttered_mnist(None, {"train": 7, "valid": 5, "test": 10}, seed=3,
                             spec=ClutterSpec(40, 3, 8))
    d = make_cluttered_mnist(None, {"train": 20, "valid": 5, "test": 10}, seed=4,
                             spec=ClutterSpec(40, 3, 8))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    np.testing.assert_array_equal(a["x_test"], c["x_test"])  # test set ignores --train
    assert not np.array_equal(a["x_test"], d["x_test"])


def test_clipping_matches_float_recipe():
    d, y = _digits(5)
    d[:] = 200  # saturating digits: the sums must clip at 255
    x, _, _ = clutter(d, y, 10, np.random.default_rng(0), ClutterSpec(30, 8, 8))
    assert x.max() == 255 and (x[x > 6] >= 200).all()


@pytest.mark.parametrize(
    "spec, msg",
    [
        (ClutterSpec(20, 21, 8), "canvas must be >= the digit size"),
        (ClutterSpec(96, 21, 29), "distractor_size must be in"),
        (ClutterSpec(96, -1, 8), "n_distractors must be >= 0"),
    ],
)
def test_bad_spec(spec, msg):
    d, y = _digits(5)
    with pytest.raises(IbvaeError, match=msg):
        clutter(d, y, 3, np.random.default_rng(0), spec)


def test_save_and_load_roundtrip(tmp_path):
    arrays = make_cluttered_mnist(None, {"train": 8, "valid": 4, "test": 6}, seed=0,
                                  spec=ClutterSpec(32, 2, 8))
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
    arrays = make_cluttered_mnist(None, {"train": 8, "valid": 0, "test": 6}, seed=0,
                                  spec=ClutterSpec(32, 2, 8))
    change(arrays)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(IbvaeError, match=msg):
        load_classification_npz(tmp_path / "bad.npz")
