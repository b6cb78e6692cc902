"""The house plan, checked on every run: rooms import only downwards, no cycles, small modules.

Every ``import`` in the package is read with ``ast`` (module level and inside functions alike,
so a lazy import cannot hide a cycle) and mapped to the room it comes from and the room it
goes to. docs/architecture.md explains the rooms; this table is the rule.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "wsidist"
MAX_LINES = 400

# room -> rooms it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "layout": set(),
    "imaging": {"errors"},
    "io": {"imaging", "errors"},
    "filters": {"imaging", "errors"},
    "demo": {"io", "imaging", "errors"},
    "runtime": {"io", "layout", "errors"},
    "stage1": {"runtime", "filters", "imaging", "io", "layout", "errors"},
    "query": {"runtime", "filters", "imaging", "io", "layout", "errors"},
    "stage2": {"runtime", "filters", "imaging", "io", "layout", "errors"},
    "infer": {"runtime", "filters", "imaging", "io", "layout", "errors"},
    "data": {"runtime", "filters", "imaging", "io", "layout", "errors"},
    "report": {"runtime", "filters", "imaging", "io", "layout", "errors"},
    "view": {"runtime", "filters", "imaging", "io", "layout", "errors"},
    "evaluate": {"runtime", "filters", "imaging", "io", "layout", "errors"},
    "cli": {
        "stage1",
        "query",
        "stage2",
        "infer",
        "data",
        "report",
        "view",
        "evaluate",
        "runtime",
        "filters",
        "imaging",
        "io",
        "demo",
        "layout",
        "errors",
    },  # fmt: skip
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "package"


def imported_modules(module: str, path: Path) -> list[tuple[str, int]]:
    """The wsidist modules ``module`` imports (``from pkg import sub`` counts as ``pkg.sub``)."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((sub if sub in MODULES else target, node.lineno))
    return [(name, line) for name, line in found if name.split(".")[0] == "wsidist"]


GRAPH = {m: imported_modules(m, p) for m, p in MODULES.items()}


def test_every_room_is_known():
    rooms = {room(m) for m in MODULES} - {"package"}
    assert rooms <= set(ALLOWED), f"rooms without a rule: {rooms - set(ALLOWED)}"


def test_imports_point_down_the_house():
    wrong = []
    for module, targets in GRAPH.items():
        src = room(module)
        if src == "package":
            continue  # wsidist/__init__.py re-exports public names lazily, by string
        for target, line in targets:
            dst = room(target)
            if dst != src and dst not in ALLOWED[src]:
                wrong.append(f"{MODULES[module].relative_to(PACKAGE.parent)}:{line}: {src} → {dst}")
    assert not wrong, "imports against the house plan:\n" + "\n".join(wrong)


def test_no_import_cycles():
    edges = {m: {t for t, _ in targets if t in MODULES and t != m} for m, targets in GRAPH.items()}
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for module in sorted(edges):
        if module not in state and (cycle := visit(module)):
            pytest.fail("import cycle: " + " → ".join(cycle))


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_is_small_and_says_what_it_holds(module):
    path = MODULES[module]
    source = path.read_text()
    assert len(source.splitlines()) <= MAX_LINES, f"{module} is over {MAX_LINES} lines"
    if source.strip():
        assert ast.get_docstring(ast.parse(source)), f"{module} has no docstring"


def test_checker_sees_a_wrong_import(tmp_path):
    """The rule is live: an upward import in io is reported."""
    fake = PACKAGE / "io" / "slide.py"
    tree = "from wsidist.stage1.config import Stage1Config\nfrom . import storage\n"
    path = tmp_path / "slide.py"
    path.write_text(tree)
    targets = imported_modules("wsidist.io.slide", path)
    assert ("wsidist.stage1.config", 1) in targets and ("wsidist.io.storage", 2) in targets
    assert room("wsidist.stage1.config") not in ALLOWED[room(module_name(fake))]
