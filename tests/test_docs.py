"""The documentation says what the code does: every error message, column and command."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _message_fragments(node: ast.expr) -> list[str]:
    """The literal parts of a message expression (f-strings, concatenations, constants)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        out, current = [], ""
        for value in node.values:
            if isinstance(value, ast.Constant):
                current += value.value
            else:
                out.append(current)
                current = ""
        return [*out, current]
    if isinstance(node, ast.BinOp):
        return _message_fragments(node.left) + _message_fragments(node.right)
    return []


def _bad_input_messages():
    for path in sorted((ROOT / "mosaic_pais").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "BadInputError"
                    and node.args):
                yield path.name, node.lineno, _message_fragments(node.args[0])


def test_every_error_message_is_documented():
    page = re.sub(r"\s+", " ", (DOCS / "errors.md").read_text())
    found = list(_bad_input_messages())
    assert len(found) > 40
    missing = []
    for name, line, fragments in found:
        for fragment in fragments:
            text = re.sub(r"\s+", " ", fragment).strip()
            if len(text) >= 6 and text not in page:
                missing.append(f"{name}:{line}: {text!r}")
    assert not missing, "\n".join(missing)


CONTRACT_COLUMNS = ["id", "x", "y", "ra", "dec", "flux", "flux_<BAND>", "flux_err", "r50", "r90",
                    "a", "b", "theta", "npix", "blend_fraction", "score", "flags"]


def test_user_guide_lists_every_contract_column_and_output():
    guide = (DOCS / "user_guide.md").read_text()
    table = guide.split("### Catalogue columns", 1)[1].split("###", 1)[0]
    documented: set[str] = set()
    for row in re.findall(r"^\| (.+?) \|", table, re.M):
        documented |= set(re.findall(r"`([^`]+)`", row))
    assert set(CONTRACT_COLUMNS) <= documented, set(CONTRACT_COLUMNS) - documented
    assert "1 touches mosaic edge, 2 touches masked/NaN pixels, 4 deblend uncertain" in table
    for name in ("catalog.fits", "catalog.parquet", "pcr.zarr", "overview.png", "run.json",
                 "completeness.png", "flux_error.png"):
        assert f"`{name}`" in guide, name


def test_user_guide_covers_every_command():
    from click.testing import CliRunner

    from mosaic_pais.cli import main

    guide = (DOCS / "user_guide.md").read_text()
    assert CliRunner().invoke(main, ["--help"]).exit_code == 0
    for command in main.commands:
        if command in ("train", "demo"):
            assert f"mosaic-pais {command}" in guide or f"make {command}" in guide, command
        else:
            assert f"mosaic-pais {command} " in guide, command


@pytest.mark.parametrize("page", ["user_guide.md", "errors.md", "notebook.md", "index.md",
                                  "architecture.md", "benchmarks.md", "model_card.md",
                                  "simulation.md"])
def test_pages_are_in_the_site_navigation(page):
    assert f": {page}" in (ROOT / "mkdocs.yml").read_text()
