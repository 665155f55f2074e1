#!/usr/bin/env bash
# Build an emulated aarch64 "board": an arm64 Debian 12 root filesystem with Python 3.11 and the aarch64
# wheels of TVM, runnable on x86 through qemu-user (no binfmt, no chroot, no root inside the board).
#
#   tools/arm/prepare.sh DIR
#
# Result: DIR/rootfs (run it with `qemu-aarch64-static -L DIR/rootfs DIR/rootfs/usr/bin/python3.11 ...`) and
# DIR/.prepared (the stamp; a second call with the same pins returns at once). Needs root and apt (Debian 12).
#
# Why debootstrap --foreign + dpkg-deb -x instead of a second stage: the second stage runs maintainer scripts
# under emulation (minutes) and needs binfmt; unpacking the cached .debs gives the same files for our purpose.
# Why wheels go to /usr/lib/python3/dist-packages: Debian's site.py puts it on sys.path relative to sys.prefix,
# so the board's python finds TVM without PYTHONPATH.
#
# Environment: ARM_PIP (a pip command; default: the repo's .venv pip, else `python3 -m pip`),
#              ARM_MIRROR (Debian mirror; default http://deb.debian.org/debian).
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
DIR="$(mkdir -p "$1" && cd "$1" && pwd)"
ROOTFS="$DIR/rootfs"
STAMP="$DIR/.prepared"
MIRROR="${ARM_MIRROR:-http://deb.debian.org/debian}"

# Same pins as requirements.txt / the host venv: the board must run the very TVM the host compiles with.
# apache-tvm-ffi stays at 0.1.14.post1 (0.1.15 segfaults when TVM IR is serialized).
WHEELS=(
    apache-tvm==0.27.0.post1
    apache-tvm-ffi==0.1.14.post1
    numpy==2.4.6
    ml_dtypes==0.6.0
    typing_extensions==4.16.0
    cloudpickle==3.1.2
    psutil==7.2.2
)
DEB_INCLUDE=python3.11-minimal,libpython3.11-stdlib,libstdc++6,libgcc-s1,zlib1g,libffi8,libexpat1
HOST_PKGS=(qemu-user-static debootstrap g++-aarch64-linux-gnu file unzip)
# The stamp records what was built, so changing a pin rebuilds instead of silently reusing an old board.
WANT_STAMP="$(printf '%s\n' "layout 2 (bytecode)" "bookworm $DEB_INCLUDE" "${WHEELS[@]}")"

T0=$(date +%s.%N)
step_start() { STEP_NAME="$1"; STEP_T=$(date +%s.%N); echo "[prepare] $1 ..."; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
step_end() { echo "[prepare] $STEP_NAME took $(since "$STEP_T") s"; }

host_ready() {
    local p
    for p in "${HOST_PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || return 1
    done
}

# 1. Host packages (also needed on a re-run: the cross compiler and qemu live on the host, not in DIR).
if ! host_ready; then
    T_APT=$(date +%s.%N)
    echo "[prepare] apt-get install ${HOST_PKGS[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends "${HOST_PKGS[@]}" ca-certificates >/dev/null
    echo "[prepare] host packages took $(since "$T_APT") s"
fi

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT_STAMP" && -x "$ROOTFS/usr/bin/python3.11" ]]; then
    echo "[prepare] $DIR is complete (stamp $STAMP)"
    exit 0
fi
rm -f "$STAMP"

# 2. arm64 packages: download only (--foreign), then unpack every cached .deb.
step_start "debootstrap --foreign (download arm64 debs)"
if [[ ! -f "$ROOTFS/debootstrap/debpaths" ]]; then
    rm -rf "$ROOTFS"
    debootstrap --foreign --arch=arm64 --variant=minbase --include="$DEB_INCLUDE" bookworm "$ROOTFS" "$MIRROR" \
        >"$DIR/debootstrap.log" 2>&1 || { tail -20 "$DIR/debootstrap.log" >&2; exit 1; }
fi
step_end

step_start "dpkg-deb -x of the cached debs"
n=0
for deb in "$ROOTFS"/var/cache/apt/archives/*.deb; do
    dpkg-deb -x "$deb" "$ROOTFS"
    n=$((n + 1))
done
echo "[prepare] unpacked $n debs"
# usr-merge: bookworm's debs still ship /lib and /bin paths; debootstrap made the links, keep them.
[[ -x "$ROOTFS/usr/bin/python3.11" ]] || { echo "[prepare] python3.11 missing in rootfs" >&2; exit 1; }
step_end

# 3. aarch64 wheels, unpacked into the board's dist-packages.
if [[ -n "${ARM_PIP:-}" ]]; then
    read -r -a PIP <<<"$ARM_PIP"
elif [[ -x "$REPO/.venv/bin/pip" ]]; then
    PIP=("$REPO/.venv/bin/pip")
else
    PIP=(python3 -m pip)
fi
step_start "pip download aarch64 wheels"
mkdir -p "$DIR/wheels"
"${PIP[@]}" download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --platform manylinux_2_28_aarch64 --python-version 3.11 --implementation cp \
    -d "$DIR/wheels" "${WHEELS[@]}"
step_end

step_start "unzip wheels into rootfs dist-packages"
SITE="$ROOTFS/usr/lib/python3/dist-packages"
rm -rf "$SITE"
mkdir -p "$SITE"
for spec in "${WHEELS[@]}"; do
    # Wheel file names normalise '-' to '_'; pick the file of exactly this pin.
    name="${spec%%==*}"; ver="${spec##*==}"
    whl=$(ls "$DIR/wheels/" | grep -i "^${name//-/_}-${ver}-" | head -1)
    [[ -n "$whl" ]] || { echo "[prepare] no wheel for $spec in $DIR/wheels" >&2; exit 1; }
    unzip -q -o "$DIR/wheels/$whl" -d "$SITE"
done
step_end

# 4. Bytecode: the debs' postinst would have compiled the stdlib; without it every board start compiles
# thousands of modules under emulation (measured: import tvm 37 s -> 14 s of CPU). Bytecode is
# architecture-independent, so a host Python 3.11 does it in seconds; else the board's own Python does.
step_start "precompile bytecode"
PY311=()
for c in "$REPO/.venv/bin/python" python3.11 python3; do
    if command -v "$c" >/dev/null && "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
        PY311=("$c")
        break
    fi
done
if ((${#PY311[@]} == 0)); then
    echo "[prepare] no host Python 3.11, compiling under qemu (slow)"
    PY311=(qemu-aarch64-static -L "$ROOTFS" "$ROOTFS/usr/bin/python3.11")
fi
# A few stdlib files may not compile (py2-era examples); they are never imported, so ignore the status.
"${PY311[@]}" -m compileall -q -j 0 "$ROOTFS/usr/lib/python3.11" "$SITE" >/dev/null 2>&1 || true
step_end

# 5. Smoke test: the board's python imports TVM and its RPC server module.
step_start "smoke test under qemu (import tvm, tvm.rpc)"
qemu-aarch64-static -L "$ROOTFS" "$ROOTFS/usr/bin/python3.11" -c \
    'import platform, tvm, tvm.rpc.server, numpy; print("[prepare] board:", platform.machine(), "tvm", tvm.__version__, "numpy", numpy.__version__)'
step_end

printf '%s' "$WANT_STAMP" >"$STAMP"
echo "[prepare] total $(since "$T0") s, $(du -sh "$DIR" | cut -f1) in $DIR"
