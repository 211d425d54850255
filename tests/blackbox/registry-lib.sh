# Real registry parts for the probe tests (tests/node/README.md): Debian's docker-registry
# (CNCF distribution) on loopback, fronted by nginx with TLS from a test CA, the way a Harbor
# sits behind its TLS front. Sourced after lib.sh; everything lives in $WORK and stops on exit.

for tool in docker-registry nginx; do
  command -v "$tool" >/dev/null || PATH=$PATH:/usr/sbin
  command -v "$tool" >/dev/null ||
    fail "$tool is not installed (tests/run-all.sh installs docker-registry and nginx-light)"
done

# Every server started here; stopped at exit (free_port, wait_listening: tests/support/lib.sh).
PIDS=()
stop_all() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; PIDS=(); }
on_exit stop_all

# nginx writes a request's line to $WORK/nginx/access.log once it has sent the response, so the
# line of the last request an agent run made may come a moment after the run has ended.
# in_access_log ERE: the log has a line matching ERE. wait_logged ERE WHAT: waits for one (10 s;
# a timeout shows the log's end, lib.sh's wait_context).
in_access_log() { grep -qE "$1" "$WORK/nginx/access.log"; }
wait_logged() { wait_until 10 "$2" in_access_log "$1"; }

# registry_yml: the start of a docker-registry config on 127.0.0.1:$REGISTRY_PORT, storage in
# $WORK/registry (the http block stays open).
registry_yml() {
  printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
    "$WORK/registry" "$REGISTRY_PORT"
}

# harbor_config: the start of an agent config for the cache start_harbor runs (its CA at the
# node path /etc/k3s-mirror-agent/harbor-ca.pem), docker.io through dockerhub-proxy.
harbor_config() {
  cat <<YAML
registry:
  url: https://localhost:$TLS_PORT
  ca_file: /etc/k3s-mirror-agent/harbor-ca.pem
mirrors:
  docker.io: dockerhub-proxy
YAML
}

# start_registry: docker-registry on 127.0.0.1:$REGISTRY_PORT, storage in $WORK.
start_registry() {
  REGISTRY_PORT=$(free_port)
  mkdir -p "$WORK/registry"
  registry_yml > "$WORK/registry.yml"
  docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
  PIDS+=($!)
  wait_listening 127.0.0.1 "$REGISTRY_PORT"
}

# start_tls_front CERT KEY: nginx on 127.0.0.1:$TLS_PORT with that certificate, proxying to
# the registry. Stop it with stop_tls_front.
start_tls_front() {
  TLS_PORT=${TLS_PORT:-$(free_port)}
  mkdir -p "$WORK/nginx"
  { nginx_head "$WORK/nginx"; cat <<CONF; } > "$WORK/nginx.conf"
  access_log off;
  server {
    listen 127.0.0.1:$TLS_PORT ssl;
    ssl_certificate $1;
    ssl_certificate_key $2;
    location /v2/ { proxy_pass http://127.0.0.1:$REGISTRY_PORT; }
  }
}
CONF
  start_nginx "$WORK/nginx.conf" "$WORK/nginx/stdout.log"
  PIDS+=($NGINX_PID)
  wait_listening 127.0.0.1 "$TLS_PORT"
}
stop_tls_front() {
  kill "$NGINX_PID" 2>/dev/null || true
  wait "$NGINX_PID" 2>/dev/null || true
}

# start_harbor: what a Harbor looks like to a node, from Debian's parts. docker-registry with
# token auth (`auth: token`, tokens from tests/support/token-issuer.py signed RS256 with an x5c
# header), behind nginx with TLS from the test CA "harbor" for host localhost on $TLS_PORT:
# /v2/<project>/... goes to the registry, /service/token to the issuer, as on a Harbor; the
# project headless-proxy refuses HEAD on manifests (405), as some proxies do. nginx logs every request to
# $WORK/nginx/access.log, the issuer every token to $WORK/issuer.log. The robot account's
# password is in $WORK/robot-password. push_image REF TEXT puts a tiny image there with skopeo.
start_harbor() {
  for tool in skopeo python3; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (install-build-deps.sh installs it)"
  done
  python3 -c 'import cryptography' 2>/dev/null || fail "python3-cryptography is not installed"
  local support
  support=$(cd "$(dirname "$TESTLIB")/../support" && pwd)
  REGISTRY_PORT=$(free_port)
  ISSUER_PORT=$(free_port)
  TLS_PORT=$(free_port)
  make_server_cert harbor localhost
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=token signer" \
    -keyout "$WORK/token.key" -out "$WORK/token.crt" 2>/dev/null
  printf 'robot-%s\n' "$RANDOM$RANDOM" > "$WORK/robot-password"
  mkdir -p "$WORK/registry" "$WORK/nginx" "$WORK/skopeo-certs"
  cp "$WORK/harbor.pem" "$WORK/skopeo-certs/ca.crt"
  python3 "$support/token-issuer.py" --port "$ISSUER_PORT" --key "$WORK/token.key" \
    --cert "$WORK/token.crt" --issuer test-issuer --robot-password-file "$WORK/robot-password" \
    --log "$WORK/issuer.log" >"$WORK/issuer.out" 2>&1 &
  PIDS+=($!)
  { registry_yml; cat <<YAML; } > "$WORK/registry.yml"
  relativeurls: true
auth:
  token:
    realm: https://localhost:$TLS_PORT/service/token
    service: harbor-registry
    issuer: test-issuer
    rootcertbundle: $WORK/token.crt
YAML
  docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
  PIDS+=($!)
  { nginx_head "$WORK/nginx"; cat <<CONF; } > "$WORK/nginx.conf"
  # \$connection: the tests see whether the agent reused its connection between probes.
  log_format conn '\$connection \$connection_requests "\$request" \$status "\$http_user_agent"';
  access_log $WORK/nginx/access.log conn;
  server {
    listen 127.0.0.1:$TLS_PORT ssl;
    ssl_certificate $WORK/localhost.crt;
    ssl_certificate_key $WORK/localhost.key;
    proxy_set_header Host \$http_host;
    location /service/token { proxy_pass http://127.0.0.1:$ISSUER_PORT; }
    location ~ ^/v2/headless-proxy/.*/manifests/ {
      if (\$request_method = HEAD) { return 405; }
      proxy_pass http://127.0.0.1:$REGISTRY_PORT;
    }
    location /v2/ { proxy_pass http://127.0.0.1:$REGISTRY_PORT; }
  }
}
CONF
  start_nginx "$WORK/nginx.conf" "$WORK/nginx/stdout.log"
  PIDS+=($NGINX_PID)
  wait_listening 127.0.0.1 "$ISSUER_PORT"
  wait_listening 127.0.0.1 "$REGISTRY_PORT"
  wait_listening 127.0.0.1 "$TLS_PORT"
  OCI_IMAGES=0
}

# push_image REPO:TAG TEXT: a one-file image to localhost:$TLS_PORT/REPO:TAG, as admin.
push_image() {
  local support layout
  support=$(cd "$(dirname "$TESTLIB")/../support" && pwd)
  OCI_IMAGES=$((OCI_IMAGES + 1))
  layout=$WORK/oci-$OCI_IMAGES
  python3 "$support/make-oci-image.py" "$layout" "${1##*:}" "$2"
  skopeo copy -q --dest-creds admin:adminpw --dest-cert-dir "$WORK/skopeo-certs" \
    "oci:$layout:${1##*:}" "docker://localhost:$TLS_PORT/$1" >"$WORK/skopeo.log" 2>&1 ||
    fail "skopeo could not push $1: $(cat "$WORK/skopeo.log")"
}

# registry_digest REPO:TAG: the manifest digest the registry reports for it (skopeo, as admin).
registry_digest() {
  skopeo inspect --creds admin:adminpw --cert-dir "$WORK/skopeo-certs" \
    --format '{{.Digest}}' "docker://localhost:$TLS_PORT/$1"
}
