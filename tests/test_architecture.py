"""The rules the layout keeps: who may import whom, a light top-level import, a declared
public surface, and a project that speaks of versions and dates only."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mosaic_pais"

#: subpackage (or top-level module) → the parts of the package it may import. The runtime is
#: what `mosaic-pais run` executes: it needs the network, never what trains, simulates or scores.
ALLOWED = {
    "errors": set(),
    "figures": set(),
    "pcr": set(),
    "nn": {"errors"},
    "runtime": {"errors", "figures", "pcr", "nn"},
    "sim": {"errors"},
    "evaluation": {"errors", "figures", "runtime"},
    "training": {"errors", "pcr", "nn", "sim", "runtime"},
    "labels": {"errors", "pcr", "nn", "runtime", "training"},
}
#: the interfaces (commands, Python API, demo) sit on top of everything
INTERFACES = {"__init__", "__main__", "cli", "api", "demo"}


def part_of(module: str) -> str:
    """The box of ``mosaic_pais.x.y`` (``x``) or of ``mosaic_pais`` itself (``__init__``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def package_modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        name = ".".join(rel.parts)
        yield (name[: -len(".__init__")] if name.endswith(".__init__") else name), path


def imports_of(path: Path) -> list[tuple[str, list[str]]]:
    """Every ``mosaic_pais`` import in a file (inside functions too): (module, names)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] == "mosaic_pais":
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.split(".")[0] == "mosaic_pais"]
    return found


def dependency_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in package_modules():
        box = part_of(name) if name != "mosaic_pais" else "__init__"
        targets = graph.setdefault(box, set())
        for module, names in imports_of(path):
            if module == "mosaic_pais" and names == ["__version__"]:
                continue  # the version string, not the interfaces
            if module == "mosaic_pais":  # `from mosaic_pais import x`: x is the box
                targets |= {n if (PACKAGE / n).is_dir() or (PACKAGE / f"{n}.py").exists()
                            else "__init__" for n in names}
            else:
                targets.add(part_of(module))
        targets.discard(box)
    return graph


def test_each_part_imports_only_what_lies_below_it():
    graph = dependency_graph()
    assert set(graph) - INTERFACES == set(ALLOWED), "a new part needs its place in ALLOWED"
    wrong = {box: sorted(deps - ALLOWED[box]) for box, deps in graph.items()
             if box in ALLOWED and deps - ALLOWED[box]}
    assert not wrong, f"imports against the layering: {wrong}"


def test_import_mosaic_pais_stays_light():
    heavy = ["tensorflow", "keras", "galsim", "dask", "zarr", "xarray", "astropy", "scipy",
             "matplotlib", "sep", "photutils", "scarlet2", "jax"]
    code = ("import sys, mosaic_pais; mosaic_pais.__version__; "
            f"print(','.join(m for m in {heavy!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == ""


def test_every_module_declares_its_public_names():
    for name, path in package_modules():
        tree = ast.parse(path.read_text())
        declared = [n for n in tree.body if isinstance(n, ast.Assign)
                    and any(getattr(t, "id", None) == "__all__" for t in n.targets)]
        public = [n.name for n in tree.body
                  if isinstance(n, ast.FunctionDef | ast.ClassDef) and not n.name.startswith("_")]
        if not public:
            continue
        assert declared, f"{name} has no __all__"
        listed = ast.literal_eval(declared[0].value)
        assert set(public) <= set(listed) | {"main"}, f"{name}: {set(public) - set(listed)}"


def test_no_private_name_is_used_across_modules():
    offenders = []
    roots = [PACKAGE, ROOT / "benchmarks", ROOT / "training"]
    for path in (p for root in roots for p in sorted(root.rglob("*.py"))):
        for module, names in imports_of(path):
            offenders += [f"{path.relative_to(ROOT)}: {module}.{n}" for n in names
                          if n.startswith("_") and n != "__version__"]
    assert not offenders


#: what a project that speaks of versions and dates does not say, and documents that are
#: not in the repository
NARRATIVE = re.compile(r"\bsessions?\b|\bissue #?\d+|REFERENCE\.md|DESIGN\.md|STYLE\.md"
                       r"|\.\./shared/(?!data)", re.IGNORECASE)


def tracked_text_files():
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    for rel in listed.stdout.split():
        if rel == "CHANGELOG.md" or rel.startswith("tests/data/"):
            continue  # history belongs in the changelog; test data are not prose
        path = ROOT / rel
        if path.suffix in {".py", ".md", ".json", ".sh", ".ipynb", ".yml", ".toml", ".cff",
                           ".def", ".txt"} and path.is_file():
            yield rel, path


def test_no_development_narrative_or_outside_documents():
    hits = [f"{rel}:{i}: {line.strip()[:80]}"
            for rel, path in tracked_text_files() if rel != "tests/test_architecture.py"
            for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
            if NARRATIVE.search(line)]
    assert not hits, "\n".join(hits[:20])


#: the longest a function of the package may be, docstring excepted
MAX_FUNCTION_LINES = 80


def test_no_function_is_longer_than_a_screen():
    long = []
    for name, path in package_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            first = node.body[0]
            has_doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            start = (node.body[1].lineno if has_doc and len(node.body) > 1 else first.lineno)
            if node.end_lineno - start + 1 > MAX_FUNCTION_LINES:
                long.append(f"{name}.{node.name}: {node.end_lineno - start + 1} lines")
    assert not long
