#!/usr/bin/env bash
# check --probe with verify.images against a Harbor made of Debian's parts (registry-lib.sh
# start_harbor: docker-registry with token auth behind nginx with TLS from a test CA): an image
# that resolves (its digest is the one the registry reports; the token asked anonymously for
# the project's path), a missing tag (MANIFEST_UNKNOWN), a missing project, a private project
# without credentials (UNAUTHORIZED), with the robot account (up; the password in no output),
# with a wrong password, HEAD refused (GET fallback), a wrong CA, the cache stopped (exit 5 well
# within the timeout), an image whose host is not mirrored (exit 2). Never changes the node.
source "$TESTLIB"
source "$(dirname "$TESTLIB")/registry-lib.sh"
setup_node
start_harbor
push_image dockerhub-proxy/library/busybox:1.36 "busybox 1.36"
push_image headless-proxy/team/alpine:3 "alpine 3"
push_image private-proxy/team/app:1 "private app"
want_busybox=$(registry_digest dockerhub-proxy/library/busybox:1.36)
want_alpine=$(registry_digest headless-proxy/team/alpine:3)
want_app=$(registry_digest private-proxy/team/app:1)
before=$(snapshot)

# config IMAGE...: the cache on localhost with four projects and these verify.images.
config() {
  cat > "$CONF/config.yaml" <<YAML
registry:
  url: https://localhost:$TLS_PORT
  ca_file: /etc/k3s-mirror-agent/harbor-ca.pem
${AUTH:-}
mirrors:
  docker.io: dockerhub-proxy
  quay.io: headless-proxy
  ghcr.io: private-proxy
  registry.k8s.io: missing-proxy
verify:
  images:
YAML
  for image in "$@"; do echo "    - $image" >> "$CONF/config.yaml"; done
}
image() { jq -r ".probe.images[$1].$2" <<<"$OUT"; }

# Resolves; docker.io/busybox is library/busybox there, as containerd asks for it.
config docker.io/busybox:1.36
agent check --probe --output json
expect_rc 0
[ "$(image 0 image)" = docker.io/library/busybox:1.36 ] || fail "name: $OUT"
[ "$(image 0 up)" = true ] && [ "$(image 0 http_status)" = 200 ] || fail "not up: $OUT"
[ "$(image 0 digest)" = "$want_busybox" ] || fail "digest $(image 0 digest), the registry says $want_busybox"
[ "$(image 0 url)" = "https://localhost:$TLS_PORT/v2/dockerhub-proxy/library/busybox/manifests/1.36" ] ||
  fail "url: $(image 0 url)"
grep -q 'token user=anonymous service=harbor-registry scope=repository:dockerhub-proxy/library/busybox:pull ' \
  "$WORK/issuer.log" || fail "no anonymous pull token asked: $(cat "$WORK/issuer.log")"
wait_logged '"HEAD /v2/dockerhub-proxy/library/busybox/manifests/1\.36 HTTP/1\.1" 200 "k3s-mirror-agent/' \
  "resolved with HEAD"
agent check --probe
expect_rc 0
grep -q "^image up: docker.io/library/busybox:1.36 resolved to $want_busybox in [0-9]* ms$" <<<"$OUT" ||
  fail "text: $OUT"

# A missing tag, then a missing project: exit 5, the error names image, URL and the code.
config docker.io/library/busybox:9.99 registry.k8s.io/pause:3.9
agent check --probe --output json
expect_rc 5
[ "$(jq -r .probe.up <<<"$OUT")" = true ] || fail "the cache itself is up: $OUT"
[ "$(image 0 up)" = false ] && [ "$(image 0 http_status)" = 404 ] || fail "missing tag: $OUT"
grep -q "^resolve docker.io/library/busybox:9.99 at https://localhost:$TLS_PORT/v2/dockerhub-proxy/library/busybox/manifests/9.99: HTTP 404 MANIFEST_UNKNOWN" <<<"$(image 0 error)" ||
  fail "missing tag error: $(image 0 error)"
# (docker-registry says MANIFEST_UNKNOWN for a repository it never had; Harbor says NOT_FOUND.)
[ "$(image 1 up)" = false ] && grep -q "pause:3.9 at .*/v2/missing-proxy/pause/manifests/3.9: HTTP 404 [A-Z_]* (" <<<"$(image 1 error)" ||
  fail "missing project: $(image 1 error)"
[ "$(jq -r .error <<<"$OUT")" = "$(image 0 error)" ] || fail "top-level error: $OUT"
agent check --probe
expect_rc 5
grep -q "^image down: resolve docker.io/library/busybox:9.99 at " <<<"$OUT" || fail "text: $OUT"

# A private project: anonymous gets a token without pull, the registry says 401.
config ghcr.io/team/app:1
agent check --probe --output json
expect_rc 5
grep -q "ghcr.io/team/app:1 at .*/v2/private-proxy/team/app/manifests/1: HTTP 401 UNAUTHORIZED" <<<"$(image 0 error)" ||
  fail "private, anonymous: $OUT"
# With the robot account: up, and its password in nothing the agent printed.
install -m 0600 "$WORK/robot-password" "$CONF/registry-password"
AUTH='  auth:
    username: robot$k3s
    password_file: /etc/k3s-mirror-agent/registry-password'
config ghcr.io/team/app:1
before_auth=$(snapshot)
agent check --probe --output json
expect_rc 0
[ "$(image 0 digest)" = "$want_app" ] || fail "private with robot: $OUT"
grep -q 'token user=robot$k3s .*scope=repository:private-proxy/team/app:pull ' "$WORK/issuer.log" ||
  fail "no token for the robot: $(cat "$WORK/issuer.log")"
agent check --probe --verbose
password=$(cat "$WORK/robot-password")
grep -qF "$password" <<<"$OUT$ERR" && fail "the password is in the output"
# A wrong password: the token endpoint says 401; the message says so, without the password.
echo wrong-secret-123 > "$CONF/registry-password"
agent check --probe --output json
expect_rc 5
grep -q "ask for a token at https://localhost:$TLS_PORT/service/token: HTTP 401 UNAUTHORIZED" <<<"$(image 0 error)" ||
  fail "wrong password: $OUT"
grep -q wrong-secret-123 <<<"$OUT$ERR" && fail "the wrong password is in the output"
AUTH=''
rm "$CONF/registry-password"

# HEAD refused by the front (405): resolved with GET, same digest.
config quay.io/team/alpine:3
agent check --probe --output json
expect_rc 0
[ "$(image 0 digest)" = "$want_alpine" ] || fail "HEAD refused: $OUT"
wait_logged '"GET /v2/headless-proxy/team/alpine/manifests/3 HTTP/1\.1" 200 "k3s-mirror-agent/' \
  "GET 200 after HEAD was refused"
in_access_log '"HEAD /v2/headless-proxy/team/alpine/manifests/3 HTTP/1\.1" 405' ||
  fail "no HEAD 405 before the GET: $(tail -5 "$WORK/nginx/access.log")"

# An image from an upstream that is not mirrored: a config error naming file, line and key.
config docker.io/library/busybox:1.36 gcr.io/distroless/static:latest
agent check --probe
expect_rc 2
grep -q "config.yaml:13: verify.images: \"gcr.io/distroless/static:latest\" is from gcr.io, which is not mirrored" <<<"$ERR" ||
  fail "not mirrored: $ERR"

# Another CA than the one that signed the cache's certificate: the cache and every image down.
config docker.io/library/busybox:1.36
make_ca other
cp "$WORK/other.pem" "$CONF/harbor-ca.pem"
agent check --probe --output json
expect_rc 5
grep -q "certificate verify failed" <<<"$(jq -r .probe.error <<<"$OUT")" &&
  grep -q "certificate verify failed" <<<"$(image 0 error)" || fail "wrong CA: $OUT"
cp "$WORK/harbor.pem" "$CONF/harbor-ca.pem"

# The cache stopped: down at once, not after the 10 s timeout.
stop_tls_front
start=$SECONDS
agent check --probe --output json
expect_rc 5
[ $((SECONDS - start)) -lt 10 ] || fail "check --probe took $((SECONDS - start)) s with the cache stopped"
grep -q "Connection refused" <<<"$(image 0 error)" || fail "stopped cache: $OUT"

# check never wrote the node: the same files as before, but for the config this test edits.
node_files() { grep -v 'etc/k3s-mirror-agent' <<<"$1"; }
[ "$(node_files "$(snapshot)")" = "$(node_files "$before")" ] || fail "check --probe changed the node"
pass "verify.images: resolves (registry's digest), missing tag/project, private with and without robot, wrong password, HEAD refused, wrong CA, cache stopped, unmirrored host"
