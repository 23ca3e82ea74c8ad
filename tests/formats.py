"""Small datasets written in the real formats (ImageNet JPEG folders, CIFAR pickle batches),
shared by the tests of the loaders and of what reads them."""

import pickle

import numpy as np
import tensorflow as tf


def write_jpeg(path, rng, size=(40, 52)):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
    path.write_bytes(tf.io.encode_jpeg(pixels).numpy())


def imagenet_folder(root, classes=("n01", "n02", "n03"), per_class=4, val_per_class=2):
    rng = np.random.default_rng(0)
    for c in classes:
        for i in range(per_class):
            write_jpeg(root / "train" / c / f"{c}_{i}.JPEG", rng, size=(30 + 7 * i, 60 - 5 * i))
        for i in range(val_per_class):
            write_jpeg(root / "val" / c / f"val_{c}_{i}.JPEG", rng)
    # ImageNet holds a few PNGs named .JPEG: they must decode too.
    pixels = rng.integers(0, 256, size=(33, 33, 3), dtype=np.uint8)
    (root / "train" / classes[0] / "png_as.JPEG").write_bytes(tf.io.encode_png(pixels).numpy())
    return root


def cifar_batch(path, n, label_key, classes, seed):
    rng = np.random.default_rng(seed)
    batch = {b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
             label_key: rng.integers(0, classes, size=n).tolist(), b"batch_label": b"test"}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(batch, f)


def cifar10_folder(root):
    folder = root / "cifar-10-batches-py"
    for i in range(1, 6):
        cifar_batch(folder / f"data_batch_{i}", 6, b"labels", 10, i)
    cifar_batch(folder / "test_batch", 5, b"labels", 10, 9)
    return folder


# -- PyTorch checkpoints ------------------------------------------------------------------
TORCH_STORAGES = {"float32": "FloatStorage", "float64": "DoubleStorage", "int64": "LongStorage",
                  "float16": "HalfStorage", "uint8": "ByteStorage"}


class TensorView:
    """A tensor over a flat storage: ``torch.as_strided(storage, shape, stride, offset)``."""

    def __init__(self, storage, shape, stride, offset=0):
        self.storage, self.shape, self.stride, self.offset = np.require(storage, requirements="C").ravel(), shape, \
            stride, offset


def torch_save(path, obj, *, folder="archive"):
    """Write ``obj`` in ``torch.save``'s ZIP format, without PyTorch: numpy arrays (and
    :class:`TensorView`) become tensors pickled as PyTorch pickles them (protocol 2, the globals
    ``torch._utils._rebuild_tensor_v2`` and ``torch.<X>Storage``, storages as persistent ids).

    The globals are resolved through stand-in ``torch`` modules put in ``sys.modules`` only
    while pickling.
    """
    import collections
    import io
    import sys
    import types
    import zipfile

    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    torch._utils = utils

    def rebuild(*args):
        raise AssertionError("never called: only pickled")

    rebuild.__module__, rebuild.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = rebuild
    for name in TORCH_STORAGES.values():
        setattr(torch, name, type(name, (), {"__module__": "torch"}))

    class Storage:
        def __init__(self, array):
            self.array = array

    class Tensor:
        def __init__(self, view):
            self.view = view

        def __reduce_ex__(self, protocol):
            v = self.view
            return rebuild, (Storage(v.storage), v.offset, tuple(v.shape), tuple(v.stride), False,
                             collections.OrderedDict())

    def tensors(o):
        if isinstance(o, np.ndarray):
            a = np.require(o, requirements="C")
            strides = tuple(s // a.itemsize for s in a.strides)
            return Tensor(TensorView(a, a.shape, strides))
        if isinstance(o, TensorView):
            return Tensor(o)
        if isinstance(o, dict):
            return type(o)((k, tensors(v)) for k, v in o.items())
        return o

    storages = []

    class Pickler(pickle.Pickler):
        def persistent_id(self, o):
            if isinstance(o, Storage):
                storages.append(o.array)
                kind = getattr(torch, TORCH_STORAGES[o.array.dtype.name])
                return ("storage", kind, str(len(storages) - 1), "cpu", int(o.array.size))
            return None

    buffer = io.BytesIO()
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules.update({"torch": torch, "torch._utils": utils})
    try:
        Pickler(buffer, protocol=2).dump(tensors(obj))
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{folder}/data.pkl", buffer.getvalue())
        archive.writestr(f"{folder}/byteorder", "little")
        for i, array in enumerate(storages):
            archive.writestr(f"{folder}/data/{i}", array.astype(array.dtype.newbyteorder("<")).tobytes())
        archive.writestr(f"{folder}/version", "3\n")
    return path


def pickle_archive(path, payload, *, folder="archive"):
    """A ZIP laid out like a PyTorch checkpoint whose data.pkl is ``payload`` pickled (protocol 2)."""
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{folder}/data.pkl", pickle.dumps(payload, protocol=2))
        archive.writestr(f"{folder}/version", "3\n")
    return path
