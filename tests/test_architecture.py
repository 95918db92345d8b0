"""The layout shows the architecture: no import cycles, a thin facade, no reaching into privates."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "recsys"


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in ROOT.rglob("*.py")}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Every recsys module ``path`` imports, wherever the import stands (functions included),
    except under ``if TYPE_CHECKING``."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.add(sub if sub in known else base)
    return {m for m in out if m in known and m != me}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return [*stack[stack.index(m) :], m]
            if m not in state and (c := visit(m)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_no_import_cycles() -> None:
    mods = modules()
    graph = {m: imports_of(p, set(mods)) for m, p in mods.items()}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_finder_can_fail() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


@pytest.mark.parametrize("package", ["types", "pipeline", "model", "data", "privacy", "candidates",
                                     "features", "ranking", "explain", "rerank", "evaluation",
                                     "batch", "cli"])  # fmt: skip
def test_one_subpackage_per_stage(package: str) -> None:
    assert (ROOT / package).is_dir() or (ROOT / f"{package}.py").is_file()


def test_the_facade_stays_thin() -> None:
    assert len((ROOT / "recommender.py").read_text().splitlines()) < 200


def test_no_module_reaches_into_another_objects_private_attributes() -> None:
    """``obj._name`` only on ``self``/``cls`` (third-party internals we compile are listed)."""
    allowed = {
        ("ranking/additive.py", "_predictors"),  # sklearn's fitted trees: compiled to arrays
        ("ranking/additive.py", "_baseline_prediction"),
    }
    found = []
    for path in ROOT.rglob("*.py"):
        rel = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
                and (rel, node.attr) not in allowed
            ):
                found.append(f"{rel}:{node.lineno} .{node.attr}")
    assert found == []
