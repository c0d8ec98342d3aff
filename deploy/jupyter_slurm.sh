#!/bin/bash
# JupyterLab on a SLURM compute node, reached from your laptop through an SSH tunnel.
#
#   sbatch deploy/jupyter_slurm.sh            # then read jupyter-<jobid>.log for the tunnel
#
# The log prints the `ssh -L` command to run on your laptop and the URL (with its token) to
# open. In the notebook, start workers with dask-jobqueue (see deploy/README.md) or a
# LocalCluster; the Dask dashboard of a cluster started in the notebook listens on this node
# and is forwarded by the same tunnel (second port).
#
#SBATCH --job-name=jupyter
#SBATCH --nodes=1
#SBATCH --cpus-per-task=4
#SBATCH --mem=16G
#SBATCH --time=08:00:00
#SBATCH --output=jupyter-%j.log

set -euo pipefail
if [ -n "${MOSAIC_PAIS_SETUP:-}" ]; then
    eval "$MOSAIC_PAIS_SETUP"
fi
NODE=$(hostname)
PORT=${JUPYTER_PORT:-8888}
DASHBOARD_PORT=${DASHBOARD_PORT:-8787}
LOGIN=${LOGIN_HOST:-<login node>}
cat <<MSG
On your laptop:
    ssh -N -L ${PORT}:${NODE}:${PORT} -L ${DASHBOARD_PORT}:${NODE}:${DASHBOARD_PORT} ${USER}@${LOGIN}
then open the http://127.0.0.1:${PORT}/lab?token=... URL printed below, and the Dask dashboard
at http://localhost:${DASHBOARD_PORT}/status (start the cluster with
dashboard_address=":${DASHBOARD_PORT}").
MSG
exec jupyter lab --no-browser --ip="$NODE" --port="$PORT"
