"""Pictures of runs at survey scale: the overview and a region, their time and memory by size.

For each mosaic size, a simulated mosaic (seed 23, as ``benchmarks/mosaic_scale.py`` makes
them, reused from ``--work``) is run once (``mosaic-pais run``, kept in ``--work``), then
``mosaic-pais show RUN --overview`` and ``mosaic-pais show RUN --region`` (a 512² region at the
mosaic's centre) are each started as a separate process whose wall time and peak resident
memory (process tree, sampled every 0.1 s) are recorded. The overview reads the preview the
run stored and the zoom panels' pixels, the region its own pixels: neither reads the mosaic,
so both should cost the same at every size (the catalogue, read whole, grows with it).
The overview and the region of the largest size are copied into ``docs/figures``.

Usage:
  python benchmarks/overview_scale.py --sizes 2048 16384 [--work /tmp/mosaic_scale]
Writes docs/results/overview_scale.json, docs/figures/overview_<size>.png and
docs/figures/region_<size>.png.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from mosaic_scale import run_and_watch

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "mosaic_pais"]


def watched(cmd: list[str]) -> dict:
    """Wall seconds and peak resident memory (GB, the process tree) of ``cmd``, which must
    succeed (:func:`mosaic_scale.run_and_watch` samples them)."""
    result = run_and_watch(cmd, poll=0.1)
    if result["returncode"]:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result['tail']}")
    return {"seconds": round(result["seconds"], 2), "peak_rss_gb": round(result["peak_rss_gb"], 3)}


def ensure_run(work: Path, size: int) -> Path:
    """The simulated mosaic of ``size`` and a run of it, made once."""
    sim, run_dir = work / f"sim_{size}", work / f"run_{size}"
    if not (sim / "mosaic.fits").exists():
        subprocess.run([*CLI, "simulate", "--output", str(sim), "--size", str(size),
                        "--seed", "23"], check=True)
    if not (run_dir / "run.json").exists():
        subprocess.run([*CLI, "run", str(sim / "mosaic.fits"), "--output", str(run_dir),
                        "--overwrite", "--quiet"], check=True)
    return run_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 16384])
    parser.add_argument("--work", type=Path, default=Path("/tmp/mosaic_scale"))
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in args.sizes:
        run_dir = ensure_run(args.work, size)
        centre = size // 2
        region = f"{centre - 256},{centre + 256},{centre - 256},{centre + 256}"
        overview = watched([*CLI, "show", str(run_dir), "--overview", "--output",
                            str(args.work / f"overview_{size}.png")])
        cut = watched([*CLI, "show", str(run_dir), "--region", region, "--output",
                       str(args.work / f"region_{size}.png")])
        n_sources = json.loads((run_dir / "run.json").read_text())["n_sources"]
        rows.append({"size": size, "n_sources": n_sources, "overview": overview,
                     "region": cut, "region_box": region})
        print(rows[-1], flush=True)
    largest = max(args.sizes)
    for name in ("overview", "region"):
        shutil.copy(args.work / f"{name}_{largest}.png",
                    REPO / "docs" / "figures" / f"{name}_{largest}.png")
    out = REPO / "docs" / "results" / "overview_scale.json"
    out.write_text(json.dumps({"sizes": rows, "note": "each show command a separate process "
                               "(its Python, Matplotlib and astropy start-up included)"},
                              indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
