#!/usr/bin/env bash
# Install and start what the test suite talks to, when it is missing or down:
#   PostgreSQL on 127.0.0.1:5432 (trust auth, a `test` database, 300 connections), Debian's Chromium for the
#   browser tests of the web UI (/usr/bin/chromium, driven by Playwright: no browser download),
#   and MLflow 3.17.2 in its own virtualenv (.venv-mlflow, beside .venv) for the tests that drive
#   the real MLflow client against `plinth server` (tests/mlflow_compat/); Debian's Docker engine
#   (docker.io, dockerd started as root), its registry (docker-registry, started by the tests on
#   free ports) and a base image built from Debian's packages with debootstrap (no image pulls
#   here), imported as plinth-test-base:bookworm, for the image build tests (tests/deploy/); and a
#   one-node SLURM cluster (slurm-wlm + munge) for the SLURM executor tests.
# Safe to run again: each step does nothing when its service is already there.
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

PG_CLUSTER="$(ls /etc/postgresql | head -n 1)"
pg_wait() { for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; }
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    as_root pg_ctlcluster --skip-systemctl-redirect "$PG_CLUSTER" main start
    pg_wait
fi
# Two test workers each run team servers with their own connection pools, beside tests that
# open a pool per workspace: PostgreSQL's default of 100 connections is too few at times.
PG_CONNECTIONS=300
if [ "$(psql -h 127.0.0.1 -U postgres -d postgres -Atc 'show max_connections')" -lt "$PG_CONNECTIONS" ]; then
    psql -h 127.0.0.1 -U postgres -d postgres -qc "ALTER SYSTEM SET max_connections = $PG_CONNECTIONS"
    as_root pg_ctlcluster --skip-systemctl-redirect "$PG_CLUSTER" main restart
    pg_wait
fi

if [ ! -x /usr/bin/chromium ]; then
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get install -y -q chromium >/dev/null 2>&1 || {
        as_root apt-get update -q >/dev/null && as_root apt-get install -y -q chromium >/dev/null
    }
fi

# MLflow's client and server, with the model libraries its flavors need; torch is the CPU wheel
# that lies on this machine's disk (pip's find-links), never a CUDA download.
REPO="$(cd "$(dirname "$0")/.." && pwd)"
MLFLOW_VENV="$REPO/.venv-mlflow"
MLFLOW_VERSION=3.17.2
TORCH_VERSION=2.13.0
has_dist() { compgen -G "$MLFLOW_VENV/lib/python3*/site-packages/$1.dist-info" >/dev/null; }
mlflow_venv_ready() {
    [ -x "$MLFLOW_VENV/bin/python" ] && has_dist "mlflow-$MLFLOW_VERSION" && has_dist "torch-$TORCH_VERSION*" \
        && has_dist "scikit_learn-*" && has_dist "xgboost-*" && has_dist "lightgbm-*" \
        && has_dist "skops-*" && has_dist "psycopg2_binary-*"
}
if ! mlflow_venv_ready; then
    [ -x "$MLFLOW_VENV/bin/python" ] || python3 -m venv "$MLFLOW_VENV"
    pip_log="$(mktemp)"
    if ! "$MLFLOW_VENV/bin/python" -m pip install -q --disable-pip-version-check \
        "mlflow==$MLFLOW_VERSION" scikit-learn xgboost lightgbm skops psycopg2-binary "torch==$TORCH_VERSION" >"$pip_log" 2>&1 \
        || ! mlflow_venv_ready; then
        cat "$pip_log" >&2
        echo "could not install MLflow $MLFLOW_VERSION and torch $TORCH_VERSION into $MLFLOW_VENV" >&2
        exit 1
    fi
    rm -f "$pip_log"
fi

# A container engine, a registry and a Python base image made from Debian's packages. The base's
# root filesystem is cached (a tarball under the user's cache folder) and re-imported when the
# engine lost its images.
BASE_IMAGE=plinth-test-base:bookworm
BASE_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/plinth-tests"
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || {
        as_root apt-get update -q >/dev/null && as_root apt-get install -y -q "${missing[@]}" >/dev/null
    }
fi
if ! docker info >/dev/null 2>&1; then
    as_root sh -c 'nohup dockerd >/var/log/plinth-dockerd.log 2>&1 &'
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { tail -n 20 /var/log/plinth-dockerd.log >&2; echo "dockerd did not start" >&2; exit 1; }
fi
if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    mkdir -p "$BASE_CACHE"
    if [ ! -s "$BASE_CACHE/bookworm-python3.tar" ]; then
        rootfs="$(mktemp -d)"
        as_root debootstrap --variant=minbase --include=python3,python3-venv bookworm "$rootfs" >/dev/null
        as_root rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        as_root tar -C "$rootfs" -cf "$BASE_CACHE/bookworm-python3.tar.tmp" .
        mv "$BASE_CACHE/bookworm-python3.tar.tmp" "$BASE_CACHE/bookworm-python3.tar"
        as_root rm -rf "$rootfs"
    fi
    docker import "$BASE_CACHE/bookworm-python3.tar" "$BASE_IMAGE" >/dev/null
fi

# A one-node SLURM cluster (Debian's slurm-wlm and munge): slurmctld and slurmd on this host,
# 4 CPUs declared over the real cores (config_overrides) and 2 simulated GPUs (gres with
# placeholder files), so --cpus-per-task and --gres=gpu:N are honoured in placement.
slurm_missing=()
command -v slurmctld >/dev/null || slurm_missing+=(slurm-wlm)
command -v munged >/dev/null || slurm_missing+=(munge)
if [ "${#slurm_missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get install -y -q "${slurm_missing[@]}" >/dev/null 2>&1 || {
        as_root apt-get update -q >/dev/null && as_root apt-get install -y -q "${slurm_missing[@]}" >/dev/null
    }
fi
SLURM_CPUS=4   # declared above the 2 real cores (config_overrides) so 4-rank groups fit
HOST="$(hostname -s)"
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
# munge: key, folders owned by munge, daemon up before slurm
[ -s /etc/munge/munge.key ] || as_root sh -c 'dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key'
as_root mkdir -p /run/munge /var/log/munge /var/lib/munge
as_root chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! pgrep -x munged >/dev/null; then as_root runuser -u munge -- /usr/sbin/munged; fi
as_root mkdir -p /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /var/lib/plinth-slurm
as_root chown slurm:slurm /var/spool/slurmctld /var/log/slurm
for i in 0 1; do as_root touch "/var/lib/plinth-slurm/gpu$i"; done
CONF="$(mktemp)"
cat > "$CONF" <<CONFEOF
# One-node SLURM cluster for plinth's tests (written by scripts/test-services.sh)
ClusterName=plinth-test
SlurmctldHost=$HOST
SlurmUser=slurm
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
GresTypes=gpu
MinJobAge=300
KillWait=5
InactiveLimit=0
JobAcctGatherType=jobacct_gather/none
SchedulerParameters=sched_interval=2
NodeName=$HOST CPUs=$SLURM_CPUS RealMemory=$MEM_MB Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONFEOF
GRES="$(mktemp)"
printf 'NodeName=%s Name=gpu File=/var/lib/plinth-slurm/gpu[0-1]\n' "$HOST" > "$GRES"
changed=0
cmp -s "$CONF" /etc/slurm/slurm.conf || { as_root install -m 644 "$CONF" /etc/slurm/slurm.conf; changed=1; }
cmp -s "$GRES" /etc/slurm/gres.conf || { as_root install -m 644 "$GRES" /etc/slurm/gres.conf; changed=1; }
rm -f "$CONF" "$GRES"
stop_daemon() { as_root pkill -x "$1" || true; for _ in $(seq 1 50); do pgrep -x "$1" >/dev/null || return 0; sleep 0.2; done; }
if [ "$changed" = 1 ]; then stop_daemon slurmd; stop_daemon slurmctld; fi
if ! pgrep -x slurmctld >/dev/null; then
    stop_daemon slurmd   # a slurmd that started before its controller retries with a growing backoff
    as_root /usr/sbin/slurmctld
fi
for _ in $(seq 1 30); do scontrol ping 2>/dev/null | grep -q "is UP" && break; sleep 0.5; done
pgrep -x slurmd >/dev/null || as_root /usr/sbin/slurmd
for _ in $(seq 1 30); do sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)' && break; sleep 1; done
state="$(sinfo -h -o %T 2>/dev/null || true)"
case "$state" in idle*|mixed*|alloc*) ;; *)
    as_root scontrol update nodename="$HOST" state=resume 2>/dev/null || true; sleep 2
    sinfo -h -o %T | grep -qE '^(idle|mixed|allocated)' || { tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2; echo "SLURM node is not up ($state)" >&2; exit 1; } ;;
esac
