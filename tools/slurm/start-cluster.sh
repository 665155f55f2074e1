#!/usr/bin/env bash
# Start a real single-node SLURM cluster on this Debian 12 machine (root, no systemd needed).
#
#   tools/slurm/start-cluster.sh
#
# Partitions: cpu (default), gpu (2 fake GPUs: gres gpu:fake:2 backed by /dev/fakegpu0-1), arm; all on this
# node. Jobs on gpu that ask for --gpus=N / --gres=gpu:N see CUDA_VISIBLE_DEVICES. No accounting database:
# use `squeue` (jobs stay visible for MinJobAge=600 s after they end), not `sacct`.
#
# Config goes to /etc/slurm (where sinfo/sbatch look); state (PID files, spool, logs) to
# $DELTAMUT_SLURM_STATE (default /run/slurm). Idempotent: a running cluster is left as is.
# Environment: DELTAMUT_SLURM_STATE, DELTAMUT_SLURM_TIMEOUT (seconds to wait for an idle node, default 90).
set -euo pipefail

STATE="${DELTAMUT_SLURM_STATE:-/run/slurm}"
TIMEOUT="${DELTAMUT_SLURM_TIMEOUT:-90}"
CONF_DIR=/etc/slurm
T0=$(date +%s.%N)
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
log() { echo "[slurm] $*"; }

if [[ $(id -u) -ne 0 ]]; then
    echo "[slurm] must run as root (daemons, /etc/slurm, /dev nodes)" >&2
    exit 1
fi

alive() {  # alive PIDFILE: the daemon of that PID file runs (and is not a zombie)
    local pid
    [[ -s "$1" ]] || return 1
    pid=$(cat "$1")
    [[ -d /proc/$pid ]] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null
}

node_state() { sinfo -h -N -o '%T' 2>/dev/null | head -1; }

# 1. Packages.
PKGS=(munge slurmctld slurmd slurm-client)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    t=$(date +%s.%N)
    log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends "${missing[@]}" >/dev/null
    log "packages took $(since "$t") s"
fi

# 2. Already running? Then there is nothing to do.
if alive "$STATE/slurmctld.pid" && alive "$STATE/slurmd.pid"; then
    st=$(node_state || true)
    if [[ "$st" == idle* || "$st" == mix* || "$st" == alloc* ]]; then
        log "already running (node $st, state $STATE)"
        exit 0
    fi
fi

# 3. munge: a key, its run dir, the daemon.
install -d -o munge -g munge -m 0700 /etc/munge
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating /etc/munge/munge.key"
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
mkdir -p "$STATE"
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    rm -f /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged
    touch "$STATE/munged.ours"  # stop-cluster.sh stops munged only if we started it
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n | unmunge >/dev/null
fi

# 4. Fake GPU device nodes (SLURM drains a node whose gres files are missing).
for n in 0 1; do
    if [[ ! -e /dev/fakegpu$n ]]; then
        mknod -m 666 /dev/fakegpu$n c 1 3 || { log "mknod refused, using a plain file"; touch /dev/fakegpu$n; }
    fi
done

# 5. Config.
NODE=$(hostname -s)
HW=$(slurmd -C | head -1)
field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<" $HW"; }
CPUS=$(nproc)
MEM=$(( $(field RealMemory) - 512 ))
((MEM > 256)) || MEM=256
TOPO="Boards=$(field Boards) SocketsPerBoard=$(field SocketsPerBoard) CoresPerSocket=$(field CoresPerSocket) ThreadsPerCore=$(field ThreadsPerCore)"
if [[ "$(field CPUs)" != "$CPUS" ]]; then
    TOPO=""  # nproc differs from the hardware view (cgroup limit): let CPUs alone describe the node
fi
mkdir -p "$CONF_DIR" "$STATE/log"
cat >"$CONF_DIR/slurm.conf" <<EOF
# Written by tools/slurm/start-cluster.sh: a single-node test cluster.
ClusterName=deltamut
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
ReturnToService=2
MinJobAge=600
# Fail fast once the cluster is stopped: every `snakemake` call loads the SLURM plugin, whose
# `scontrol show config` otherwise waits 9 s for the absent controller.
MessageTimeout=3
InactiveLimit=0
KillWait=10
SlurmctldTimeout=60
SlurmdTimeout=120
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS $TOPO RealMemory=$MEM Gres=gpu:fake:2 State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP
PartitionName=arm Nodes=$NODE MaxTime=INFINITE State=UP
EOF
cat >"$CONF_DIR/gres.conf" <<EOF
AutoDetect=off
NodeName=$NODE Name=gpu Type=fake File=/dev/fakegpu[0-1]
EOF
# Debian's packages read /etc/slurm; an old cgroup.conf would select plugins we do not use.
rm -f "$CONF_DIR/cgroup.conf"

# 6. Daemons, from a clean spool (no jobs or node state survive from an earlier cluster).
for d in slurmd slurmctld; do
    if alive "$STATE/$d.pid"; then kill "$(cat "$STATE/$d.pid")" || true; fi
done
for _ in $(seq 50); do
    alive "$STATE/slurmd.pid" || alive "$STATE/slurmctld.pid" || break
    sleep 0.2
done
rm -rf "$STATE/ctld" "$STATE/slurmd"
install -d -m 0755 "$STATE/ctld" "$STATE/slurmd"
rm -f "$STATE/slurmd.pid" "$STATE/slurmctld.pid"
t=$(date +%s.%N)
slurmctld -c
slurmd
deadline=$(( $(date +%s) + TIMEOUT ))
while :; do
    st=$(node_state || true)
    [[ "$st" == idle* ]] && break
    if (( $(date +%s) > deadline )); then
        echo "[slurm] node not idle after ${TIMEOUT} s (state '$st')" >&2
        sinfo -R >&2 || true
        tail -20 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" >&2 || true
        exit 1
    fi
    sleep 0.5
done
log "daemons up, node $NODE idle in $(since "$t") s (total $(since "$T0") s); state $STATE, config $CONF_DIR"
sinfo
