"""The package's layers run one way: no stage imports ``Case`` (not even for a type), the
import graph between stage folders has no cycle, and no lower stage imports a higher one.
Every import is read from the source (type-only and function-local imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "forensics"

# bottom to top; a folder may import its own rank or lower ones
RANK = {"core": 0, "ingest": 1, "queries": 1, "drills": 1, "detect": 2, "cause": 3,
        "impact": 4, "playbook": 5, "postmortem": 6, "case": 7, "cli": 8, "__init__": 9,
        "__main__": 9}


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of the forensics modules ``path`` imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module(path) if path.name == "__init__.py" else _module(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("forensics")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
            if name.startswith("forensics"):
                found.add(name)
                found |= {f"{name}.{a.name}" for a in node.names
                          if (PACKAGE.parent / f"{name}.{a.name}".replace(".", "/")).exists()
                          or (PACKAGE.parent / (f"{name}.{a.name}".replace(".", "/") + ".py"))
                          .exists()}
    return found


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _graph() -> dict[str, set[str]]:
    return {_module(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def test_no_stage_imports_the_facade() -> None:
    offenders = {m: sorted(i for i in deps if i == "forensics.case")
                 for m, deps in _graph().items()
                 if _stage(m) not in ("case", "cli", "__init__", "__main__")}
    assert not {m: d for m, d in offenders.items() if d}


def test_no_import_runs_upward() -> None:
    upward = []
    for module, deps in _graph().items():
        for dep in deps:
            if dep == "forensics":
                continue
            if RANK[_stage(dep)] > RANK[_stage(module)]:
                upward.append(f"{module} -> {dep}")
    assert not upward, "\n".join(sorted(upward))


def test_stage_folders_have_no_cycle() -> None:
    edges: dict[str, set[str]] = {}
    for module, deps in _graph().items():
        for dep in deps:
            a, b = _stage(module), _stage(dep)
            if a != b and dep != "forensics":
                edges.setdefault(a, set()).add(b)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in edges.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    assert not [s for s in edges if reaches(s, s, set())]


def test_no_private_helpers_across_modules() -> None:
    """A module never imports another module's ``_private`` names."""
    bad = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("forensics"):
                bad += [f"{_module(path)}: {node.module}.{a.name}" for a in node.names
                        if a.name.startswith("_") and not a.name.startswith("__")]
    assert not bad, "\n".join(bad)
