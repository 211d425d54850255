#!/usr/bin/env bash
# The man pages against the program. In k3s-mirror-agent(8): every command that
# `k3s-mirror-agent --help` lists is an item of COMMANDS, every long option that it and each
# `k3s-mirror-agent COMMAND --help` print is an item tag (an option of only some commands names
# them in its tag), and every exit code of the --help footer is an item of EXIT STATUS. Both
# pages render without a single groff warning, as lintian checks them, and have a NAME line
# lexgrog can read. The full EXAMPLE of k3s-mirror-agent.yaml(5) passes `check` (its keys are
# checked against the parser by tests/unit/man_test.cpp). Then the same checks run on copies of
# the pages with an option, a command and an exit code taken out, and must fail: a check that
# cannot fail proves nothing.
# Needs: root (the password file of the EXAMPLE is root's), AGENT, what lib.sh needs, man (man-db)
# and groff (groff-base). MAN_DIR overrides packaging/man.
# shellcheck source=tests/blackbox/lib.sh
source "$TESTLIB"

MAN_DIR=${MAN_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../packaging/man" && pwd)}
PAGE8=k3s-mirror-agent.8
PAGE5=k3s-mirror-agent.yaml.5

missing=""
for tool in man groff lexgrog; do
  command -v "$tool" >/dev/null || missing="$missing $tool"
done
if [ -n "$missing" ]; then
  [ "${CI:-}" = true ] && fail "prerequisites missing:$missing" \
    "(packaging/install-build-deps.sh installs man-db and groff-base)"
  echo "SKIP: prerequisites missing:$missing"
  exit 77
fi
for page in "$PAGE8" "$PAGE5"; do
  [ -f "$MAN_DIR/$page" ] || fail "$MAN_DIR/$page does not exist"
done

# section_lines HEADER: the lines of a CLI11 help section ("Options:", "Subcommands:"; CLI11
# spells them in capitals in some versions) up to the blank line that ends it.
section_lines() {
  awk -v h="$1" 'BEGIN { h = toupper(h) } toupper($0) == h ":" { on = 1; next }
                 on && /^$/ { on = 0 } on { print }'
}
# The long options of an Options: section: "-v,--verbose   Log ..." gives --verbose.
long_options() {
  section_lines Options | awk '$1 ~ /^-/ { print $1 }' | tr ',' '\n' | grep -E '^--[a-z]' |
    sed 's/[^a-z0-9-].*$//;s/^-*/--/' | sort -u
}

top_help=$("$AGENT" --help)
mapfile -t commands < <(section_lines Subcommands <<<"$top_help" | awk 'NF { print $1 }')
mapfile -t top_options < <(long_options <<<"$top_help")
declare -A options_of  # command -> its long options, one per line
for cmd in "${commands[@]}"; do
  options_of[$cmd]=$("$AGENT" "$cmd" --help | long_options)
done
mapfile -t exit_codes < <(awk '/^Exit status:/ { on = 1; next } on && /^$/ { on = 0 }
                               on && $1 ~ /^[0-9]+$/ { print $1 }' <<<"$top_help")
# What CLI11 prints, as this test reads it; if the format changes, these fail, not pass.
[ "${#commands[@]}" -ge 7 ] || fail "read only ${#commands[@]} commands from --help: $top_help"
grep -qx -- --version <<<"$(printf '%s\n' "${top_options[@]}")" ||
  fail "no --version in: $top_help"
grep -qx -- --no-restart <<<"${options_of[apply]:-}" || fail "no --no-restart in apply --help"
[ "${#exit_codes[@]}" -ge 6 ] || fail "read only ${#exit_codes[@]} exit codes from --help"

# Options common to every command; the others must name their commands in their tag.
common=$(for cmd in "${commands[@]}"; do sort -u <<<"${options_of[$cmd]}"; done |
  sort | uniq -c | awk -v n="${#commands[@]}" '$1 == n { print $2 }')

# roff_text FILE: the page with font changes and escapes taken out: "\fB\-\-dry\-run\fR" is
# "--dry-run".
roff_text() {
  sed -e 's/\\f[BIRP1-4]//g' -e 's/\\f(..//g' -e 's/\\f\[[A-Z]*\]//g' -e 's/\\-/-/g' \
    -e 's/\\&//g' -e 's/\\(em/ /g' "$1"
}
# tags TEXT [SECTION]: the tag line of each .TP item (of SECTION only, when given).
tags() {
  awk -v want="${2:-}" '/^\.SH / { s = $0; sub(/^\.SH +"?/, "", s); sub(/"$/, "", s) }
        tag { print; tag = 0 } /^\.TP/ && (want == "" || s == want) { tag = 1 }' <<<"$1"
}
# has_word LINES WORD: WORD appears in LINES with no letter, digit or - on either side.
has_word() {
  grep -qE -- "(^|[^a-zA-Z0-9-])${2//./\\.}([^a-zA-Z0-9-]|$)" <<<"$1"
}

# check_pages DIR: prints one line per problem; none when the pages match the program.
check_pages() {
  local dir=$1 text all_tags command_tags exit_tags cmd opt page err
  text=$(roff_text "$dir/$PAGE8")
  all_tags=$(tags "$text")
  command_tags=$(tags "$text" COMMANDS)
  exit_tags=$(tags "$text" "EXIT STATUS")
  for cmd in "${commands[@]}"; do
    has_word "$command_tags" "$cmd" || echo "$PAGE8: command $cmd has no item in COMMANDS"
  done
  for opt in "${top_options[@]}"; do
    has_word "$all_tags" "$opt" || echo "$PAGE8: option $opt (of k3s-mirror-agent) has no item"
  done
  for cmd in "${commands[@]}"; do
    while read -r opt; do
      [ -n "$opt" ] || continue
      if grep -qx -- "$opt" <<<"$common"; then
        has_word "$all_tags" "$opt" || echo "$PAGE8: option $opt (of every command) has no item"
      else
        has_word "$(grep -E -- "(^|[^a-z0-9-])$opt([^a-z0-9-]|$)" <<<"$all_tags" || true)" "$cmd" ||
          echo "$PAGE8: option $opt of $cmd has no item whose tag names $cmd"
      fi
    done <<<"${options_of[$cmd]}"
  done
  for code in "${exit_codes[@]}"; do
    grep -qxE "(\.B )?$code" <<<"$exit_tags" ||
      echo "$PAGE8: exit code $code has no item in EXIT STATUS"
  done
  for page in "$PAGE8" "$PAGE5"; do
    # What lintian runs (groff-message): any output on stderr is a warning.
    err=$(LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 \
      man --warnings -E UTF-8 -l -Tutf8 -Z "$dir/$page" 2>&1 >/dev/null) ||
      echo "$page: man failed"
    [ -z "$err" ] || echo "$page: groff warnings: $err"
    lexgrog "$dir/$page" >/dev/null 2>&1 || echo "$page: lexgrog cannot read its NAME section"
  done
}

problems=$(check_pages "$MAN_DIR")
[ -z "$problems" ] || fail "the man pages do not match the program:"$'\n'"$problems"
pass "k3s-mirror-agent(8) documents ${#commands[@]} commands, their options and exit codes" \
  "${exit_codes[*]}; both pages render without warnings"

# The full EXAMPLE of k3s-mirror-agent.yaml(5) is a config the agent accepts.
setup_node
install -m 0600 /dev/null "$CONF/registry-password"
echo s3cret > "$CONF/registry-password"
awk '/^\.SH EXAMPLE/ { e = 1 } e && /^\.nf/ { on = 1; next } on && /^\.fi/ { exit } on' \
  "$MAN_DIR/$PAGE5" | sed -e 's/\\-/-/g' -e 's/\\e/\\/g' > "$CONF/config.yaml"
grep -q '^registry:' "$CONF/config.yaml" || fail "no config in the EXAMPLE of $PAGE5"
agent check
expect_rc 0
pass "the EXAMPLE of $PAGE5 is a valid config: $OUT"

# The same checks must fail on pages that miss something.
broken=$WORK/broken
mkdir -p "$broken"
cp "$MAN_DIR/$PAGE8" "$MAN_DIR/$PAGE5" "$broken/"
# Take out the item of --no-restart, the item of the status command and that of exit code 4,
# and break the .5 page's roff.
awk 'skip && /^\.(TP|PP|SH|SS)/ { skip = 0 }
     skip { next }
     /^\.TP/ { if (held) print tp; tp = $0; held = 1; next }
     held { held = 0
            if (/no\\-restart/ || $0 == ".B status" || $0 == ".B 4") { skip = 1; next }
            print tp }
     { print }
     END { if (held) print tp }' "$MAN_DIR/$PAGE8" > "$broken/$PAGE8"
printf '.BOGUS macro\n' >> "$broken/$PAGE5"  # a macro groff does not know: a warning
problems=$(check_pages "$broken")
for want in "option --no-restart of apply" "command status" "exit code 4" \
  "$PAGE5: groff warnings"; do
  grep -qF -- "$want" <<<"$problems" || fail "a page without it passed the check ($want): $problems"
done
pass "the checks fail on pages without an option, a command, an exit code, or with bad roff"
