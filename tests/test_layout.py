"""The layout the README describes: stages import only what comes before them, and no private
name crosses a module."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"edgebnn": ROOT / "edgebnn", "edgebnn.models": ROOT / "models",
            "edgebnn.converters": ROOT / "converters", "edgebnn.device": ROOT / "device"}
# A stage may import the run directory, data and models, never a later stage (README, Layout).
FORBIDDEN = {
    "edgebnn.run": ("edgebnn.training", "edgebnn.converters", "edgebnn.device", "edgebnn.reporting"),
    "edgebnn.data": ("edgebnn.training", "edgebnn.converters", "edgebnn.device", "edgebnn.reporting"),
    "edgebnn.models": ("edgebnn.training", "edgebnn.converters", "edgebnn.device", "edgebnn.reporting"),
    "edgebnn.training": ("edgebnn.converters", "edgebnn.device", "edgebnn.reporting"),
    "edgebnn.converters": ("edgebnn.training", "edgebnn.device", "edgebnn.reporting"),
    "edgebnn.device": ("edgebnn.training", "edgebnn.converters", "edgebnn.reporting", "edgebnn.models",
                       "tensorflow", "tf_keras", "larq"),
    "edgebnn.reporting": ("edgebnn.training", "edgebnn.converters", "edgebnn.device", "edgebnn.models",
                          "tensorflow", "tf_keras", "larq"),
}


def modules():
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            name = ".".join((package, *parts)).removesuffix(".__init__")
            yield name, path


def imports(path: Path):
    """``(module, [names])`` of every import in ``path``, at any depth (function-local ones too)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []


@pytest.mark.parametrize("name, path", list(modules()), ids=lambda x: x if isinstance(x, str) else "")
def test_stages_import_only_what_comes_before_them(name, path):
    rules = [bad for stage, bad in FORBIDDEN.items() if name == stage or name.startswith(stage + ".")]
    for module, _ in imports(path):
        for forbidden in (b for bad in rules for b in bad):
            assert not (module == forbidden or module.startswith(forbidden + ".")), f"{name} imports {module}"


def test_no_private_name_is_imported_across_modules():
    crossing = [f"{name}: from {module} import {n}" for name, path in modules() for module, names in imports(path)
                for n in names if n.startswith("_") and not n.startswith("__") and module != name]
    tests = [f"{p.name}: from {m} import {n}" for p in sorted((ROOT / "tests").glob("*.py"))
             for m, names in imports(p) for n in names if n.startswith("_") and m.startswith("edgebnn")]
    assert not crossing + tests


def test_the_readme_layout_names_every_module():
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout"):readme.index("## The stack")]
    missing = [path.relative_to(ROOT).as_posix() for _, path in modules()
               if path.name != "__init__.py" and path.stem not in layout]
    assert not missing, f"modules missing from the README's Layout: {missing}"


def test_every_package_is_in_the_wheel():
    """pyproject lists packages explicitly (the design card's folders map into edgebnn): a new
    sub-package missing from the list would work in the editable install and not in a wheel."""
    import tomllib

    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {".".join((package, *init.parent.relative_to(folder).parts))
             for package, folder in PACKAGES.items() for init in folder.rglob("__init__.py")}
    assert found == set(setuptools["packages"])
    assert {k: ROOT / v for k, v in setuptools["package-dir"].items()} == PACKAGES
