#!/usr/bin/env bash
# After a hot apply (no restart to tell whether the new endpoints work) every verify.images
# image is resolved through them, whatever verify.preflight says, against a Harbor of Debian's
# parts (registry-lib.sh start_harbor): a project that does not hold the image makes apply exit 1
# with rolled_back true, reload null and the registry's error, and every file under the root
# (certs.d included) is back byte for byte, no journal left; once the project holds it, the same
# change goes hot.
# shellcheck source=tests/blackbox/lib.sh
source "$TESTLIB"
# shellcheck source=tests/blackbox/registry-lib.sh
source "$(dirname "$TESTLIB")/registry-lib.sh"
setup_node
start_harbor
push_image dockerhub-proxy/library/busybox:1.36 "busybox 1.36"
CERTS_D=$ROOT/var/lib/rancher/k3s/agent/etc/containerd/certs.d
TOML=$ROOT/var/lib/rancher/k3s/agent/etc/containerd/config.toml

# config PROJECT: docker.io mirrored to PROJECT; preflight none, so only the check after the hot
# write asks the cache.
config() {
  cat > "$CONF/config.yaml" <<YAML
registry:
  url: https://localhost:$TLS_PORT
  ca_file: /etc/k3s-mirror-agent/harbor-ca.pem
mirrors:
  docker.io: $1
verify:
  preflight: none
  images: [docker.io/library/busybox:1.36]
YAML
}
# Content, type and mode of everything under the root (a put-back file is a new inode).
contents() {
  (cd "$ROOT" && find . -printf '%p %y %m %s %l\n' | sort && find . -type f -exec sha256sum {} + | sort -k2)
}
field() { jq -r "$1" <<<"$OUT"; }

config dockerhub-proxy
agent apply --output json
expect_rc 0
# What k3s writes at start from that registries.yaml: config.toml pointing containerd at certs.d,
# and certs.d (the agent's model of k3s, as hot_reload_scratch_root.sh does).
mkdir -p "$(dirname "$TOML")"
printf '[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "%s"\n' \
  /var/lib/rancher/k3s/agent/etc/containerd/certs.d > "$TOML"
agent render --certs-d "$CERTS_D"
expect_rc 0

# The change to a project that does not hold the image: written hot, checked, undone.
config dockerhub-mirror
before=$(contents)
agent apply --output json
expect_rc 1
[ "$(field .rolled_back)" = true ] || fail "not rolled back: $OUT"
[ "$(field .reload)" = null ] || fail "reload after a rollback: $OUT"
[ "$(field .changed)" = false ] || fail "changed after a rollback: $OUT"
grep -q "resolve docker.io/library/busybox:1.36 at https://localhost:$TLS_PORT/v2/dockerhub-mirror/library/busybox/manifests/1.36: HTTP 404" \
  <<<"$(field .error)" || fail "the error does not name the image, URL and registry error: $OUT"
[ "$(contents)" = "$before" ] || fail "the root is not as it was: $(diff <(echo "$before") <(contents))"
grep -q 'v2/dockerhub-proxy' "$CERTS_D/docker.io/hosts.toml" || fail "certs.d not put back"
[ -f "$ROOT/var/lib/k3s-mirror-agent/journal.json" ] && fail "the journal was left behind"

# The project holds it now: the same change stays, hot.
push_image dockerhub-mirror/library/busybox:1.36 "busybox 1.36"
agent apply --output json
expect_rc 0
[ "$(field .reload)" = hot ] || fail "not hot: $OUT"
[ "$(field .rolled_back)" = false ] || fail "rolled back: $OUT"
grep -q 'v2/dockerhub-mirror' "$CERTS_D/docker.io/hosts.toml" || fail "certs.d not written"
pass "hot apply: an image that does not resolve through the new endpoints undoes it (exit 1, root byte for byte); one that does keeps it hot"
