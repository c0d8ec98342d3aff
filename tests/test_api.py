"""The Python API mirrors the commands and `import mosaic_pais` stays light."""

from __future__ import annotations

import subprocess
import sys


def test_import_is_light():
    code = ("import sys, mosaic_pais; mosaic_pais.run; mosaic_pais.open_mosaic; "
            "heavy = [m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'keras', 'galsim', 'scarlet2', 'jax')]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_api_names():
    import mosaic_pais
    from mosaic_pais.evaluate import evaluate

    assert callable(mosaic_pais.run) and callable(evaluate)
    assert callable(mosaic_pais.simulate_scene) and callable(mosaic_pais.open_mosaic)
    assert callable(mosaic_pais.simulate_mosaic) and callable(mosaic_pais.decode)


def test_cli_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "mosaic_pais", "--help"], capture_output=True,
                         text=True, check=True).stdout
    for command in ("run", "simulate", "evaluate", "demo", "convert", "stamps", "train"):
        assert command in out
