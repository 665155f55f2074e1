#!/usr/bin/env bash
# Start a real SLURM cluster on this Debian 12 machine (root, no systemd needed): one node, or several, each
# a slurmd in its own network namespace with its own hostname and address, as on a real site.
#
#   tools/slurm/start-cluster.sh
#   DELTAMUT_SLURM_NODES=2 DELTAMUT_SLURM_PARTITIONS="batch a100=node1 arm64=node2" tools/slurm/start-cluster.sh
#
# Partitions: $DELTAMUT_SLURM_PARTITIONS (default "cpu gpu arm"; the first is the default partition; `name=node1`
# puts a partition on some nodes only, else it spans all). Nodes: this machine's hostname at 127.0.0.1, or with
# DELTAMUT_SLURM_NODES=N > 1, node1..nodeN at 10.77.0.11.. behind the bridge dmbr0 (the controller at
# 10.77.0.1), each with this machine's CPUs. Every node has 2 fake GPUs (gres gpu:fake:2 backed by
# /dev/fakegpu0-1): jobs that ask for --gpus=N / --gres=gpu:N see CUDA_VISIBLE_DEVICES. No accounting database: use `squeue` (jobs stay visible for
# MinJobAge=600 s after they end), not `sacct`.
#
# Config goes to /etc/slurm (where sinfo/sbatch look); state (PID files, spool, logs) to
# $DELTAMUT_SLURM_STATE (default /run/slurm). Idempotent: a running cluster with the same config is left as
# is; one with another config (other partitions) is restarted with this one.
# Environment: DELTAMUT_SLURM_STATE, DELTAMUT_SLURM_NODES, DELTAMUT_SLURM_PARTITIONS, DELTAMUT_SLURM_TIMEOUT
# (seconds to wait for idle nodes, default 90). PID files: slurmctld.pid and slurmd.pid (one node) or
# slurmd-node<i>.pid; stop-cluster.sh stops them all and removes the namespaces.
set -euo pipefail

STATE="${DELTAMUT_SLURM_STATE:-/run/slurm}"
TIMEOUT="${DELTAMUT_SLURM_TIMEOUT:-90}"
read -r -a PARTITIONS <<<"${DELTAMUT_SLURM_PARTITIONS:-cpu gpu arm}"
NODES_WANTED="${DELTAMUT_SLURM_NODES:-1}"
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

node_state() { sinfo -h -N -o '%T' 2>/dev/null | sort -u | paste -sd, -; }  # e.g. "idle", "idle,mixed"
all_alive() {  # the controller and every slurmd of this config run
    alive "$STATE/slurmctld.pid" || return 1
    local f
    for f in "${PIDFILES[@]}"; do alive "$f" || return 1; done
}

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
if ((NODES_WANTED > 1)); then
    NODES=() ADDRS=() PIDFILES=()
    for i in $(seq "$NODES_WANTED"); do
        NODES+=("node$i"); ADDRS+=("10.77.0.$((10 + i))"); PIDFILES+=("$STATE/slurmd-node$i.pid")
    done
    CTL_ADDR=10.77.0.1 SLURMD_PID="$STATE/slurmd-%n.pid" SLURMD_LOG="$STATE/log/slurmd-%n.log"
    SLURMD_SPOOL="$STATE/slurmd/%n"
else
    NODES=("$(hostname -s)") ADDRS=(127.0.0.1) PIDFILES=("$STATE/slurmd.pid")
    CTL_ADDR=127.0.0.1 SLURMD_PID="$STATE/slurmd.pid" SLURMD_LOG="$STATE/log/slurmd.log" SLURMD_SPOOL="$STATE/slurmd"
fi
NODE=$(hostname -s)
HW=$(slurmd -C | head -1)
field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<" $HW"; }
CPUS=$(nproc)
MEM=$(( ($(field RealMemory) - 512) / NODES_WANTED ))
((MEM > 256)) || MEM=256
TOPO="Boards=$(field Boards) SocketsPerBoard=$(field SocketsPerBoard) CoresPerSocket=$(field CoresPerSocket) ThreadsPerCore=$(field ThreadsPerCore)"
if [[ "$(field CPUs)" != "$CPUS" ]]; then
    TOPO=""  # nproc differs from the hardware view (cgroup limit): let CPUs alone describe the node
fi
mkdir -p "$CONF_DIR" "$STATE/log"
ALL=$(IFS=,; echo "${NODES[*]}")
NODE_LINES="" PARTITION_LINES="" GRES_LINES="AutoDetect=off"
for i in "${!NODES[@]}"; do
    NODE_LINES+="NodeName=${NODES[$i]} NodeAddr=${ADDRS[$i]} CPUs=$CPUS $TOPO RealMemory=$MEM Gres=gpu:fake:2 State=UNKNOWN"$'\n'
    GRES_LINES+=$'\n'"NodeName=${NODES[$i]} Name=gpu Type=fake File=/dev/fakegpu[0-1]"
done
default="Default=YES"
for spec in "${PARTITIONS[@]}"; do
    name=${spec%%=*} members=$ALL
    [[ "$spec" == *=* ]] && members=${spec#*=}
    PARTITION_LINES+="PartitionName=$name Nodes=$members $default MaxTime=INFINITE State=UP"$'\n'
    default=""
done
WANT=$(cat <<EOF
# Written by tools/slurm/start-cluster.sh: a test cluster of ${#NODES[@]} node(s).
ClusterName=deltamut
SlurmctldHost=$NODE($CTL_ADDR)
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
# Fail fast once the cluster is stopped: every snakemake call loads the SLURM plugin, whose
# scontrol show config otherwise waits 9 s for the absent controller.
MessageTimeout=3
InactiveLimit=0
KillWait=10
SlurmctldTimeout=60
# A node whose slurmd is gone is DOWN after SlurmdTimeout and its jobs end NODE_FAIL; SLURM does not requeue
# them (JobRequeue=0): Snakemake resubmits them (retries in the profile), so no job runs twice at once.
SlurmdTimeout=$(( NODES_WANTED > 1 ? 10 : 120 ))
JobRequeue=0
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$SLURMD_LOG
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$SLURMD_SPOOL
$NODE_LINES$PARTITION_LINES
EOF
)
# Already running with this config? Then there is nothing to do.
if all_alive && [[ "$(cat "$CONF_DIR/slurm.conf" 2>/dev/null)" == "$WANT" ]]; then
    st=$(node_state || true)
    if [[ "$st" =~ ^((idle|mixed|allocated)[^,]*,?)+$ ]]; then
        log "already running (nodes $st, partitions ${PARTITIONS[*]}, state $STATE)"
        exit 0
    fi
fi
printf '%s\n' "$WANT" >"$CONF_DIR/slurm.conf"
printf '%s\n' "$GRES_LINES" >"$CONF_DIR/gres.conf"
# Debian's packages read /etc/slurm; an old cgroup.conf would select plugins we do not use.
rm -f "$CONF_DIR/cgroup.conf"

# 6. Daemons, from a clean spool (no jobs or node state survive from an earlier cluster): whatever an earlier
# start left (one node or several) is stopped first.
DELTAMUT_SLURM_RESTART=1 bash "$(dirname "$0")/stop-cluster.sh" >/dev/null
rm -rf "$STATE/ctld" "$STATE/slurmd"
install -d -m 0755 "$STATE/ctld" "$STATE/slurmd"
t=$(date +%s.%N)
if ((NODES_WANTED > 1)); then  # a bridge for the controller, a namespace (own address, own hostname) per node
    ip link add dmbr0 type bridge
    ip addr add "$CTL_ADDR/24" dev dmbr0
    ip link set dmbr0 up
    for i in "${!NODES[@]}"; do
        ns="dm-${NODES[$i]}"
        ip netns add "$ns"
        ip link add "dmv$i" type veth peer name eth0 netns "$ns"
        ip link set "dmv$i" master dmbr0 up
        ip netns exec "$ns" ip addr add "${ADDRS[$i]}/24" dev eth0
        ip netns exec "$ns" ip link set eth0 up
        ip netns exec "$ns" ip link set lo up
        install -d -m 0755 "$STATE/slurmd/${NODES[$i]}"
    done
fi
slurmctld -c
if ((NODES_WANTED > 1)); then
    for n in "${NODES[@]}"; do
        # nsenter, not `ip netns exec`, which remounts /sys without the cgroup tree slurmd needs
        nsenter --net="/run/netns/dm-$n" unshare --uts sh -c "hostname $n && exec slurmd -N $n"
    done
else
    slurmd
fi
deadline=$(( $(date +%s) + TIMEOUT ))
while :; do
    st=$(node_state || true)
    [[ "$st" == idle ]] && (( $(sinfo -h -N -o '%N' | sort -u | wc -l) == ${#NODES[@]} )) && break
    if (( $(date +%s) > deadline )); then
        echo "[slurm] node not idle after ${TIMEOUT} s (state '$st')" >&2
        sinfo -R >&2 || true
        tail -20 "$STATE/log/slurmctld.log" "$STATE"/log/slurmd*.log >&2 || true
        exit 1
    fi
    sleep 0.5
done
log "daemons up, nodes ${NODES[*]} idle in $(since "$t") s (total $(since "$T0") s); state $STATE, config $CONF_DIR"
sinfo
