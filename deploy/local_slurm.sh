#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for the tests marked `slurm` and for trying the
# batch recipes: munge, slurmctld and slurmd on localhost, one partition `debug` holding this
# node with its CPUs and (most of) its memory, memory enforced per job.
#
#   sudo bash deploy/local_slurm.sh start     # installs slurm-wlm and munge with apt if needed
#   bash deploy/local_slurm.sh status
#   sudo bash deploy/local_slurm.sh stop
#
# It runs as root (the daemons and the jobs): a test machine's setup, not a site's. The state
# lives in /var/lib/mosaic-pais-slurm; `start` twice is harmless.
set -euo pipefail

STATE=/var/lib/mosaic-pais-slurm
CONF=/etc/slurm/slurm.conf
HOST=$(hostname -s)

install_packages() {
    if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null
    fi
}

write_config() {
    local cpus mem_mb
    cpus=$(nproc)
    mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))
    mkdir -p /etc/slurm "$STATE"/{ctld,d,log}
    cat > "$CONF" <<EOF
ClusterName=mosaic-pais-local
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/none
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
NodeName=$HOST CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
}

start_munge() {
    mkdir -p /etc/munge /var/log/munge /var/lib/munge /run/munge
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
    fi
    chown -R munge:munge /etc/munge /var/log/munge /var/lib/munge /run/munge 2>/dev/null || true
    chmod 400 /etc/munge/munge.key
    if ! pgrep -x munged >/dev/null; then
        runuser -u munge -- /usr/sbin/munged --force 2>/dev/null || /usr/sbin/munged --force
    fi
}

start() {
    install_packages
    write_config
    start_munge
    pgrep -x slurmctld >/dev/null || slurmctld
    pgrep -x slurmd >/dev/null || slurmd
    for _ in $(seq 1 60); do
        if sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
            sinfo
            return 0
        fi
        scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true
        sleep 1
    done
    echo "local SLURM did not become ready; see $STATE/log" >&2
    return 1
}

stop() {
    scancel --user=root >/dev/null 2>&1 || true
    pkill -x slurmd || true
    pkill -x slurmctld || true
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    status) sinfo && squeue ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
