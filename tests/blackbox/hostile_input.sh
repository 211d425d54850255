#!/usr/bin/env bash
# Hostile input, case by case: FIFOs, devices and directories where files belong; huge, deep,
# aliased, tagged and badly encoded YAML; symlinks and ".." that lead out of --root; state that
# names files the agent does not own; host names too long for a file name; and secrets, in every
# form the input can hold them, looked for in every output (stdout, stderr, JSON, state.json,
# the daemon's status.json).
#
# Each case starts from a copy of one applied scratch root, makes it hostile, runs one command
# and asserts what a user would see: the exit code, a part of the message, and (for a refusal)
# a snapshot of the whole root (inode, mtime, mode, size, content of every entry) equal to the
# one taken before. A command that hangs (a FIFO opened without O_NONBLOCK) fails after 10 s.
# Scratch roots on tmpfs where there is one: each case copies a root, and on this disk a copy of
# 35 files takes 0.1 s; nothing here depends on the kind of file system.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
  export TMPDIR=/dev/shm
fi
source "$TESTLIB"
command -v timeout >/dev/null || fail "timeout (coreutils) is not installed"

SECRET='s3cretValue'  # every secret the cases plant contains it; no output may
OUTSIDE=$WORK/outside  # a folder beside the root that nothing may read, write or remove
CASES=0
declare -A PER_CLASS

setup_node
printf 'robot-pw-%s\n' "$SECRET" > "$CONF/registry-password"
chmod 600 "$CONF/registry-password"
sed -i 's|^  ca_file: .*|&\n  auth:\n    username: robot\n    password_file: /etc/k3s-mirror-agent/registry-password|' \
  "$CONF/config.yaml"
GOOD_CONFIG=$(cat "$CONF/config.yaml")
agent apply
expect_rc 0
cp -a "$ROOT" "$WORK/pristine"

fresh() {  # a copy of the applied root, a fresh outside folder
  rm -rf "$ROOT" "$OUTSIDE"
  cp -a "$WORK/pristine" "$ROOT"
  mkdir -p "$OUTSIDE"
  echo "outside, keep me" > "$OUTSIDE/victim"
  cp "$WORK/harbor.pem" "$OUTSIDE/ca.pem"
}

# run CMD ARGS...: the agent against the root, killed after 10 s (then RC is 124).
run() {
  RC=0
  timeout -s KILL 10 "$AGENT" "$@" --root "$ROOT" >"$WORK/out" 2>"$WORK/err" </dev/null || RC=$?
  OUT=$(cat "$WORK/out")
  ERR=$(cat "$WORK/err")
  # A crash, a hang or a sanitizer report is never an acceptable answer to bad input.
  [ "$RC" -lt 124 ] || fail "$* : killed or crashed (exit $RC); stderr: $ERR"
  if grep -qE 'Sanitizer|runtime error:' "$WORK/err"; then fail "$* : sanitizer report: $ERR"; fi
}

outside_intact() {
  [ "$(cat "$OUTSIDE/victim")" = "outside, keep me" ] || fail "$1: a file outside --root changed"
  [ "$(ls -A "$OUTSIDE" | wc -l)" -eq 2 ] || fail "$1: a file appeared outside --root"
}

no_secret() {  # no_secret CASE: nothing the agent printed or wrote for people holds a secret
  local where
  for where in "$WORK/out" "$WORK/err" "$STATE" "$ROOT/run/k3s-mirror-agent/status.json"; do
    if [ -f "$where" ] && grep -qF "$SECRET" "$where"; then
      fail "$1: $where shows a secret: $(grep -F "$SECRET" "$where" | head -3)"
    fi
  done
}

json_ok() {  # stdout is one valid JSON object
  jq -e 'type == "object"' <<<"$OUT" >/dev/null || fail "$1: stdout is not a JSON object: $OUT"
}

# refused CLASS NAME RC MESSAGE CMD ARGS...: the hostile root is ready; CMD must exit RC,
# say MESSAGE on stderr, change nothing under the root or outside it, and show no secret.
refused() {
  local class=$1 name=$2 rc=$3 message=$4 before
  shift 4
  before=$(snapshot)
  run "$@"
  [ "$RC" -eq "$rc" ] || fail "$name: expected exit $rc, got $RC; stderr: $ERR; stdout: $OUT"
  grep -qF -- "$message" <<<"$ERR" || fail "$name: stderr does not say '$message': $ERR"
  [ "$(snapshot)" = "$before" ] || fail "$name: the root changed"
  if [[ " $* " == *" --output json "* ]]; then
    json_ok "$name"
    jq -e '.error | type == "string"' <<<"$OUT" >/dev/null || fail "$name: no JSON error: $OUT"
  fi
  outside_intact "$name"
  no_secret "$name"
  counted "$class"
}

counted() { CASES=$((CASES + 1)); PER_CLASS[$1]=$((${PER_CLASS[$1]:-0} + 1)); }

REGP=/etc/rancher/k3s/registries.yaml
# node FILE-CONTENT: the node's registries.yaml is replaced (the state no longer matches it).
node_file() { printf '%s' "$1" > "$REG"; }

# ---- special files where a regular file belongs (each must be refused at once) -------------
for cmd in apply diff render check; do
  fresh; rm "$CONF/config.yaml"; mkfifo "$CONF/config.yaml"
  refused special "config FIFO ($cmd)" 2 "a FIFO, not a regular file" "$cmd"
done
fresh; mkdir -p "$CONF/config.d"; mkfifo "$CONF/config.d/50-x.yaml"
refused special "drop-in FIFO" 2 "50-x.yaml: a FIFO" apply
fresh; rm "$CONF/harbor-ca.pem"; mkfifo "$CONF/harbor-ca.pem"
refused special "ca_file FIFO" 2 "harbor-ca.pem: a FIFO" apply
fresh; rm "$CONF/harbor-ca.pem"; mkfifo "$CONF/harbor-ca.pem"
refused special "ca_file FIFO (check)" 2 "harbor-ca.pem: a FIFO" check
fresh; rm "$CONF/registry-password"; mkfifo -m 600 "$CONF/registry-password"
refused special "password_file FIFO" 2 "is not a regular file" apply
for cmd in apply diff render check restore; do
  fresh; rm "$REG"; mkfifo "$REG"
  refused special "registries.yaml FIFO ($cmd)" 2 "registries.yaml: a FIFO" "$cmd"
done
for cmd in apply restore status diff; do
  fresh; rm "$STATE"; mkfifo "$STATE"
  refused special "state.json FIFO ($cmd)" 2 "state.json: a FIFO" "$cmd"
done
fresh; rm "$STATE"; mkfifo "$STATE"
refused special "state.json FIFO (status json)" 2 "state.json: a FIFO" status --output json
fresh; rm "$ROOT/run/k3s-mirror-agent/status.json" 2>/dev/null || true
mkdir -p "$ROOT/run/k3s-mirror-agent"; mkfifo "$ROOT/run/k3s-mirror-agent/status.json"
refused special "status.json FIFO (status)" 2 "status.json: a FIFO" status
fresh; rm "$CONF/config.yaml"; mkdir "$CONF/config.yaml"
refused special "config is a directory" 2 "a directory, not a regular file" apply
fresh; rm "$REG"; mkdir "$REG"
refused special "registries.yaml is a directory" 2 "registries.yaml: a directory" apply
fresh
refused special "config is /dev/zero" 2 "/dev/zero: a device" apply --config /dev/zero
fresh; mkdir -p "$CONF/config.d"; ln -s /dev/zero "$WORK/zero-link"
refused special "config is a symlink to /dev/urandom" 2 "a device" check --config /dev/urandom

# ---- huge files: refused by size, not read into memory -------------------------------------
fresh; { echo "$GOOD_CONFIG"; head -c 300000 /dev/zero | tr '\0' '#'; echo; } > "$CONF/config.yaml"
refused huge "config of 300 kB" 2 "larger than 262144 bytes" apply
fresh; mkdir -p "$CONF/config.d"; truncate -s 300k "$CONF/config.d/10-big.yaml"
refused huge "drop-in of 300 kB" 2 "larger than 262144 bytes" check
fresh; truncate -s 2M "$REG"
refused huge "registries.yaml of 2 MB" 2 "larger than 1048576 bytes" diff
fresh; truncate -s 2M "$REG"
refused huge "registries.yaml of 2 MB (restore)" 2 "larger than 1048576 bytes" restore
fresh; truncate -s 3M "$CONF/harbor-ca.pem"
refused huge "ca_file of 3 MB" 2 "larger than 1048576 bytes" apply
fresh; truncate -s 1M "$STATE"
refused huge "state.json of 1 MB" 2 "larger than" status
fresh; truncate -s 100k "$CONF/registry-password"
refused huge "password file of 100 kB" 2 "larger than 65536 bytes" check

# ---- YAML the agent cannot re-emit with the same meaning (node's registries.yaml) ----------
cycle=$'mirrors:\n  docker.io:\n    endpoint: ["https://a"]\nx: &a [*a]\n'
for cmd in apply diff render check restore; do
  fresh; node_file "$cycle"
  refused yaml "alias cycle ($cmd)" 2 "registries.yaml:4: anchors (&name) are not supported" "$cmd"
done
fresh; node_file "$cycle"
refused yaml "alias cycle (apply json)" 2 "registries.yaml:4: anchors" apply --output json
bomb='a: &a ["x","x","x","x","x","x","x","x","x"]'
for l in b c d e f g h i; do
  prev=${bomb##*&}; prev=${prev%% *}
  bomb+=$'\n'"$l: &$l [*$prev,*$prev,*$prev,*$prev,*$prev,*$prev,*$prev,*$prev,*$prev]"
done
fresh; node_file "$bomb"$'\n'
refused yaml "alias bomb of 9^9 nodes" 2 "registries.yaml:1: anchors" apply
fresh; node_file $'mirrors:\n  quay.io:\n    endpoint: ["https://q"]\nother: *nothing\n'
refused yaml "alias without anchor" 2 "registries.yaml:4:" diff
fresh; node_file $'base: &b {endpoint: ["https://x"]}\nmirrors:\n  r.io:\n    <<: *b\n'
refused yaml "merge key with anchor" 2 "registries.yaml:1: anchors" apply
fresh; node_file $'mirrors:\n  r.io:\n    <<: {endpoint: ["https://x"]}\n'
refused yaml "merge key" 2 "registries.yaml:3: merge keys (<<) are not supported" apply
fresh; node_file $'mirrors:\n  r.io:\n    "<<": {endpoint: ["https://x"]}\n'
refused yaml "quoted merge key" 2 "registries.yaml:3: merge keys" render
fresh; node_file $'configs:\n  r.io:\n    tls:\n      ca_file: !!binary L2V0Yy9jYQ==\n'
refused yaml "!!binary tag" 2 "registries.yaml:4: tags such as tag:yaml.org,2002:binary" apply
fresh; node_file $'configs:\n  r.io: !custom\n    tls: {}\n'
refused yaml "local tag" 2 "registries.yaml:2: tags such as !custom" check
fresh; node_file $'mirrors:\n  r.io:\n    endpoint: !!str "https://x"\n'
refused yaml "!!str tag" 2 "registries.yaml:3: tags" apply
fresh; node_file $'mirrors:\n  r.io: {endpoint: ["https://x"]}\n  r.io: {endpoint: ["https://y"]}\n'
refused yaml "duplicate key" 2 "registries.yaml:3: the key \"r.io\" appears twice" apply
fresh; node_file $'mirrors:\n  ? [a, b]\n  : {endpoint: ["https://x"]}\n'
refused yaml "list as a key" 2 "registries.yaml:2: a mapping or list as a key" apply
fresh; node_file $'mirrors: {}\n---\nconfigs: {}\n'
refused yaml "two documents" 2 "more than one YAML document" apply
fresh; node_file "$(printf 'x: %.0s[' {1..40})"$'\n'
refused yaml "nested 40 deep" 2 "nested deeper than 32 levels" apply
fresh; head -c 200000 /dev/zero | tr '\0' '[' > "$REG"
refused yaml "200000 open brackets" 2 "registries.yaml:1:" diff
fresh; node_file $'mirrors:\n  r.io:\n    endpoint: ["https://\xff"]\n'
refused encoding "invalid UTF-8" 2 "registries.yaml:3: byte 0xff is not allowed" apply
fresh; node_file $'mirrors:\n  r.io:\n    endpoint: ["https://\xc0\xaf"]\n'
refused encoding "overlong UTF-8" 2 "registries.yaml:3: byte 0xc0" render
fresh; node_file $'mirrors:\n  r.io:\n    endpoint: ["https://\xed\xa0\x80"]\n'
refused encoding "UTF-8 surrogate" 2 "registries.yaml:3: byte 0xed" apply
fresh; printf 'mirrors:\n  r.io:\n    endpoint: ["https://x\0y"]\n' > "$REG"
refused encoding "NUL byte" 2 "registries.yaml:3: byte 0x00 is NUL" apply
fresh; printf 'configs:\n  r.io:\n    auth: {password: "a\\0b-%s"}\n' "$SECRET" > "$REG"
refused encoding "escaped NUL in a password" 2 "registries.yaml:3: a value holds a control" apply
fresh; printf 'x: "\x1b[2J"\n' > "$REG"
refused encoding "ESC control byte" 2 "registries.yaml:1: byte 0x1b" apply
fresh; printf 'x: "\\e]0;title\\a"\n' > "$REG"
refused encoding "escaped terminal sequence" 2 "registries.yaml:1: a value holds a control" diff
fresh; printf '\xff\xfem\0i\0' > "$REG"
refused encoding "UTF-16 file" 2 "registries.yaml:1: byte 0xff" apply
fresh; printf 'x: "\xc2\x9b31m"\n' > "$REG"
refused encoding "C1 control" 2 "registries.yaml:1: byte 0xc2" apply
fresh; printf 'configs:\n  h:\n    auth: {password: "pw-\xff-%s"}\n' "$SECRET" > "$REG"
refused encoding "invalid UTF-8 in a password" 2 "registries.yaml:3: byte 0xff" diff
fresh; printf 'robot-\xff-%s\n' "$SECRET" > "$CONF/registry-password"
refused encoding "invalid UTF-8 in the password file" 2 "holds a control character or a byte" apply
fresh; printf 'robot-\0-%s\n' "$SECRET" > "$CONF/registry-password"
refused encoding "NUL in the password file" 2 "holds a control character or a byte" check
fresh; printf '%s\nx: "\xff"\n' "$GOOD_CONFIG" > "$CONF/config.yaml"
refused encoding "invalid UTF-8 in the config" 2 "config.yaml:11: invalid YAML: byte 0xff" apply
fresh; mkdir -p "$CONF/config.d"; printf 'mirrors:\n  a.io: p\0\n' > "$CONF/config.d/20-n.yaml"
refused encoding "NUL in a drop-in" 2 "20-n.yaml:2: invalid YAML: byte 0x00 is NUL" check

# yaml-cpp 0.7 yields empty documents for ever on ",": refused as a second document, no hang.
fresh; printf ',\n' > "$CONF/config.yaml"
refused yaml "config of one comma" 2 "config.yaml:1: more than one YAML document" check
fresh; node_file $',\n'
refused yaml "registries.yaml of one comma" 2 "registries.yaml:1: more than one YAML document" diff

# The agent's own config: no anchors, aliases or tags either, and bounded depth.
fresh; printf '%s\nk3s: &k {restart: never}\n' "$GOOD_CONFIG" > "$CONF/config.yaml"
refused yaml "anchor in the config" 2 "config.yaml:11: invalid YAML: anchors" apply
fresh; printf 'registry: &r {url: "https://h"}\nmirrors: {a.io: p}\ndaemon: *r\n' > "$CONF/config.yaml"
refused yaml "alias in the config" 2 "config.yaml:1: invalid YAML: anchors" check
fresh; printf '%s\nk3s: {unit: !!str k3s.service}\n' "$GOOD_CONFIG" > "$CONF/config.yaml"
refused yaml "tag in the config" 2 "config.yaml:11: invalid YAML: tags" apply
fresh; printf '%s\nx: %s\n' "$GOOD_CONFIG" "$(printf '{a: %.0s' {1..50})" > "$CONF/config.yaml"
refused yaml "deep config" 2 "invalid YAML: nested deeper than 32 levels" check
fresh; mkdir -p "$CONF/config.d"; printf '%s\n' "$bomb" > "$CONF/config.d/30-bomb.yaml"
refused yaml "alias bomb drop-in" 2 "30-bomb.yaml:1: invalid YAML: anchors" apply

# ---- paths: nothing resolves outside --root ------------------------------------------------
fresh; rm "$REG"; ln -s "$OUTSIDE/victim" "$REG"
run apply
[ "$RC" -eq 0 ] || fail "registries.yaml -> outside: apply exited $RC: $ERR"
[ ! -L "$REG" ] && grep -q "dockerhub-proxy" "$REG" || fail "registries.yaml -> outside: not replaced"
outside_intact "registries.yaml -> outside (apply)"; counted paths
fresh; rm "$REG"; ln -s "../../../../../../../../$OUTSIDE/victim" "$REG"
run restore
outside_intact "registries.yaml -> ../../outside (restore)"; counted paths
fresh; ln -s "$OUTSIDE/ca.pem" "$CONF/outside-ca.pem"
sed -i 's|/etc/k3s-mirror-agent/harbor-ca.pem|/etc/k3s-mirror-agent/outside-ca.pem|' "$CONF/config.yaml"
refused paths "ca_file -> absolute symlink outside" 2 "outside-ca.pem does not exist" apply
fresh; sed -i "s|/etc/k3s-mirror-agent/harbor-ca.pem|/../../../../..$OUTSIDE/ca.pem|" "$CONF/config.yaml"
refused paths "ca_file with .. out of the root" 2 "ca.pem does not exist" check
fresh; ln -s "$OUTSIDE" "$CONF/out"
sed -i 's|/etc/k3s-mirror-agent/harbor-ca.pem|/etc/k3s-mirror-agent/out/ca.pem|' "$CONF/config.yaml"
refused paths "ca_file under an absolute directory symlink" 2 "out/ca.pem does not exist" apply
fresh; cp "$CONF/registry-password" "$WORK/outside-pw"; rm "$CONF/registry-password"
ln -s "$WORK/outside-pw" "$CONF/registry-password"
refused paths "password_file -> outside" 2 "registry-password" check
fresh; printf 'bogus: 1\n' > "$OUTSIDE/10-x.yaml"; ln -s "$OUTSIDE" "$CONF/config.d"
run check
[ "$RC" -eq 0 ] || fail "config.d -> outside: the drop-in outside --root was read: $ERR"
rm "$OUTSIDE/10-x.yaml"; outside_intact "config.d -> outside (check)"; counted paths
fresh; mkfifo "$CONF/config.d"
refused special "config.d is a FIFO" 2 "config.d: Not a directory" check
fresh; rm -r "$ROOT/etc/rancher"; ln -s "$OUTSIDE" "$ROOT/etc/rancher"
run apply
[ "$RC" -ne 0 ] && [ "$RC" -ne 124 ] || fail "/etc/rancher -> outside: apply exited $RC"
outside_intact "/etc/rancher -> outside (apply)"; counted paths
fresh; rm -r "$ROOT/var/lib/k3s-mirror-agent"; ln -s "$OUTSIDE" "$ROOT/var/lib/k3s-mirror-agent"
run apply
outside_intact "state dir -> outside (apply)"; counted paths
fresh; rm -rf "$ROOT/run"; ln -s "$OUTSIDE" "$ROOT/run"
run apply
outside_intact "/run -> outside (lock, apply)"; counted paths
fresh; rm -rf "$ROOT/usr/local/share/ca-certificates/k3s-mirror-agent"
ln -s "$OUTSIDE" "$ROOT/usr/local/share/ca-certificates/k3s-mirror-agent"
run apply
outside_intact "CA folder -> outside (apply)"; counted paths
fresh; rm -rf "$ROOT/usr/local/share/ca-certificates/k3s-mirror-agent"
ln -s "$OUTSIDE" "$ROOT/usr/local/share/ca-certificates/k3s-mirror-agent"
cp "$OUTSIDE/ca.pem" "$OUTSIDE/harbor.home.lab.crt"
run restore
[ -f "$OUTSIDE/harbor.home.lab.crt" ] || fail "CA folder -> outside (restore): removed a file outside"
rm "$OUTSIDE/harbor.home.lab.crt"; outside_intact "CA folder -> outside (restore)"; counted paths

# state.json naming files that are not the agent's
state_with() {  # state_with JQ-FILTER
  jq "$1" "$WORK/pristine/var/lib/k3s-mirror-agent/state.json" > "$STATE"
}
fresh; state_with ".ca_files = [\"/usr/local/share/ca-certificates/k3s-mirror-agent/../../../../..$OUTSIDE/victim\"]"
refused state "state ca_files with .." 2 "is not in /usr/local/share/ca-certificates/k3s-mirror-agent" restore
fresh; state_with ".ca_files = [\"$OUTSIDE/victim\"]"
refused state "state ca_files absolute elsewhere" 2 "is not in" restore
fresh; state_with '.ca_files = ["/etc/ssl/certs/ca-certificates.crt"]'
refused state "state ca_files = the bundle" 2 "is not in" apply
fresh; state_with '.ca_files = ["/usr/local/share/ca-certificates/k3s-mirror-agent/sub/x.crt"]'
refused state "state ca_files in a subfolder" 2 "is not in" restore
fresh; state_with '.registries.path = "/etc/passwd"'
refused state "state registries path elsewhere" 2 "is not a registries.yaml the agent writes" restore
fresh; state_with '.registries.mirrors = ["a\u001b[2Jb"]'
refused state "state key with a control character" 2 "holds a control character" status
fresh; echo '{"version": 1' > "$STATE"
refused state "state truncated" 2 "read state" status

# ---- host names and the limits of a file name ---------------------------------------------
label=$(printf 'a%.0s' {1..63})
host253="$label.$label.$label.$(printf 'b%.0s' {1..61})"
for cmd in check apply; do
  fresh; rm -rf "$ROOT/run"
  sed -i "s|https://harbor.home.lab|https://$host253|" "$CONF/config.yaml"
  refused hosts "253-character host ($cmd)" 2 "at most 238 fit the file name" "$cmd"
  [ ! -e "$ROOT/run" ] || fail "253-character host ($cmd) left /run behind"
done
fresh; sed -i "s|https://harbor.home.lab|https://$(printf 'a%.0s' {1..64}).lab|" "$CONF/config.yaml"
refused hosts "64-character label" 2 "is not a valid host name" check
fresh; sed -i "s|docker.io: dockerhub-proxy|$(printf 'a%.0s' {1..64}).io: dockerhub-proxy|" "$CONF/config.yaml"
refused hosts "64-character label in a mirror" 2 "mirrors" check
fresh; host238="$label.$label.$label.$(printf 'c%.0s' {1..46})"
sed -i "s|https://harbor.home.lab|https://$host238|" "$CONF/config.yaml"
run check
[ "$RC" -eq 0 ] || fail "a 238-character host is refused by check: $ERR"
counted hosts

# ---- secrets in every output ---------------------------------------------------------------
# The node's file holds other registries' secrets in every YAML form.
others="configs:
  block.io:
    auth:
      password: |
        block-$SECRET
      username: ub
  cont.io:
    auth:
      password: first
        cont-$SECRET
      username: uc
  key.io:
    auth:
      ? password
      : key-$SECRET
  flow.io:
    auth: {password: flow-$SECRET, username: uf}
  token.io:
    auth:
      identity_token: >-
        tok-$SECRET
      auth: auth-$SECRET
mirrors:
  o.io:
    endpoint: [\"https://o.io\", \"https://user:url-$SECRET@m.o.io/v2\"]
"
for args in "diff" "diff --output json" "render" "render --output json" "apply --dry-run" \
    "apply --output json" "check" "status" "status --output json" "restore --dry-run" \
    "restore --output json"; do
  fresh; rm "$STATE" "$ROOT/var/lib/k3s-mirror-agent/registries.yaml.orig" 2>/dev/null || true
  node_file "$others"
  # shellcheck disable=SC2086
  run $args
  [ "$RC" -le 3 ] || fail "secrets ($args): exit $RC: $ERR"
  [[ "$args" != *json* ]] || json_ok "secrets ($args)"
  no_secret "secrets in the node's file ($args)"; counted secrets
done
fresh; rm "$STATE"; node_file "$others"
run diff
grep -q 'username: ub' <<<"$OUT" && grep -q 'username: uf' <<<"$OUT" ||
  fail "diff masked more than the secrets: $OUT"
counted secrets
# A one-letter password masks nothing else.
fresh; echo o > "$CONF/registry-password"
run render
grep -q '"https://harbor.home.lab/v2/dockerhub-proxy"' <<<"$OUT" && grep -q '^  docker.io:' <<<"$OUT" ||
  fail "a one-letter password mangled the render: $OUT"
counted secrets
run render --show-secrets
grep -q 'password: "o"' <<<"$OUT" || fail "render --show-secrets does not show it: $OUT"
counted secrets
# Credentials inside registry.url, in every shape, never echoed.
for url in "https://robot:$SECRET@harbor.home.lab" "https://robot:$SECRET@harbor.home.lab/v2/p" \
    "ftp://robot:$SECRET@harbor.home.lab" "harbor.home.lab/?token=$SECRET" \
    "https://harbor.home.lab/p?token=$SECRET" "https://harbor.home.lab/x#$SECRET" \
    "https://$SECRET@harbor.home.lab"; do
  fresh; printf '%s\n' "$GOOD_CONFIG" | sed "s|https://harbor.home.lab|$url|" > "$CONF/config.yaml"
  refused secrets "URL $url" 2 "registry.url" apply --output json
done
# The daemon's world-readable status.json, with a config whose URL holds a password.
fresh; printf '%s\n' "$GOOD_CONFIG" | sed "s|https://harbor.home.lab|https://u:$SECRET@harbor.home.lab/x|" \
  > "$CONF/config.yaml"
STATUS=$ROOT/run/k3s-mirror-agent/status.json
timeout -s KILL 20 "$AGENT" run --root "$ROOT" >"$WORK/out" 2>"$WORK/err" &
DAEMON=$!
on_exit stop_scratch_daemon
wait_for "status.json with the config error" grep -q 'registry.url' "$STATUS"
kill "$DAEMON"; wait "$DAEMON" || true
jq -e . "$STATUS" >/dev/null || fail "status.json is not JSON"
no_secret "daemon with credentials in the URL"; counted secrets

# The daemon with a hostile registries.yaml: it says why in status.json, does not crash (an alias
# cycle was a SIGSEGV crash loop) and stops on SIGTERM (a FIFO kept it blocked in open()).
daemon_case() {  # daemon_case NAME EXPECTED-IN-STATUS: the root is ready
  rm -f "$STATUS"
  "$AGENT" run --root "$ROOT" >"$WORK/out" 2>"$WORK/err" &
  DAEMON=$!
  wait_for "$1: status.json says '$2'" grep -qF "$2" "$STATUS"
  kill -TERM "$DAEMON"
  local deadline=$((SECONDS + 10)) rc=0
  while kill -0 "$DAEMON" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || fail "$1: the daemon ignored SIGTERM"
    sleep 0.05
  done
  wait "$DAEMON" || rc=$?
  [ "$rc" -eq 0 ] || fail "$1: the daemon exited $rc: $(cat "$WORK/err")"
  jq -e . "$STATUS" >/dev/null || fail "$1: status.json is not JSON"
  no_secret "$1"
  counted "${3:-special}"
}
fresh; rm "$REG"; mkfifo "$REG"
daemon_case "daemon, registries.yaml FIFO" "a FIFO, not a regular file"
fresh; node_file "$cycle"
daemon_case "daemon, alias cycle" "anchors (&name) are not supported" yaml

# ---- messages and JSON whatever the bytes ---------------------------------------------------
fresh; mkdir -p "$CONF/config.d"; printf 'bogus: 1\n' > "$CONF/config.d/"$'\xff\xfe'.yaml
refused encoding "invalid UTF-8 in a file name (JSON)" 2 "bogus: unknown key" apply --output json
fresh; mkdir -p "$CONF/config.d"; printf 'bogus: 1\n' > "$CONF/config.d/"$'a\e[31mb'.yaml
refused encoding "ESC in a file name (stderr escaped)" 2 'a\x1b[31mb.yaml' check
grep -q $'\e' "$WORK/err" && fail "stderr holds a raw ESC"
fresh; mkdir -p "$CONF/config.d"; printf 'bogus: 1\n' > "$CONF/config.d/"$'a\nb'.yaml
refused encoding "newline in a file name (one line)" 2 'a\nb.yaml' diff --output json
fresh; mkdir -p "$CONF/config.d"; printf 'bogus: 1\n' > "$CONF/config.d/"$'\xc3'.yaml
timeout -s KILL 20 "$AGENT" run --root "$ROOT" >"$WORK/out" 2>"$WORK/err" &
DAEMON=$!
wait_for "status.json with the drop-in error" grep -q 'bogus' "$STATUS"
kill "$DAEMON"; wait "$DAEMON" || true
jq -e . "$STATUS" >/dev/null || fail "daemon status.json with an invalid byte is not JSON"
counted encoding

# ---- status on a node the agent never touched ----------------------------------------------
rm -rf "$ROOT"; make_root; write_config
run status
[ "$RC" -eq 0 ] || fail "status without state.json exited $RC: $ERR"
grep -q "managed: nothing yet" <<<"$OUT" || fail "status without state.json says: $OUT"
counted state
run status --output json
[ "$RC" -eq 0 ] && json_ok "status json without state" && [ "$(jq -r .error <<<"$OUT")" = null ] ||
  fail "status --output json without state.json: $RC $OUT $ERR"
counted state

summary=""
for class in "${!PER_CLASS[@]}"; do summary+=" $class=${PER_CLASS[$class]}"; done
echo "hostile cases:$summary"
[ "$CASES" -ge 80 ] || fail "only $CASES hostile cases ran"
pass "$CASES hostile cases: refused with the right exit code and message, nothing changed, no secret shown"
