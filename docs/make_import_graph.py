"""Draw docs/figures/import_graph.png: the package's parts and who imports whom.

    python docs/make_import_graph.py

Each box is a subpackage (or a top-level module) of ``mosaic_pais``; an arrow A → B says that
some module of A imports some module of B (inside functions too). The graph is read from the
source with ``ast``, so the picture shows the code as it is; the boxes are laid out by layer
(a part sits above everything it imports), so every arrow points down.
"""

from __future__ import annotations

import ast
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mosaic_pais"
OUT = Path(__file__).resolve().parent / "figures" / "import_graph.png"
#: the interfaces are drawn as one box
INTERFACES = {"__init__", "__main__", "cli", "api", "demo"}
ROLE = {"interfaces": "commands, Python API, demo", "runtime": "what a run executes",
        "nn": "the network", "training": "training sets, loss, loop",
        "sim": "simulated scenes", "evaluation": "scores and plots",
        "labels": "labels of real images", "pcr": "the representation",
        "errors": "bad-input error", "figures": "matplotlib setup"}


def box_of(module: str) -> str:
    part = module.split(".")[1] if "." in module else "__init__"
    return "interfaces" if part in INTERFACES else part


def import_graph() -> dict[str, set[str]]:
    """Part → the parts it imports."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        box = box_of(".".join(rel.parts))
        targets = graph.setdefault(box, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module == "mosaic_pais":
                    targets |= {box_of(f"mosaic_pais.{a.name}") for a in node.names
                                if a.name != "__version__"}
                elif node.module.startswith("mosaic_pais."):
                    targets.add(box_of(node.module))
        targets.discard(box)
    return graph


def layers(graph: dict[str, set[str]]) -> list[list[str]]:
    """Parts by layer: layer 0 imports nothing of the package, each other layer only below."""
    depth: dict[str, int] = {}

    def level(box: str, seen: tuple = ()) -> int:
        if box in seen:
            raise ValueError(f"import cycle through {' → '.join((*seen, box))}")
        if box not in depth:
            depth[box] = 1 + max((level(d, (*seen, box)) for d in graph.get(box, ())),
                                 default=-1)
        return depth[box]

    for box in graph:
        level(box)
    rows = [[] for _ in range(max(depth.values()) + 1)]
    for box in sorted(depth):
        rows[depth[box]].append(box)
    return rows[::-1]  # interfaces on top


def draw(graph: dict[str, set[str]], path: Path = OUT) -> Path:
    rows = layers(graph)
    width = max(len(r) for r in rows)
    fig, ax = plt.subplots(figsize=(2.6 * width + 1, 1.5 * len(rows) + 0.5))
    where = {}
    for i, row in enumerate(rows):
        for j, box in enumerate(row):
            where[box] = ((j + 0.5) * (2.6 * width) / len(row), -1.5 * i)
    for box, (x, y) in where.items():
        ax.add_patch(FancyBboxPatch((x - 1.05, y - 0.35), 2.1, 0.7,
                                    boxstyle="round,pad=0.05", fc="#dbe9f6", ec="#345"))
        ax.text(x, y + 0.1, box, ha="center", va="center", fontsize=11, weight="bold")
        ax.text(x, y - 0.17, ROLE.get(box, ""), ha="center", va="center", fontsize=7.5)
    for box, deps in graph.items():
        for dep in sorted(deps):
            (x0, y0), (x1, y1) = where[box], where[dep]
            ax.add_patch(FancyArrowPatch((x0, y0 - 0.4), (x1, y1 + 0.4), arrowstyle="-|>",
                                         mutation_scale=10, color="#567", lw=0.8, alpha=0.7,
                                         connectionstyle="arc3,rad=0.05"))
    ax.set_xlim(-0.3, 2.6 * width + 0.3)
    ax.set_ylim(-1.5 * (len(rows) - 1) - 0.7, 0.7)
    ax.axis("off")
    ax.set_title("mosaic_pais: parts and imports (arrows point to what is imported)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


if __name__ == "__main__":
    print(f"wrote {draw(import_graph())}")
