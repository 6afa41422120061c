"""Localisation lift on hand-made maps, box masks, and KL maps of a real model."""

import numpy as np
import pytest

from ibvae.classifier.config import ClassifierModelConfig
from ibvae.classifier.data import Split
from ibvae.classifier.kl_maps import (
    KLMapOptions,
    border_ratios,
    box_masks,
    kl_maps,
    kl_statistics,
    lift_per_image,
    write_kl_maps,
)
from ibvae.classifier.models import build_classifier
from ibvae.errors import IbvaeError


def test_box_masks_map_boxes_to_each_resolution():
    boxes = np.array([[8, 16, 28, 28], [0, 0, 4, 4]])
    m = box_masks(boxes, (64, 64), (64, 64))
    assert m[0].sum() == 28 * 28 and m[0, 8, 16] and not m[0, 7, 16] and not m[0, 36, 16]
    m = box_masks(boxes, (64, 64), (16, 16))  # scale 1/4: rows 2..8 (ceil(36/4)=9), cols 4..10
    assert m[0].sum() == 7 * 7 and m[0, 2, 4] and m[0, 8, 10] and not m[0, 9, 4]
    assert m[1].sum() == 1  # a 4x4 box at the corner is one cell


def test_all_mass_in_box_gives_inverse_area_fraction():
    boxes = np.array([[10, 20, 28, 28], [30, 0, 28, 28]])
    maps = box_masks(boxes, (64, 64), (32, 32)).astype(float) * 5.0
    area = box_masks(boxes, (64, 64), (32, 32)).mean(axis=(1, 2))
    np.testing.assert_allclose(lift_per_image(maps, boxes, (64, 64)), 1 / area)


def test_uniform_map_gives_one():
    boxes = np.array([[10, 20, 28, 28]] * 3)
    maps = np.ones((3, 16, 16)) * 2.0
    np.testing.assert_allclose(lift_per_image(maps, boxes, (64, 64), subtract_min=False), 1.0)
    # with the authors' minimum subtracted a constant map has no mass: counted as 1 (no focus)
    np.testing.assert_allclose(lift_per_image(maps, boxes, (64, 64)), 1.0)


def test_half_mass_in_box():
    boxes = np.array([[0, 0, 32, 32]])  # a quarter of a 64x64 image
    maps = np.zeros((1, 8, 8))
    maps[0, 0, 0] = 1.0  # inside
    maps[0, 7, 7] = 1.0  # outside
    np.testing.assert_allclose(lift_per_image(maps, boxes, (64, 64), subtract_min=False), 2.0)


def test_bad_shapes():
    with pytest.raises(IbvaeError, match="need"):
        lift_per_image(np.zeros((2, 4, 4)), np.zeros((3, 4)), (8, 8))


def test_kl_maps_of_a_model_and_statistics():
    model = build_classifier(ClassifierModelConfig(width=0.125), (32, 32, 1), 100)
    x = np.random.default_rng(0).random((5, 32, 32, 1), dtype=np.float32)
    maps = kl_maps(model, x, batch_size=2)
    assert [m.shape for m in maps] == [(5, 16, 16), (5, 8, 8), (5, 4, 4), (5, 2, 2)]
    assert all((m > 0).all() for m in maps)  # -log(alpha / alpha_top) > 0 below the top
    boxes = np.tile([[2, 2, 28, 28]], (5, 1))
    stats = kl_statistics(model, x, boxes, batch_size=5)
    assert len(stats["kl_lift"]) == 4 and len(stats["kl_nats"]) == 4
    np.testing.assert_allclose(stats["kl_nats"][0], maps[0].sum(axis=(1, 2)).mean(), rtol=1e-5)


def test_no_information_pools_is_a_user_error():
    model = build_classifier(ClassifierModelConfig(width=0.125, dropout="binary"), (32, 32, 1), 10)
    with pytest.raises(IbvaeError, match="no information pools"):
        kl_maps(model, np.zeros((1, 32, 32, 1), np.float32))


def test_border_ratios_find_a_bright_bottom_row():
    maps = np.ones((2, 6, 6))
    maps[:, -1, :] = 3.0  # bright bottom row
    maps[:, 0, 0] = 0.0  # the minimum, subtracted
    top, bottom, left, right = border_ratios(maps)
    assert bottom == pytest.approx(3.0) and top == pytest.approx(5 / 6)  # interior mean is 1
    assert left == pytest.approx(7 / 6) and right == pytest.approx(8 / 6)


def test_write_kl_maps_figure_and_metrics(tmp_path):
    model = build_classifier(ClassifierModelConfig(width=0.125), (32, 32, 1), 100)
    rng = np.random.default_rng(1)
    test = Split(rng.random((3, 32, 32, 1), dtype=np.float32), np.arange(3),
                 np.tile([[2, 2, 28, 28]], (3, 1)))
    r = write_kl_maps(model, test, tmp_path, n=5)  # n beyond the split: all 3 images
    assert (tmp_path / "figures" / "kl_maps.png").is_file() and r["kl_map_shapes"][0] == [16, 16]
    with pytest.raises(IbvaeError, match="no boxes_test"):
        write_kl_maps(model, Split(test.x, test.y), tmp_path)


@pytest.mark.parametrize(
    "kwargs, msg",
    [(dict(n=0), "n must be >= 1"), (dict(batch_size=0), "batch_size must be >= 1")],
)
def test_bad_kl_map_options(kwargs, msg):
    with pytest.raises(IbvaeError, match=msg):
        KLMapOptions(**kwargs)
