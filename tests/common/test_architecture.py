"""The import rules of the package, checked on the source: no module imports another module's
private name, and no area (``masks``, ``runs``, ``sae``) imports another area."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "interplab"
AREAS = ("masks", "runs", "sae")


def _modules() -> list[tuple[str, ast.Module]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        out.append((name, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))))
    return out


def _imports(tree: ast.Module) -> list[tuple[str, str | None, int]]:
    """(module, imported name or None, line) of every import, nested ones included."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.module, a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name, None, node.lineno) for a in node.names]
    return found


def test_the_walk_sees_the_package() -> None:
    names = [n for n, _ in _modules()]
    assert "interplab.sae.analyzer" in names and "interplab.common.output" in names and len(names) > 50


def test_no_module_imports_a_private_name_of_another_module() -> None:
    bad = []
    for name, tree in _modules():
        for module, imported, line in _imports(tree):
            if not module.startswith("interplab") or module == name or imported is None:
                continue
            if imported.startswith("_") and not imported.startswith("__"):
                bad.append(f"{name}:{line} imports {module}.{imported}")
    assert not bad, "\n".join(bad)


def test_no_area_imports_another_area() -> None:
    bad = []
    for name, tree in _modules():
        parts = name.split(".")
        if len(parts) < 2 or parts[1] not in AREAS:
            continue
        for module, _imported, line in _imports(tree):
            other = module.split(".")
            if other[0] == "interplab" and len(other) > 1 and other[1] in AREAS and other[1] != parts[1]:
                bad.append(f"{name}:{line} imports {module}")
    assert not bad, "\n".join(bad)
