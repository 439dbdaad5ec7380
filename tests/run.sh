#!/usr/bin/env bash
# The README's test command: every test of the workspace, with every component the tests need.
#
#   bash tests/run.sh                 # as root
#   bash tests/run.sh --then CMD ...  # also runs CMD while the components are still up
#
# It needs root. What is missing, it installs with apt-get: bubblewrap (the sandbox backend),
# python3-venv (a team's virtualenv in the sandbox), docker.io (the Docker engine), chromium
# (the report in a browser), slurm-wlm and munge (a single-node Slurm cluster). It starts a
# Docker engine (unless one answers already) and a Slurm cluster on localhost, and stops both
# when it ends. It exports CI=true: a test whose component still does not answer fails instead
# of printing SKIPPED. Then it runs `cargo test --workspace` and the optional Parquet export's
# test (`--features parquet`), and ends with one line: `tests: N passed, M failed`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CI=true

then_cmd=()
if [ "${1:-}" = "--then" ]; then
  shift
  then_cmd=("$@")
elif [ $# -gt 0 ]; then
  echo "usage: bash tests/run.sh [--then CMD ...]" >&2
  exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "tests/run.sh installs packages and starts a Docker engine and a Slurm cluster: run it as root (sudo env PATH=\"\$PATH\" bash tests/run.sh)" >&2
  exit 1
fi
command -v cargo >/dev/null || {
  echo "cargo is not on PATH; from a normal account run: sudo env PATH=\"\$PATH\" bash tests/run.sh" >&2
  exit 1
}

need_apt=()
command -v bash >/dev/null || need_apt+=(bash)
command -v gzip >/dev/null || need_apt+=(gzip)
# The sandbox backend and its tests, and every command-line round of a hidden phase.
command -v bwrap >/dev/null || need_apt+=(bubblewrap)
# A team's virtualenv in the sandbox (tests/sandbox.rs makes one with the system's python).
{ [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null; } ||
  need_apt+=(python3 python3-venv)
# The docker backend and its tests: the engine package when no daemon answers and dockerd or the CLI is missing.
docker_up() { docker info >/dev/null 2>&1; }
if ! docker_up && ! { command -v dockerd && command -v docker; } >/dev/null; then
  need_apt+=(docker.io)
fi
# The report's browser test (tests/browser.rs): Debian's chromium,
# without its Recommends (Mesa's DRI drivers, Liberation fonts, upower, udev, print and
# notification services: headless with --disable-gpu needs none of them).
need_apt_bare=()
[ -n "${PODIUM_CHROMIUM:-}" ] || command -v chromium >/dev/null || command -v chromium-browser >/dev/null ||
  need_apt_bare+=(chromium)
if [ $((${#need_apt[@]} + ${#need_apt_bare[@]})) -gt 0 ]; then
  apt-get update -qq
  # No package starts its own services (docker.io would start dockerd with iptables): the
  # engine this script needs is started below, with its own settings.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    # Removed even when an install fails: left behind, it would stop later packages' services.
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  [ ${#need_apt[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  [ ${#need_apt_bare[@]} -eq 0 ] ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt_bare[@]}"
  rm -f /usr/sbin/policy-rc.d
  trap - EXIT
fi

# A Docker engine for the docker backend's tests: the one already answering `docker info`, or
# one started here (own data root, no iptables or bridge, so it needs no network setup) and
# stopped when this script exits.
dockerd_pid=
dockerd_root=
slurm_dir=
log=
# On exit, whatever this script started: the Slurm cluster, then the Docker engine.
clean_up() {
  local status=$?
  set +e
  [ -z "$log" ] || rm -f "$log"
  [ -z "$slurm_dir" ] || { .ci/slurm-cluster.sh stop "$slurm_dir"; rm -rf "$slurm_dir"; }
  [ -z "$dockerd_pid" ] || stop_dockerd
  exit "$status"
}
trap clean_up EXIT
stop_dockerd() {
  kill -TERM "$dockerd_pid" 2>/dev/null
  for _ in $(seq 1 30); do
    kill -0 "$dockerd_pid" 2>/dev/null || break
    sleep 1
  done
  if kill -0 "$dockerd_pid" 2>/dev/null; then
    echo "dockerd did not stop within 30 s; killing it. The end of its log:" >&2
    tail -n 20 "$dockerd_root/dockerd.log" >&2
    kill -KILL "$dockerd_pid" 2>/dev/null
  fi
  wait "$dockerd_pid" 2>/dev/null
  # Its files go only once nothing of the engine is mounted under them any more.
  grep -q " $dockerd_root/" /proc/mounts || rm -rf "$dockerd_root"
}
if docker_up; then
  echo "== docker: using the engine that answers ($(docker info --format '{{.ServerVersion}}'))"
else
  dockerd_root=$(mktemp -d "${TMPDIR:-/tmp}/podium-ci-docker.XXXXXX")
  dockerd --data-root "$dockerd_root/data" --exec-root "$dockerd_root/exec" \
    --pidfile "$dockerd_root/dockerd.pid" \
    --iptables=false --ip-forward=false --bridge=none \
    >"$dockerd_root/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 1 60); do
    docker_up && break
    kill -0 "$dockerd_pid" 2>/dev/null || break
    sleep 1
  done
  if ! docker_up; then
    echo "dockerd did not answer \`docker info\` (it exited, or 60 s passed); the end of its log:" >&2
    tail -n 40 "$dockerd_root/dockerd.log" >&2
    exit 1
  fi
  echo "== docker: started dockerd $(docker info --format '{{.ServerVersion}}') (pid $dockerd_pid, data in $dockerd_root)"
fi
# A single-node Slurm cluster on localhost for the Slurm backend's tests (tests/slurm.rs fails
# without one under CI=true): slurm-wlm and munge are installed by the script when missing, and
# the cluster is stopped on exit.
slurm_dir=$(mktemp -d "${TMPDIR:-/tmp}/podium-ci-slurm.XXXXXX")
# Captured first: `eval "$(…)"` would hide a failed start behind eval's own status.
slurm_env=$(.ci/slurm-cluster.sh start "$slurm_dir") || {
  echo "the Slurm cluster did not start (.ci/slurm-cluster.sh start $slurm_dir)" >&2
  exit 1
}
eval "$slurm_env"
echo "== slurm: $(sinfo -h -o '%P %D node(s) %T') (SLURM_CONF=$SLURM_CONF)"

echo "== the workspace's tests: cargo test --workspace --no-fail-fast"
log=$(mktemp)
status=0
cargo test --workspace --no-fail-fast 2>&1 | tee "$log" || status=1
echo "== the optional Parquet export (polars): cargo test --features parquet --test parquet"
cargo test --features parquet --test parquet 2>&1 | tee -a "$log" || status=1
# A build error or a crashed test binary prints no `test result:` line: the summary says so.
awk -v status="$status" '/^test result:/ { for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed%s\n", p, f, (status != 0 && f == 0) ? " (FAILED: cargo test stopped without a test result; see above)" : "" }' "$log"
if [ "$status" -eq 0 ] && [ ${#then_cmd[@]} -gt 0 ]; then
  echo "== ${then_cmd[*]}"
  "${then_cmd[@]}" || status=$?
fi
exit "$status"
