#!/usr/bin/env bash
# The package's purge (packaging/debian/prerm, then postrm): `restore --stage` changes nothing
# on the node and stages what restore would do; the postrm's own purge part, run in a chroot
# whose /etc, /usr/share, /usr/local, /var and /run are the scratch root's, then leaves the node
# as a plain `restore` does. Also: a node the agent never touched stages nothing, a restore that
# fails leaves no stage, and --stage with --dry-run is a usage error.
# Needs root (or user namespaces) for the chroot: skipped (77) without them, outside CI only.
source "$TESTLIB"
STAGE=$WORK/stage
PURGE_STAGE=/var/lib/k3s-mirror-agent/purge  # where prerm stages, a node path
source "$(dirname "${BASH_SOURCE[0]}")/chroot-lib.sh"

setup_node
mkdir -p "$(dirname "$REG")"
own_registries >"$REG"
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
