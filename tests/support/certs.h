#pragma once
// Keys and certificates for tests, made in memory with the OpenSSL API (no CLI, no files): roots,
// intermediates, leaves, expired and not-yet-valid certificates for the CA checks, and server
// certificates with subjectAltNames for TLS tests against a real registry.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace k3sma::testing {

struct TestCert {
  std::string cert_pem;  // one "CERTIFICATE" block
  std::string key_pem;   // its EC P-256 private key, one PKCS#8 "PRIVATE KEY" block
};

struct CertSpec {
  std::string common_name = "k3sma test";
  std::string organization;  // empty: no O= in the subject
  // true: basicConstraints critical CA:TRUE, keyUsage critical keyCertSign, cRLSign.
  // false: a TLS leaf: basicConstraints CA:FALSE, keyUsage critical digitalSignature,
  // extendedKeyUsage serverAuth, clientAuth.
  bool is_ca = false;
  std::optional<TestCert> issuer;         // signs the certificate; empty: self-signed
  std::vector<std::string> dns_names;     // subjectAltName DNS entries
  std::vector<std::string> ip_addresses;  // subjectAltName IP entries, IPv4 or IPv6 text
  // The defaults suit a TLS test against the real clock; CA tests set both from a fixed `now`.
  std::chrono::system_clock::time_point not_before =
      std::chrono::system_clock::now() - std::chrono::hours{1};
  std::chrono::system_clock::time_point not_after =
      std::chrono::system_clock::now() + std::chrono::hours{24 * 365};
};

// Makes a fresh key and a certificate for it. Throws std::runtime_error carrying OpenSSL's reason
// when OpenSSL refuses (a bad IP address, an issuer whose key does not match): that is a bug in
// the test, and GoogleTest prints the exception's text.
TestCert makeCert(const CertSpec& spec);

// The DER bytes of the first certificate in `pem`, for tests of binary input.
std::string pemToDer(const std::string& pem);

}  // namespace k3sma::testing
