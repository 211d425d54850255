# Sourced after lib.sh by the tests that run the package's postrm against a scratch root:
# in_chroot runs a command chrooted into a directory that sees the scratch root's files and the
# host's programs, as postrm sees a node. Needs root (or user namespaces) for the mount
# namespace: skipped (77) without them, outside CI only.
POSTRM=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../packaging/debian" && pwd)/postrm

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

