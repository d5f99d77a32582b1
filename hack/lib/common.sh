# Shared helpers of hack/: failing loudly (every hack/ command), and for
# hack/cluster logging, free ports, processes we own, waits. Sourced, not run.
# The cluster helpers expect HACK, BIN_DIR and (for most) DIR, the cluster's
# state folder, to be set.

# --- failing loudly (every hack/ command) -------------------------------------

# Call right after `set -euo pipefail`. A command that fails under `set -e`
# (one that prints nothing itself, like `[[ ]]`, `grep -q` or
# `ip ... 2>/dev/null`, would otherwise end the script without a word) then
# ends it with one line on stderr naming the command, its exit code and where:
#   [TAG] error: exit code 255 from: ip link show master pg-x  (at hack/lib/real-node.sh:372, in real_drain)
# errtrace: the trap also fires inside functions. Subshells and $(...) inherit
# it, but only the shell that set it up reports (HACK_ERR_SHELL), so one failure
# gives one line; hack_run_isolated moves that role into its subshell.
# HACK_TAG may be changed later (hack/cluster adds the cluster's name).
hack_fail_loudly() { # tag
  HACK_TAG=$1
  HACK_ERR_SHELL=$BASHPID
  set -o errtrace
  trap 'hack_report_error "$?" "$BASH_COMMAND" "$LINENO"' ERR
}

hack_report_error() { # rc command line (called by the ERR trap)
  [[ $BASHPID == "${HACK_ERR_SHELL:-}" ]] || return 0
  local src=${BASH_SOURCE[1]:-$0} fn=${FUNCNAME[1]:-main} root
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." 2>/dev/null && pwd) || root=""
  [[ -n $root ]] && src=${src#"$root/"}
  echo "[${HACK_TAG:-${0##*/}}] error: exit code $1 from: $2  (at $src:$3, in $fn)" >&2
}

# Runs "$@" (a function) in a subshell with `set -e` in force: a failing
# command ends just that call, with the line above, and the script goes on.
# Sets HACK_RC to the call's exit code; returns 0. For steps that must not stop
# the ones after them (teardown). The call cannot change the caller's variables.
# Call it as a plain statement, never under `if`, `while`, `!`, `||` or `&&`
# (nor from a function called so): bash turns `set -e` off for everything run
# there, subshells included, and a failing command would not end the step.
# (The step runs as a background job, which is what keeps `set -e` in force;
# so a Ctrl-C stops the caller while that one step finishes on its own.)
hack_run_isolated() {
  HACK_RC=0
  ( HACK_ERR_SHELL=$BASHPID; "$@" ) &
  wait $! || HACK_RC=$?
}

# --- logging -----------------------------------------------------------------

T0=${T0:-$(date +%s.%N)}
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1fs", b - a }'; }
log() { echo "[cluster ${NAME:-?} $(elapsed)] $*" >&2; }
die() { echo "[cluster ${NAME:-?}] error: $*" >&2; exit 1; }

# Shows the end of a component's log, so a failure explains itself.
show_log_tail() { # component
  local f=$DIR/logs/$1.log
  [[ -f $f ]] || return 0
  echo "----- last lines of $f -----" >&2
  tail -n 25 "$f" >&2
  echo "-----" >&2
}

# --- free ports ----------------------------------------------------------------

# Picks a free TCP port on the host, below the kernel's ephemeral range (so a
# client's outgoing connection cannot grab it between pick and bind) and not
# among the ports already picked by this run; sets PORT. Not meant for $(...):
# the picked list must survive between calls. Two `up`s of different names
# racing could still pick the same port; the random pick makes that unlikely,
# and the loser fails loudly at bind.
PICKED_PORTS=" "
free_port() {
  local p tries=0
  while ((tries++ < 200)); do
    p=$((20000 + RANDOM % 12000))
    [[ $PICKED_PORTS == *" $p "* ]] && continue
    # (output captured, not piped into grep -q: with pipefail an early exit of
    # grep turns the writer's SIGPIPE into a failed pipeline)
    if [[ -z $(ss -Hltn "sport = :$p") ]]; then
      PICKED_PORTS+="$p "
      PORT=$p
      return 0
    fi
  done
  die "no free port found"
}

# --- processes we own ----------------------------------------------------------

# Starts a long-running component in its own session (so that it outlives the
# calling shell and a Ctrl-C of the caller does not hit it) with its output in
# logs/<name>.log, and records its PID and executable in pids/. Because the
# background child is not a process-group leader, setsid execs in place: $! is
# the component's own PID. `9>&-`: do not inherit hack/cluster's lock (fd 9),
# or the component would hold it for its whole life.
# Until that child has exec'd (bash forks, then execs setsid, which execs the
# binary) its /proc/PID/exe is bash or setsid, and proc_is_ours would read a
# component that is still starting as one that has exited. On a loaded machine
# that window is long enough for a caller's first check to land in it, so wait
# here (up to 10 s) until the PID runs the binary or is gone.
start_proc() { # name binary args...
  local name=$1; shift
  local exe i
  exe=$(readlink -f "$1")
  mkdir -p "$DIR/pids" "$DIR/logs"
  echo "### $(date -Is) $*" >> "$DIR/logs/$name.log"
  setsid "$@" </dev/null >>"$DIR/logs/$name.log" 2>&1 9>&- &
  local pid=$!
  echo "$pid" > "$DIR/pids/$name.pid"
  echo "$exe" > "$DIR/pids/$name.exe"
  for ((i = 0; i < 200; i++)); do
    [[ -d /proc/$pid ]] || return 0
    [[ $(readlink -f "/proc/$pid/exe" 2>/dev/null) == "$exe" ]] && return 0
    # exited already (a zombie until the shell reaps it): callers see it gone
    [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) == Z ]] && return 0
    sleep 0.05
  done
  log "warning: $name (pid $pid) has not started $exe after 10s"
}

# True if pids/<name>.pid names a live process that is still the command we
# started: same executable, and its command line mentions this cluster's folder
# (every component gets a config or data path inside it). Guards against
# killing an unrelated process that reused the PID.
proc_is_ours() { # name
  local name=$1 pid exe cmd
  [[ -f $DIR/pids/$name.pid ]] || return 1
  pid=$(<"$DIR/pids/$name.pid")
  exe=$(<"$DIR/pids/$name.exe")
  [[ -d /proc/$pid ]] || return 1
  [[ $(readlink -f "/proc/$pid/exe" 2>/dev/null) == "$exe" ]] || return 1
  cmd=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmd == *"$DIR"* ]]
}

proc_pid() { cat "$DIR/pids/$1.pid" 2>/dev/null; }

# Stops a component: TERM, up to `grace` seconds, then KILL. Only by its PID and
# only if proc_is_ours.
stop_proc() { # name [grace-seconds]
  local name=$1 grace=${2:-15} pid i
  if proc_is_ours "$name"; then
    pid=$(proc_pid "$name")
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
      [[ -d /proc/$pid ]] || break
      # a zombie child of ours would linger: it counts as gone
      [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) == Z ]] && break
      sleep 0.1
    done
    if [[ -d /proc/$pid ]] && proc_is_ours "$name"; then
      log "$name (pid $pid) ignored TERM for ${grace}s: KILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
    fi
    log "stopped $name (pid $pid)"
  fi
  rm -f "$DIR/pids/$name.pid" "$DIR/pids/$name.exe"
}

# --- waiting -------------------------------------------------------------------

# Retries a command until it succeeds or `timeout` seconds pass. On timeout it
# prints what it waited for, and the end of the component's log if given.
wait_for() { # timeout description component-or-"" command...
  local timeout=$1 what=$2 comp=$3; shift 3
  local deadline=$(( $(date +%s) + timeout ))
  until "$@" >/dev/null 2>&1; do
    if [[ -n $comp ]] && ! proc_is_ours "$comp"; then
      show_log_tail "$comp"
      die "$comp exited while waiting for $what"
    fi
    if (( $(date +%s) >= deadline )); then
      [[ -n $comp ]] && show_log_tail "$comp"
      die "timed out after ${timeout}s waiting for $what"
    fi
    sleep 0.5
  done
}
