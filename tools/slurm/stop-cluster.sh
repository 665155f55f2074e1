#!/usr/bin/env bash
# Stop the SLURM cluster of start-cluster.sh (one node or several) by its PID files.
#
#   tools/slurm/stop-cluster.sh
#
# Stops slurmd, then slurmctld (SIGTERM, then SIGKILL after 15 s), and munged if start-cluster.sh started it.
# Running jobs are not cancelled first: their steps end with slurmd. Idempotent: nothing running is fine.
# Environment: DELTAMUT_SLURM_STATE (default /run/slurm); DELTAMUT_SLURM_RESTART=1 (start-cluster.sh restarting
# the daemons) keeps munged and the config.
set -euo pipefail

STATE="${DELTAMUT_SLURM_STATE:-/run/slurm}"
log() { echo "[slurm] $*"; }

alive() {
    [[ -d /proc/$1 ]] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null
}

stop_pidfile() {  # stop_pidfile NAME FILE
    local name=$1 file=$2 pid
    if [[ ! -s "$file" ]]; then
        log "$name: no PID file"
        return 0
    fi
    pid=$(cat "$file")
    if ! alive "$pid"; then
        log "$name: not running"
        rm -f "$file"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 75); do alive "$pid" || break; sleep 0.2; done
    if alive "$pid"; then
        log "$name: still alive after 15 s, SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for _ in $(seq 25); do alive "$pid" || break; sleep 0.2; done
    fi
    if alive "$pid"; then
        echo "[slurm] $name ($pid) would not stop" >&2
        return 1
    fi
    rm -f "$file"
    log "$name ($pid) stopped"
}

stop_pidfile slurmd "$STATE/slurmd.pid"
for f in "$STATE"/slurmd-*.pid; do
    [[ -e "$f" ]] && stop_pidfile "$(basename "$f" .pid)" "$f"
done
stop_pidfile slurmctld "$STATE/slurmctld.pid"
# The nodes' network namespaces: whatever still runs in one (a job step of a killed node) goes with it.
for ns in $(ip netns list 2>/dev/null | awk '/^dm-/ {print $1}'); do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [[ -n "$pids" ]] && kill -KILL $pids 2>/dev/null || true
    ip netns del "$ns" && log "namespace $ns removed"
done
if ip link show dmbr0 >/dev/null 2>&1; then ip link del dmbr0; fi
if [[ -e "$STATE/munged.ours" && -z "${DELTAMUT_SLURM_RESTART:-}" ]]; then
    stop_pidfile munged /run/munge/munged.pid
    rm -f "$STATE/munged.ours"
fi
# start-cluster.sh wrote this config; left behind, every later `snakemake` (whose SLURM plugin runs
# `scontrol show config` when it loads) would wait on the absent controller. start-cluster.sh writes it again.
if [[ -f "/etc/slurm/slurm.conf" && -z "${DELTAMUT_SLURM_RESTART:-}" ]]; then
    mv -f "/etc/slurm/slurm.conf" "$STATE/slurm.conf.last" 2>/dev/null || true
    log "slurm.conf moved to $STATE/slurm.conf.last"
fi
