"""The package's layers (docs/architecture.md): imports flow one way, no cycles.

Every ``import``/``from`` statement of kgalign, at module level or inside a function,
is read with ``ast``; a package may import only the packages its row allows. The
neutral modules at the top level (errors, fsutil, config, device, progress, rundir)
may be imported by anyone and import no package but ``data`` (lazily, to open a run's dataset).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "kgalign"
NEUTRAL = {"errors", "fsutil", "config", "device", "progress", "rundir", "__init__"}
# package -> the kgalign packages it may import (besides itself and the neutral modules)
ALLOWED = {
    "data": set(),
    "features": {"data"},
    "models": {"data"},
    "evaluation": {"data"},
    "training": {"data", "features", "models", "evaluation"},
    "export": {"data", "evaluation"},
    "review": {"data", "features", "evaluation", "export"},
    "cli": {"data", "features", "models", "training", "evaluation", "export", "review"},
}
NEUTRAL_ALLOWED = {"data"}


def _unit(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _is_module(name: str) -> bool:
    return (ROOT / f"{name}.py").is_file() or (ROOT / name).is_dir()


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            if node.module == "kgalign":  # `from kgalign import rundir` names a module; __version__ does not
                out += [(node.lineno, f"kgalign.{a.name}") for a in node.names if _is_module(a.name)]
    return [(line, name) for line, name in out if name == "kgalign" or name.startswith("kgalign.")]


def _target(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_package_imports_only_what_its_layer_allows():
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        unit = _unit(path)
        allowed = NEUTRAL_ALLOWED if unit in NEUTRAL else ALLOWED[unit]
        for line, name in _imports(path):
            target = _target(name)
            if target is None or target == unit or target in NEUTRAL:
                continue
            if target not in allowed:
                bad.append(f"{path.relative_to(ROOT.parent)}:{line}: {unit} imports {name}")
    assert not bad, "layer violations:\n" + "\n".join(bad)


def test_every_package_has_a_row():
    units = {_unit(p) for p in ROOT.rglob("*.py")} - NEUTRAL
    assert units <= set(ALLOWED), units - set(ALLOWED)


def test_the_allowed_graph_is_acyclic():
    state: dict[str, int] = {}

    def visit(u: str) -> None:
        assert state.get(u) != 1, f"cycle through {u}"
        if state.get(u) == 2:
            return
        state[u] = 1
        for v in ALLOWED[u]:
            visit(v)
        state[u] = 2

    for u in ALLOWED:
        visit(u)
