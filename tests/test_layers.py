"""The package's layers depend one way (DEVELOPERS.md): data/ and models/ know nothing of tasks or training,
tasks/ wire data and models together without the training loop, and the types the loop and the tasks share
live in seqmodels.contracts, which imports nothing of the package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "seqmodels"

# the packages each layer must not import, directly or inside a function
FORBIDDEN = {
    "data": ("seqmodels.tasks", "seqmodels.training", "seqmodels.models", "seqmodels.inference"),
    "models": ("seqmodels.tasks", "seqmodels.training", "seqmodels.inference"),
    "tasks": ("seqmodels.training",),
}


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_of_the_layers_above_it(layer):
    wrong = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in sorted((PACKAGE / layer).glob("*.py"))
        for name in imported(path)
        if name.startswith(FORBIDDEN[layer])
    }
    assert not wrong, sorted(wrong)


def test_the_shared_types_import_nothing_of_the_package():
    assert not {name for name in imported(PACKAGE / "contracts.py") if name.startswith("seqmodels")}
