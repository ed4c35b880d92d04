"""Reads a legacy (pre-1.6, non-zip) PyTorch checkpoint into numpy arrays, without torch.

The CNN weights ship as such a file. Its layout is five things written one after another:
a pickled magic number, a pickled protocol version, pickled system info, the pickled object
(tensors in it refer to storages by key through pickle's persistent ids), a pickled list of
storage keys, and then, for each key in that order, an int64 element count and the raw
little-endian data. Tensors therefore can only be built once the storages after the pickle
have been read, so the unpickler hands out placeholders that are resolved at the end.
"""

from __future__ import annotations

import collections
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

# torch storage class name -> numpy dtype of one element
_STORAGE_DTYPES: dict[str, np.dtype] = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class TorchPickleError(ValueError):
    """The file is not a legacy torch checkpoint this reader understands."""


@dataclass(frozen=True)
class _StorageType:
    dtype: np.dtype


@dataclass
class _StorageRef:
    """A storage named in the pickle; its data follows the pickle in the file."""

    key: str
    dtype: np.dtype
    numel: int
    view: tuple[str, int, int] | None = None  # (base key, offset, size) for old storage views


@dataclass
class _TensorRef:
    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage: _StorageRef, offset: int, size: tuple, stride: tuple, *_: Any) -> _TensorRef:
    return _TensorRef(storage, int(offset), tuple(size), tuple(stride))


def _rebuild_parameter(data: Any, *_: Any) -> Any:
    return data


class _Unpickler(pickle.Unpickler):
    """Allows only the few globals a state dict needs; anything else is refused (no code runs)."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise TorchPickleError(f"unsupported global in checkpoint: {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise TorchPickleError(f"unsupported persistent id: {pid!r}")
        _, storage_type, key, _location, numel, view_metadata = pid
        if not isinstance(storage_type, _StorageType):
            raise TorchPickleError(f"unknown storage type: {storage_type!r}")
        view = None
        if view_metadata is not None:
            view_key, view_offset, view_size = view_metadata
            view = (str(view_key), int(view_offset), int(view_size))
        return _StorageRef(str(key), storage_type.dtype, int(numel), view)


def _load_pickle(f: IO[bytes]) -> Any:
    return _Unpickler(f).load()


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Returns the checkpoint's tensors by name as float/int numpy arrays (C-contiguous copies)."""
    with open(path, "rb") as f:
        if _load_pickle(f) != MAGIC_NUMBER:
            raise TorchPickleError(f"{path}: not a legacy torch checkpoint (bad magic number)")
        if _load_pickle(f) != PROTOCOL_VERSION:
            raise TorchPickleError(f"{path}: unsupported torch protocol version")
        sys_info = _load_pickle(f)
        if not sys_info.get("little_endian", True):
            raise TorchPickleError(f"{path}: big-endian checkpoints are not supported")
        obj = _load_pickle(f)
        keys = _load_pickle(f)
        storages = _read_storages(f, keys, _storage_dtypes(obj))

    if not isinstance(obj, dict):
        raise TorchPickleError(f"{path}: expected a state dict, got {type(obj).__name__}")
    return {name: _materialise(ref, storages) for name, ref in obj.items()}


def _storage_dtypes(obj: Any) -> dict[str, np.dtype]:
    dtypes: dict[str, np.dtype] = {}
    for ref in obj.values() if isinstance(obj, dict) else ():
        if isinstance(ref, _TensorRef):
            key = ref.storage.view[0] if ref.storage.view else ref.storage.key
            dtypes[key] = ref.storage.dtype
    return dtypes


def _read_storages(f: IO[bytes], keys: list[str], dtypes: dict[str, np.dtype]) -> dict[str, np.ndarray]:
    storages: dict[str, np.ndarray] = {}
    for key in keys:
        header = f.read(8)
        if len(header) != 8:
            raise TorchPickleError("checkpoint truncated in its storages")
        (numel,) = struct.unpack("<q", header)
        dtype = dtypes.get(key)
        if dtype is None:
            raise TorchPickleError(f"storage {key} is not used by any tensor")
        raw = f.read(numel * dtype.itemsize)
        if len(raw) != numel * dtype.itemsize:
            raise TorchPickleError(f"checkpoint truncated in storage {key}")
        storages[key] = np.frombuffer(raw, dtype=dtype)
    return storages


def _materialise(ref: Any, storages: dict[str, np.ndarray]) -> np.ndarray:
    if not isinstance(ref, _TensorRef):
        raise TorchPickleError(f"expected a tensor, got {type(ref).__name__}")
    s = ref.storage
    if s.view is not None:
        base_key, view_offset, view_size = s.view
        flat = storages[base_key][view_offset : view_offset + view_size]
    else:
        flat = storages[s.key]
    if not ref.size:
        return np.array(flat[ref.offset])
    itemsize = flat.dtype.itemsize
    last = ref.offset + sum((n - 1) * st for n, st in zip(ref.size, ref.stride, strict=True))
    if last >= flat.size:
        raise TorchPickleError("tensor reaches past the end of its storage")
    view = np.lib.stride_tricks.as_strided(
        flat[ref.offset :],
        shape=ref.size,
        strides=tuple(st * itemsize for st in ref.stride),
        writeable=False,
    )
    return np.ascontiguousarray(view)
