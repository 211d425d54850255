#!/usr/bin/env bash
# The package's purge (packaging/debian/prerm, then postrm): `restore --stage` changes nothing
# on the node and stages what restore would do; the postrm's own purge part, run in a chroot
# whose /etc, /usr/share, /usr/local, /var and /run are the scratch root's, then leaves the node
# as a plain `restore` does. Also: a node the agent never touched stages nothing, a restore that
# fails leaves no stage, and --stage with --dry-run is a usage error.
# Needs root (or user namespaces) for the chroot: skipped (77) without them, outside CI only.
source "$TESTLIB"
POSTRM=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../packaging/debian" && pwd)/postrm
STAGE=$WORK/stage
PURGE_STAGE=/var/lib/k3s-mirror-agent/purge  # where prerm stages, a node path

# The chroot needs a mount namespace of our own: root's, or a user namespace's.
if [ "$(id -u)" -eq 0 ] && unshare --mount true 2>/dev/null; then
  UNSHARE=(unshare --mount)
elif unshare --map-root-user --mount true 2>/dev/null; then
  UNSHARE=(unshare --map-root-user --mount)
else
  [ "${CI:-}" = true ] && fail "cannot make a mount namespace to run postrm in a chroot"
  echo "SKIP: cannot make a mount namespace (not root, no user namespaces)"
  exit 77
fi

# in_chroot CMD...: runs CMD (stdout to ours, stderr to $WORK/chroot.err) chrooted into a
# directory whose /etc, /run, /var, /usr/share and /usr/local are the scratch root's (bind
# mounts), with the host's programs and libraries, /dev/null, an empty /tmp, this postrm as
# /postrm and the agent as /agent. The mounts live in a namespace of their own and end with it.
CHROOTS=0
in_chroot() {
  CHROOTS=$((CHROOTS + 1))
  local jail=$WORK/chroot.$CHROOTS entry name dir top
  local binds=()
  mkdir -p "$jail/usr" "$jail/dev" "$jail/tmp"
  for entry in "$ROOT"/* "$ROOT"/usr/*; do
    name=${entry#"$ROOT"/}
    [ "$name" = usr ] && continue
    mkdir -p "$jail/$name"
    binds+=("$entry" "$jail/$name")
  done
  for dir in usr/bin usr/sbin usr/lib usr/lib64 usr/libexec; do
    if [ -d "/$dir" ] && [ ! -e "$ROOT/$dir" ]; then
      mkdir -p "$jail/$dir"
      binds+=("/$dir" "$jail/$dir")
    fi
  done
  for top in bin sbin lib lib64; do  # merged /usr: links; otherwise the host's directory
    if [ -L "/$top" ]; then
      ln -s "$(readlink "/$top")" "$jail/$top"
    elif [ -d "/$top" ]; then
      mkdir "$jail/$top"
      binds+=("/$top" "$jail/$top")
    fi
  done
  touch "$jail/dev/null" "$jail/agent"
  binds+=(/dev/null "$jail/dev/null" "$AGENT" "$jail/agent")
  # /proc: the sanitizer build's LeakSanitizer reads /proc/PID/task when the agent exits.
  mkdir -p "$jail/proc"
  binds+=(/proc "$jail/proc")
  cp "$POSTRM" "$jail/postrm"
  # shellcheck disable=SC2016  # expanded by the inner shell
  "${UNSHARE[@]}" sh -c '
    jail=$1
    shift
    while [ "$1" != -- ]; do
      mount --bind "$1" "$2" || exit 1
      shift 2
    done
    shift
    exec chroot "$jail" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"
  ' sh "$jail" "${binds[@]}" -- "$@" 2>"$WORK/chroot.err"
}

setup_node
mkdir -p "$(dirname "$REG")"
cat >"$REG" <<'YAML'
# hand-written by the operator
mirrors:
  docker.io:
    endpoint: ["https://mirror.gcr.io"]
configs:
  registry.internal:5000:
    tls: {insecure_skip_verify: true}
YAML
chmod 640 "$REG"
cp -p "$REG" "$WORK/original.yaml"
agent apply
expect_rc 0
cmp -s "$REG" "$WORK/original.yaml" && fail "apply did not change registries.yaml"
cp -a "$ROOT" "$WORK/applied"  # for the plain restore, at the same path, later

# --- restore --stage changes nothing on the node and stages what restore would do
before=$(snapshot)
agent restore --stage "$STAGE" --output json
expect_rc 0
[ "$(snapshot)" = "$before" ] || fail "restore --stage changed the node: $(diff <(echo "$before") <(snapshot))"
[ "$(jq -r .changed <<<"$OUT")" = false ] || fail "restore --stage says the node changed: $OUT"
[ "$(mode_of "$STAGE")" = 700 ] || fail "the stage has mode $(mode_of "$STAGE")"
staged_reg=$STAGE/put/etc/rancher/k3s/registries.yaml
[ -f "$staged_reg" ] || fail "no put/etc/rancher/k3s/registries.yaml; the stage: $(cd "$STAGE" && find .)"
cmp "$staged_reg" "$WORK/original.yaml" || fail "the staged registries.yaml is not the node's own"
[ "$(mode_of "$staged_reg")" = 600 ] || fail "the staged registries.yaml has mode $(mode_of "$staged_reg")"
[ "$(cd "$STAGE/put" && find . -type f)" = ./etc/rancher/k3s/registries.yaml ] ||
  fail "put/ holds more than registries.yaml: $(cd "$STAGE/put" && find . -type f)"
sort "$STAGE/remove" >"$WORK/removed"
printf '%s\n' /usr/local/share/ca-certificates/k3s-mirror-agent/harbor.home.lab.crt \
  /var/lib/k3s-mirror-agent/registries.yaml.orig /var/lib/k3s-mirror-agent/state.json |
  sort | diff - "$WORK/removed" || fail "remove lists other files than the CA and the state"
[ -f "$STAGE/update-ca-certificates" ] || fail "the rebuild of the trust store is not noted"
[ "$(update_ca_runs)" -eq 1 ] || fail "update-ca-certificates ran during restore --stage"

# Staged again, as prerm does it: an old stage is replaced, not added to.
agent restore --stage "$STAGE" --quiet
expect_rc 0
[ "$(wc -l <"$STAGE/remove")" -eq 3 ] || fail "a second stage appended to the first: $(cat "$STAGE/remove")"

# --- postrm purge, in a chroot that sees the scratch root's files and the host's programs
agent restore --stage "$ROOT$PURGE_STAGE" --quiet
expect_rc 0
diff -r "$STAGE" "$ROOT$PURGE_STAGE" || fail "staging in the node's own directory staged something else"
in_chroot /bin/sh -e /postrm purge >/dev/null || fail "postrm purge failed: $(cat "$WORK/chroot.err")"
grep -q "registries.yaml and trust store are back" "$WORK/chroot.err" ||
  fail "postrm did not find the stage: $(cat "$WORK/chroot.err")"
cmp "$REG" "$WORK/original.yaml" || fail "after purge registries.yaml is not the node's own"
[ ! -e "$CA_INSTALLED" ] || fail "after purge the agent's CA is still installed"
grep -qF "$(sed -n 2p "$WORK/harbor.pem")" "$BUNDLE" && fail "after purge the CA is still in the bundle"
[ ! -e "$ROOT/var/lib/k3s-mirror-agent" ] && [ ! -e "$ROOT/run/k3s-mirror-agent" ] ||
  fail "purge left the agent's state or run directory"

# --- the same node, at the same path, restored by a plain `restore` in the same chroot (so that
# update-ca-certificates sees the same paths): the same files, except that purge also removed the
# agent's own directories.
tree() {  # path, type, mode, link target and content of everything but the agent's directories
  (cd "$ROOT" && find . \( -path ./var/lib/k3s-mirror-agent -o -path ./run/k3s-mirror-agent \) \
    -prune -o -printf '%p %y %m %l\n' | sort &&
    find . \( -path ./var/lib/k3s-mirror-agent -o -path ./run/k3s-mirror-agent \) -prune -o \
      -type f -exec sha256sum {} + | sort -k2)
}
tree >"$WORK/purged.tree"
rm -rf "$ROOT"
mv "$WORK/applied" "$ROOT"
in_chroot /agent restore >/dev/null || fail "plain restore failed: $(cat "$WORK/chroot.err")"
tree >"$WORK/restored.tree"
diff "$WORK/restored.tree" "$WORK/purged.tree" || fail "purge and plain restore left different nodes"

# --- a node the agent never touched: nothing staged
rm -rf "$ROOT" "$STAGE"
setup_node
mkdir -p "$(dirname "$REG")" && cp "$WORK/original.yaml" "$REG"
before=$(snapshot)
agent restore --stage "$STAGE"
expect_rc 0
[ "$(snapshot)" = "$before" ] || fail "restore --stage changed an untouched node"
[ -d "$STAGE" ] && [ -z "$(ls -A "$STAGE")" ] || fail "an untouched node staged: $(cd "$STAGE" && find .)"

# --- a restore that fails leaves no stage: postrm would carry out half of one, and would say
# the node's files are back because the stage exists
mkdir -p "$(dirname "$STATE")"
echo '{"version": 1,' >"$STATE"
agent restore --stage "$STAGE"
expect_rc 2
grep -q "read state" <<<"$ERR" || fail "the failed restore does not say why: $ERR"
[ ! -e "$STAGE" ] || fail "a failed restore --stage left a stage: $(cd "$STAGE" && find .)"
rm "$STATE"

# --- --stage with --dry-run: a usage error, nothing staged
rm -rf "$STAGE"
agent restore --stage "$STAGE" --dry-run
expect_rc 2
[ ! -e "$STAGE" ] || fail "--stage --dry-run made the stage"
pass "restore --stage stages without changing the node; postrm purge then restores it"
