"""The Colab notebooks use jaxlic's public API only (no imports from train/, eval/ or tests/)."""

import json
import pathlib
import re

NOTEBOOKS = sorted((pathlib.Path(__file__).parents[1] / "colab").glob("*.ipynb"))
ALLOWED = {"jaxlic", "numpy", "matplotlib", "jax"}


def test_notebooks_exist_and_import_only_jaxlic_and_basics():
    assert NOTEBOOKS
    for nb in NOTEBOOKS:
        cells = json.loads(nb.read_text())["cells"]
        src = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        modules = {m.split(".")[0] for m in re.findall(r"^\s*(?:from|import)\s+([\w.]+)", src, re.M)}
        assert "jaxlic" in modules
        assert modules <= ALLOWED, f"{nb.name} imports {modules - ALLOWED}"
