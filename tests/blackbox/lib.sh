# Shared by the black-box tests: each test script sources this, builds a scratch node root with
# the real update-ca-certificates layout and a CA made by the real openssl, runs the built agent
# against it with --root, and asserts on the files a person would look at. The helpers it shares
# with the booted-node tests (fail, on_exit, wait_until, make_ca, ...) are in tests/support/lib.sh.
# Needs: AGENT (the binary), openssl, jq, update-ca-certificates (ca-certificates).
# shellcheck source=tests/support/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../support/lib.sh"

: "${AGENT:?AGENT must name the k3s-mirror-agent binary (ctest sets it)}"
for tool in openssl jq update-ca-certificates sha256sum; do
  command -v "$tool" >/dev/null || fail "$tool is not installed"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/k3sma-bb.XXXXXX")
on_exit rm -rf "$WORK"
ROOT=$WORK/root
CONF=$ROOT/etc/k3s-mirror-agent
REG=$ROOT/etc/rancher/k3s/registries.yaml
CA_INSTALLED=$ROOT/usr/local/share/ca-certificates/k3s-mirror-agent/harbor.home.lab.crt
BUNDLE=$ROOT/etc/ssl/certs/ca-certificates.crt
STATE=$ROOT/var/lib/k3s-mirror-agent/state.json

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

# make_server_cert CA HOST: a server certificate for HOST signed by CA, at $WORK/HOST.crt
# (tests/support/lib.sh; make_ca NAME makes $WORK/NAME.pem).

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

# The registries.yaml a node had before the agent: a hand-written mirror and a TLS setting
# for a registry the agent does not manage; restore must give it back byte for byte.
own_registries() {
  cat <<'YAML'
# hand-written by the operator
mirrors:
  docker.io:
    endpoint: ["https://mirror.gcr.io"]
configs:
  registry.internal:5000:
    tls: {insecure_skip_verify: true}
YAML
}

setup_node() {
  make_root
  make_ca harbor
  cp "$WORK/harbor.pem" "$CONF/harbor-ca.pem"
  write_config
}

# agent ARGS...: runs the agent against the scratch root; sets RC, OUT (stdout), ERR (stderr).
agent() { capture "$AGENT" "$@" --root "$ROOT"; }

# Every file and directory under the root with its inode, mtime (ns), mode and content hash:
# two equal snapshots mean nothing was created, removed, rewritten or touched.
snapshot() {
  (cd "$ROOT" && find . -printf '%p %y %i %T@ %m %s %l\n' | sort &&
    find . -type f -exec sha256sum {} + | sort -k2)
}

mode_of() { stat -c %a "$1"; }

# start_scratch_daemon: `run --root $ROOT` in the background (killed at exit). djson/djson_is
# read its status.json, wait_for WHAT CMD... waits (10 s at most) for a condition, and
# idle_evaluations / wait_evaluated wait on the daemon's own facts (tests/support/lib.sh).
start_scratch_daemon() {
  STATUS=$ROOT/run/k3s-mirror-agent/status.json
  "$AGENT" run --root "$ROOT" >"$WORK/daemon.out" 2>"$WORK/daemon.err" &
  DAEMON=$!
  on_exit stop_scratch_daemon
}
stop_scratch_daemon() { kill "$DAEMON" 2>/dev/null || true; }
daemon_status() { cat "$STATUS"; }
sj() { djson "$1"; }
sj_is() { [ -f "$STATUS" ] && djson_is "$1" "$2"; }
wait_context() {
  [ -z "${DAEMON:-}" ] || echo "log: $(cat "$WORK/daemon.err")"
  [ ! -f "$WORK/nginx/access.log" ] || echo "nginx's log ends: $(tail -5 "$WORK/nginx/access.log")"
}
wait_for() {  # wait_for WHAT CMD...
  local what=$1
  shift
  wait_until 10 "$what" "$@"
}
