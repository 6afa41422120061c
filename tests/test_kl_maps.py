"""Receptive-field centres against an impulse through the real model; box masks, the
localisation lift and AUC on hand-made maps; KL maps and their statistics of a real model."""

import json

import numpy as np
import pytest

from ibvae.classifier.config import ClassifierModelConfig
from ibvae.classifier.data import Split
from ibvae.classifier.kl_maps import (
    KLMapOptions,
    border_ratios,
    kl_maps,
    kl_statistics,
    write_kl_maps,
)
from ibvae.classifier.localisation import (
    auc_per_image,
    clutter_auc_per_image,
    clutter_cells,
    field_sums,
    ink_maps,
    lift_ceiling_per_image,
    lift_per_image,
)
from ibvae.classifier.models import build_classifier
from ibvae.classifier.receptive_fields import (
    Grid,
    box_fractions,
    box_masks,
    conv_grid,
    pool_grids,
    receptive_field_size,
    uniform_grid,
)
from ibvae.errors import IbvaeError

# --------------------------------------------------------------------------- receptive fields


def _linear_model(padding, size, arch="allcnn96"):
    """The real All-CNN with every conv kernel set to ones: with fresh batch norm (mean 0,
    variance 1, no shift) and non-negative inputs every ReLU passes, so each pool's output is
    a linear function of the input with non-negative weights that are symmetric about each
    cell's receptive-field centre (separable all-ones kernels)."""
    model = build_classifier(ClassifierModelConfig(arch=arch, width=1 / 32, padding=padding),
                             (size, size, 1), 10)
    for layer in model.conv_bn_layers():
        layer.conv.kernel.assign(np.ones(layer.conv.kernel.shape, np.float32))
    return model


@pytest.mark.parametrize("size", [96, 94])
@pytest.mark.parametrize("padding", ["same", "symmetric", "valid"])
def test_receptive_field_centres_match_an_impulse_through_the_model(padding, size):
    model = _linear_model(padding, size)
    geometry = model.pool_geometry()
    grids = pool_grids(geometry, (size, size))
    # Image k has row k lit (column k for the columns): the response of cell (i, j) is the row
    # (column) profile of its receptive field; its centre of mass is the field's centre
    # wherever the field lies inside the image (no padding cuts it).
    lit = np.zeros((size, size, size, 1), np.float32)
    lit[np.arange(size), np.arange(size), :, 0] = 1.0
    for axis, images in ((0, lit), (1, lit.transpose(0, 2, 1, 3))):
        outputs = [np.asarray(o) for o in model.pool_outputs(images)]
        for pool, (out, grid_pair) in enumerate(zip(outputs, grids, strict=True)):
            assert out.shape[1:3] == (grid_pair[0].size, grid_pair[1].size)
            grid = grid_pair[axis]
            mid = out.shape[2 - axis] // 2  # a middle column (row)
            profile = out[:, :, mid, 0] if axis == 0 else out[:, mid, :, 0]
            centre_of_mass = (np.arange(size)[:, None] * profile).sum(0) / profile.sum(0)
            half = (receptive_field_size(geometry, pool) - 1) / 2
            c = grid.centres()
            inside = (c - half >= 0) & (c + half <= size - 1)
            assert inside.any(), (padding, size, pool)
            np.testing.assert_allclose(centre_of_mass[inside], c[inside], atol=1e-3)
            # and the naive centres (cell i centred on its 1/scale span) are not these
            if size == 96 and padding != "valid":
                naive = uniform_grid(size, grid.size).centres()
                assert np.abs(naive[inside] - c[inside]).min() >= 0.5


def test_centre_offsets_of_same_padding_and_their_mirror_image():
    for padding, sign in (("same", 1), ("symmetric", -1)):
        model = build_classifier(ClassifierModelConfig(width=1 / 32, padding=padding),
                                 (64, 64, 1), 10)
        grids = pool_grids(model.pool_geometry(), (64, 64))
        offsets = [rows.centres() - uniform_grid(64, rows.size).centres() for rows, _ in grids]
        for off, expected in zip(offsets, (0.5, 1.5, 3.5, 7.5), strict=True):
            np.testing.assert_allclose(off, sign * expected)
    # All-CNN-32 on a grey 28x28 image: 14 then 7 cells
    model = build_classifier(ClassifierModelConfig(arch="allcnn32", width=1 / 32), (28, 28, 1), 10)
    assert [(r.size, r.step, r.start) for r, _ in pool_grids(model.pool_geometry(), (28, 28))] \
        == [(14, 2.0, 0.0), (7, 4.0, 0.0)]


def test_conv_grid_rules():
    g = Grid(0.0, 1.0, 64)
    assert conv_grid(g, 3, 1, "same") == g  # stride 1, odd kernel: unchanged
    assert conv_grid(g, 3, 2, "same") == Grid(1.0, 2.0, 32)  # even input: no top padding
    assert conv_grid(Grid(0.0, 1.0, 63), 3, 2, "same") == Grid(0.0, 2.0, 32)  # odd: one
    assert conv_grid(g, 3, 2, "symmetric") == Grid(0.0, 2.0, 32)
    assert conv_grid(g, 3, 2, "valid") == Grid(1.0, 2.0, 31)
    with pytest.raises(IbvaeError, match="no output on 2 cells"):
        conv_grid(Grid(0.0, 1.0, 2), 3, 2, "valid")


def test_box_masks_with_the_true_centres():
    boxes = np.array([[10, 20, 28, 28]])
    naive = box_masks(boxes, (64, 64), (32, 32))
    assert naive[0].sum(axis=0).max() == 14  # rows 5..18
    # symmetric pool 1: cell i is centred on pixel 2i, its tile is [2i - 0.5, 2i + 1.5)
    grids = (Grid(0.0, 2.0, 32), Grid(0.0, 2.0, 32))
    true = box_masks(boxes, (64, 64), (32, 32), grids)
    rows = np.flatnonzero(true[0].any(axis=1))
    assert rows.tolist() == list(range(5, 20))  # 15 rows: the box straddles two half tiles
    with pytest.raises(IbvaeError, match="grids of 32x32 cells for a 16x16 map"):
        box_masks(boxes, (64, 64), (16, 16), grids)


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
    boxes = np.tile([[2, 2, 20, 20]], (5, 1))
    stats = kl_statistics(model, x, boxes, batch_size=5)
    for key in ("kl_lift", "kl_lift_max", "kl_auc", "kl_nats"):
        assert len(stats[key]) == 4, key
    assert all(0 <= a <= 1 for a in stats["kl_auc"])
    assert all(1 <= m for m in stats["kl_lift_max"])
    assert all(lift <= m + 1e-9 for lift, m in zip(stats["kl_lift"], stats["kl_lift_max"],
                                                   strict=True))
    np.testing.assert_allclose(stats["kl_nats"][0], maps[0].sum(axis=(1, 2)).mean(), rtol=1e-5)
    # the statistics use the model's receptive-field grids, not the naive scaling
    grids = pool_grids(model.pool_geometry(), (32, 32))
    np.testing.assert_allclose(
        stats["kl_auc"][1], auc_per_image(maps[1], boxes, (32, 32), grids[1]).mean())


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
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["kl_auc"] == r["kl_auc"] and len(saved["kl_lift_max"]) == 4
    with pytest.raises(IbvaeError, match="no boxes_test"):
        write_kl_maps(model, Split(test.x, test.y), tmp_path)


@pytest.mark.parametrize(
    "kwargs, msg",
    [(dict(n=0), "n must be >= 1"), (dict(batch_size=0), "batch_size must be >= 1")],
)
def test_bad_kl_map_options(kwargs, msg):
    with pytest.raises(IbvaeError, match=msg):
        KLMapOptions(**kwargs)


# --------------------------------------------------------------------------- localisation AUC


def _focused(boxes, image, size):
    return box_masks(boxes, (image, image), (size, size)).astype(float)


def test_auc_perfect_focus_is_one_uniform_is_chance_inverted_is_zero():
    boxes = np.array([[16, 16, 32, 32], [32, 0, 16, 32], [0, 0, 32, 16]])  # on cell edges
    for size in (64, 32, 8, 4):
        focused = _focused(boxes, 64, size)
        np.testing.assert_allclose(auc_per_image(focused * 3 + 1, boxes, (64, 64)), 1.0)
        np.testing.assert_allclose(auc_per_image(1 - focused, boxes, (64, 64)), 0.0)
    # a box that cuts cells: KL following each cell's share of the box is as good as it gets
    boxes = np.array([[10, 20, 28, 28], [30, 5, 28, 28]])
    for size in (32, 8):
        best = auc_per_image(box_fractions(boxes, (64, 64), (size, size)), boxes, (64, 64))
        assert (best > 0.97).all() and (best <= 1).all()
        np.testing.assert_allclose(auc_per_image(np.full((2, size, size), 2.5), boxes,
                                                 (64, 64)), 0.5)
    noise = np.random.default_rng(0).random((400, 16, 16))
    assert abs(auc_per_image(noise, np.tile([[8, 8, 28, 28]], (400, 1)), (64, 64)).mean()
               - 0.5) < 0.02
    # the lift of those perfect maps is 1 / area: its ceiling, which changes with the map
    lifts = [lift_per_image(_focused(boxes, 64, s), boxes, (64, 64)).mean() for s in (32, 4)]
    ceilings = [lift_ceiling_per_image(boxes, (64, 64), (s, s)).mean() for s in (32, 4)]
    np.testing.assert_allclose(lifts, ceilings)
    assert ceilings[0] > 1.5 * ceilings[1]


def test_auc_counts_ties_as_one_half():
    boxes = np.array([[0, 0, 32, 32]])  # the top-left quarter of 8x8 cells: 16 in, 48 out
    m = np.zeros((1, 8, 8))
    m[0, :4, :2] = 1.0  # half the box cells above everything, the other half tied with the rest
    np.testing.assert_allclose(auc_per_image(m, boxes, (64, 64)), 0.5 + 0.5 * 0.5)


def _brute_auc(m, inside, outside):
    """sum_{i != j} inside_i outside_j [m_i > m_j] (ties 1/2) / sum_{i != j} inside_i outside_j."""
    s, p, q = m.ravel(), inside.ravel(), outside.ravel()
    wins = (s[:, None] > s[None, :]) + 0.5 * (s[:, None] == s[None, :])
    pairs = p[:, None] * q[None, :]
    np.fill_diagonal(pairs, 0)
    return (pairs * wins).sum() / pairs.sum()


def test_auc_matches_its_definition_with_ties_and_edge_cells():
    rng = np.random.default_rng(0)
    for size in (6, 16, 31):
        boxes = np.column_stack([rng.integers(0, 60, (4, 2)), np.full((4, 2), 28)])
        maps = rng.integers(0, 4, (4, size, size)).astype(float)  # many ties
        frac = box_fractions(boxes, (96, 96), (size, size))
        expected = [_brute_auc(m, f, 1 - f) for m, f in zip(maps, frac, strict=True)]
        np.testing.assert_allclose(auc_per_image(maps, boxes, (96, 96), chunk=3), expected)


def test_auc_of_one_kl_field_compares_across_map_sizes_where_the_lift_does_not():
    """One smooth KL field near the digit (a blob 20 px below the box's centre), seen at
    96x96, 64x64, 16x16 and 6x6 cells of a 96 px canvas: the AUC agrees (edge cells counted by
    their share of the box); the lift falls with its ceiling, and all-or-nothing box cells
    would have lowered the coarse map's AUC."""
    boxes = np.array([[30, 40, 28, 28]])
    cy, cx = 30 + 13.5 + 20, 40 + 13.5

    def field(size):
        c = uniform_grid(96, size).centres()
        d2 = (c[:, None] - cy) ** 2 + (c[None, :] - cx) ** 2
        return np.exp(-d2 / (2 * 16.0**2))[None]

    sizes = (96, 64, 16, 6)
    aucs = [auc_per_image(field(s), boxes, (96, 96))[0] for s in sizes]
    assert 0.83 < min(aucs) and max(aucs) - min(aucs) < 0.01, aucs
    lifts = [lift_per_image(field(s), boxes, (96, 96))[0] for s in sizes]
    assert lifts[0] > 1.3 * lifts[-1], lifts
    binary = []
    for s in sizes:
        mask = box_masks(boxes, (96, 96), (s, s))[0].astype(float)
        binary.append(_brute_auc(field(s)[0], mask, 1 - mask))
    assert binary[-1] < min(binary[:-1]) - 0.07, binary


def test_auc_is_one_half_where_the_box_covers_the_whole_map():
    boxes = np.array([[0, 0, 64, 64]])
    m = np.random.default_rng(1).random((1, 4, 4))
    np.testing.assert_allclose(auc_per_image(m, boxes, (64, 64)), 0.5)
    with pytest.raises(IbvaeError, match="need"):
        auc_per_image(np.zeros((2, 4, 4)), np.zeros((3, 4)), (8, 8))


# --------------------------------------------------------------------------- ink baseline


def test_ink_map_is_the_pixel_sum_over_each_cells_receptive_field():
    """One 3x3 stride-2 'same' conv on 4x4: cells centred on pixels 1 and 3 with 3-px fields,
    the second reaching one pixel past the image (zero padding): rows 0-2 and 2-3."""
    x = np.arange(16, dtype=np.float64).reshape(1, 4, 4, 1)
    geometry = [[(3, 2, "same")]]
    assert receptive_field_size(geometry, 0) == 3
    (ink,) = ink_maps(x, geometry)
    img = x[0, ..., 0]
    want = np.array([[img[r0:r1, c0:c1].sum() for c0, c1 in ((0, 3), (2, 4))]
                     for r0, r1 in ((0, 3), (2, 4))])
    np.testing.assert_allclose(ink[0], want)
    # two pools: the second's cell sees 3 + 2 * 2 = 7 px centred on pixel 3 (rows 0-6 -> all)
    (_, deep) = ink_maps(x, [[(3, 2, "same")], [(3, 2, "same")]])
    np.testing.assert_allclose(deep, [[[img.sum()]]])
    # channels are summed
    np.testing.assert_allclose(ink_maps(np.repeat(x, 3, axis=-1), geometry)[0], 3 * ink)


def test_clutter_auc_leaves_out_blank_cells():
    """Input-resolution cells (a 1x1 'valid' conv: field 1 px). A 1x4 map: the box cell has
    KL 2, one cell of clutter has 3, two blank cells 0. With the blanks the box beats 2 of 3
    (AUC 2/3); against clutter only it beats none (0)."""
    geometry = [[(1, 1, "valid")]]
    grids = pool_grids(geometry, (1, 4))[0]
    x = np.array([[[0.8, 0.0, 0.5, 0.0]]])[..., None]  # digit at 0, clutter ink at 2
    boxes = np.array([[0, 0, 1, 1]])
    dboxes = np.array([[[0, 2, 1, 1], [0, 3, 1, 1]]])  # the box at 3 is a blank crop
    (cells,) = clutter_cells(x, dboxes, geometry)
    np.testing.assert_array_equal(cells, [[[False, False, True, False]]])
    kl = np.array([[[2.0, 0.0, 3.0, 0.0]]])
    assert auc_per_image(kl, boxes, (1, 4), grids)[0] == pytest.approx(2 / 3)
    assert clutter_auc_per_image(kl, boxes, cells, (1, 4), grids)[0] == pytest.approx(0.0)
    # no clutter-bearing cell outside the box: no score
    none = clutter_auc_per_image(kl, boxes, np.zeros_like(cells), (1, 4), grids)
    assert np.isnan(none[0])


def test_clutter_cells_follow_the_receptive_field():
    """3x3 fields on 6x6 (a 'same' stride-1 conv): ink at pixel (0, 0) of a distractor box
    lights the cells within one pixel of it; ink outside every distractor box lights none."""
    x = np.zeros((1, 6, 6, 1))
    x[0, 0, 0] = x[0, 5, 5] = 1.0  # (5, 5) is ink of no distractor
    (cells,) = clutter_cells(x, np.array([[[0, 0, 2, 2]]]), [[(3, 1, "same")]])
    want = np.zeros((6, 6), bool)
    want[:2, :2] = True
    np.testing.assert_array_equal(cells[0], want)


def test_kl_statistics_report_the_ink_baseline_and_the_clutter_only_auc(tmp_path):
    model = build_classifier(ClassifierModelConfig(width=0.125), (32, 32, 1), 100)
    rng = np.random.default_rng(2)
    x = np.zeros((4, 32, 32, 1), np.float32)
    x[:, 4:14, 4:14] = rng.random((4, 10, 10, 1))  # the "digit"
    x[:, 24:30, 20:30] = 0.7  # clutter
    boxes = np.tile([[4, 4, 10, 10]], (4, 1))
    dboxes = np.tile([[[24, 20, 6, 10]]], (4, 1, 1))
    stats = kl_statistics(model, x, boxes, batch_size=4, distractor_boxes=dboxes)
    geometry = model.pool_geometry()
    grids = pool_grids(geometry, (32, 32))
    inks = ink_maps(x, geometry)
    np.testing.assert_allclose(stats["ink_auc"][0], auc_per_image(inks[0], boxes, (32, 32),
                                                                  grids[0]).mean())
    np.testing.assert_allclose(stats["ink_lift"][1], lift_per_image(inks[1], boxes, (32, 32),
                                                                    grids=grids[1]).mean())
    # pool 1 (7-px fields): the ink map beats blank canvas easily, clutter (0.7 > mean 0.5) less
    assert stats["ink_auc"][0] > 0.8 and stats["ink_auc_clutter"][0] < stats["ink_auc"][0]
    for key in ("ink_lift", "ink_auc", "kl_auc_clutter", "ink_auc_clutter",
                "clutter_cell_fraction"):
        assert len(stats[key]) == 4, key
    assert 0 < stats["clutter_cell_fraction"][0] < stats["clutter_cell_fraction"][3] <= 1
    # chunks of images give the same maps and cells as one pass
    for one, chunked in zip(clutter_cells(x, dboxes, geometry),
                            clutter_cells(x, dboxes, geometry, chunk=3), strict=True):
        np.testing.assert_array_equal(one, chunked)
    np.testing.assert_allclose(field_sums(x, geometry, chunk=3)[2], inks[2])
    without = kl_statistics(model, x, boxes, batch_size=4)
    assert without["kl_auc_clutter"] is None and without["ink_auc"] == stats["ink_auc"]
    # write_kl_maps takes the distractor boxes from the split, into metrics.json
    r = write_kl_maps(model, Split(x, np.arange(4), boxes, dboxes), tmp_path, n=2)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["ink_auc_clutter"] == r["ink_auc_clutter"] == stats["ink_auc_clutter"]
    assert saved["kl_auc_clutter"] == pytest.approx(stats["kl_auc_clutter"])
