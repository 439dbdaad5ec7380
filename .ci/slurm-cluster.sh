#!/usr/bin/env bash
# A real single-node Slurm cluster on localhost, for the Slurm backend's tests and CI.
#
#   .ci/slurm-cluster.sh start  DIR   install slurm-wlm and munge if missing, write DIR/slurm.conf
#                                     and DIR/cgroup.conf, start munged, slurmctld and slurmd, wait
#                                     until the node is idle, then print (and write to DIR/env) the
#                                     environment clients need: eval "$(.ci/slurm-cluster.sh start DIR)"
#   .ci/slurm-cluster.sh stop   DIR   cancel its jobs and stop the daemons it started (pid files
#                                     under DIR); does nothing when nothing runs
#   .ci/slurm-cluster.sh status DIR   which daemons run, the node and the queue
#
# Everything the cluster writes (configuration, munge key and socket, state, spool, logs, pid
# files) stays under DIR; progress goes to stderr so that stdout is only the environment.
# No slurmdbd, so no accounting: plain `sacct` answers "Slurm accounting storage is disabled".
# A finished job's final state (COMPLETED, FAILED, TIMEOUT, OUT_OF_MEMORY, CANCELLED, NODE_FAIL)
# is read with `scontrol show job -o ID` or `squeue --states=all -j ID`, which keep it for
# MinJobAge (an hour) and across a restart from the same DIR; DIR/jobcomp.log (jobcomp/filetxt)
# keeps one line per finished job for good, and `sacct -c -j ID` reads it (not array tasks).
# Ports: SLURM_CI_CTLD_PORT (6817) and SLURM_CI_SLURMD_PORT (6818); SLURM_CI_DEF_MEM_PER_CPU (MB)
# overrides the memory per CPU of a job without --mem. One cluster per machine: Slurm's
# cgroups (/sys/fs/cgroup/*/slurm_localhost) are per machine too.
set -euo pipefail

usage() {
  echo "usage: $0 start|stop|status DIR" >&2
  exit 2
}
{ [ $# -eq 2 ] && [ -n "$2" ]; } || usage
cmd=$1
case "$cmd" in start | stop | status) ;; *) usage ;; esac
# slurm.conf takes paths unquoted.
bad_dir() {
  echo "slurm-cluster: DIR '$1' may hold only letters, digits and /._+-" >&2
  exit 2
}
[[ $2 =~ ^[A-Za-z0-9/._+-]+$ ]] || bad_dir "$2"
if [ "$cmd" = start ]; then
  mkdir -p "$2"
elif [ ! -d "$2" ]; then
  echo "slurm-cluster: $2 does not exist: no cluster runs from it" >&2
  [ "$cmd" = stop ] && exit 0 || exit 3
fi
dir=$(cd "$2" && pwd -P)
[[ $dir =~ ^[A-Za-z0-9/._+-]+$ ]] || bad_dir "$dir"

ctld_port=${SLURM_CI_CTLD_PORT:-6817}
slurmd_port=${SLURM_CI_SLURMD_PORT:-6818}
for n in "$ctld_port" "$slurmd_port" "${SLURM_CI_DEF_MEM_PER_CPU:-0}"; do
  [[ $n =~ ^[0-9]+$ ]] || { echo "slurm-cluster: '$n' is not a number" >&2; exit 2; }
done
# slurmd registers under this name (-N): the node's name does not depend on the host's.
node=localhost
conf=$dir/slurm.conf
munge_dir=$dir/munge
munge_socket=$munge_dir/munge.socket
ctld_pidfile=$dir/slurmctld.pid
slurmd_pidfile=$dir/slurmd.pid
munged_pidfile=$munge_dir/munged.pid
log_dir=$dir/log

say() { echo "slurm-cluster: $*" >&2; }

# The pid in the pid file $1 if that process is alive and is the daemon the file is named
# after (munged.pid: munged): a stale file never names someone else's process.
live_pid() {
  local pid
  [ -s "$1" ] || return 1
  pid=$(cat "$1")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$(basename "$1" .pid)" ] && echo "$pid"
}

# Whether something listens on TCP port $1 (from /proc: ss and netstat may be missing).
port_listening() {
  local hex
  hex=$(printf '%04X' "$1")
  awk -v p=":$hex" 'FNR > 1 && $4 == "0A" && substr($2, length($2) - 4) == p { found = 1 }
    END { exit !found }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# Slurm's client commands for this cluster; bounded, since they wait for MessageTimeout (10 s)
# and retry when slurmctld does not answer.
sl() { SLURM_CONF=$conf timeout 30 "$@"; }

log_tails() {
  local f
  for f in "$log_dir"/slurmctld.log "$log_dir"/slurmd.log "$munge_dir"/munged.log; do
    [ -e "$f" ] || continue
    echo "---- the end of $f" >&2
    tail -n 25 "$f" >&2
  done
}

install_packages() {
  local need=()
  command -v munged >/dev/null || need+=(munge)
  { command -v slurmctld && command -v slurmd && command -v sbatch; } >/dev/null || need+=(slurm-wlm)
  [ ${#need[@]} -gt 0 ] || return 0
  say "installing ${need[*]}"
  # Waits for dpkg's lock rather than failing when another apt runs on this shared machine.
  local lock=(-o DPkg::Lock::Timeout=300)
  apt-get "${lock[@]}" update -qq >&2
  # No package starts its own services (munge and slurmd/slurmctld would start the system's
  # daemons with /etc's configuration): the daemons this script needs are started below, with
  # their own settings. Same policy-rc.d as .ci/run, and only when none is there already.
  local own_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  # Without Recommends: nothing in them is needed on one node.
  local status=0
  DEBIAN_FRONTEND=noninteractive apt-get "${lock[@]}" install -y -qq --no-install-recommends \
    "${need[@]}" >&2 ||
    status=$?
  [ -z "$own_policy" ] || rm -f /usr/sbin/policy-rc.d
  return "$status"
}

write_config() {
  local cpus mem_kb real_mem margin def_mem hw topology
  cpus=$(nproc)
  # The node's sockets, cores and threads as slurmd finds them (slurmd -C), when they add up to
  # nproc: with CPUs= alone, slurmd reports a topology that differs from the configuration.
  hw=$(slurmd -C 2>/dev/null | head -n 1 || true)
  topology="CPUs=$cpus"
  if [[ $hw =~ CPUs=([0-9]+)\ Boards=([0-9]+)\ SocketsPerBoard=([0-9]+)\ CoresPerSocket=([0-9]+)\ ThreadsPerCore=([0-9]+) ]] &&
    [ "${BASH_REMATCH[1]}" = "$cpus" ]; then
    topology="CPUs=$cpus Boards=${BASH_REMATCH[2]} SocketsPerBoard=${BASH_REMATCH[3]}"
    topology+=" CoresPerSocket=${BASH_REMATCH[4]} ThreadsPerCore=${BASH_REMATCH[5]}"
  fi
  mem_kb=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
  # RealMemory may not exceed what slurmd measures (the node would be drained as "Low
  # RealMemory"): MemTotal less 5 % (at least 512 MiB) left to the system.
  margin=$((mem_kb / 1024 / 20))
  [ "$margin" -ge 512 ] || margin=512
  real_mem=$((mem_kb / 1024 - margin))
  # A job without --mem gets DefMemPerCPU per CPU. Without it, it would get the whole node's
  # memory and jobs (and array tasks) would run one at a time. Half the node's memory shared
  # out over its CPUs: every core can run a job without --mem at once, and half the memory is
  # still there for jobs with a larger --mem.
  def_mem=${SLURM_CI_DEF_MEM_PER_CPU:-$((real_mem / cpus / 2))}

  mkdir -p "$dir/state" "$dir/spool" "$log_dir"
  cat > "$conf" <<EOF
# Written by .ci/slurm-cluster.sh: a single-node cluster for tests, all files under $dir.
ClusterName=podium-ci
SlurmctldHost=localhost
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
# Daemons and jobs as root: CI submits as root.
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# Our own munged (clients read this too, through SLURM_CONF).
AuthInfo=socket=$munge_socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$ctld_pidfile
SlurmdPidFile=$slurmd_pidfile
SlurmctldLogFile=$log_dir/slurmctld.log
SlurmdLogFile=$log_dir/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MpiDefault=none
MailProg=/bin/true
# Jobs tracked and confined by cgroups, v1: this machine's cgroup v2 is only the hybrid
# "unified" mount, which slurmd refuses. cgroup.conf beside this file limits RAM, so a job
# over its --mem is killed and ends OUT_OF_MEMORY.
ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup
# Cores and memory are the consumable resources, so jobs share the node.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$def_mem
# Batch jobs are not held back for up to 3 s (the default) to be scheduled in bulk; they still
# start at slurmctld's next scheduling pass, which comes about once a second.
SchedulerParameters=batch_sched_delay=0
# No slurmdbd: no accounting (sacct says it is disabled), but every finished job gets a line in
# jobcomp.log (sacct -c reads it), and slurmctld keeps a finished job's record (scontrol show
# job, squeue --states=all) for MinJobAge seconds (default 300), saved across restarts.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.log
JobAcctGatherType=jobacct_gather/none
MinJobAge=3600
# A batch job on a node that fails ends NODE_FAIL instead of being requeued (Slurm's default:
# it would go back to PENDING and run again), so tests see the final state.
JobRequeue=0
# A node that was down (slurmd restarted) comes back by itself.
ReturnToService=2
# Seconds between SIGTERM and SIGKILL at a time limit or scancel: short, for quick tests.
KillWait=5
NodeName=$node NodeAddr=127.0.0.1 $topology RealMemory=$real_mem State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
  cat > "$dir/cgroup.conf" <<EOF
# Written by .ci/slurm-cluster.sh.
CgroupPlugin=cgroup/v1
# Cores are not confined by Slurm's cpuset: on this machine's cgroup v1, a job starting right
# after jobs ended with their node (the NODE_FAIL test) could find the cpuset still busy
# ("cpuset.cpus: Device or resource busy"), and slurmd then drained the node for good. Each
# case's CPUs are confined anyway, by the node's sandbox (its per-case cgroup).
ConstrainCores=no
ConstrainDevices=no
# A job's memory is its allocation (--mem, or DefMemPerCPU per CPU); the machine has no swap,
# and none is allowed, so a job over it is OOM-killed and ends OUT_OF_MEMORY.
ConstrainRAMSpace=yes
AllowedRAMSpace=100
ConstrainSwapSpace=yes
AllowedSwapSpace=0
EOF
}

start_munged() {
  # Our own key and socket: no dependency on /etc/munge or a system munged. munged runs as
  # root, like the Slurm daemons (DIR may be a 0700 temporary directory, which the munge user
  # cannot enter). --force: munged refuses a socket that other users cannot reach ("Socket is
  # inaccessible: execute permissions for all required"), as under a mktemp -d DIR; clients and
  # jobs here are root. Its own folder is 0755 (the key 0600), so it warns about DIR only.
  mkdir -p "$munge_dir"
  chmod 755 "$munge_dir"
  if [ ! -s "$munge_dir/munge.key" ]; then
    (umask 077 && dd if=/dev/urandom of="$munge_dir/munge.key" bs=1024 count=1 status=none)
  fi
  munged --force --key-file="$munge_dir/munge.key" --socket="$munge_socket" \
    --pid-file="$munged_pidfile" --log-file="$munge_dir/munged.log" \
    --seed-file="$munge_dir/munged.seed" >&2
  for _ in $(seq 1 50); do
    munge -n -S "$munge_socket" 2>/dev/null | unmunge -S "$munge_socket" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  say "munged does not answer on $munge_socket"
  return 1
}

start_failed() {
  local status=$?
  trap - EXIT
  set +e
  say "start failed (exit $status); the logs:"
  log_tails
  cmd_stop
  exit "$status"
}

cmd_start() {
  if live_pid "$ctld_pidfile" >/dev/null || live_pid "$slurmd_pidfile" >/dev/null ||
    live_pid "$munged_pidfile" >/dev/null; then
    say "a cluster already runs from $dir: stop it first ($0 stop $dir)"
    exit 1
  fi
  local p
  for p in "$ctld_port" "$slurmd_port"; do
    if port_listening "$p"; then
      say "TCP port $p is in use (another Slurm cluster on this machine?)"
      exit 1
    fi
  done
  install_packages
  write_config
  # From here on, a failure (a daemon that exits at once, a node that does not come up) shows
  # the logs and stops whatever did start, so that nothing is left running.
  trap start_failed EXIT
  start_munged
  say "munged up (socket $munge_socket)"

  # Both daemonize and write their pid files (paths in slurm.conf). A DIR used before keeps its
  # state (jobs, job ids); -i: slurmctld starts even when that state cannot be read.
  SLURM_CONF=$conf slurmctld -f "$conf" -i
  SLURM_CONF=$conf slurmd -f "$conf" -N "$node"

  local state='' deadline=$((SECONDS + 60))
  while [ $SECONDS -lt $deadline ]; do
    state=$(sl sinfo -h -N -n "$node" -o '%T' 2>/dev/null || true)
    [ "$state" = idle ] && break
    # A daemon that exited, or a node that slurmctld refused (drained, or "inval" when its
    # configuration exceeds the hardware), will not come up: no use waiting.
    live_pid "$ctld_pidfile" >/dev/null || { say "slurmctld exited"; exit 1; }
    live_pid "$slurmd_pidfile" >/dev/null || { say "slurmd exited"; exit 1; }
    case $state in inval* | drain*) break ;; esac
    sleep 0.5
  done
  if [ "$state" != idle ]; then
    say "node $node is not idle (after $((SECONDS - deadline + 60)) s, sinfo: '${state:-no answer}'); sinfo -R:"
    sl sinfo -R >&2 2>&1 || true
    exit 1
  fi
  # slurmctld runs its first scheduling pass some 3 s after it starts; a job submitted before
  # waits for it. Ready means that pass has run (sdiag's first "Total cycles" is the main
  # scheduler's).
  local cycles=0
  while [ $SECONDS -lt $deadline ]; do
    cycles=$(sl sdiag 2>/dev/null | awk '/Total cycles:/ { print $3; exit }' || true)
    [ "${cycles:-0}" -gt 0 ] && break
    sleep 0.5
  done
  if [ "${cycles:-0}" -eq 0 ]; then
    say "slurmctld ran no scheduling pass within 60 s of its start"
    exit 1
  fi
  trap - EXIT
  echo "export SLURM_CONF=$conf" > "$dir/env"
  say "node $node idle: slurmctld pid $(cat "$ctld_pidfile"), slurmd pid $(cat "$slurmd_pidfile"), munged pid $(cat "$munged_pidfile"); logs in $log_dir"
  cat "$dir/env"
}

# Sends SIGTERM to the processes in the pid files $2... and waits up to $1 s for them all, then
# SIGKILL; removes the pid files.
stop_pids() {
  local limit=$1 f pid pids=() names=()
  shift
  for f in "$@"; do
    if pid=$(live_pid "$f"); then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
      names+=("$(basename "$f" .pid)")
    fi
  done
  local i left
  for _ in $(seq 1 $((limit * 10))); do
    left=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
    [ "$left" = 1 ] || break
    sleep 0.1
  done
  for i in "${!pids[@]}"; do
    if kill -0 "${pids[$i]}" 2>/dev/null; then
      say "${names[$i]} (pid ${pids[$i]}) did not stop within $limit s: killing it"
      kill -KILL "${pids[$i]}" 2>/dev/null || true
    fi
  done
  rm -f "$@"
}

# The pids in the freezer cgroups that Slurm made for this node's jobs: a job's slurmstepd is
# in job_N, its processes in job_N/step_*. Debian's Slurm (built for several slurmd on one
# host) names the root slurm_NODE; other builds name it slurm.
job_cgroup_pids() {
  local root
  for root in /sys/fs/cgroup/freezer/slurm_$node /sys/fs/cgroup/freezer/slurm; do
    cat "$root"/uid_*/job_*/cgroup.procs "$root"/uid_*/job_*/step_*/cgroup.procs 2>/dev/null || true
  done | sort -un
}

cmd_stop() {
  # Job processes are only ours to kill when our slurmd runs (the cgroups are per machine).
  local ours=
  live_pid "$slurmd_pidfile" >/dev/null && ours=1
  if live_pid "$ctld_pidfile" >/dev/null; then
    # Jobs first: slurmstepd and the job's processes outlive slurmd, so cancel every job and
    # wait (up to 20 s) until none runs.
    local jobs
    jobs=$(sl squeue -h -o '%A' 2>/dev/null || true)
    if [ -n "$jobs" ]; then
      # shellcheck disable=SC2086
      sl scancel $jobs 2>/dev/null || true
      for _ in $(seq 1 40); do
        [ -z "$(sl squeue -h -o '%A' 2>/dev/null)" ] && break
        sleep 0.5
      done
    fi
  fi
  # Both at once: slurmctld takes seconds to save its state.
  stop_pids 20 "$slurmd_pidfile" "$ctld_pidfile"
  if [ -n "$ours" ]; then
    # Whatever is left of jobs (a step that did not end in time) is killed.
    local pid
    for pid in $(job_cgroup_pids); do
      say "killing job process $pid ($(cat "/proc/$pid/comm" 2>/dev/null || echo gone))"
      kill -KILL "$pid" 2>/dev/null || true
    done
  fi
  stop_pids 10 "$munged_pidfile"
  say "stopped (nothing of $dir runs)"
}

cmd_status() {
  local f pid status=0
  for f in "$munged_pidfile" "$ctld_pidfile" "$slurmd_pidfile"; do
    if pid=$(live_pid "$f"); then
      echo "$(basename "$f" .pid): running (pid $pid)"
    else
      echo "$(basename "$f" .pid): not running"
      status=3
    fi
  done
  if [ "$status" -eq 0 ]; then
    sl sinfo -N -o '%N %T %C %m %e' || status=1
    sl squeue --states=all || status=1
  fi
  return "$status"
}

case "$cmd" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
esac
