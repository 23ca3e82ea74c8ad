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
TYPE_NAMES = {str: "a string", dict: "an object", list: "a list", int: "an integer"}


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
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise EdgebnnError(
                f"malformed {where}: section {name!r} should be {TYPE_NAMES[kind]}, not "
                f"{type(value).__name__} {str(value)[:40]!r}; restore it or make the run again"
            )
    return data


def section(data: dict[str, Any], name: str) -> Any:
    """A checked manifest's section ``name``, or its type's empty value when absent."""
    value = data.get(name)
    return SECTIONS[name]() if value is None else value
