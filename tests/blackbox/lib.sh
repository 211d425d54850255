# Shared by the black-box tests: each test script sources this, builds a scratch node root with
# the real update-ca-certificates layout and a CA made by the real openssl, runs the built agent
# against it with --root, and asserts on the files a person would look at.
# Needs: AGENT (the binary), openssl, jq, update-ca-certificates (ca-certificates).
set -euo pipefail

: "${AGENT:?AGENT must name the k3s-mirror-agent binary (ctest sets it)}"
for tool in openssl jq update-ca-certificates sha256sum; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is not installed" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/k3sma-bb.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ROOT=$WORK/root
CONF=$ROOT/etc/k3s-mirror-agent
REG=$ROOT/etc/rancher/k3s/registries.yaml
CA_INSTALLED=$ROOT/usr/local/share/ca-certificates/k3s-mirror-agent/harbor.home.lab.crt
BUNDLE=$ROOT/etc/ssl/certs/ca-certificates.crt
STATE=$ROOT/var/lib/k3s-mirror-agent/state.json

fail() { echo "FAIL: $*" >&2; exit 1; }
trap 'echo "FAIL: ${BASH_SOURCE[0]}:$LINENO: a command failed (exit $?)" >&2' ERR
pass() { echo "PASS: $*"; }

# A node root laid out as Debian lays out the trust store, with one distribution CA (from the
# host's ca-certificates) rather than all 140, so update-ca-certificates takes milliseconds.
# Not none: with no CA left at all, update-ca-certificates leaves the old bundle in place.
make_root() {
  mkdir -p "$ROOT/etc/ssl/certs" "$ROOT/usr/share/ca-certificates/mozilla" \
    "$ROOT/etc/ca-certificates/update.d" "$CONF"
  local cas=(/usr/share/ca-certificates/mozilla/*.crt)  # a glob, sorted; no SIGPIPE'd pipeline
  local distro_ca=${cas[0]}
  [ -f "$distro_ca" ] || fail "no CA in /usr/share/ca-certificates/mozilla (install ca-certificates)"
  cp "$distro_ca" "$ROOT/usr/share/ca-certificates/mozilla/"
  echo "mozilla/$(basename "$distro_ca")" > "$ROOT/etc/ca-certificates.conf"
  # update-ca-certificates is run through a wrapper that counts its runs and then execs the
  # real one, so tests can assert "no command run" without faking the command.
  mkdir -p "$WORK/bin"
  cat > "$WORK/bin/update-ca-certificates" <<WRAP
#!/bin/sh
echo run >> "$WORK/update-ca-runs"
exec /usr/sbin/update-ca-certificates "\$@"
WRAP
  chmod +x "$WORK/bin/update-ca-certificates"
  export PATH="$WORK/bin:$PATH"
}

update_ca_runs() { [ -f "$WORK/update-ca-runs" ] && wc -l < "$WORK/update-ca-runs" || echo 0; }

# make_ca NAME: a self-signed CA (EC P-256, 1 year) at $WORK/NAME.pem with its key.
make_ca() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
    -subj "/CN=$1 test CA" -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign \
    -keyout "$WORK/$1.key" -out "$WORK/$1.pem" 2>/dev/null
}

# make_server_cert CA HOST: a server certificate for HOST signed by CA, at $WORK/HOST.crt.
make_server_cert() {
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$2" \
    -keyout "$WORK/$2.key" -out "$WORK/$2.csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\n' "$2" > "$WORK/$2.ext"
  openssl x509 -req -in "$WORK/$2.csr" -CA "$WORK/$1.pem" -CAkey "$WORK/$1.key" \
    -CAcreateserial -days 30 -extfile "$WORK/$2.ext" -out "$WORK/$2.crt" 2>/dev/null
}

# The README's example: three mirrors through a Harbor with its own CA.
write_config() {
  cat > "$CONF/config.yaml" <<'YAML'
registry:
  url: https://harbor.home.lab
  ca_file: /etc/k3s-mirror-agent/harbor-ca.pem
mirrors:
  docker.io: dockerhub-proxy
  ghcr.io: ghcr-proxy
  quay.io: quay-proxy
YAML
}

setup_node() {
  make_root
  make_ca harbor
  cp "$WORK/harbor.pem" "$CONF/harbor-ca.pem"
  write_config
}

# agent ARGS...: runs the agent against the scratch root; sets RC, OUT (stdout), ERR (stderr).
agent() {
  RC=0
  "$AGENT" "$@" --root "$ROOT" >"$WORK/out" 2>"$WORK/err" || RC=$?
  OUT=$(cat "$WORK/out")
  ERR=$(cat "$WORK/err")
}

expect_rc() {
  [ "$RC" -eq "$1" ] || fail "expected exit $1, got $RC; stdout: $OUT; stderr: $ERR"
}

# Every file and directory under the root with its inode, mtime (ns), mode and content hash:
# two equal snapshots mean nothing was created, removed, rewritten or touched.
snapshot() {
  (cd "$ROOT" && find . -printf '%p %y %i %T@ %m %s %l\n' | sort &&
    find . -type f -exec sha256sum {} + | sort -k2)
}

mode_of() { stat -c %a "$1"; }

# start_scratch_daemon: `run --root $ROOT` in the background (killed at exit), with sj/sj_is to
# read its status.json and wait_for to wait (10 s at most) for a condition.
start_scratch_daemon() {
  STATUS=$ROOT/run/k3s-mirror-agent/status.json
  "$AGENT" run --root "$ROOT" >"$WORK/daemon.out" 2>"$WORK/daemon.err" &
  DAEMON=$!
  trap 'kill $DAEMON 2>/dev/null || true; rm -rf "$WORK"' EXIT
}
sj() { jq -r "$1" "$STATUS"; }
sj_is() { [ -f "$STATUS" ] && [ "$(sj "$1")" = "$2" ]; }
wait_for() {  # wait_for WHAT CMD...
  local what=$1
  shift
  local deadline=$((SECONDS + 10))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || fail "$what: not within 10 s; log: $(cat "$WORK/daemon.err")"
    sleep 0.05
  done
}
