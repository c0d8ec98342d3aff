"""Whether two runs on the same mosaic give the same catalogue, column by column.

For a change that should not change results (a new layout of the code, a refactor), run the
same mosaic with the code before and after it and compare:

    git worktree add /tmp/before <commit>
    mosaic-pais simulate --output sim --size 1024 --seed 5
    PYTHONPATH=/tmp/before python -m mosaic_pais run sim/mosaic.fits --output run_before
    python -m mosaic_pais run sim/mosaic.fits --output run_after
    python benchmarks/compare_runs.py run_before run_after --output docs/results/NAME.json

Rows are paired by ``id`` (ids are the rank of the sources' peaks, so equal catalogues have
equal ids); each shared numeric column gets its largest absolute difference and the number of
rows that differ by more than 1e-6 of their scale. Columns only one run has are listed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from astropy.table import Table


def compare(a: Table, b: Table, tolerance: float = 1e-6) -> dict:
    """Column by column differences of two catalogues paired by ``id``."""
    ids = np.intersect1d(np.asarray(a["id"]), np.asarray(b["id"]))
    a = a[np.isin(a["id"], ids)]
    b = b[np.isin(b["id"], ids)]
    a.sort("id")
    b.sort("id")
    columns = {}
    for name in a.colnames:
        if name not in b.colnames or a[name].dtype.kind not in "fiu":
            continue
        x, y = np.asarray(a[name], np.float64), np.asarray(b[name], np.float64)
        one_nan = np.isnan(x) ^ np.isnan(y)  # NaN in one run only: a difference
        diff = np.where(np.isnan(x) & np.isnan(y), 0.0, np.abs(x - y))
        finite = diff[~one_nan]
        scale = np.maximum(np.nanmax(np.abs(x)) if np.isfinite(x).any() else 1.0, 1e-30)
        columns[name] = {"max_abs_difference": float(finite.max()) if len(finite) else 0.0,
                         "rows_nan_in_one_run": int(one_nan.sum()),
                         "rows_differing": int(np.sum(one_nan | ~(diff <= tolerance * scale)))}
    return {"rows": [len(a), len(b)], "paired": len(ids),
            "only_in_first": sorted(set(a.colnames) - set(b.colnames)),
            "only_in_second": sorted(set(b.colnames) - set(a.colnames)),
            "columns": columns,
            "identical": sorted(k for k, v in columns.items() if v["rows_differing"] == 0),
            "different": sorted(k for k, v in columns.items() if v["rows_differing"] > 0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--about", default="", help="what the two runs are, for the record")
    args = parser.parse_args()
    first = Table.read(args.first / "catalog.fits", mask_invalid=False)
    second = Table.read(args.second / "catalog.fits", mask_invalid=False)
    result = {"about": args.about, "first": str(args.first), "second": str(args.second),
              **compare(first, second)}
    text = json.dumps(result, indent=2)
    if args.output:
        args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
