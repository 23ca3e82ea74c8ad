"""PyTorch checkpoints (``torch.save``'s ZIP format) read as numpy arrays, without PyTorch.

A ``.pth``/``.pth.tar`` file written by ``torch.save`` (PyTorch >= 1.6) is a ZIP archive:
``<name>/data.pkl`` is a pickle of the saved object, in which every tensor is a call of
``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` and every storage a
persistent id ``("storage", <torch.FloatStorage...>, key, location, numel)`` whose bytes are the
archive member ``<name>/data/<key>``.

A pickle can name any importable function and call it (``os.system`` through ``__reduce__``),
so the unpickler here resolves only the names a tensor checkpoint needs, to functions of its
own: the tensor and parameter rebuilds, the storage types, ``collections.OrderedDict``,
``set``/``frozenset``, numpy scalars and ``_codecs.encode`` (how protocol 2 writes bytes).
Every other global is refused by name before anything is called, and nothing of PyTorch or of
the file is imported or run. Tensors stay lazy (:class:`TensorRef`): only the ones a caller
reads are taken out of the archive, so an optimizer state beside the weights costs nothing.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgebnn.errors import EdgebnnError

# torch.<name>Storage -> numpy dtype (bfloat16, which numpy lacks, is read as float32)
STORAGE_DTYPES = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16", "BFloat16Storage": "bfloat16",
    "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16", "CharStorage": "int8",
    "ByteStorage": "uint8", "BoolStorage": "bool", "UntypedStorage": "uint8",
}
SUFFIXES = (".pth.tar", ".pth", ".pt")  # the names torch.save's files go by (the format is found by content)


class CheckpointError(EdgebnnError):
    """A checkpoint that cannot be read (or that asks to run code)."""


@dataclass(frozen=True)
class StorageType:
    """What a ``torch.<X>Storage`` name resolves to: only its element type."""

    name: str

    @property
    def dtype(self) -> str:
        return STORAGE_DTYPES[self.name]


@dataclass
class Storage:
    """One ``data/<key>`` member of the archive, read on first use."""

    archive: zipfile.ZipFile = field(repr=False)
    member: str
    dtype: str
    numel: int
    byteorder: str
    _array: np.ndarray | None = field(default=None, repr=False)

    def array(self) -> np.ndarray:
        if self._array is None:
            raw = self.archive.read(self.member)
            if self.dtype == "bfloat16":  # the upper half of a float32
                halves = np.frombuffer(raw, self.byteorder + "u2").astype("uint32")
                self._array = (halves << 16).view("float32")
            else:
                self._array = np.frombuffer(raw, np.dtype(self.dtype).newbyteorder(self.byteorder))
            if self._array.size < self.numel:
                raise CheckpointError(f"{self.member} holds {self._array.size} values, the checkpoint says "
                                      f"{self.numel}: the file is truncated or corrupt")
        return self._array


@dataclass(frozen=True)
class TensorRef:
    """A tensor of the checkpoint: its shape now, its values (:meth:`numpy`) when asked."""

    storage: Storage = field(repr=False)
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    @property
    def dtype(self) -> str:
        return self.storage.dtype

    def numpy(self) -> np.ndarray:
        """The values as a C-ordered numpy array (native byte order)."""
        flat = self.storage.array()
        if self.shape and min(self.shape) == 0:
            return np.zeros(self.shape, flat.dtype.newbyteorder("="))
        last = self.offset + sum((n - 1) * s for n, s in zip(self.shape, self.stride))
        if self.offset < 0 or any(s < 0 for s in self.stride) or last >= flat.size:
            raise CheckpointError(f"a tensor of shape {self.shape} reaches past its storage {self.storage.member}: "
                                  "the file is corrupt")
        view = np.lib.stride_tricks.as_strided(flat[self.offset:], self.shape,
                                               [s * flat.itemsize for s in self.stride], writeable=False)
        return np.ascontiguousarray(view).astype(view.dtype.newbyteorder("="), copy=False)


@dataclass
class Checkpoint:
    """A checkpoint's state_dict (``module.`` prefixes removed) and what the file says beside it.

    Attributes:
        tensors: name -> :class:`TensorRef`.
        epoch: the training script's ``epoch`` when the file is its dict, else None.
        layout: ``state_dict`` (a bare state_dict) or ``training dict`` (``{"state_dict": ...}``).
    """

    tensors: dict[str, TensorRef]
    epoch: int | None = None
    layout: str = "state_dict"


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                    metadata=None):
    if not isinstance(storage, Storage) or not all(isinstance(v, int) for v in (storage_offset, *size, *stride)) \
            or len(size) != len(stride):
        raise CheckpointError("a tensor record of the checkpoint is malformed: the file is corrupt")
    return TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *state):
    return data


def _encode(text, encoding="latin1"):
    if not isinstance(text, str) or encoding != "latin1":
        raise CheckpointError(f"refused _codecs.encode with {encoding!r}: a checkpoint writes bytes as latin1 only")
    return text.encode("latin1")


def _numpy_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise CheckpointError("refused numpy.core.multiarray.scalar of a non-numeric type")
    return np.frombuffer(data, dtype)[0]


def _numpy_dtype(name, align=False, copy=False):
    dtype = np.dtype(name) if isinstance(name, str) else None
    if dtype is None or dtype.hasobject or dtype.names:
        raise CheckpointError(f"refused numpy.dtype({name!r}): only plain numeric types are read")
    return dtype


SAFE_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "set"): set,  # protocol 2 writes Python 2's module names
    ("__builtin__", "frozenset"): frozenset,
    ("_codecs", "encode"): _encode,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "dtype"): _numpy_dtype,
    **{("torch", name): StorageType(name) for name in STORAGE_DTYPES},
    ("torch.storage", "UntypedStorage"): StorageType("UntypedStorage"),
}


class _Unpickler(pickle.Unpickler):
    """Resolves only :data:`SAFE_GLOBALS` (to edgebnn's own functions) and the archive's storages."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, byteorder: str, where: Path):
        super().__init__(io.BytesIO(data))
        self.archive, self.prefix, self.byteorder, self.where = archive, prefix, byteorder, where
        self.storages: dict[str, Storage] = {}
        self.members = set(archive.namelist())

    def find_class(self, module: str, name: str):
        found = SAFE_GLOBALS.get((module, name))
        if found is None:
            raise CheckpointError(
                f"refused to read {self.where}: its pickle asks for the global {module}.{name}, which is not part "
                "of a tensor checkpoint (a pickle that names it can run code). Nothing was run; if you trust the "
                "file, load it with PyTorch and save only the state_dict: torch.save(model.state_dict(), PATH)"
            )
        return found

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], StorageType)
                and isinstance(pid[2], str) and isinstance(pid[4], int)):
            raise CheckpointError(f"refused to read {self.where}: an unknown persistent id {str(pid)[:80]!r} "
                                  "(only tensor storages are read)")
        _, kind, key, _location, numel = pid
        member = f"{self.prefix}data/{key}"
        if member not in self.members:
            raise CheckpointError(f"{self.where} lacks the storage {member}: the file is truncated or corrupt")
        if key not in self.storages:
            self.storages[key] = Storage(self.archive, member, kind.dtype, numel, self.byteorder)
        return self.storages[key]


def is_torch_checkpoint(path: Path) -> bool:
    """A ZIP archive with a ``data.pkl``: the format ``torch.save`` writes (PyTorch >= 1.6)."""
    if not path.is_file() or not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return any(n == "data.pkl" or n.endswith("/data.pkl") for n in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def looks_like_torch_file(path: Path) -> bool:
    """A name PyTorch checkpoints go by (``.pth``, ``.pth.tar``, ``.pt``...)."""
    return path.name.lower().endswith(SUFFIXES)


def read_object(path: str | Path) -> tuple[Any, zipfile.ZipFile]:
    """The object ``torch.save`` stored in ``path``, its tensors as :class:`TensorRef`.

    Returns the object and the open archive the tensors read from (close it when done).

    Raises:
        CheckpointError: not a ZIP checkpoint, a global outside :data:`SAFE_GLOBALS`, corrupt.
    """
    path = Path(path)
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            head = f.read(2)
        legacy = head[:1] == b"\x80"  # a bare pickle: torch.save before 1.6 (or _use_new_zipfile_serialization=False)
        raise CheckpointError(
            f"{path} is not a PyTorch ZIP checkpoint"
            + (" (it is in PyTorch's legacy format, before 1.6): load it with PyTorch and save it again with "
               "torch.save(obj, PATH), which writes the ZIP format" if legacy else
               ": give the .pth/.pth.tar file torch.save wrote")
        )
    archive = zipfile.ZipFile(path)
    try:
        pickles = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise CheckpointError(f"{path} is a ZIP archive without exactly one data.pkl: not a torch.save checkpoint")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = "<"
        if f"{prefix}byteorder" in archive.namelist():
            byteorder = ">" if archive.read(f"{prefix}byteorder").strip() == b"big" else "<"
        unpickler = _Unpickler(archive.read(pickles[0]), archive, prefix, byteorder, path)
        try:
            obj = unpickler.load()
        except CheckpointError:
            raise
        except Exception as e:  # a malformed pickle: never a traceback for a bad file
            raise CheckpointError(f"cannot read {path}: its data.pkl is malformed ({type(e).__name__}: "
                                  f"{str(e)[:120]})") from None
    except BaseException:
        archive.close()
        raise
    return obj, archive


def read_checkpoint(path: str | Path) -> tuple[Checkpoint, zipfile.ZipFile]:
    """The state_dict in ``path``: a bare state_dict or the training script's ``{"state_dict": ...}``.

    DataParallel's ``module.`` prefix is removed from every name; entries that are not tensors
    (``num_batches_tracked`` is one; metadata) are dropped.

    Returns:
        The :class:`Checkpoint` and the open archive its tensors read from (close it when done).

    Raises:
        CheckpointError: unreadable, or no state_dict in it.
    """
    obj, archive = read_object(path)
    layout = "state_dict"
    epoch = None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        layout = "training dict"
        epoch = obj.get("epoch") if isinstance(obj.get("epoch"), int) else None
        obj = obj["state_dict"]
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, TensorRef)} \
        if isinstance(obj, dict) else {}
    if not tensors:
        archive.close()
        raise CheckpointError(f"{path} holds no state_dict (neither a dict of tensors nor a dict with a "
                              "'state_dict' entry): save model.state_dict() with torch.save")
    tensors = {k.removeprefix("module."): v for k, v in tensors.items()}
    return Checkpoint(tensors, epoch=epoch, layout=layout), archive
