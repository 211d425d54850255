#include "tests/support/certs.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <climits>
#include <cstdint>
#include <memory>
#include <stdexcept>

#include "common/handle.h"

namespace k3sma::testing {
namespace {

using BioPtr = std::unique_ptr<BIO, FreeWith<&BIO_free_all>>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, FreeWith<&EVP_PKEY_free>>;
using EvpPkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, FreeWith<&EVP_PKEY_CTX_free>>;
using X509Ptr = std::unique_ptr<X509, FreeWith<&X509_free>>;
using X509ExtensionPtr = std::unique_ptr<X509_EXTENSION, FreeWith<&X509_EXTENSION_free>>;

// Throws with OpenSSL's reason and leaves its per-thread error queue empty, so the code under
// test never sees entries left by the helper.
[[noreturn]] void fail(const std::string& what) {
  std::string message = "makeCert: " + what;
  if (const unsigned long code = ERR_peek_error(); code != 0) {
    char text[256] = {};
    ERR_error_string_n(code, text, sizeof(text));
    message += ": ";
    message += text;
  }
  ERR_clear_error();
  throw std::runtime_error(message);
}

// EC P-256: a key takes well under a millisecond, where RSA-2048 takes tens.
EvpPkeyPtr generateKey() {
  const EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_group_name(ctx.get(), "P-256") != 1) {
    fail("set up EC P-256 key generation");
  }
  EVP_PKEY* raw = nullptr;
  const int generated = EVP_PKEY_generate(ctx.get(), &raw);
  EvpPkeyPtr key(raw);
  if (generated != 1 || !key) {
    fail("generate an EC P-256 key");
  }
  return key;
}

BioPtr memoryBio(const std::string& text) {
  if (text.size() > static_cast<size_t>(INT_MAX)) {
    fail("input too large");
  }
  BioPtr bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  if (!bio) {
    fail("allocate a memory BIO");
  }
  return bio;
}

std::string drain(BIO* bio) {
  const size_t pending = BIO_ctrl_pending(bio);
  if (pending > static_cast<size_t>(INT_MAX)) {
    fail("output too large");
  }
  std::string out(pending, '\0');
  if (pending > 0 &&
      BIO_read(bio, out.data(), static_cast<int>(pending)) != static_cast<int>(pending)) {
    fail("read a memory BIO");
  }
  return out;
}

X509Ptr readCert(const std::string& pem) {
  const BioPtr bio = memoryBio(pem);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) {
    fail("parse a PEM certificate");
  }
  return cert;
}

EvpPkeyPtr readKey(const std::string& pem) {
  const BioPtr bio = memoryBio(pem);
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    fail("parse a PEM private key");
  }
  return key;
}

std::string certToPem(X509* cert) {
  const BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) {
    fail("write a PEM certificate");
  }
  return drain(bio.get());
}

std::string keyToPem(EVP_PKEY* key) {
  const BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    fail("write a PEM private key");
  }
  return drain(bio.get());
}

void setTime(ASN1_TIME* field, std::chrono::system_clock::time_point when, const char* what) {
  if (ASN1_TIME_set(field, std::chrono::system_clock::to_time_t(when)) == nullptr) {
    fail(std::string("set ") + what);
  }
}

// A random positive 63-bit serial: clients that cache by issuer and serial (Firefox, NSS) must
// never see two test certificates with the same pair.
void setRandomSerial(X509* cert) {
  unsigned char bytes[8] = {};
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    fail("draw a serial number");
  }
  uint64_t serial = 0;
  for (const unsigned char byte : bytes) {
    serial = (serial << 8) | byte;
  }
  serial &= ~(uint64_t{1} << 63);
  if (ASN1_INTEGER_set_uint64(X509_get_serialNumber(cert), serial) != 1) {
    fail("set the serial number");
  }
}

void addNameEntry(X509_NAME* name, const char* field, const std::string& value) {
  if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1,
                                 0) != 1) {
    fail(std::string("add ") + field + "=" + value + " to the subject");
  }
}

// Extensions are given in openssl.cnf syntax ("critical,CA:TRUE"): the form every reader of
// `openssl x509 -text` already knows.
void addExtension(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
  const X509ExtensionPtr extension(X509V3_EXT_nconf_nid(nullptr, ctx, nid, value.c_str()));
  if (!extension || X509_add_ext(cert, extension.get(), -1) != 1) {
    fail(std::string("add extension ") + OBJ_nid2sn(nid) + " = " + value);
  }
}

std::string subjectAltNames(const CertSpec& spec) {
  std::string names;
  const auto append = [&names](const std::string& entry) {
    names += names.empty() ? entry : "," + entry;
  };
  for (const auto& dns : spec.dns_names) {
    append("DNS:" + dns);
  }
  for (const auto& ip : spec.ip_addresses) {
    append("IP:" + ip);
  }
  return names;
}

}  // namespace

TestCert makeCert(const CertSpec& spec) {
  const EvpPkeyPtr key = generateKey();
  X509Ptr issuer_cert;
  EvpPkeyPtr issuer_key;
  if (spec.issuer) {
    issuer_cert = readCert(spec.issuer->cert_pem);
    issuer_key = readKey(spec.issuer->key_pem);
    if (X509_check_private_key(issuer_cert.get(), issuer_key.get()) != 1) {
      fail("the issuer's key does not match its certificate");
    }
  }

  const X509Ptr cert(X509_new());
  if (!cert) {
    fail("allocate a certificate");
  }
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1) {
    fail("set version 3");
  }
  setRandomSerial(cert.get());
  setTime(X509_getm_notBefore(cert.get()), spec.not_before, "notBefore");
  setTime(X509_getm_notAfter(cert.get()), spec.not_after, "notAfter");
  if (X509_set_pubkey(cert.get(), key.get()) != 1) {
    fail("set the public key");
  }

  // O before CN, so the RFC 2253 form (most specific first) reads "CN=...,O=...".
  X509_NAME* subject = X509_get_subject_name(cert.get());
  if (!spec.organization.empty()) {
    addNameEntry(subject, "O", spec.organization);
  }
  addNameEntry(subject, "CN", spec.common_name);
  X509* signer = issuer_cert ? issuer_cert.get() : cert.get();
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(signer)) != 1) {
    fail("set the issuer name");
  }

  X509V3_CTX ctx{};
  X509V3_set_ctx(&ctx, signer, cert.get(), nullptr, nullptr, 0);
  if (spec.is_ca) {
    addExtension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE");
    addExtension(cert.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    addExtension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE");
    addExtension(cert.get(), &ctx, NID_key_usage, "critical,digitalSignature");
    addExtension(cert.get(), &ctx, NID_ext_key_usage, "serverAuth,clientAuth");
  }
  // The subject key id goes first: for a self-signed certificate the authority key id is copied
  // from it, and X509_check_issued() compares the two.
  addExtension(cert.get(), &ctx, NID_subject_key_identifier, "hash");
  addExtension(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always");
  if (const std::string names = subjectAltNames(spec); !names.empty()) {
    addExtension(cert.get(), &ctx, NID_subject_alt_name, names);
  }

  EVP_PKEY* signing_key = issuer_key ? issuer_key.get() : key.get();
  if (X509_sign(cert.get(), signing_key, EVP_sha256()) <= 0) {
    fail("sign the certificate");
  }
  return TestCert{certToPem(cert.get()), keyToPem(key.get())};
}

std::string pemToDer(const std::string& pem) {
  const X509Ptr cert = readCert(pem);
  const int length = i2d_X509(cert.get(), nullptr);
  if (length <= 0) {
    fail("measure a DER certificate");
  }
  std::string der(static_cast<size_t>(length), '\0');
  auto* cursor = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_X509(cert.get(), &cursor) != length) {
    fail("encode a DER certificate");
  }
  return der;
}

}  // namespace k3sma::testing
