"""The manifest's sections: which stage writes each, and the type every reader may rely on.

``manifest.json`` is a JSON object of top-level sections. Readers take a section through
:func:`section`, which returns the type's empty value when it is absent and refuses a section of
the wrong shape with a message naming it (a hand-edited ``"benchmarks": "oops"`` is an error,
never a list of letters).
"""

from __future__ import annotations

from typing import Any

from edgebnn.errors import EdgebnnError

# name -> type; the comments say which stage writes it.
SECTIONS: dict[str, type] = {
    # every run
    "model": str, "created": str, "updated": str, "versions": dict, "files": dict,
    # the source: a registered model (card, random weights or a PyTorch checkpoint's, weights_source)
    # or a user's file (source)
    "card": dict, "weights": str, "seed": int, "input_shape": list, "num_classes": int, "stats": dict,
    "model_options": dict, "source": dict, "weights_source": dict,
    # train / evaluate
    "recipe": dict, "dataset": dict, "data": str, "strategy": str, "teachers": list, "status": str,
    "metrics": dict, "best": dict, "flips": dict, "evaluation": dict,
    # convert
    "conversion": dict,
    # bench
    "benchmarks": list,
}
TYPE_NAMES = {str: "a string", dict: "an object", list: "a list", int: "an integer", float: "a number",
              bool: "true or false", type(None): "null"}
NONE = type(None)
NUMBER = (int, float)
# The entries readers index into: field -> allowed types (fields not named here pass unchecked).
# Records in a section: "files" maps a file name to one; "benchmarks" and "teachers" list them.
RECORDS: dict[str, dict[str, Any]] = {
    "files": {"sha256": str, "bytes": int},
    "benchmarks": {"device": str, "file": str, "started": str, "figure_kind": str, "ok": bool,
                   "error_kind": (str, NONE), "tuned": (dict, NONE)},
    "teachers": {"path": str, "sha256": str},
}
# Fields of object sections.
FIELDS: dict[str, dict[str, Any]] = {
    "source": {"path": str, "sha256": str, "format": str, "custom_objects": (str, NONE),
               "custom_objects_sha256": (str, NONE)},
    "conversion": {"bconv": int, "binary_layers": (int, NONE), "bconv_coverage": (*NUMBER, NONE),
                   "tflite_bytes": int, "op_counts": dict, "parity": dict, "explain": dict, "size": dict},
    "stats": {"params": int, "binary_params": int, "float_params": int, "binary_macs": int,
              "binary_mac_share": NUMBER},
    "best": {"val_accuracy": (*NUMBER, NONE), "epoch": (int, NONE), "file": str},
    "metrics": {"val_accuracy": NUMBER, "accuracy": NUMBER},
}


def check(data: Any, where: str) -> dict[str, Any]:
    """``data`` if it is a manifest whose known sections have their types.

    Raises:
        EdgebnnError: naming the file and the first malformed section.
    """
    if not isinstance(data, dict):
        raise EdgebnnError(f"malformed {where}: it is not a JSON object; restore it or make the run again")
    for name, kind in SECTIONS.items():
        value = data.get(name)
        if value is None:
            continue
        if not _is(value, kind):
            raise EdgebnnError(
                f"malformed {where}: section {name!r} should be {TYPE_NAMES[kind]}, not "
                f"{type(value).__name__} {str(value)[:40]!r}; restore it or make the run again"
            )
        if name == "input_shape" and not all(_is(d, int) and d > 0 for d in value):
            raise EdgebnnError(f"malformed {where}: section 'input_shape' should list whole numbers, not "
                               f"{str(value)[:40]}; restore it or make the run again")
        for label, entry, fields in _entries(name, value):
            if not isinstance(entry, dict):
                raise EdgebnnError(f"malformed {where}: {label} should be an object, not {type(entry).__name__} "
                                   f"{str(entry)[:40]!r}; restore it or make the run again")
            for field, kinds in fields.items():
                if field in entry and not _is(entry[field], kinds):
                    wanted = " or ".join(TYPE_NAMES[k] for k in (kinds if isinstance(kinds, tuple) else (kinds,)))
                    raise EdgebnnError(f"malformed {where}: {label}[{field!r}] should be {wanted}, not "
                                       f"{str(entry[field])[:40]!r}; restore it or make the run again")
    return data


def _is(value: Any, kinds) -> bool:
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    return isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)


def _entries(name: str, value: Any):
    """``(label, entry, fields)`` for each record of section ``name`` that :data:`RECORDS` or :data:`FIELDS` types."""
    if name in FIELDS:
        yield f"section {name!r}", value, FIELDS[name]
    elif name == "files":
        yield from ((f"files[{k!r}]", v, RECORDS[name]) for k, v in value.items())
    elif name in RECORDS:
        # A teacher recorded by an older edgebnn is a bare path (resuming it asks for its hash).
        yield from ((f"{name}[{i}]", v, RECORDS[name]) for i, v in enumerate(value)
                    if not (name == "teachers" and isinstance(v, str)))


def section(data: dict[str, Any], name: str) -> Any:
    """A checked manifest's section ``name``, or its type's empty value when absent."""
    value = data.get(name)
    return SECTIONS[name]() if value is None else value
