#!/usr/bin/env bash
# apply with verify.preflight against a Harbor of Debian's parts (registry-lib.sh start_harbor):
# require with an image that does not resolve exits 5 and leaves the root byte for byte as it
# was; none applies without asking the cache anything; warn applies and says which image failed;
# require with images that resolve applies.
source "$TESTLIB"
source "$(dirname "$TESTLIB")/registry-lib.sh"
setup_node
start_harbor
push_image dockerhub-proxy/library/busybox:1.36 "busybox 1.36"

# config PREFLIGHT IMAGE...
config() {
  local preflight=$1
  shift
  { harbor_config; cat <<YAML; } > "$CONF/config.yaml"
${EXTRA_MIRROR:-}
verify:
  preflight: $preflight
  images:
YAML
  for image in "$@"; do echo "    - $image" >> "$CONF/config.yaml"; done
}
agent_requests() { grep -c '/manifests/.*"k3s-mirror-agent/' "$WORK/nginx/access.log" || true; }
# Counts are read once the run's last request is in the log (wait_logged, registry-lib.sh).
more_requests_than() { [ "$(agent_requests)" -gt "$1" ]; }

# require, and one of the two images has no such tag: exit 5, nothing touched.
config require docker.io/library/busybox:1.36 docker.io/library/busybox:9.99
before=$(snapshot)
agent apply --output json
expect_rc 5
[ "$(jq -r .changed <<<"$OUT")" = false ] || fail "require: changed: $OUT"
grep -q "preflight (verify.preflight: require): nothing was changed: resolve docker.io/library/busybox:9.99 at .*HTTP 404 MANIFEST_UNKNOWN" \
  <<<"$(jq -r .error <<<"$OUT")" || fail "require: error: $OUT"
[ "$(snapshot)" = "$before" ] || fail "require: the root changed"
[ "$(update_ca_runs)" = 0 ] || fail "require: update-ca-certificates ran"

# none: applied, and not one manifest asked for (a tag of its own: checked again at the end,
# when any line of this apply would long be in the log).
wait_logged '/busybox/manifests/1\.36 HTTP/1\.1" 200 "k3s-mirror-agent/' "require's request for 1.36"
wait_logged '/busybox/manifests/9\.99 HTTP/1\.1" 404 "k3s-mirror-agent/' "require's request for 9.99"
asked=$(agent_requests)
config none docker.io/library/busybox:8.88
agent apply --output json
expect_rc 0
[ "$(jq -r .changed <<<"$OUT")" = true ] || fail "none: $OUT"
grep -q '/v2/dockerhub-proxy"' "$REG" || fail "none: registries.yaml not written"
[ "$(agent_requests)" = "$asked" ] || fail "none: the cache was asked"
[ "$(jq -r '.warnings | length' <<<"$OUT")" = 0 ] || fail "none: warnings: $OUT"

# warn (the default when preflight is not set): applied, with a warning naming the image.
EXTRA_MIRROR='  quay.io: quay-proxy'
config warn docker.io/library/busybox:9.99
sed -i '/preflight: warn/d' "$CONF/config.yaml"
agent apply --output json
expect_rc 0
grep -q 'quay.io' "$REG" || fail "warn: registries.yaml not written"
grep -q "preflight (verify.preflight: warn): resolve docker.io/library/busybox:9.99 at .*MANIFEST_UNKNOWN.*; applying anyway" \
  <<<"$(jq -r '.warnings[]' <<<"$OUT")" || fail "warn: $OUT"
wait_until 10 "warn asking the cache (nginx's log)" more_requests_than "$asked"

# require with an image that resolves: applied.
EXTRA_MIRROR='  ghcr.io: ghcr-proxy'
config require docker.io/library/busybox:1.36
agent apply --output json
expect_rc 0
grep -q 'ghcr.io' "$REG" && ! grep -q 'quay.io' "$REG" || fail "require, up: registries.yaml: $(cat "$REG")"
! grep -q '/manifests/8.88 ' "$WORK/nginx/access.log" || fail "none: the cache was asked for its image"
pass "preflight: require stops (exit 5, root unchanged), none asks nothing, warn warns and applies, require with a good image applies"
