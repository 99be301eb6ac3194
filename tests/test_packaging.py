"""The package boundary: the wheel holds only `jaxlic`, which never imports `train/` or `eval/`,
and every dotted name that docs/ARCHITECTURE.md mentions exists."""

import ast
import importlib
import pathlib
import re
import tomllib

import pytest
from setuptools import find_packages

ROOT = pathlib.Path(__file__).parents[1]


def test_the_wheel_holds_only_jaxlic():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = find_packages(str(ROOT), include=include)
    assert "jaxlic" in packages and "jaxlic.evaluation" in packages
    assert all(p == "jaxlic" or p.startswith("jaxlic.") for p in packages), packages


def test_jaxlic_never_imports_checkout_packages():
    offenders = []
    for path in (ROOT / "jaxlic").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [
                f"{path.relative_to(ROOT)}: {n}"
                for n in names
                if n.split(".")[0] in ("train", "eval", "tests")
            ]
    assert not offenders


def _dotted_names(text: str) -> list[str]:
    names = set(re.findall(r"`((?:jaxlic|train|eval)(?:\.\w+)+)", text))
    names |= {
        p.replace("/", ".").removesuffix(".py")
        for p in re.findall(r"`((?:jaxlic|train|eval)/[\w/]+\.py)`", text)
    }
    return sorted(names)


def _resolve(name: str):
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(name)


@pytest.mark.parametrize("name", _dotted_names((ROOT / "docs" / "ARCHITECTURE.md").read_text()))
def test_every_name_in_the_architecture_doc_exists(name):
    _resolve(name)


def test_every_path_in_the_architecture_doc_exists():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    paths = set(re.findall(r"`((?:jaxlic|train|eval|tests|results|docs)/[\w./-]*)", text))
    missing = sorted(p for p in paths if not (ROOT / p.rstrip(".")).exists())
    assert not missing
