"""The layering of docs/architecture.md, checked on the source: who may import whom, no cycles, pure kernels."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: Layers from the bottom up: a module may import its own layer and those below it, never one above.
LAYERS = [
    {"scipzarr._version", "scipzarr.errors", "scipzarr.atomic", "scipzarr.backend", "scipzarr.schema",
     "scipzarr.scheduler", "scipzarr.progress"},
    {"scipzarr.store"},
    {"scipzarr.kernels"},
    {"scipzarr.features"},
    {"scipzarr.config", "scipzarr.work", "scipzarr.table", "scipzarr.plugins", "scipzarr.synthetic",
     "scipzarr.quality"},
    {"scipzarr.pipeline", "scipzarr.converters"},
    {"scipzarr.cli", "scipzarr.demo", "scipzarr.info", "scipzarr.report", "scipzarr.export", "scipzarr.jobscript",
     "scipzarr.__main__", "scipzarr"},
]


def _modules() -> dict[str, Path]:
    mods = {}
    for base, prefix in ((REPO / "scipzarr", "scipzarr"), (REPO / "converters", "scipzarr.converters")):
        for path in base.rglob("*.py"):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join([prefix, *parts])] = path
    return mods


def _imports(name: str, path: Path, modules: dict) -> set[str]:
    """Every scipzarr module ``name`` imports (at any depth of the file), resolved to modules."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = package.split(".")
                base = ".".join(pkg[: len(pkg) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        out |= {t for t in targets if t in modules and t != name}
    return out


def _layer(module: str) -> int:
    best = None
    for i, layer in enumerate(LAYERS):
        for prefix in layer:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (i, len(prefix))
    assert best is not None, f"{module} is in no layer of docs/architecture.md"
    return best[0]


MODULES = _modules()
GRAPH = {m: _imports(m, p, MODULES) for m, p in MODULES.items()}


def test_no_import_runs_upward():
    upward = [f"{m} -> {t}" for m, targets in GRAPH.items() for t in targets
              if _layer(t) > _layer(m) and not (m == "scipzarr" and t.startswith("scipzarr."))]
    assert upward == []


def test_no_two_modules_import_each_other_directly_or_through_others():
    def reach(start):
        seen, todo = set(), [start]
        while todo:
            for t in GRAPH.get(todo.pop(), ()):
                if t not in seen:
                    seen.add(t)
                    todo.append(t)
        return seen

    cycles = sorted(m for m in GRAPH if m in reach(m))
    assert cycles == []


@pytest.mark.parametrize("path", sorted((REPO / "scipzarr" / "kernels").glob("*.py")), ids=lambda p: p.name)
def test_kernels_are_pure(path):
    """Arrays in, arrays out: no dask, zarr, pandas, anndata, features, store or pipeline in a kernel."""
    banned = ("dask", "zarr", "pandas", "anndata", "scipzarr.features", "scipzarr.store", "scipzarr.pipeline")
    name = "scipzarr.kernels" + ("" if path.stem == "__init__" else f".{path.stem}")
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            imported.add(node.module or "")
    imported |= GRAPH[name]
    assert [m for m in imported if m.split(".")[0] in banned or m.startswith(banned)] == []


def test_only_the_store_package_touches_zarr():
    """``zarr`` (and ``ome_zarr``) are imported by scipzarr.store only; readers may use tifffile's aszarr."""
    users = []
    for name, path in MODULES.items():
        if name.startswith("scipzarr.store") or name == "scipzarr.converters.fov":  # tifffile's aszarr views
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                    [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            users += [f"{name}: {m}" for m in mods if m.split(".")[0] in ("zarr", "ome_zarr")]
    assert users == []
