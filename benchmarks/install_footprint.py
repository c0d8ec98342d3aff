"""What `pip install` brings: the core package against `[all]`, each in a new virtual environment.

Usage: python benchmarks/install_footprint.py [--work /tmp/install_footprint]

For the core install (``pip install .``) and for ``.[all]``: the time to create the environment
and install into it (with ``uv``, whose cache on this machine is warm from the development
install, so the time is of installing and not of downloading; ``pip`` without a cache takes
longer), the environment's size on disk, and which of the optional packages are in it. In
the core environment, ``mosaic-pais run`` on a small FITS image with a WCS must work and
``mosaic-pais simulate`` must say in one line which extra it needs (exit status 2).

Writes docs/results/install.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: packages the core install must not bring (distribution names, as ``pip list`` shows them)
OPTIONAL = ("galsim", "jax", "sep", "photutils", "scarlet2", "tensorboard", "scikit-image",
            "dask-jobqueue")

_MAKE_IMAGE = """
import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
rng = np.random.default_rng(1)
image = rng.normal(0, 1, (300, 300)).astype(np.float32)
yy, xx = np.mgrid[:300, :300]
for y, x, f in [(80, 90, 400), (150, 160, 900), (154, 170, 300), (230, 60, 200)]:
    image += f * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 8) / (8 * np.pi)
wcs = WCS(naxis=2)
wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
wcs.wcs.crval = [53.1, -27.8]
wcs.wcs.crpix = [150, 150]
wcs.wcs.cdelt = [-0.06 / 3600, 0.06 / 3600]
fits.PrimaryHDU(image, wcs.to_header()).writeto("{path}", overwrite=True)
"""


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _uv() -> list[str]:
    """The uv command: this interpreter's module, the system Python's, or the binary."""
    for candidate in ([sys.executable, "-m", "uv"], ["python3", "-m", "uv"], ["uv"]):
        try:
            if subprocess.run([*candidate, "--version"], capture_output=True).returncode == 0:
                return candidate
        except OSError:
            continue
    raise SystemExit("uv is needed: pip install uv")


def install(venv: Path, extras: str) -> dict:
    """A new environment at ``venv`` with the package (and ``extras``); time, size, packages."""
    shutil.rmtree(venv, ignore_errors=True)
    uv = _uv()
    t0 = time.time()
    subprocess.run([*uv, "venv", "-q", "-p", sys.executable, str(venv)], check=True)
    target = f"{REPO}[{extras}]" if extras else str(REPO)
    subprocess.run([*uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"),
                    target], check=True)
    seconds = time.time() - t0
    listed = subprocess.run([*uv, "pip", "list", "--python", str(venv / "bin" / "python"),
                             "--format", "json"], check=True, capture_output=True, text=True)
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    return {"extras": extras or "core", "seconds": round(seconds, 1),
            "size_mb": round(_du(venv) / 1e6, 1), "packages": len(names),
            "optional_present": sorted(n for n in OPTIONAL if n in names)}


def core_commands(venv: Path, work: Path) -> dict:
    """``run`` on a small image, and ``simulate`` refused with the extra it needs."""
    python, cli = venv / "bin" / "python", venv / "bin" / "mosaic-pais"
    image = work / "small.fits"
    subprocess.run([str(python), "-c", _MAKE_IMAGE.format(path=image)], check=True)
    run = subprocess.run([str(cli), "run", str(image), "--output", str(work / "run"),
                          "--overwrite", "--quiet"], capture_output=True, text=True)
    simulate = subprocess.run([str(cli), "simulate", "--output", str(work / "sim"),
                               "--size", "64"], capture_output=True, text=True)
    return {"run_exit": run.returncode, "run_output": run.stdout.strip().splitlines()[-1:],
            "run_stderr_lines": len(run.stderr.strip().splitlines()),
            "catalog_written": (work / "run" / "catalog.fits").exists(),
            "simulate_exit": simulate.returncode,
            "simulate_message": simulate.stderr.strip()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/install_footprint"))
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    results = {"installs": []}
    for extras in ("", "all"):
        venv = args.work / f"venv_{extras or 'core'}"
        results["installs"].append(install(venv, extras))
        print(results["installs"][-1], flush=True)
        if not extras:
            results["core_commands"] = core_commands(venv, args.work)
            print(results["core_commands"], flush=True)
    out = REPO / "docs" / "results" / "install.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
