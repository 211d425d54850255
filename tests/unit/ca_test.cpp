#include "common/ca.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/err.h>

#include <random>
#include <string>
#include <vector>

#include "tests/support/certs.h"

namespace k3sma {
namespace {

using std::chrono::days;
using std::chrono::system_clock;
using testing::CertSpec;
using ::testing::HasSubstr;
using testing::makeCert;
using ::testing::StartsWith;
using testing::TestCert;

// Every certificate below is made relative to this instant, never to the real clock.
const system_clock::time_point kNow =
    std::chrono::sys_days{std::chrono::year{2025} / 6 / 1} + std::chrono::hours{12};
const std::string kSource = "/etc/k3s-mirror-agent/ca.pem";

CertSpec validFor(const std::string& common_name, bool is_ca) {
  CertSpec spec;
  spec.common_name = common_name;
  spec.is_ca = is_ca;
  spec.not_before = kNow - days{365};
  spec.not_after = kNow + days{3650};
  return spec;
}

TestCert makeRoot() {
  CertSpec spec = validFor("Home Lab Root CA", true);
  spec.organization = "Home Lab";
  return makeCert(spec);
}

TestCert makeIntermediate(const TestCert& root) {
  CertSpec spec = validFor("Home Lab Issuing CA", true);
  spec.issuer = root;
  return makeCert(spec);
}

TestCert makeServer(const TestCert& issuer) {
  CertSpec spec = validFor("harbor.home.lab", false);
  spec.issuer = issuer;
  spec.dns_names = {"harbor.home.lab"};
  spec.ip_addresses = {"192.168.1.10"};
  return makeCert(spec);
}

// The message for input that must be refused; a test failure (and "") if it was accepted.
std::string rejection(std::string_view input, system_clock::time_point now = kNow) {
  const auto result = loadCaBundle(input, kSource, now);
  if (result.ok()) {
    ADD_FAILURE() << "input was accepted";
    return "";
  }
  EXPECT_EQ(result.error().kind, ErrorKind::kConfig);
  return result.error().message;
}

std::string corruptBase64(const TestCert& cert) {
  std::string pem = cert.cert_pem;
  const size_t second_line = pem.find('\n', pem.find('\n') + 1) + 1;
  pem[second_line + 10] = '*';  // not in the base64 alphabet
  return pem;
}

std::string randomBytes(size_t count) {
  std::mt19937 generator(20250601);  // fixed seed: the same bytes on every run
  std::uniform_int_distribution<int> byte(0, 255);
  std::string out;
  for (size_t i = 0; i < count; ++i) {
    out += static_cast<char>(byte(generator));
  }
  return out;
}

const std::string kPublicKeyPem =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEgQBWP1ukMfYz/escezf2iZZMYdlq\n"
    "bfE1FT5XbdXvJn/gEqA5ZP8B2BIQPOM0cTRyUTqyQZrfn3oF5KHvBUU2Jw==\n"
    "-----END PUBLIC KEY-----\n";

// Made with `openssl req -x509 -days 2900000`: notAfter 9966-11-04, beyond what a nanosecond
// system_clock::time_point can hold.
const std::string kForeverCaPem =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBgDCCASegAwIBAgIUasVBqS8tMiWk7iwfDTwCxNqpoFIwCgYIKoZIzj0EAwIw\n"
    "FTETMBEGA1UEAwwKRm9yZXZlciBDQTAgFw0yNjExMjkwNDAzMDJaGA85OTY2MTEw\n"
    "NDA0MDMwMlowFTETMBEGA1UEAwwKRm9yZXZlciBDQTBZMBMGByqGSM49AgEGCCqG\n"
    "SM49AwEHA0IABIEAVj9bpDH2M/3rHHs39omWTGHZam3xNRU+V23V7yZ/4BKgOWT/\n"
    "AdgSEDzjNHE0clE6skGa3596BeSh7wVFNiejUzBRMB0GA1UdDgQWBBQmzjpiH5bb\n"
    "cSw7yhFiZEYc5t85rTAfBgNVHSMEGDAWgBQmzjpiH5bbcSw7yhFiZEYc5t85rTAP\n"
    "BgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCIEh//6nrIIxxwJhz6FUG\n"
    "yperhDgsmr0c1jFWba5edAdoAiBLPyaMOOEm012AlcZav0SoNzaXG7fr+F41Z17R\n"
    "8VHsCQ==\n"
    "-----END CERTIFICATE-----\n";

struct BadInput {
  std::string what;
  std::string bytes;
};

// One of each way a CA file can be refused.
std::vector<BadInput> badInputs() {
  const TestCert root = makeRoot();
  CertSpec expired = validFor("Old CA", true);
  expired.not_after = kNow - days{1};
  CertSpec future = validFor("Future CA", true);
  future.not_before = kNow + days{2};
  return {
      {"empty", ""},
      {"text only", "# the CA goes here\n"},
      {"garbage", randomBytes(4096)},
      {"DER", testing::pemToDer(root.cert_pem)},
      {"corrupt base64", corruptBase64(root)},
      {"public key", kPublicKeyPem},
      {"private key", root.key_pem},
      {"certificate and key", root.cert_pem + root.key_pem},
      {"leaf", makeServer(root).cert_pem},
      {"expired", makeCert(expired).cert_pem},
      {"not yet valid", makeCert(future).cert_pem},
      {"undecodable certificate",
       "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n"},
  };
}

TEST(CaBundle, AcceptsSelfSignedRoot) {
  CertSpec spec = validFor("Home Lab Root CA", true);
  spec.organization = "Home Lab";
  const TestCert root = makeCert(spec);

  const auto bundle = loadCaBundle(root.cert_pem, kSource, kNow);
  ASSERT_TRUE(bundle.ok()) << bundle.error().message;
  ASSERT_EQ(bundle.value().certificates.size(), 1u);
  const CaCertificate& cert = bundle.value().certificates[0];
  EXPECT_EQ(cert.subject, "CN=Home Lab Root CA,O=Home Lab");
  EXPECT_TRUE(cert.is_ca);
  EXPECT_TRUE(cert.self_signed);
  EXPECT_EQ(cert.not_after, spec.not_after);
  EXPECT_TRUE(bundle.value().warnings.empty());
  EXPECT_EQ(bundle.value().pem, root.cert_pem);
}

TEST(CaBundle, AcceptsIntermediateCaSignedByRoot) {
  const TestCert intermediate = makeIntermediate(makeRoot());

  const auto bundle = loadCaBundle(intermediate.cert_pem, kSource, kNow);
  ASSERT_TRUE(bundle.ok()) << bundle.error().message;
  ASSERT_EQ(bundle.value().certificates.size(), 1u);
  EXPECT_EQ(bundle.value().certificates[0].subject, "CN=Home Lab Issuing CA");
  EXPECT_TRUE(bundle.value().certificates[0].is_ca);
  EXPECT_FALSE(bundle.value().certificates[0].self_signed);
}

TEST(CaBundle, AcceptsBundleOfTwoAndKeepsTheirOrder) {
  const TestCert root = makeRoot();
  const TestCert intermediate = makeIntermediate(root);

  const auto bundle = loadCaBundle(intermediate.cert_pem + root.cert_pem, kSource, kNow);
  ASSERT_TRUE(bundle.ok()) << bundle.error().message;
  ASSERT_EQ(bundle.value().certificates.size(), 2u);
  EXPECT_EQ(bundle.value().certificates[0].subject, "CN=Home Lab Issuing CA");
  EXPECT_EQ(bundle.value().certificates[1].subject, "CN=Home Lab Root CA,O=Home Lab");
  EXPECT_EQ(bundle.value().pem, intermediate.cert_pem + root.cert_pem);
}

TEST(CaBundle, IgnoresTextAroundPemBlocksAndNormalizesToTheCleanPem) {
  const TestCert root = makeRoot();
  const TestCert intermediate = makeIntermediate(root);
  const std::string clean = root.cert_pem + intermediate.cert_pem;
  const std::string annotated =
      "# Home Lab CA bundle, installed by ansible\n"
      "Certificate:\n"
      "    Data:\n"
      "        Version: 3 (0x2)\n"
      "        Subject: O = Home Lab, CN = Home Lab Root CA\n" +
      root.cert_pem + "\n\n   trailing notes between blocks\n" + intermediate.cert_pem +
      "-- end of file --";

  const auto from_clean = loadCaBundle(clean, kSource, kNow);
  const auto from_annotated = loadCaBundle(annotated, kSource, kNow);
  ASSERT_TRUE(from_clean.ok()) << from_clean.error().message;
  ASSERT_TRUE(from_annotated.ok()) << from_annotated.error().message;
  EXPECT_EQ(from_annotated.value().pem, from_clean.value().pem);
  EXPECT_EQ(from_annotated.value().certificates.size(), 2u);
}

TEST(CaBundle, AcceptsWindowsLineEndings) {
  const TestCert root = makeRoot();
  std::string crlf;
  for (const char c : root.cert_pem) {
    crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
  }

  const auto bundle = loadCaBundle(crlf, kSource, kNow);
  ASSERT_TRUE(bundle.ok()) << bundle.error().message;
  EXPECT_EQ(bundle.value().pem, root.cert_pem);
}

TEST(CaBundle, AcceptsSelfSignedServerCertificateAsItsOwnAnchor) {
  CertSpec spec = validFor("harbor.home.lab", false);
  spec.dns_names = {"harbor.home.lab"};
  const TestCert server = makeCert(spec);

  const auto bundle = loadCaBundle(server.cert_pem, kSource, kNow);
  ASSERT_TRUE(bundle.ok()) << bundle.error().message;
  EXPECT_FALSE(bundle.value().certificates[0].is_ca);
  EXPECT_TRUE(bundle.value().certificates[0].self_signed);
}

TEST(CaBundle, KeepsUtf8InTheSubjectReadable) {
  const TestCert root = makeCert(validFor("Müller CA", true));

  const auto bundle = loadCaBundle(root.cert_pem, kSource, kNow);
  ASSERT_TRUE(bundle.ok()) << bundle.error().message;
  EXPECT_EQ(bundle.value().certificates[0].subject, "CN=Müller CA");
}

TEST(CaBundle, AcceptsExpiryBeyondWhatTimePointHoldsAndSaturates) {
  const system_clock::time_point now = std::chrono::sys_days{std::chrono::year{2027} / 1 / 1};

  const auto bundle = loadCaBundle(kForeverCaPem, kSource, now);
  ASSERT_TRUE(bundle.ok()) << bundle.error().message;
  EXPECT_EQ(bundle.value().certificates[0].not_after, system_clock::time_point::max());
  EXPECT_TRUE(bundle.value().warnings.empty());
}

TEST(CaBundle, RejectsLeafCertificateSayingItIsNotACa) {
  const TestCert root = makeRoot();

  const std::string message = rejection(makeServer(root).cert_pem);
  EXPECT_THAT(message, HasSubstr("certificate 1 (CN=harbor.home.lab)"));
  EXPECT_THAT(message, HasSubstr("is not a CA"));
  EXPECT_THAT(message, HasSubstr("server certificate"));
  EXPECT_THAT(message, HasSubstr("CN=Home Lab Root CA,O=Home Lab"));  // the one to give instead
}

TEST(CaBundle, NamesThePositionOfTheBadCertificateInABundle) {
  const TestCert root = makeRoot();

  const std::string message = rejection(root.cert_pem + makeServer(root).cert_pem);
  EXPECT_THAT(message, HasSubstr("certificate 2 (CN=harbor.home.lab)"));
}

TEST(CaBundle, RejectsExpiredCertificateWithItsDate) {
  CertSpec spec = validFor("Old CA", true);
  spec.not_after = kNow - days{1};

  const std::string message = rejection(makeCert(spec).cert_pem);
  EXPECT_THAT(message, HasSubstr("certificate 1 (CN=Old CA) expired on 2025-05-31"));
}

TEST(CaBundle, RejectsCertificateNotYetValidSayingFromWhen) {
  CertSpec spec = validFor("Future CA", true);
  spec.not_before = kNow + days{2};

  const std::string message = rejection(makeCert(spec).cert_pem);
  EXPECT_THAT(message,
              HasSubstr("certificate 1 (CN=Future CA) is not valid until 2025-06-03 12:00:00 UTC"));
}

TEST(CaBundle, AcceptsCertificateExpiringIn10DaysWithOneWarning) {
  CertSpec spec = validFor("Soon CA", true);
  spec.not_after = kNow + days{10};

  const auto bundle = loadCaBundle(makeCert(spec).cert_pem, kSource, kNow);
  ASSERT_TRUE(bundle.ok()) << bundle.error().message;
  ASSERT_EQ(bundle.value().warnings.size(), 1u);
  EXPECT_EQ(bundle.value().warnings[0],
            "CA certificate CN=Soon CA in " + kSource + " expires in 10 days (2025-06-11)");
}

TEST(CaBundle, RejectsPrivateKeyAlone) {
  const std::string message = rejection(makeRoot().key_pem);
  EXPECT_THAT(message, HasSubstr("private key material"));
  EXPECT_THAT(message, HasSubstr("only the CA certificate"));
}

TEST(CaBundle, RejectsCertificateAndPrivateKeyInTheSameFile) {
  const TestCert root = makeRoot();
  EXPECT_THAT(rejection(root.cert_pem + root.key_pem), HasSubstr("private key"));
}

TEST(CaBundle, ReportsPrivateKeyBeforeAnEarlierUnknownBlock) {
  const std::string ec_parameters =
      "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n";
  EXPECT_THAT(rejection(ec_parameters + makeRoot().key_pem), HasSubstr("private key material"));
}

TEST(CaBundle, RejectsEmptyInput) {
  EXPECT_THAT(rejection(""), HasSubstr("no PEM certificate found"));
}

TEST(CaBundle, RejectsTextWithoutAnyPemBlock) {
  EXPECT_THAT(rejection("Certificate:\n    Data:\n"), HasSubstr("no PEM certificate found"));
}

TEST(CaBundle, RejectsRandomGarbageBytes) {
  EXPECT_THAT(rejection(randomBytes(4096)), HasSubstr("no PEM certificate found"));
}

TEST(CaBundle, RejectsDerBytesAndSaysHowToConvertThem) {
  const std::string message = rejection(testing::pemToDer(makeRoot().cert_pem));
  EXPECT_THAT(message, HasSubstr("no PEM certificate found"));
  EXPECT_THAT(message, HasSubstr("openssl x509 -inform der"));
}

TEST(CaBundle, RejectsBlockWithCorruptBase64) {
  EXPECT_THAT(rejection(corruptBase64(makeRoot())), HasSubstr("PEM block 1 is malformed"));
}

TEST(CaBundle, RejectsCertificateBlockWhoseContentDoesNotParse) {
  const std::string block =
      "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n";
  EXPECT_THAT(rejection(block), HasSubstr("certificate 1 does not parse"));
}

TEST(CaBundle, RejectsPublicKeyBlockNamingIt) {
  EXPECT_THAT(rejection(kPublicKeyPem), HasSubstr("PEM block 1 is a PUBLIC KEY"));
}

TEST(CaBundle, NamesTheSourceInEveryError) {
  for (const BadInput& input : badInputs()) {
    EXPECT_THAT(rejection(input.bytes), StartsWith("load CA " + kSource + ": ")) << input.what;
  }
}

TEST(CaBundle, LeavesOpenSslErrorQueueEmptyAfterFailure) {
  for (const BadInput& input : badInputs()) {
    const auto result = loadCaBundle(input.bytes, kSource, kNow);
    EXPECT_FALSE(result.ok()) << input.what;
    EXPECT_EQ(ERR_peek_error(), 0u) << input.what;
  }
}

}  // namespace
}  // namespace k3sma
