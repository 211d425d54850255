#!/usr/bin/env bash
# A CA file that is not a usable CA certificate (a private key, a key and certificate
# together, garbage, a server certificate) exits 2, says why, and touches nothing.
source "$TESTLIB"
setup_node
agent apply
expect_rc 0

check_bad_ca() {  # check_bad_ca EXPECTED-MESSAGE-PART; the CA file is already replaced
  local before
  before=$(snapshot)
  agent apply
  expect_rc 2
  grep -qiF -- "$1" <<<"$ERR" || fail "stderr does not say '$1': $ERR"
  grep -qF "$CONF/harbor-ca.pem" <<<"$ERR" || fail "stderr does not name the CA file: $ERR"
  [ "$(snapshot)" = "$before" ] || fail "the root changed for a CA that is '$1'"
}

cp "$WORK/harbor.key" "$CONF/harbor-ca.pem"
check_bad_ca "private key"
cat "$WORK/harbor.pem" "$WORK/harbor.key" > "$CONF/harbor-ca.pem"
check_bad_ca "private key"
head -c 600 /dev/urandom > "$CONF/harbor-ca.pem"
check_bad_ca "no PEM certificate"
make_server_cert harbor harbor.home.lab
cp "$WORK/harbor.home.lab.crt" "$CONF/harbor-ca.pem"
check_bad_ca "not a CA"
rm "$CONF/harbor-ca.pem"
check_bad_ca "does not exist"
pass "bad CA files exit 2 and touch nothing"
