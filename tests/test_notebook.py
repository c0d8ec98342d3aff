"""docs/notebooks/demo.ipynb runs end to end and draws what it promises."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "notebooks" / "demo.ipynb"
FIGURES = ("figure-image", "figure-stamps", "figure-show", "figure-completeness",
           "figure-flux-error")


def _text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out["text"])
        elif "data" in out:
            parts.append(out["data"].get("text/plain", ""))
    return "".join(parts)


def _tagged(nb, tag):
    cells = [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, tag
    return cells[0]


def test_notebook_is_stored_without_outputs():
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


@pytest.mark.slow
def test_notebook_runs(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    from mosaic_pais.nn.model import DEFAULT_MODEL_PATH

    if not DEFAULT_MODEL_PATH.exists():
        pytest.skip("no shipped model")
    monkeypatch.setenv("MOSAIC_PAIS_DEMO_DIR", str(tmp_path / "demo"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # raises CellExecutionError, with the failing cell's traceback, on any error
    NotebookClient(nb, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors

    assert "Dask dashboard: http://127.0.0.1:" in _text(_tagged(nb, "cluster"))
    assert "workers: 2" in _text(_tagged(nb, "cluster"))
    assert "sources; files: ['catalog.fits', 'catalog.parquet', 'overview.png', 'pcr.zarr', " \
           "'run.json', 'segmentation.fits']" in _text(_tagged(nb, "run"))
    report = _text(_tagged(nb, "evaluate"))
    assert "completeness" in report and "purity" in report
    for tag in FIGURES:
        images = [o for o in _tagged(nb, tag).outputs if "image/png" in o.get("data", {})]
        assert len(images) == 1, tag
        assert len(images[0]["data"]["image/png"]) > 20_000, tag  # a real picture, base64
    assert "as FITS: ['stamp_" in _text(_tagged(nb, "figure-stamps"))
    assert (tmp_path / "demo" / "run" / "catalog.fits").is_file()
