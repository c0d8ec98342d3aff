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
    """Core-seconds per tile of each part, and the per-mosaic serial seconds, of the largest
    run of a mosaic_scale.py result."""
    size = max(scale["runs"], key=int)
    run = scale["runs"][size]
    parts = run["timings_s"]["task_parts"]
    timings = run["timings_s"]
    stages = ("sky", "context", "infer", "stitch", "measure", "segmentation")
    # what the client does itself, between and after the stages, and the cluster's start
    serial = run["seconds"] - sum(timings.get(k, 0.0) for k in stages)
    return {"mosaic": int(size), "tiles": run["tiles"], "vote": scale.get("vote"),
            "precision": scale.get("precision", "float32"),
            "core_s_per_tile": {k: v / run["tiles"] for k, v in parts.items()},
            "serial_s_per_mosaic": serial, "measured_tiles_per_s": run["tiles_per_s"]}


def survey_hours(costs: dict, gpus: dict, side: int, bands: int, mosaics: int) -> dict:
    """Hours for a survey on N CPU nodes and on N GPU nodes (each GPU model)."""
    tiles = make_grid(side, side, tile=DEFAULT_TILE, margin=DEFAULT_MARGIN).n_tiles
    per_tile = {k: v * (bands if k in PER_BAND else 1)
                for k, v in costs["core_s_per_tile"].items()}
    network = per_tile.get(NETWORK, 0.0)
    rest = sum(v for k, v in per_tile.items() if k != NETWORK)
    # the serial part scales with what the client writes (catalogue, picture): with the tiles
    serial = costs["serial_s_per_mosaic"] * max(1.0, tiles / costs["tiles"])
    total_tiles = tiles * mosaics
    cpu_rate = CPU_NODE_CORES / (network + rest)
    out = {"tiles_per_mosaic": tiles, "tiles": total_tiles, "cpu_node": {}, "gpu_node": {}}
    for n in NODES:
        # mosaics run side by side once there are more nodes than one mosaic can use
        serial_h = serial * max(1.0, mosaics / n) / 3600
        out["cpu_node"][n] = {"hours": total_tiles / (n * cpu_rate) / 3600 + serial_h,
                              "bottleneck": "network on the CPU cores"
                              if network > rest else "post-processing on the CPU cores"}
    for name, gpu in gpus.items():
        gpu_rate = GPU_NODE["gpus"] * gpu["tiles_per_s"]
        post_rate = GPU_NODE["cores"] / rest
        rate = min(gpu_rate, post_rate)
        out["gpu_node"][name] = {
            n: {"hours": total_tiles / (n * rate) / 3600
                + serial * max(1.0, mosaics / n) / 3600,
                "bottleneck": "network on the GPUs" if gpu_rate < post_rate
                else "post-processing on the CPU cores"} for n in NODES}
        out["gpu_node"][name]["node_tiles_per_s"] = rate
    out["cpu_node_tiles_per_s"] = cpu_rate
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
              "bare_network_tiles_per_s_2_cores": speed["shipped"]["bfloat16_tiles_per_s"
                                                                  if costs["precision"]
                                                                  == "bfloat16"
                                                                  else "tiles_per_s"],
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
