"""scarlet2 labels of real data: GOODS-S cutouts with TinyTim PSFs, HSC blends.

Runs ``mosaic-pais labels`` (as a subprocess, exactly as a user would) on every real image in
``shared/data`` that comes with a catalogue:

* GOODS-S cutouts 1903 and 67 (HST, 0.06″/px, F160W F125W F606W F850LP), with the TinyTim PSFs
  (resampled by the command from 0.13″ and 0.0495″ to 0.06″/px). Their catalogue is the paper's
  own: the centres of the stored C^c labels. No weights exist: noise from the image.
* HSC blends ``hsc_cosmos_35``, ``hsc_cosmos``, ``testdata_3_0`` (g r i z y, 0.168″/px) with
  their own PSFs, peaks as catalogue and inverse variances as weights where given.

Then, for cutout 1903, our scarlet2 labels are compared with the paper's stored labels, and the
paper's Table 2 encoding efficacy (total-flux error and KS p-value of profiles within r90) is
measured on every labelled tile: each source's scarlet2 model against what decoding our PCR
labels gives back, with the label centres (so only the encoding is judged, not peak finding).
Two images are decoded: the sum of the models (the pure encoding loss) and the real image (what
training teaches, noise and unmodelled light included).

Usage: python benchmarks/scarlet2_labels.py [--data ../shared/data] [--work /tmp/s2labels]
Writes docs/results/scarlet2_labels.json and docs/figures/scarlet2_labels_1903.png.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from mosaic_pais.evaluation.metrics import encoding_efficacy, encoding_efficacy_per_source
from mosaic_pais.pcr import deblend_images, decode, resolve_votes

GOODS_BANDS = ("h", "j", "v", "z")  # F160W F125W F606W F850LP, the cube's plane order


def prepare_goods(data: Path, work: Path, name: str, folder: str) -> dict:
    """Per-band FITS from a (h, w, b) cube and a catalogue from the stored C^c peaks."""
    cube = np.asarray(fits.getdata(data / "goods_s" / folder / f"{name}-flux.fits"), np.float32)
    images = []
    for i, band in enumerate(GOODS_BANDS):
        path = work / f"{name}_{band}.fits"
        hdu = fits.PrimaryHDU(np.ascontiguousarray(cube[..., i]))
        hdu.header["FILTER"] = ("F160W", "F125W", "F606W", "F850LP")[i]
        hdu.writeto(path, overwrite=True)
        images.append(path)
    center = np.asarray(fits.getdata(data / "goods_s" / folder / f"{name}-center_of_mass.fits"),
                        np.float64)[..., 0]
    from mosaic_pais.pcr import find_peaks

    peaks = find_peaks(center, threshold=0.1, window=7, refine=False)
    cat = work / f"{name}_catalog.csv"
    Table({"x": peaks.x, "y": peaks.y}).write(cat, overwrite=True)
    psfs = [data / "goods_s" / "tinytim_psfs" / f"{b}.fits" for b in GOODS_BANDS]
    return {"images": images, "catalog": cat, "psfs": psfs, "weights": [],
            "extra": ["--pixel-scale", "0.06"], "n_catalog": len(peaks)}


def prepare_hsc(data: Path, work: Path, name: str) -> dict:
    """Per-band FITS, PSFs, weights (1/variance, 0 where masked) and the peak catalogue."""
    d = np.load(data / "hsc" / f"{name}.npz", allow_pickle=True)
    images, psfs, weights = [], [], []
    for i in range(d["images"].shape[0]):
        path = work / f"{name}_{i}.fits"
        fits.PrimaryHDU(np.asarray(d["images"][i], np.float32)).writeto(path, overwrite=True)
        images.append(path)
        psf = work / f"{name}_psf_{i}.fits"
        fits.PrimaryHDU(np.asarray(d["psfs"][i], np.float64)).writeto(psf, overwrite=True)
        psfs.append(psf)
        if "variance" in d.files:
            var = np.asarray(d["variance"][i], np.float64)
            w = np.where(var > 0, 1.0 / np.where(var > 0, var, 1.0), 0.0)
            if "mask" in d.files:  # HSC mask bits: any set bit (saturation, bad, ...) masked
                w = np.where(np.asarray(d["mask"][i]) == 0, w, 0.0)
            wpath = work / f"{name}_w_{i}.fits"
            fits.PrimaryHDU(w.astype(np.float32)).writeto(wpath, overwrite=True)
            weights.append(wpath)
    if "catalog" in d.files:
        x, y = np.asarray(d["catalog"]["x"], float), np.asarray(d["catalog"]["y"], float)
    else:  # testdata_3_0: centres as (y, x) integers
        y, x = np.asarray(d["centers"], float).T
    cat = work / f"{name}_catalog.csv"
    Table({"x": x, "y": y}).write(cat, overwrite=True)
    return {"images": images, "catalog": cat, "psfs": psfs, "weights": weights, "extra": [],
            "n_catalog": len(x)}


def run_labels(spec: dict, out: Path, align: bool, max_iter: int, center_sigma: float) -> dict:
    cmd = [sys.executable, "-m", "mosaic_pais", "labels", *map(str, spec["images"]),
           "--catalog", str(spec["catalog"]), "--output", str(out), "--save-models",
           "--overwrite", "--quiet", "--max-iter", str(max_iter), "--center-sigma",
           str(center_sigma), *spec["extra"]]
    for p in spec["psfs"]:
        cmd += ["--psf", str(p)]
    for w in spec["weights"]:
        cmd += ["--weights", str(w)]
    if align:
        cmd.append("--align")
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    print(proc.stdout.strip(), proc.stderr.strip()[-400:], sep="\n", flush=True)
    if proc.returncode != 0:
        raise RuntimeError(f"labels failed ({proc.returncode}): {proc.stderr[-400:]}")
    report = json.loads((out / "labels_train.json").read_text())
    report["wall_seconds"] = round(time.time() - t0, 1)
    return report


def tile_efficacy(out: Path, center_sigma: float) -> tuple[list, list, list, dict]:
    """Table 2 inputs of every labelled tile: models, decoded (model sum and image), centres."""
    from mosaic_pais.training.dataset import load_split

    store = load_split(out / "train")
    truths, dec_model, dec_image, centers = [], [], [], []
    for k, path in enumerate(sorted((out / "models").glob("tile_*.npz"))):
        m = np.load(path)
        models, cen, image = m["models"].astype(np.float64), m["centers"], m["image"]
        ids = resolve_votes(store["vectors"][k].astype(np.float32), cen, mode="vectors")
        frac = np.transpose(store["fractions"][k].astype(np.float64), (2, 3, 0, 1))
        for target, image_used in ((dec_model, models.sum(0)), (dec_image, image)):
            target.append(deblend_images(image_used, ids, frac, len(models))[:, 0])
        truths.append(models[:, 0])
        centers.append(cen)
    return truths, dec_model, dec_image, centers


def efficacy_summary(truths, dec_model, dec_image, centers) -> dict:
    cat = np.concatenate
    t, c = cat(truths), cat(centers)
    h, w = t.shape[-2:]
    on_tile = (c[:, 0] >= 0) & (c[:, 0] < h) & (c[:, 1] >= 0) & (c[:, 1] < w)
    out = {"n_sources": int(on_tile.sum())}
    for name, dec in (("decoding_model_sum", cat(dec_model)), ("decoding_image", cat(dec_image))):
        out[name] = encoding_efficacy(t[on_tile], dec[on_tile], c[on_tile])
        rel = encoding_efficacy_per_source(t[on_tile], dec[on_tile], c[on_tile])
        flux = t[on_tile].sum((1, 2))
        out[name]["flux_relative_error_median"] = float(np.nanmedian(rel["flux_abs_error"]
                                                                     / flux))
    return out


def compare_1903(out: Path, data: Path) -> dict:
    """Our F160W labels of 1903 against the paper's stored labels of the same sources."""
    folder = data / "goods_s" / "pcr_1903"
    image = np.asarray(fits.getdata(folder / "1903-flux.fits"), np.float64)[..., 0]
    ref_center = np.asarray(fits.getdata(folder / "1903-center_of_mass.fits"), np.float64)[..., 0]
    ref_vectors = np.asarray(fits.getdata(folder / "1903-claim_vectors.fits"), np.float32)
    ref_fractions = np.asarray(fits.getdata(folder / "1903-claim_maps.fits"), np.float64)
    from mosaic_pais.training.dataset import load_split

    ours = load_split(out / "train")
    m = np.load(out / "models" / "tile_00000.npz")
    models, centers = m["models"][:, 0].astype(np.float64), m["centers"]
    our_frac = ours["fractions"][0].astype(np.float64)[:, :, :1]  # F160W plane
    df = np.abs(our_frac - ref_fractions)
    # each source's F160W flux: our scarlet2 model, and the paper's labels decoded with the image
    ref = decode(image[None], ref_center, ref_vectors, ref_fractions, threshold=0.1, window=7)
    ref_deblends = ref.deblend(image[None])[:, 0].astype(np.float64)
    from mosaic_pais.evaluation.metrics import match_catalogs

    di, ri = match_catalogs(centers[:, ::-1], ref.peaks.yx[:, ::-1], radius=6.0)
    slot0 = (np.argmax(our_frac[..., 0, :], -1) == 0) == (np.argmax(ref_fractions[..., 0, :], -1)
                                                          == 0)
    return {
        "fractions_f160w_median_abs_diff": float(np.median(df)),
        "fractions_f160w_within_0.05": float(np.mean(df <= 0.05)),
        "fractions_f160w_within_0.05_where_image_above_3sigma": float(np.mean(
            df[..., 0, :][image > 3 * 0.0049] <= 0.05)),
        "same_dominant_slot_is_slot0_fraction": float(slot0.mean()),
        "matched_sources": int(len(di)),
        "flux_f160w_scarlet2_model": models.sum((1, 2))[di].round(3).tolist(),
        "flux_f160w_paper_labels_decoded": ref_deblends.sum((1, 2))[ri].round(3).tolist(),
        "flux_f160w_image_total": float(image.sum()),
        "flux_f160w_models_total": float(models.sum()),
    }


def figure(out: Path, path: Path, catalog: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.load(out / "models" / "tile_00000.npz")
    image = m["image"][0].astype(np.float64)
    models = m["models"][:, 0].astype(np.float64)
    centers = m["centers"]
    given = Table.read(catalog)
    stretch = 0.01
    vmax = np.arcsinh(np.percentile(image, 99.8) / stretch)
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.4))
    axes[0].imshow(np.arcsinh(image / stretch), origin="lower", cmap="gray_r", vmin=0, vmax=vmax)
    axes[0].plot(given["x"], given["y"], "bx", ms=6, label="catalogue as given")
    axes[0].plot(centers[:, 1], centers[:, 0], "r+", ms=9, label="aligned (−4, −2) px")
    axes[0].legend(fontsize=7, loc="upper right")
    axes[0].set_title("GOODS-S 1903, F160W (asinh)")
    axes[1].imshow(np.arcsinh(models.sum(0) / stretch), origin="lower", cmap="gray_r", vmin=0,
                   vmax=vmax)
    axes[1].set_title(f"Σ scarlet2 models ({len(models)} sources, 4 bands fitted)")
    # each source in its own colour where it holds the most flux
    owner = np.argmax(models, axis=0).astype(float)
    owner[models.max(0) < 3 * 0.0049 * 0.2] = np.nan
    axes[2].imshow(owner, origin="lower", cmap="tab10", interpolation="nearest")
    axes[2].plot(centers[:, 1], centers[:, 0], "k+", ms=8)
    axes[2].set_title("dominant source per pixel")
    resid = image - models.sum(0)
    lim = 5 * 0.0049
    im = axes[3].imshow(resid, origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim)
    axes[3].set_title("image − Σ models (±5σ)")
    fig.colorbar(im, ax=axes[3], fraction=0.046)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/scarlet2_labels"))
    parser.add_argument("--max-iter", type=int, default=200)
    parser.add_argument("--json", type=Path, default=Path("docs/results/scarlet2_labels.json"))
    parser.add_argument("--figure", type=Path,
                        default=Path("docs/figures/scarlet2_labels_1903.png"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    data = args.data.resolve()
    runs = {
        "goods_s_1903": (prepare_goods(data, args.work, "1903", "pcr_1903"), True),
        "goods_s_1903_unaligned": (prepare_goods(data, args.work, "1903", "pcr_1903"), False),
        "goods_s_67": (prepare_goods(data, args.work, "67", "cutout_67"), True),
        "hsc_cosmos_35": (prepare_hsc(data, args.work, "hsc_cosmos_35"), False),
        "hsc_cosmos": (prepare_hsc(data, args.work, "hsc_cosmos"), False),
        "hsc_testdata_3_0": (prepare_hsc(data, args.work, "testdata_3_0"), False),
    }
    result: dict = {"setup": {"max_iter": args.max_iter, "center_sigma_px": 8.0,
                              "note": "centre maps at the paper's σ = 8 px for the comparison; "
                                      "fractions and vectors do not depend on it"},
                    "runs": {}}
    all_eff: dict[str, list] = {"goods_s": [[], [], [], []], "hsc": [[], [], [], []]}
    for name, (spec, align) in runs.items():
        out = args.work / name
        print(f"== {name}", flush=True)
        report = run_labels(spec, out, align, args.max_iter, 8.0)
        eff_inputs = tile_efficacy(out, 8.0)
        entry = {k: report[k] for k in ("n_tiles", "n_labelled", "n_failed", "n_skipped",
                                         "alignment", "pixel_scale", "noise_sigma",
                                         "wall_seconds")}
        entry["catalogue_sources"] = spec["n_catalog"]
        entry["psfs"] = [{k: p[k] for k in ("path", "scale", "resampled", "final_shape")}
                         for p in report["psfs"]]
        entry["tiles"] = [{k: t.get(k) for k in ("origin", "n_modelled", "n_in_tile",
                                                  "reduced_chi2", "seconds", "box_sizes")}
                          for t in report["tiles"]]
        entry["failed"] = report["failed"]
        entry["encoding_efficacy"] = efficacy_summary(*eff_inputs)
        if name == "goods_s_1903":
            entry["vs_paper_labels"] = compare_1903(out, data)
            figure(out, args.figure, spec["catalog"])
        if not name.endswith("unaligned"):
            group = "goods_s" if name.startswith("goods") else "hsc"
            for acc, part in zip(all_eff[group], eff_inputs, strict=True):
                acc.extend(part)
        result["runs"][name] = entry
        print(json.dumps(entry["encoding_efficacy"], indent=1), flush=True)
    result["encoding_efficacy_goods_s_f160w"] = efficacy_summary(*all_eff["goods_s"])
    result["encoding_efficacy_hsc_g"] = efficacy_summary(*all_eff["hsc"])
    result["paper_table2"] = {"flux_mae_e_per_s": "1.97 ± 15.43", "ks_pvalue": "0.93 ± 0.22"}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json} and {args.figure}")


if __name__ == "__main__":
    main()
