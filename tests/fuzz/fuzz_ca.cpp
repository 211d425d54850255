// Fuzzes CA loading (loadCaBundle) over a PEM file's bytes, at a fixed "now" (2030-01-01) so
// the seed certificates stay valid and the run is reproducible.
//
// Properties, beyond "no crash":
// - an error names the file;
// - an accepted bundle has certificates, each a CA or self-signed and valid now, and its
//   re-encoded PEM (what gets installed) loads again to the same bundle, byte for byte;
// - subjects, warnings and errors hold no control characters (a hostile name cannot forge log
//   lines) and subjects are UTF-8 (they go into JSON);
// - the installed bytes hold no private key, whatever the input had.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/ca.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

bool sameBundle(const k3sma::CaBundle& a, const k3sma::CaBundle& b) {
  if (a.pem != b.pem || a.warnings != b.warnings ||
      a.certificates.size() != b.certificates.size()) {
    return false;
  }
  for (size_t i = 0; i < a.certificates.size(); ++i) {
    const auto& x = a.certificates[i];
    const auto& y = b.certificates[i];
    if (x.subject != y.subject || x.not_after != y.not_after || x.is_ca != y.is_ca ||
        x.self_signed != y.self_signed) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace k3sma;
  using namespace k3sma::fuzz;
  const std::string source = "/etc/k3s-mirror-agent/ca.pem";
  const std::chrono::system_clock::time_point now =
      std::chrono::sys_days{std::chrono::year{2030} / 1 / 1};
  const std::string_view pem(reinterpret_cast<const char*>(data), size);
  const auto loaded = loadCaBundle(pem, source, now);
  if (!loaded.ok()) {
    const auto& message = loaded.error().message;
    K3SMA_REQUIRE(message.find(source) != std::string::npos, "the error names no file: " + message);
    K3SMA_REQUIRE(!hasControlCharacter(message), "the error holds a control character: " + message);
    return 0;
  }
  const CaBundle& bundle = loaded.value();
  K3SMA_REQUIRE(!bundle.certificates.empty() && !bundle.pem.empty(), "an empty bundle is accepted");
  K3SMA_REQUIRE(countOf(bundle.pem, "-----BEGIN CERTIFICATE-----") == bundle.certificates.size(),
                "the installed PEM does not hold one block per certificate");
  // Only certificate blocks: no key block of any kind. (Searching the text for "PRIVATE" would
  // also find it in base64, which the fuzzer wrote into a signature that still parsed.)
  K3SMA_REQUIRE(
      countOf(bundle.pem, "-----BEGIN ") == countOf(bundle.pem, "-----BEGIN CERTIFICATE-----"),
      "the installed PEM holds private key material");
  for (const auto& cert : bundle.certificates) {
    K3SMA_REQUIRE(cert.is_ca || cert.self_signed,
                  "a certificate that is neither CA nor "
                  "self-signed is accepted: " +
                      cert.subject);
    K3SMA_REQUIRE(cert.not_after >= now, "an expired certificate is accepted: " + cert.subject);
    K3SMA_REQUIRE(!hasControlCharacter(cert.subject),
                  "a subject holds a control character: " + cert.subject);
    K3SMA_REQUIRE(isValidUtf8(cert.subject), "a subject is not UTF-8: " + cert.subject);
  }
  for (const auto& warning : bundle.warnings) {
    K3SMA_REQUIRE(!hasControlCharacter(warning), "a warning holds a control character");
  }
  // What gets installed loads again to the same bundle: installing twice installs the same bytes.
  const auto reloaded = loadCaBundle(bundle.pem, source, now);
  K3SMA_REQUIRE(reloaded.ok(), "the re-encoded PEM does not load: " +
                                   (reloaded.ok() ? std::string() : reloaded.error().message));
  K3SMA_REQUIRE(sameBundle(bundle, reloaded.value()),
                "the re-encoded PEM loads to a different bundle");
  return 0;
}
