# A real pull-through cache for the booted nodes, on the host's loopback (the node shares the
# host's network namespace), built from Debian's parts:
#   - "Docker Hub": docker-registry (CNCF distribution 2.8) on 127.0.0.1:<random>, holding the
#     images the test makes, behind nginx on $HUB_IP:443 with TLS from the test CA "hub", which
#     the node trusts through its system store, as a real node trusts Docker Hub's public CA;
#   - the cache: a second docker-registry in pull-through mode (proxy.remoteurl, the upstream's
#     plain HTTP side, so the hub front's log only shows what the node itself fetched), behind
#     nginx on $CACHE_IP:443 with TLS from the test CA "harbor", serving Harbor-style project
#     paths: /v2/dockerhub-proxy/... and /v2/hub-cache/... are both that cache.
# The node maps registry-1.docker.io to $HUB_IP and harbor.home.lab to $CACHE_IP in its
# /etc/hosts, so containerd's default endpoint for docker.io (https://registry-1.docker.io/v2,
# port 443) stays on this machine and every request is in one of two access logs:
#   $WORK/cache/hub-access.log    requests the node sent to "Docker Hub" (its fallback)
#   $WORK/cache/cache-access.log  requests the node sent to the cache's projects
# Port 443 is fixed by containerd, so each run takes its own pair of loopback addresses
# 127.0.N.1 / 127.0.N.2 and holds a lock on /run/k3sma-loopback-127.0.N.lock for its lifetime:
# two runs never share one (other tests here use random high ports on 127.0.0.1 only).
# Sourced after lib.sh (needs fail, WORK, NODE).

# A missing tool fails the test with CI=true and skips it elsewhere (tests/support/lib.sh).
need_tools docker-registry nginx skopeo flock
# shellcheck source=../blackbox/registry-lib.sh
source "$NODE_DIR/../blackbox/registry-lib.sh"  # PIDS, stop_all
# A front restarted in a scenario's subshell is not in PIDS.
on_exit stop_front cache

CACHE_DIR=$WORK/cache
HUB_LOG=$CACHE_DIR/hub-access.log
CACHE_LOG=$CACHE_DIR/cache-access.log

# claim_loopback: picks 127.0.N.0/24 that no other run holds (flock, released when this shell
# exits) and where nothing listens on port 443; sets HUB_IP and CACHE_IP.
claim_loopback() {
  local n tries
  for tries in $(seq 50); do
    n=$((1 + RANDOM % 254))
    exec {LOOPBACK_LOCK}>"/run/k3sma-loopback-127.0.$n.lock"
    if flock -n "$LOOPBACK_LOCK"; then
      if ! listening "127.0.$n.1" 443 && ! listening "127.0.$n.2" 443; then
        HUB_IP=127.0.$n.1
        CACHE_IP=127.0.$n.2
        return
      fi
    fi
    exec {LOOPBACK_LOCK}>&-
  done
  fail "no free 127.0.N.0/24 loopback pair for port 443 after $tries tries"
}

# server_cert CA NAME IP: a certificate for NAME (and IP) signed by the test CA $WORK/CA.pem.
server_cert() { make_server_cert "$1" "$2" 30 "$3" "$CACHE_DIR"; }

# registry NAME PORT [PROXY-URL]: docker-registry on 127.0.0.1:PORT, storage in $CACHE_DIR/NAME;
# with PROXY-URL a pull-through cache of that registry.
registry() {
  mkdir -p "$CACHE_DIR/$1"
  {
    printf 'version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\n'
    printf 'storage:\n  filesystem:\n    rootdirectory: %s\n' "$CACHE_DIR/$1"
    printf 'http:\n  addr: 127.0.0.1:%s\n' "$2"
    [ -z "${3:-}" ] || printf 'proxy:\n  remoteurl: %s\n' "$3"
  } >"$CACHE_DIR/$1.yml"
  docker-registry serve "$CACHE_DIR/$1.yml" >"$CACHE_DIR/$1.log" 2>&1 &
  PIDS+=($!)
  wait_listening 127.0.0.1 "$2"
}

# tls_front NAME IP CERT-NAME LOCATIONS: nginx on IP:443 with CERT-NAME's certificate; every
# request goes to $CACHE_DIR/NAME-access.log as "METHOD URI STATUS".
tls_front() {
  local dir=$CACHE_DIR/nginx-$1
  mkdir -p "$dir"
  { nginx_head "$dir"; cat <<CONF; } >"$dir/nginx.conf"
  log_format pulls '\$request_method \$request_uri \$status';
  access_log $CACHE_DIR/$1-access.log pulls;
  client_max_body_size 0;
  server {
    listen $2:443 ssl;
    ssl_certificate $CACHE_DIR/$3.crt;
    ssl_certificate_key $CACHE_DIR/$3.key;
    $4
  }
}
CONF
  start_nginx "$dir/nginx.conf" "$dir/stdout.log"
  PIDS+=($NGINX_PID)
  wait_listening "$2" 443
}
# stop_front NAME: stops that nginx by its pid file (the shell that started it may be a
# scenario's subshell, whose variables are gone).
stop_front() {
  local pidfile=$CACHE_DIR/nginx-$1/nginx.pid
  [ -f "$pidfile" ] || return 0
  kill "$(cat "$pidfile")" 2>/dev/null || true
  rm -f "$pidfile"
}

# cache_start: the upstream, the cache and both TLS fronts; the CAs are $WORK/hub.pem (install
# it in the node's trust store: node_trust_hub) and $WORK/harbor.pem (the agent's
# registry.ca_file; setup_config makes it).
cache_start() {
  mkdir -p "$CACHE_DIR"
  claim_loopback
  [ -f "$WORK/hub.pem" ] || make_ca hub
  [ -f "$WORK/harbor.pem" ] || make_ca harbor
  server_cert hub registry-1.docker.io "$HUB_IP"
  server_cert harbor harbor.home.lab "$CACHE_IP"
  UPSTREAM_PORT=$(free_port)
  registry upstream "$UPSTREAM_PORT"
  CACHE_PORT=$(free_port)
  registry cache "$CACHE_PORT" "http://127.0.0.1:$UPSTREAM_PORT"
  tls_front hub "$HUB_IP" registry-1.docker.io \
    "location /v2/ { proxy_pass http://127.0.0.1:$UPSTREAM_PORT; }"
  cache_up
}
# cache_up / cache_down: the cache's TLS front (what the node reaches) starts or stops.
cache_up() {
  # A Harbor project path is the registry's /v2/ with the project name cut off.
  tls_front cache "$CACHE_IP" harbor.home.lab "
    location = /v2/ { proxy_pass http://127.0.0.1:$CACHE_PORT; }
    location /v2/dockerhub-proxy/ { proxy_pass http://127.0.0.1:$CACHE_PORT/v2/; }
    location /v2/hub-cache/ { proxy_pass http://127.0.0.1:$CACHE_PORT/v2/; }"
}
cache_down() {
  stop_front cache
  local deadline=$((SECONDS + 10))
  while listening "$CACHE_IP" 443; do
    [ $SECONDS -lt $deadline ] || fail "the cache's front did not stop"
    sleep 0.1
  done
}

# node_cache_names: the node's /etc/hosts sends Docker Hub and the cache to this run's loopback
# addresses; node_trust_hub: the node trusts the hub CA (before boot: containerd loads the
# system pool once per process).
node_cache_names() {
  printf '%s\tregistry-1.docker.io\n%s\tharbor.home.lab\n' "$HUB_IP" "$CACHE_IP" >>"$NODE/etc/hosts"
}
node_trust_hub() {
  cp "$WORK/hub.pem" "$NODE/usr/local/share/ca-certificates/test-docker-hub.crt"
  chroot "$NODE" update-ca-certificates >/dev/null 2>&1 || fail "update-ca-certificates in the node failed"
}

# make_image NAME: a one-layer image (one small file) made here as an OCI layout, pushed to the
# upstream as library/NAME:1 with skopeo.
make_image() {
  local dir=$CACHE_DIR/img-$1
  mkdir -p "$dir/rootfs" "$dir/oci/blobs/sha256"
  echo "image $1 made by $0" >"$dir/rootfs/hello.txt"
  tar -C "$dir/rootfs" --numeric-owner --owner=0 --group=0 --mtime=@0 -cf "$dir/layer.tar" hello.txt
  gzip -n -c "$dir/layer.tar" >"$dir/layer.tar.gz"
  local diff_id layer layer_size config config_size manifest manifest_size
  diff_id=$(sha256sum <"$dir/layer.tar" | cut -d' ' -f1)
  layer=$(sha256sum <"$dir/layer.tar.gz" | cut -d' ' -f1)
  layer_size=$(stat -c %s "$dir/layer.tar.gz")
  cp "$dir/layer.tar.gz" "$dir/oci/blobs/sha256/$layer"
  jq -cn --arg d "sha256:$diff_id" \
    '{architecture: "amd64", os: "linux", config: {}, rootfs: {type: "layers", diff_ids: [$d]}}' \
    >"$dir/config.json"
  config=$(sha256sum <"$dir/config.json" | cut -d' ' -f1)
  config_size=$(stat -c %s "$dir/config.json")
  cp "$dir/config.json" "$dir/oci/blobs/sha256/$config"
  jq -cn --arg c "sha256:$config" --argjson cs "$config_size" --arg l "sha256:$layer" \
    --argjson ls "$layer_size" '{schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $c, size: $cs},
      layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $l, size: $ls}]}' \
    >"$dir/manifest.json"
  manifest=$(sha256sum <"$dir/manifest.json" | cut -d' ' -f1)
  manifest_size=$(stat -c %s "$dir/manifest.json")
  cp "$dir/manifest.json" "$dir/oci/blobs/sha256/$manifest"
  jq -cn --arg m "sha256:$manifest" --argjson ms "$manifest_size" '{schemaVersion: 2,
      manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $m,
        size: $ms, annotations: {"org.opencontainers.image.ref.name": "1"}}]}' >"$dir/oci/index.json"
  echo '{"imageLayoutVersion": "1.0.0"}' >"$dir/oci/oci-layout"
  skopeo copy -q --dest-tls-verify=false "oci:$dir/oci:1" \
    "docker://127.0.0.1:$UPSTREAM_PORT/library/$1:1" >"$dir/skopeo.log" 2>&1 ||
    fail "skopeo could not push $1 to the upstream: $(cat "$dir/skopeo.log")"
}

# served_by LOG NAME [PROJECT]: LOG shows a successful manifest request for library/NAME (under
# the Harbor project PROJECT in the cache's log).
served_by() {
  local prefix=/v2/${3:+$3/}library/$2/manifests/
  grep -qE "^(GET|HEAD) ${prefix}[^ ]+ 200$" "$1" 2>/dev/null
}
# requested LOG NAME: LOG shows any request for library/NAME at all.
requested() { grep -q "/library/$2/" "$1" 2>/dev/null; }
# cache_holds NAME: the pull-through cache stored library/NAME (its own storage, as a user of
# docker-registry would look).
cache_holds() { [ -d "$CACHE_DIR/cache/docker/registry/v2/repositories/library/$1/_manifests" ]; }

# --- the node's side: k3s's containerd (the stand-in runs it) pulling through the cache -------

CERTS_D=/var/lib/rancher/k3s/agent/etc/containerd/certs.d
STANDIN_ENV=$NODE/etc/k3s-standin/env

# standin_env LINE...: the stand-in's EnvironmentFile (its units read it): containerd on, plus
# LINEs (K3S_STANDIN_LAYOUT=1.29, K3S_STANDIN_NO_DEFAULT_ENDPOINT=1).
standin_env() {
  mkdir -p "${STANDIN_ENV%/*}"
  printf '%s\n' K3S_STANDIN_CONTAINERD=1 "$@" >"$STANDIN_ENV"
}

# cache_node ROLE: the cache running, and a node (root filesystem with containerd: set
# NODE_EXTRA=containerd before sourcing lib.sh) with the example config and CA, Docker Hub and
# the cache mapped to this run's addresses, the hub CA trusted, booted, its k3s unit active
# with containerd answering.
cache_node() {
  node_create "$1"
  # Debian's package enables its own containerd.service (/run/containerd); a k3s node runs only
  # k3s's, which the stand-in starts.
  ln -sf /dev/null "$NODE/etc/systemd/system/containerd.service"
  setup_config  # $WORK/harbor.pem: the cache's CA, the agent's registry.ca_file
  cache_start
  node_cache_names
  node_trust_hub
  standin_env
  node_boot
  wait_state "$UNIT" active
}

# pull NAME: the node's containerd pulls docker.io/library/NAME:1 as the CRI plugin does (the
# same hosts.toml code); its output is in $WORK/pull-NAME.log. CONTAINERD_SNAPSHOTTER is ctr's
# own setting: it unpacks with the native snapshotter, as the stand-in's CRI config does
# (overlayfs may be refused inside a container).
pull() {
  in_node env CONTAINERD_SNAPSHOTTER=native ctr --address /run/k3s/containerd/containerd.sock \
    -n k8s.io images pull --hosts-dir "$CERTS_D" "docker.io/library/$1:1" >"$WORK/pull-$1.log" 2>&1
}
must_pull() { pull "$1" || fail "the pull of $1 failed: $(tail -5 "$WORK/pull-$1.log")"; }

# --- scenarios sharing one booted node ------------------------------------------------------

FAILED=()
# scenario NAME: runs the function NAME in a subshell (a failure ends that scenario only). Not
# as an if's condition: bash would turn errexit off inside it.
scenario() {
  local rc=0
  # The ERR trap stays on inside (it names the command that failed), not for the subshell.
  trap - ERR
  set +e
  (
    trap 'echo "FAIL: ${BASH_SOURCE[0]}:$LINENO: a command failed (exit $?)" >&2' ERR
    set -e
    "$1"
  )
  rc=$?
  set -e
  trap 'echo "FAIL: ${BASH_SOURCE[0]}:$LINENO: a command failed (exit $?)" >&2' ERR
  if [ $rc -eq 0 ]; then
    echo "PASS: $1"
  else
    echo "FAIL: $1" >&2
    FAILED+=("$1")
  fi
}
