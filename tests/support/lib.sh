# shellcheck shell=bash
# The helpers every shell test shares, sourced first by tests/blackbox/lib.sh and
# tests/node/lib.sh (and through them by registry-lib.sh, cache-lib.sh, fleet-lib.sh):
#
#   fail MSG / pass MSG        FAIL: on stderr and exit 1 (after fail_context, when a library
#                              defines it: the daemon's journal, its log) / PASS: on stdout
#   skip_or_fail MSG           a missing prerequisite: a failure with CI=true, elsewhere a skip
#                              (exit 77, which ctest reports as skipped)
#   need_tools TOOL...         skip_or_fail naming the tools not on PATH (or in /usr/sbin)
#   on_exit CMD...             pushes CMD on the cleanup stack; the one EXIT trap runs the stack
#                              in reverse (last pushed first), each command once, whatever fails
#   wait_until SECS WHAT CMD...  polls CMD until it succeeds; after SECS fails "WHAT: not within
#                              SECS s" (with wait_context's output, when a library defines it)
#   capture CMD...             runs CMD; sets RC, OUT (stdout), ERR (stderr); expect_rc N checks
#   json FILTER                jq -r FILTER over $OUT
#   free_port                  a loopback TCP port nothing listens on
#   listening IP PORT          something accepts on IP:PORT; wait_listening IP PORT [SECS]
#   make_ca NAME               a test CA at $WORK/NAME.pem (+ .key), by the real openssl
#   make_server_cert CA HOST [DAYS [IP [DIR]]]  a server certificate DIR/HOST.crt (+ .key)
#   nginx_head DIR             the start of an nginx.conf keeping all its files in DIR (the
#                              http block stays open); start_nginx CONF LOG: nginx on it
#
# The daemon's facts (status.json), for a library that defines daemon_status (print it):
#   djson FILTER / djson_is FILTER VALUE    jq -r over status.json / a condition for waits
#   djson_true FILTER                       a condition: FILTER (jq -e) is true
#   daemon_idle                             busy is false: nothing pending, nothing running
#   idle_evaluations [SECS]                 waits until idle and prints the evaluation count
#   evaluated_since N                       more than N evaluations finished and busy is false
#   evaluations_past N                      more than N evaluations finished (busy or not)
#   wait_evaluated N WHAT [SECS]            waits for evaluated_since N
# A test reads N with idle_evaluations before it changes something, then waits_evaluated N:
# the daemon has seen the change and dealt with it, and whatever it did not do, it never will.
#
# Needs WORK (a scratch directory) to be set before make_ca, capture, nginx_head are used.

# -E: the ERR trap also reports a command that fails inside a function.
set -Eeuo pipefail

fail() {
  echo "FAIL: $*" >&2
  if declare -F fail_context >/dev/null; then
    fail_context >&2 || true
  fi
  exit 1
}
pass() { echo "PASS: $*"; }
trap 'echo "FAIL: ${BASH_SOURCE[0]}:$LINENO: a command failed (exit $?)" >&2' ERR

skip_or_fail() {
  [ "${CI:-}" = true ] && fail "$* (CI=true: a missing prerequisite is a failure)"
  echo "SKIP: $*"
  exit 77
}

need_tools() {
  local tool missing=""
  for tool in "$@"; do
    command -v "$tool" >/dev/null || PATH=$PATH:/usr/sbin
    command -v "$tool" >/dev/null || missing="$missing $tool"
  done
  [ -z "$missing" ] || skip_or_fail "prerequisites missing:$missing (packaging/install-build-deps.sh installs them)"
}

# The cleanup stack. One EXIT trap for every library and script: a library that set its own
# trap would drop the cleanups of those sourced before it.
EXIT_STACK=()
on_exit() {
  local cmd
  printf -v cmd '%q ' "$@"
  EXIT_STACK+=("$cmd")
}
run_exit_stack() {
  local i cmd
  set +e
  trap - ERR  # a cleanup that finds nothing to clean is not the test's failure
  for ((i = ${#EXIT_STACK[@]} - 1; i >= 0; i--)); do
    cmd=${EXIT_STACK[i]}
    unset 'EXIT_STACK[i]'
    eval "$cmd"
  done
}
trap run_exit_stack EXIT

wait_until() {  # wait_until SECS WHAT CMD...
  local limit=$1 what=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge "$deadline" ]; then
      local context=""
      if declare -F wait_context >/dev/null; then
        context="; $(wait_context 2>&1 || true)"
      fi
      fail "$what: not within $limit s$context"
    fi
    sleep 0.05
  done
}

capture() {
  RC=0
  "$@" >"$WORK/out" 2>"$WORK/err" || RC=$?
  OUT=$(cat "$WORK/out")
  ERR=$(cat "$WORK/err")
}
expect_rc() {
  [ "$RC" -eq "$1" ] || fail "expected exit $1, got $RC; stdout: $OUT; stderr: $ERR"
}
json() { jq -r "$1" <<<"$OUT"; }

# A loopback TCP port nothing listens on (from /proc/net/tcp, no extra tools). Other tests and
# other people's runs use this machine at the same time: never a fixed port.
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 20000))
    grep -qi ":$(printf '%04X' "$port") 00000000:0000 0A" /proc/net/tcp /proc/net/tcp6 2>/dev/null ||
      { echo "$port"; return; }
  done
}

listening() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }  # bash's /dev/tcp
# 60 s by default: a 20 s limit was once missed in the sanitizer run while booted-node tests
# loaded the machine.
wait_listening() { wait_until "${3:-60}" "something listening on $1:$2" listening "$1" "$2"; }

make_ca() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
    -subj "/CN=$1 test CA" -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign \
    -keyout "$WORK/$1.key" -out "$WORK/$1.pem" 2>/dev/null
}

make_server_cert() {  # make_server_cert CA HOST [DAYS [IP [DIR]]]
  local ca=$1 host=$2 days=${3:-30} ip=${4:-} dir=${5:-$WORK}
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$host" \
    -keyout "$dir/$host.key" -out "$dir/$host.csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s%s\nbasicConstraints=CA:FALSE\n' "$host" "${ip:+,IP:$ip}" >"$dir/$host.ext"
  openssl x509 -req -in "$dir/$host.csr" -CA "$WORK/$ca.pem" -CAkey "$WORK/$ca.key" \
    -CAcreateserial -days "$days" -extfile "$dir/$host.ext" -out "$dir/$host.crt" 2>/dev/null
}

nginx_head() {  # nginx_head DIR
  cat <<CONF
worker_processes 1;
pid $1/nginx.pid;
error_log $1/error.log;
events {}
http {
  client_body_temp_path $1/body;
  proxy_temp_path $1/proxy;
  fastcgi_temp_path $1/fastcgi;
  uwsgi_temp_path $1/uwsgi;
  scgi_temp_path $1/scgi;
CONF
}
# start_nginx CONF LOG: nginx in the foreground of a background job; NGINX_PID is its pid.
start_nginx() {
  # shellcheck disable=SC2034 # read by the callers
  nginx -c "$1" -g 'daemon off;' >"$2" 2>&1 &
  NGINX_PID=$!
}

# --- the daemon's facts ----------------------------------------------------------------------

# One jq per check: a jq start is most of a poll's cost on a loaded machine.
djson() { daemon_status | jq -r "$1"; }
djson_is() { [ "$(djson "$1")" = "$2" ]; }
djson_true() { daemon_status | jq -e "$1" >/dev/null; }  # djson_true FILTER: FILTER is true
daemon_idle() { djson_true '.busy | not'; }
idle_evaluations() {
  wait_until "${1:-30}" "the daemon idle" daemon_idle
  djson .evaluations
}
evaluated_since() { djson_true ".evaluations > $1 and (.busy | not)"; }
evaluations_past() { djson_true ".evaluations > $1"; }  # busy or not
wait_evaluated() { wait_until "${3:-30}" "$2 (more than $1 evaluations, then idle)" evaluated_since "$1"; }
