#pragma once
// The cache's CA: parse PEM bytes with OpenSSL and decide whether they are fit to install.
// Pure over bytes and a clock value: no disk, no system trust store. Accepts certificates only
// (private keys and anything else are refused), each unexpired and either a CA
// (basicConstraints CA:TRUE) or a self-signed root. Warns when one expires within 30 days.

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace k3sma {

struct CaCertificate {
  std::string subject;  // one line, RFC 2253 (e.g. "CN=Home Lab CA,O=Home")
  std::chrono::system_clock::time_point not_after;
  bool is_ca = false;  // basicConstraints CA:TRUE
  // issuer == subject and the key identifiers agree; for a certificate that is not a CA, the
  // signature also verifies with its own key (the only case where being self-signed decides).
  bool self_signed = false;
};

struct CaBundle {
  // The certificates re-encoded by OpenSSL (PEM, in file order). This is what gets installed:
  // comments, text dumps and whitespace in the source file do not change the installed bytes.
  std::string pem;
  std::vector<CaCertificate> certificates;
  // Human sentences, e.g. "CA certificate CN=x in /etc/k3s-mirror-agent/ca.pem expires in 12
  // days (2026-12-11)". Not errors.
  std::vector<std::string> warnings;
};

inline constexpr std::chrono::hours kCaExpiryWarning{24 * 30};

// Parses and checks a PEM file's bytes. `source` names the file in every message.
// Errors (kind kConfig): no certificate at all, private key material, a PEM block that is not a
// certificate, garbage that is not PEM, a certificate that does not parse, one that is expired or
// not yet valid, one that is neither a CA nor self-signed.
Result<CaBundle> loadCaBundle(std::string_view pem, const std::string& source,
                              std::chrono::system_clock::time_point now);

}  // namespace k3sma
