"""The tree shows the floors, and imports only point down them (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import tuneforge

PACKAGE = Path(tuneforge.__file__).parent
FLOORS: dict[str, int] = {
    # 0: foundations
    "core": 0,
    "chain": 0,
    # 1: services
    "auth": 1,
    "generation": 1,
    "scoring": 1,
    "calibration": 1,
    "localnet": 1,
    # 2: roles
    "miner": 2,
    "validator": 2,
    "api": 2,
    # 3: command lines and benches
    "tools": 3,
}
ROLES = {name for name, floor in FLOORS.items() if floor == 2}


def room_of(module: str) -> str | None:
    """The top-level folder of a dotted `tuneforge.*` name; None for the package itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "tuneforge" else None


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.startswith("tuneforge.")}


def test_every_module_lives_in_a_floor_folder() -> None:
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert loose == []
    folders = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    assert folders == sorted(FLOORS)


def test_imports_point_down_and_roles_never_meet() -> None:
    wrong: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        room = path.relative_to(PACKAGE).parts[0]
        if room not in FLOORS:
            continue
        for name in sorted(imports_of(path)):
            target = room_of(name)
            if target is None or target == room or target not in FLOORS:
                continue
            if FLOORS[target] > FLOORS[room] or (room in ROLES and target in ROLES):
                wrong.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert wrong == []
