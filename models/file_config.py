"""What a model file would run, read from its configuration before anything is deserialized.

Keras rebuilds a model from the configuration its file stores, and two things in it can run
code: a ``Lambda`` layer (or any object) whose Python bytecode is stored with it, which Keras
unmarshals and runs (its ``safe_mode`` guards only the ``.keras`` format; ``.h5`` and SavedModel
run it), and a class or function named by module, which the ``.keras`` loader imports. So the
configuration is read as data first (``config.json`` of a ``.keras`` archive, the
``model_config`` attribute of an HDF5 file, ``keras_metadata.pb`` of a SavedModel), and a file
that carries code, or names a module outside Keras, TensorFlow, larq, larq-zoo, edgebnn and the
code the user named, is refused before Keras sees it. ``--trust-code`` lets code through, for a
file the user trusts.
"""

from __future__ import annotations

import builtins
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edgebnn.errors import EdgebnnError, UsageError

TRUST_FLAG = "--trust-code"
# Modules whose classes and functions a model file may name: importing them runs nothing new.
KNOWN_MODULES = ("keras", "tf_keras", "tensorflow", "larq", "larq_zoo", "edgebnn")
FORMAT_SUFFIXES = {"keras": (".keras",), "h5": (".h5", ".hdf5"), "savedmodel": ()}


@dataclass(frozen=True)
class Finding:
    """Something in a configuration that loading would run or import.

    Attributes:
        layer: the layer (``name (Class)``) where it is, as the user wrote it.
        what: what it is, in a few words.
        code: bytecode Keras would run (``--trust-code`` lets it through); else a class or
            function from a module nobody named (``--custom-objects`` provides it).
        name: the class or function named.
    """

    layer: str
    what: str
    code: bool
    name: str = ""


def file_format(path: Path) -> str:
    """``keras``, ``h5`` or ``savedmodel``, from the content (Keras' loaders go by content, not by name).

    Raises:
        UsageError: neither, or a content that its suffix belies (an HDF5 file named ``.keras``).
    """
    import h5py

    if path.is_dir():
        found = "savedmodel" if (path / "saved_model.pb").is_file() else None
    elif zipfile.is_zipfile(path):
        found = "keras"
    elif h5py.is_hdf5(str(path)):
        found = "h5"
    else:
        found = None
    if found is None:
        raise UsageError(f"{path} is not a Keras model file (neither a .keras archive, an HDF5 file nor a "
                         "SavedModel folder): give a model saved with model.save()")
    suffix = path.suffix.lower()
    for fmt, suffixes in FORMAT_SUFFIXES.items():
        if suffix in suffixes and fmt != found:
            raise UsageError(f"{path} is named {suffix} but holds a {found} model: edgebnn loads a file as what "
                             "it says it is; rename it to match its content if you made it")
    return found


def read_configs(path: Path, fmt: str) -> list:
    """The configurations a loader would deserialize, parsed as plain JSON.

    Raises:
        EdgebnnError: the file holds no readable configuration.
    """
    try:
        if fmt == "keras":
            with zipfile.ZipFile(path) as archive:
                return [json.loads(archive.read("config.json"))]
        if fmt == "h5":
            import h5py

            with h5py.File(path, "r") as f:
                if "model_config" not in f.attrs:
                    raise EdgebnnError(f"{path} holds weights only (no model_config): give the whole model saved "
                                       "with model.save(), or its architecture by name with --weights FILE")
                text = f.attrs["model_config"]
            return [json.loads(text.decode() if isinstance(text, bytes) else text)]
        return _saved_model_metadata(path)
    except EdgebnnError:
        raise
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise EdgebnnError(f"{path} is damaged: its model configuration does not read ({type(e).__name__}: "
                           f"{str(e)[:120]}); save the model again") from None


def _saved_model_metadata(folder: Path) -> list:
    """Every Keras object's metadata in a SavedModel (what tf_keras revives layers from)."""
    from tf_keras.protobuf import saved_metadata_pb2

    meta_file = folder / "keras_metadata.pb"
    if not meta_file.is_file():
        raise EdgebnnError(f"{folder} is a SavedModel without Keras metadata (keras_metadata.pb): edgebnn "
                           "converts Keras models; save it with model.save() from tf_keras")
    metadata = saved_metadata_pb2.SavedMetadata()
    metadata.ParseFromString(meta_file.read_bytes())
    return [json.loads(node.metadata) for node in metadata.nodes if node.metadata]


def findings(configs: list, custom_objects: dict | None = None) -> list[Finding]:
    """What in ``configs`` would run code, or import a module, when Keras deserializes it.

    Code: ``__lambda__`` objects and ``*_type: "lambda"`` entries (a ``Lambda`` layer's function
    or output shape, an RNN wrapper's function), which Keras unmarshals from bytecode. Imports:
    a ``module`` outside :data:`KNOWN_MODULES` for a name ``custom_objects`` does not define, and
    Python's own builtins (``exit``, ``breakpoint``...), which the ``.keras`` loader looks up
    when named from ``builtins``.
    """
    provided = set(custom_objects or ())
    found: list[Finding] = []
    stack = [(config, "the model") for config in configs]
    while stack:
        item, layer = stack.pop()
        if isinstance(item, list):
            stack += [(x, layer) for x in item]
            continue
        if not isinstance(item, dict):
            continue
        config = item.get("config")
        if "class_name" in item and isinstance(config, dict) and isinstance(config.get("name"), str):
            layer = f"{config['name']!r} ({item['class_name']})"
        if item.get("class_name") == "__lambda__":
            found.append(Finding(layer, "a Python lambda stored as bytecode", True))
        for key, value in item.items():
            if key.endswith("_type") and value == "lambda":
                found.append(Finding(layer, f"a Python lambda stored as bytecode (its {key.removesuffix('_type')!r})",
                                     True))
        module = item.get("module")
        if isinstance(module, str) and module and "class_name" in item:
            name = item["config"] if item.get("registered_name") == "function" and isinstance(
                item.get("config"), str) else str(item["class_name"])
            if name not in provided and _foreign(module, name):
                found.append(Finding(layer, f"{name!r} from the module {module!r}", False, name))
        stack += [(v, layer) for v in item.values() if isinstance(v, dict | list)]
    return found


def _foreign(module: str, name: str) -> bool:
    if module == "builtins":  # Keras' own functions ('relu') are named so; Python's are refused
        return hasattr(builtins, name)
    return module.split(".")[0] not in KNOWN_MODULES


def check_model_file(path: Path, *, custom_objects: dict | None = None, trust_code: bool = False) -> str:
    """Refuse a model file that would run code, or import a module nobody named, when loaded.

    Returns:
        The file's format (``keras``, ``h5``, ``savedmodel``).

    Raises:
        UsageError: code without ``trust_code`` (naming the layer and :data:`TRUST_FLAG`), or a
            class from a module no ``--custom-objects`` covers (naming both).
        EdgebnnError: not a readable model file.
    """
    fmt = file_format(path)
    configs = read_configs(path, fmt)
    for finding in findings(configs, custom_objects):
        if finding.code and not trust_code:
            raise UsageError(f"{path}: layer {finding.layer} carries {finding.what}, which loading would run: "
                             f"edgebnn runs no code from a model file unless you pass {TRUST_FLAG} (do so only "
                             "for a file whose source you trust)")
        if not finding.code:
            raise UsageError(f"{path}: layer {finding.layer} uses {finding.what}, which neither Keras, larq nor "
                             "edgebnn defines: name the module that defines it with --custom-objects FILE.py (or "
                             "a module path); edgebnn imports no module a file names")
    if fmt == "h5" and (name := _function_by_name(configs)):
        raise UsageError(f"{path} stores the function {name!r} (an initializer, regularizer... of your own or Larq "
                         "Zoo's) by name in an .h5 file, which tf_keras cannot restore from that format, with or "
                         "without --custom-objects: save the model as .keras (model.save('model.keras')) and give "
                         "that file")
    return fmt


def _function_by_name(configs: list) -> str | None:
    """A function tf_keras wrote into an .h5 config as ``{"class_name": "function", ...}``: its h5 loader
    (the legacy deserializer) cannot read that form back. Keras' own functions are plain strings there."""
    stack = list(configs)
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("class_name") == "function" and isinstance(item.get("config"), str):
                return item["config"]
            stack += item.values()
        elif isinstance(item, list):
            stack += item
    return None
