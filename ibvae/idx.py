"""The IDX file format MNIST and Fashion-MNIST ship as (e.g. Debian's
``dataset-fashion-mnist`` in ``/usr/share/datasets/fashion-mnist/``): one file, or the folder
of the four files of a labelled set, gzip'd or not."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from ibvae.errors import IbvaeError

# IDX type byte -> big-endian dtype (the format of MNIST / Fashion-MNIST)
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """One IDX file (gzip'd or not, told by its first bytes) as a native-endian array; a
    missing, truncated or foreign file raises :class:`IbvaeError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise IbvaeError(f"IDX file {path} not found")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise IbvaeError(f"cannot decompress {path} ({e})") from e
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in IDX_DTYPES or raw[3] == 0:
        raise IbvaeError(f"{path} is not an IDX file (bad magic number {raw[:4].hex() or 'none'})")
    ndim, dtype = raw[3], np.dtype(IDX_DTYPES[raw[2]])
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IbvaeError(f"{path} is truncated (its header names {ndim} dimensions)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    count = int(np.prod(shape))
    if len(raw) != header + count * dtype.itemsize:
        raise IbvaeError(f"{path} holds {len(raw) - header} data bytes, its header says "
                         f"{count * dtype.itemsize} (shape {shape}); the file is damaged")
    data = np.frombuffer(raw, dtype, count, header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def read_idx_dir(folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """``x_train``, ``y_train``, ``x_test``, ``y_test`` from the four IDX files of a folder
    (:data:`IDX_FILES`, each with or without ``.gz``)."""
    folder = Path(folder)
    out = {}
    for key, name in IDX_FILES.items():
        found = [folder / n for n in (name, name + ".gz") if (folder / n).is_file()]
        if not found:
            raise IbvaeError(f"{folder} lacks {name}[.gz]; an IDX folder holds "
                             f"{', '.join(IDX_FILES.values())} (each may be gzip'd)")
        out[key] = read_idx(found[0])
    return out
