"""Past this machine, on paper: what a survey costs on N CPU nodes and on GPU nodes.

Everything measured comes from the results files of other benchmarks, run on this 2-core
machine: the per-tile cost of each part of a run (core-seconds per tile: the task-seconds of
``benchmarks/mosaic_scale.py``'s largest run, each task on one core), the per-mosaic cost
that does not shrink with more workers (the client's own steps and the cluster's start), and
the bare network's rate (``benchmarks/speed.py``). What is computed here is the shipped
network's arithmetic and memory traffic per tile (from its graph at 256²), which with
published peak figures of GPUs gives a GPU's tiles/s: a **projection**, never measured here.

The model of a node: its C cores run every per-tile part at the measured core-seconds per
tile (linear in cores, as two workers on two cores were); a GPU node moves the network to its
GPUs and keeps the rest (reading, writes, checksums, peaks, votes, measuring) on its cores.
A node's rate is the slower of the two; N nodes divide the per-tile work and not the
per-mosaic serial part. Where the bottleneck moves is read off which term is the slower.

Usage: python benchmarks/scaling_model.py
Reads docs/results/mosaic_scale.json, mosaic_scale_geometric.json and speed.json; writes
docs/results/scaling_model.json (docs/scaling.md is made from it by benchmarks/report.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mosaic_pais.nn.model import DEFAULT_MODEL_PATH, inference_network, load_model
from mosaic_pais.runtime.tile import DEFAULT_MARGIN, DEFAULT_TILE, make_grid

RESULTS = Path("docs/results")
#: published peak figures (dense bfloat16 tensor-core arithmetic, HBM bandwidth) of
#: NVIDIA's data-centre GPUs, from their data sheets (A100 SXM 80 GB, H100 SXM)
GPUS = {"A100": {"bf16_tflops": 312.0, "hbm_tb_s": 2.039},
        "H100": {"bf16_tflops": 989.0, "hbm_tb_s": 3.35}}
#: the share of a GPU's peak a network of narrow convolutions reaches: an assumption, stated
#: wherever its projection is shown (small channel counts leave tensor cores mostly idle, so
#: such networks are bound by memory traffic, at a fraction of its peak)
GPU_EFFICIENCY = 0.3
#: the paper's own GPU figure: its paper-size network trained 2,000 tiles × 1,000 epochs in
#: 31 h on one V100; a training step costs about three forward passes, so inference on that
#: GPU ran at least this fast (their input pipeline included): a floor, not a projection
PAPER_V100_INFERENCE_FLOOR = 3 * 2_000 * 1_000 / (31 * 3600)
#: cores of the nodes the projection assumes
CPU_NODE_CORES = 64
GPU_NODE = {"gpus": 4, "cores": 64}
#: the surveys: (mosaic side in px, bands, mosaics)
SURVEYS = {"GOODS-S F160W band (25,000²)": (25_000, 1, 1),
           "HLF GOODS-S, four bands (25,000² each)": (25_000, 4, 1),
           "Rubin-like: 10⁵ coadd patches (4,096², one band)": (4_096, 1, 100_000)}
#: the parts of a run whose cost grows with the number of bands (reads, fraction writes,
#: sums per band); the network's own cost hardly does (only its first convolution)
PER_BAND = ("sky: levels", "infer: read", "infer: Zarr writes", "infer: checksums",
            "stitch: read", "measure: read", "measure: Zarr writes", "measure: sums")
NETWORK = "infer: network"
NODES = (1, 4, 16, 64)


def network_arithmetic(precision: str = "bfloat16") -> dict:
    """Floating-point operations and activation bytes of one 256² tile through the shipped
    network as a run computes it (from the traced graph: every op's FLOPs by TensorFlow's
    profiler, every op output's size)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    network = inference_network(load_model(DEFAULT_MODEL_PATH), precision)
    spec = tf.TensorSpec([1, DEFAULT_TILE, DEFAULT_TILE, 2], tf.float32)
    graph = convert_variables_to_constants_v2(
        tf.function(lambda t: network(t, training=False)).get_concrete_function(spec)).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    flops = tf.compat.v1.profiler.profile(graph, options=options).total_float_ops
    activation_bytes = 0
    for op in graph.get_operations():
        if op.type in ("Const", "Placeholder", "Identity", "Reshape", "Shape"):
            continue
        for out in op.outputs:
            if out.shape.is_fully_defined() and out.dtype.size:
                activation_bytes += int(np.prod(out.shape.as_list())) * out.dtype.size
    # each activation written once and read at least once
    return {"flops_per_tile": int(flops), "activation_bytes_per_tile": int(activation_bytes),
            "memory_traffic_bytes_per_tile": 2 * int(activation_bytes), "precision": precision}


def gpu_tiles_per_s(arithmetic: dict) -> dict:
    """Projected tiles/s per GPU: the slower of its arithmetic and memory-traffic bounds at
    :data:`GPU_EFFICIENCY` of the published peaks."""
    out = {}
    for name, gpu in GPUS.items():
        by_flops = GPU_EFFICIENCY * gpu["bf16_tflops"] * 1e12 / arithmetic["flops_per_tile"]
        by_memory = (GPU_EFFICIENCY * gpu["hbm_tb_s"] * 1e12
                     / arithmetic["memory_traffic_bytes_per_tile"])
        out[name] = {"tiles_per_s": min(by_flops, by_memory), "bound": "memory traffic"
                     if by_memory < by_flops else "arithmetic",
                     "by_flops": by_flops, "by_memory": by_memory, **gpu}
    out["V100 (the paper's training rate, a floor)"] = {
        "tiles_per_s": PAPER_V100_INFERENCE_FLOOR, "bound": "published training time"}
    return out


def per_tile_costs(scale: dict) -> dict:
    """Core-seconds per tile of each part; the client's own seconds per tile (opening the
    mosaic, the attention context, the catalogue and the picture: serial within a mosaic);
    and the fixed seconds of a run (Python and TensorFlow start, the cluster's start and the
    model's loading on it), from the largest run of a mosaic_scale.py result."""
    size = max(scale["runs"], key=int)
    run = scale["runs"][size]
    timings = run["timings_s"]
    client = ("open", "context", "write")
    stages = ("sky", "infer", "stitch", "measure", "segmentation", *client)
    return {"mosaic": int(size), "tiles": run["tiles"], "vote": scale.get("vote"),
            "precision": scale.get("precision", "float32"),
            "core_s_per_tile": {k: v / run["tiles"] for k, v in timings["task_parts"].items()},
            "client_s_per_tile": sum(timings.get(k, 0.0) for k in client) / run["tiles"],
            "fixed_s": run["seconds"] - sum(timings.get(k, 0.0) for k in stages),
            "measured_tiles_per_s": run["tiles_per_s"]}


def survey_hours(costs: dict, gpus: dict, side: int, bands: int, mosaics: int) -> dict:
    """Hours for a survey on N CPU nodes and on N GPU nodes (each GPU model), every node
    keeping one cluster for all its mosaics (the fixed seconds paid once).

    With more mosaics than nodes, mosaics run side by side and a node's client steps are
    core-time like the rest (its rate counts them); with no more, each mosaic's nodes share
    its tiles and its client steps run one after another, after them.
    """
    tiles = make_grid(side, side, tile=DEFAULT_TILE, margin=DEFAULT_MARGIN).n_tiles
    per_tile = {k: v * (bands if k in PER_BAND else 1)
                for k, v in costs["core_s_per_tile"].items()}
    network = per_tile.get(NETWORK, 0.0)
    client = costs["client_s_per_tile"]
    rest = sum(v for k, v in per_tile.items() if k != NETWORK)
    total_tiles = tiles * mosaics
    cpu_cost = network + rest + client
    out = {"tiles_per_mosaic": tiles, "tiles": total_tiles,
           "node_tiles_per_s": {"cpu": CPU_NODE_CORES / cpu_cost}, "cpu_node": {},
           "gpu_node": {name: {} for name in gpus}}
    nodes = {"cpu": (CPU_NODE_CORES / cpu_cost, "the network and post-processing on the "
                     "CPU cores" if network > rest + client else "post-processing on the CPU "
                     "cores")}
    for name, gpu in gpus.items():
        on_gpus = GPU_NODE["gpus"] * gpu["tiles_per_s"]
        on_cores = GPU_NODE["cores"] / (rest + client)
        nodes[name] = (min(on_gpus, on_cores), "the network on the GPUs" if on_gpus < on_cores
                       else "post-processing on the CPU cores")
        out["node_tiles_per_s"][name] = nodes[name][0]
    for n in NODES:
        for name, (rate, neck) in nodes.items():
            if mosaics > n:
                hours = total_tiles / (n * rate) / 3600
            else:  # n / mosaics nodes per mosaic; its client steps after its tiles
                per_mosaic = tiles / ((n / mosaics) * rate) / 3600
                serial = tiles * client / 3600
                hours = per_mosaic + serial
                if serial > per_mosaic:
                    neck = "the mosaic's serial client steps"
            entry = {"hours": hours + costs["fixed_s"] / 3600, "bottleneck": neck}
            (out["cpu_node"] if name == "cpu" else out["gpu_node"][name])[n] = entry
    return out


def main() -> None:
    scale = json.loads((RESULTS / "mosaic_scale.json").read_text())
    speed = json.loads((RESULTS / "speed.json").read_text())
    costs = per_tile_costs(scale)
    arithmetic = network_arithmetic(costs["precision"])
    gpus = gpu_tiles_per_s(arithmetic)
    result = {"costs": costs, "arithmetic": arithmetic, "gpus": gpus,
              "gpu_efficiency_assumed": GPU_EFFICIENCY, "cpu_node_cores": CPU_NODE_CORES,
              "gpu_node": GPU_NODE, "nodes": list(NODES),
              "bare_network_tiles_per_s_2_cores": speed["shipped"][
                  "bfloat16_tiles_per_s" if costs["precision"] == "bfloat16" else "tiles_per_s"],
              "surveys": {name: survey_hours(costs, gpus, *spec)
                          for name, spec in SURVEYS.items()}}
    geometric = RESULTS / "mosaic_scale_geometric.json"
    if geometric.exists():
        other = json.loads(geometric.read_text())
        if "task_parts" in other["runs"][max(other["runs"], key=int)]["timings_s"]:
            result["costs_geometric"] = per_tile_costs(other)
    print(json.dumps(result, indent=1))
    (RESULTS / "scaling_model.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
