"""Keras models the user brings: ``.keras`` and ``.h5`` files, SavedModel folders, custom classes.

A model that uses larq's layers and quantizers (and edgebnn's) loads as it is; classes of the
user's own are found in the module the user names (``--custom-objects my_layers.py`` or a module
path). Every way a file can fail to be a usable model is one message naming the file, the cause
and the next step.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import re
import zipfile
from pathlib import Path

from edgebnn.errors import EdgebnnError, UsageError
from edgebnn.models import register_custom_objects
from edgebnn.models.file_config import check_model_file

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


def is_keras_source(path: Path) -> bool:
    """A Keras file (by suffix) or a SavedModel folder."""
    return (path.is_file() and path.suffix.lower() in KERAS_SUFFIXES) or (path / "saved_model.pb").is_file()


def load_custom_objects(spec: str | None) -> dict[str, type]:
    """The classes and functions defined in the module ``spec`` names: a ``.py`` file or an importable module.

    Raises:
        UsageError: no such file or module, or it fails to import.
    """
    if not spec:
        return {}
    try:
        if spec.endswith(".py") or "/" in spec:
            path = Path(spec)
            if not path.is_file():
                raise UsageError(f"no --custom-objects file {spec!r}: give the Python file (or module path) "
                                 "that defines the model's custom classes")
            module_spec = importlib.util.spec_from_file_location(f"edgebnn_custom_{path.stem}", path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(spec)
    except UsageError:
        raise
    except Exception as e:
        raise UsageError(f"cannot import --custom-objects {spec!r}: {type(e).__name__}: {e}") from None
    return {name: obj for name, obj in vars(module).items()
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__ == module.__name__}


def saved_versions(path: Path) -> dict:
    """What the file records about what saved it (Keras version, backend), read without loading it."""
    found: dict = {"format": "savedmodel" if path.is_dir() else path.suffix.lower().lstrip(".")}
    try:
        if path.suffix.lower() == ".keras":
            with zipfile.ZipFile(path) as archive:
                meta = json.loads(archive.read("metadata.json"))
            found.update(keras_version=meta.get("keras_version"), saved=meta.get("date_saved"))
        elif path.suffix.lower() in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as f:
                attrs = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in f.attrs.items()
                         if k in ("keras_version", "backend")}
            found.update(attrs)
    except Exception:  # a damaged file: load_keras_file says what is wrong with it
        pass
    return found


# Functions and classes of Larq Zoo's models that their configs name: a zoo backbone under the
# user's own head saved as .h5 stores them by name only (e.g. QuickNet's 'blurpool_initializer').
ZOO_OBJECTS = {"larq_zoo.sota.quicknet": ("blurpool_initializer",),
               "larq_zoo.literature.xnornet": ("xnor_weight_scale",),
               "larq_zoo.literature.dorefanet": ("magnitude_aware_sign_unclipped", "clip_by_value_activation"),
               "larq_zoo.literature.densenet": ("BinaryDenseNet",)}


def known_names() -> list[str]:
    return [name for names in ZOO_OBJECTS.values() for name in names]


def known_objects() -> dict:
    """The zoo's objects that Keras' registry lacks (larq and edgebnn register their own)."""
    return {name: getattr(importlib.import_module(module), name)
            for module, names in ZOO_OBJECTS.items() for name in names}


def load_keras_file(path: Path, custom_objects: dict | None = None, *, trust_code: bool = False):
    """Load a Keras model file (compile=False) with larq's, the zoo's, edgebnn's and ``custom_objects``.

    Its configuration is checked first (:func:`edgebnn.models.file_config.check_model_file`):
    nothing in the file runs unless ``trust_code``.

    Raises:
        UsageError: code in the file without ``trust_code``, or a class nobody defines (naming it
            and ``--custom-objects``).
        EdgebnnError: the file is not a Keras model, or is damaged.
    """
    fmt = check_model_file(path, custom_objects={**dict.fromkeys(known_names()), **(custom_objects or {})},
                           trust_code=trust_code)  # before TensorFlow loads: a refusal is instant
    import tf_keras as keras

    objects = {**known_objects(), **(custom_objects or {})}
    register_custom_objects()
    try:
        return keras.models.load_model(path, compile=False, custom_objects=objects, safe_mode=not trust_code)
    except Exception as e:  # Keras raises ValueError, OSError, KeyError... for a bad file
        text = " ".join(str(e).split())
        found = re.search(r"Unknown [a-z ]+?:? ['\"]?([\w.<>]+)", text)
        missing = found.group(1) if found else None
        function = re.search(r"'config': '(\w+)', 'registered_name': 'function'", text)
        if missing == "function" and function or missing == "<lambda>":
            name = function.group(1) if missing == "function" else "a lambda"
            raise UsageError(
                f"{path} stores the Python function {name!r} by name only, which an {fmt} file cannot restore: "
                "name the module that defines it with --custom-objects (a lambda cannot be named: define it as "
                "a function there, or save the model as .keras)") from None
        if missing:
            raise UsageError(
                f"{path} uses {missing!r}, which neither Keras, larq nor edgebnn defines: name the module that "
                "defines it with --custom-objects FILE.py (or a module path)") from None
        raise EdgebnnError(f"{path} is not a Keras model edgebnn can load: {text[:200]}; save it again with "
                           "model.save() from tf_keras and try again") from None


def with_input_size(model, size: tuple[int, int, int] | None):
    """``model`` with a static input shape: ``size`` (H, W, C) when given, or as saved.

    Raises:
        UsageError: the saved input has no shape or dynamic spatial dimensions and no ``size`` was
            given (the converter needs a static shape).
    """
    shape = getattr(model, "input_shape", None)
    if isinstance(shape, list) or shape is None:
        raise UsageError(f"model {model.name!r} has {'several inputs' if shape else 'no input shape'}: edgebnn "
                         "converts single-input image models; give one with a fixed input")
    if size is not None and size[-1] is None:
        size = (*size[:2], shape[-1])
    if size is None:
        if any(d is None for d in shape[1:]):
            raise UsageError(f"model {model.name!r} has a dynamic input shape {tuple(shape)}: give the size to "
                             "convert at with --input-size N (or HxW)")
        return model
    if tuple(shape[1:]) == tuple(size):
        return model
    import tf_keras as keras

    if shape[-1] is not None and shape[-1] != size[-1]:
        raise UsageError(f"--input-size gives {size[-1]} channels, model {model.name!r} takes {shape[-1]}")
    resized = keras.models.clone_model(model, input_tensors=keras.Input(shape=size))
    resized.set_weights(model.get_weights())
    return resized
