#!/bin/bash
# One SLURM job that starts a Dask scheduler and workers and runs mosaic-pais on them.
#
#   sbatch deploy/slurm_batch.sh IMAGE OUTPUT [more `mosaic-pais run` options]
#   e.g. sbatch deploy/slurm_batch.sh goods_s_f160w.fits run1 --resume
#
# The scheduler runs in this batch script (on the job's first node), one worker per SLURM task
# (srun), and `mosaic-pais run ... --cluster tcp://...` joins them. GPU nodes: submit with
# `--gres=gpu:N` and DASK_WORKER="dask cuda worker" (one worker per GPU; then one task per node).
#
# Environment (all optional):
#   DASK_WORKER        worker command (default "dask worker")
#   DASK_INTERFACE     network interface for scheduler and workers, e.g. ib0
#   DASK_SCHEDULER_PORT  the scheduler's port (default 8786; 0 = any free port)
#   DASK_DASHBOARD_PORT  the dashboard's port (default 8787; taken → any free port)
#   MOSAIC_PAIS_SETUP  a command run first, e.g. "source ~/venvs/mosaic-pais/bin/activate"
#   WORK_DIR           scheduler file and logs (default ./dask-$SLURM_JOB_ID)
#
#SBATCH --job-name=mosaic-pais
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=2
#SBATCH --cpus-per-task=4
#SBATCH --mem=32G
#SBATCH --time=04:00:00
#SBATCH --output=mosaic-pais-%j.log

set -euo pipefail

if [ "$#" -lt 2 ]; then
    echo "usage: sbatch $0 IMAGE OUTPUT [mosaic-pais run options]" >&2
    exit 2
fi
IMAGE=$1
OUTPUT=$2
shift 2

if [ -n "${MOSAIC_PAIS_SETUP:-}" ]; then
    eval "$MOSAIC_PAIS_SETUP"
fi

WORK_DIR=${WORK_DIR:-$PWD/dask-${SLURM_JOB_ID:-local}}
mkdir -p "$WORK_DIR"
SCHEDULER_FILE=$WORK_DIR/scheduler.json
rm -f "$SCHEDULER_FILE"
INTERFACE_ARGS=()
if [ -n "${DASK_INTERFACE:-}" ]; then
    INTERFACE_ARGS=(--interface "$DASK_INTERFACE")
fi
read -r -a WORKER_COMMAND <<< "${DASK_WORKER:-dask worker}"

# stop the scheduler and the workers however this script ends
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT

# 1. the scheduler, here; its dashboard on port 8787 of this node
dask scheduler --scheduler-file "$SCHEDULER_FILE" --port "${DASK_SCHEDULER_PORT:-8786}" \
    --dashboard-address ":${DASK_DASHBOARD_PORT:-8787}" \
    "${INTERFACE_ARGS[@]}" > "$WORK_DIR/scheduler.log" 2>&1 &
for _ in $(seq 120); do
    [ -s "$SCHEDULER_FILE" ] && break
    sleep 1
done
if [ ! -s "$SCHEDULER_FILE" ]; then
    echo "the Dask scheduler did not start; see $WORK_DIR/scheduler.log" >&2
    exit 1
fi
ADDRESS=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["address"])' \
    "$SCHEDULER_FILE")
echo "Dask scheduler at $ADDRESS; dashboard: ssh -L 8787:$(hostname):8787 <login node>," \
     "then http://localhost:8787"

# 2. the workers: one per SLURM task, with that task's cores and share of the node's memory
THREADS=${SLURM_CPUS_PER_TASK:-1}
MEMORY_MB=$(( ${SLURM_MEM_PER_NODE:-0} / ${SLURM_NTASKS_PER_NODE:-1} ))
MEMORY_LIMIT=$([ "$MEMORY_MB" -gt 0 ] && echo "${MEMORY_MB}MB" || echo auto)
srun --ntasks="${SLURM_NTASKS:-1}" --cpus-per-task="$THREADS" \
    "${WORKER_COMMAND[@]}" "$ADDRESS" --nthreads "$THREADS" --memory-limit "$MEMORY_LIMIT" \
    --local-directory "${TMPDIR:-/tmp}" "${INTERFACE_ARGS[@]}" \
    > "$WORK_DIR/workers.log" 2>&1 &

# 3. the run, on those workers
mosaic-pais run "$IMAGE" --output "$OUTPUT" --cluster "$ADDRESS" "$@"
