#include "common/ca.h"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <utility>

#include "common/handle.h"

namespace k3sma {
namespace {

using std::chrono::sys_seconds;
using std::chrono::system_clock;

// OPENSSL_free is a macro (it records file and line), so it cannot be a template argument.
struct OpensslFree {
  void operator()(void* memory) const noexcept { OPENSSL_free(memory); }
};

using BioPtr = std::unique_ptr<BIO, FreeWith<&BIO_free_all>>;
using X509Ptr = std::unique_ptr<X509, FreeWith<&X509_free>>;
template <class T>
using OpensslPtr = std::unique_ptr<T, OpensslFree>;

// OpenSSL's error queue is per-thread state that later, unrelated calls read: SSL_get_error() in
// the TLS probe reports SSL_ERROR_SSL when anything is queued. So the queue is emptied when
// loading starts (stale entries would be mistaken for ours) and whatever path it ends by.
class ErrorQueueScope {
 public:
  ErrorQueueScope() { ERR_clear_error(); }
  ~ErrorQueueScope() { ERR_clear_error(); }
  ErrorQueueScope(const ErrorQueueScope&) = delete;
  ErrorQueueScope& operator=(const ErrorQueueScope&) = delete;
};

// Appends OpenSSL's own reason for the failure just seen, then empties the queue.
std::string withOpensslReason(std::string reason) {
  // The oldest entry is the most specific one ("wrong tag"); later ones only add nesting.
  const unsigned long code = ERR_peek_error();
  if (code != 0) {
    char text[256] = {};
    ERR_error_string_n(code, text, sizeof(text));
    reason += " (OpenSSL: ";
    reason += text;
    reason += ")";
  }
  ERR_clear_error();
  return reason;
}

Result<std::string> readAll(BIO* bio) {
  const size_t pending = BIO_ctrl_pending(bio);
  if (pending > static_cast<size_t>(INT_MAX)) {
    return configError("output is too large");
  }
  std::string out(pending, '\0');
  if (pending > 0 &&
      BIO_read(bio, out.data(), static_cast<int>(pending)) != static_cast<int>(pending)) {
    return configError(withOpensslReason("cannot read OpenSSL's output"));
  }
  return out;
}

// One line, RFC 2253 ("CN=Home Lab CA,O=Home"), but UTF-8 kept as UTF-8: XN_FLAG_RFC2253 alone
// includes ESC_MSB, which would print "Müller" as "M\C3\BCller". Control characters stay escaped,
// so a hostile name cannot forge log lines.
Result<std::string> printName(const X509_NAME* name) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio) {
    return configError(withOpensslReason("cannot allocate a memory BIO"));
  }
  constexpr unsigned long kFlags =
      XN_FLAG_RFC2253 & ~static_cast<unsigned long>(ASN1_STRFLGS_ESC_MSB);
  if (X509_NAME_print_ex(bio.get(), name, 0, kFlags) < 0) {
    return configError(withOpensslReason("cannot print a certificate name"));
  }
  return readAll(bio.get());
}

// Seconds, not system_clock's nanoseconds: RFC 5280's "no well-defined expiry" date,
// 9999-12-31, is far outside the ±292 years a nanosecond time_point can hold.
std::optional<sys_seconds> toSysSeconds(const ASN1_TIME* time) {
  std::tm tm{};
  if (time == nullptr || ASN1_TIME_to_tm(time, &tm) != 1) {
    ERR_clear_error();
    return std::nullopt;
  }
  const std::chrono::year_month_day date{std::chrono::year{tm.tm_year + 1900},
                                         std::chrono::month{static_cast<unsigned>(tm.tm_mon + 1)},
                                         std::chrono::day{static_cast<unsigned>(tm.tm_mday)}};
  if (!date.ok()) {
    return std::nullopt;
  }
  return sys_seconds{std::chrono::sys_days{date}} + std::chrono::hours{tm.tm_hour} +
         std::chrono::minutes{tm.tm_min} + std::chrono::seconds{tm.tm_sec};
}

// CaCertificate holds a system_clock::time_point; later dates saturate to its maximum.
system_clock::time_point toTimePoint(sys_seconds time) {
  constexpr auto kLatest =
      std::chrono::floor<std::chrono::seconds>(system_clock::time_point::max());
  constexpr auto kEarliest =
      std::chrono::ceil<std::chrono::seconds>(system_clock::time_point::min());
  if (time >= kLatest) {
    return system_clock::time_point::max();
  }
  if (time <= kEarliest) {
    return system_clock::time_point::min();
  }
  return std::chrono::time_point_cast<system_clock::duration>(time);
}

std::string formatDate(sys_seconds time) {
  const std::chrono::year_month_day date{std::chrono::floor<std::chrono::days>(time)};
  // From the fields, not through std::tm: the year may be beyond what time_t and gmtime take.
  return fmt::format("{:04}-{:02}-{:02}", static_cast<int>(date.year()),
                     static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()));
}

std::string formatDateTime(sys_seconds time) {
  const auto day = std::chrono::floor<std::chrono::days>(time);
  return fmt::format("{} {:%H:%M:%S} UTC", formatDate(time), time - day);
}

// Block names come from the file; keep what is printed short and printable.
std::string printableBlockName(std::string_view name) {
  constexpr size_t kMaxLength = 40;
  std::string out;
  for (const char c : name.substr(0, kMaxLength)) {
    out += std::isprint(static_cast<unsigned char>(c)) != 0 ? c : '?';
  }
  if (name.size() > kMaxLength) {
    out += "...";
  }
  return out;
}

bool isPrivateKeyBlock(std::string_view name) {
  std::string upper(name);
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  // "PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "RSA/EC/DSA/OPENSSH PRIVATE KEY", ...
  return upper.find("PRIVATE KEY") != std::string::npos;
}

struct PemBlock {
  std::string name;
  std::vector<unsigned char> der;  // kept for CERTIFICATE blocks only
};

// Every PEM block in the input, in order. OpenSSL skips text between blocks by itself.
Result<std::vector<PemBlock>> readPemBlocks(std::string_view input) {
  if (input.size() > static_cast<size_t>(INT_MAX)) {
    return configError("the input is too large");
  }
  std::vector<PemBlock> blocks;
  if (input.empty()) {
    return blocks;
  }
  BioPtr bio(BIO_new_mem_buf(input.data(), static_cast<int>(input.size())));
  if (!bio) {
    return configError(withOpensslReason("cannot allocate a memory BIO"));
  }
  for (;;) {
    char* raw_name = nullptr;
    char* raw_header = nullptr;
    unsigned char* raw_data = nullptr;
    long length = 0;
    const int read = PEM_read_bio(bio.get(), &raw_name, &raw_header, &raw_data, &length);
    const OpensslPtr<char> name(raw_name);
    const OpensslPtr<char> header(raw_header);
    const OpensslPtr<unsigned char> data(raw_data);
    if (read != 1) {
      // "No start line" is how OpenSSL says there is no further BEGIN line: the normal end.
      const unsigned long code = ERR_peek_last_error();
      if (ERR_GET_LIB(code) == ERR_LIB_PEM && ERR_GET_REASON(code) == PEM_R_NO_START_LINE) {
        ERR_clear_error();
        return blocks;
      }
      return configError(withOpensslReason("PEM block " + std::to_string(blocks.size() + 1) +
                                           " is malformed (corrupt base64 or no END line)"));
    }
    if (!name || length < 0 || (length > 0 && !data)) {
      return configError("PEM block " + std::to_string(blocks.size() + 1) + " is malformed");
    }
    PemBlock block{name.get(), {}};
    if (block.name == PEM_STRING_X509) {
      block.der.assign(data.get(), data.get() + length);
    } else if (isPrivateKeyBlock(block.name) && data) {
      // Refused anyway; don't leave a copy of the key in freed heap memory.
      OPENSSL_cleanse(data.get(), static_cast<size_t>(length));
    }
    blocks.push_back(std::move(block));
  }
}

// For input without any PEM block: is it a certificate in binary DER? Then say how to convert it.
bool isDerCertificate(std::string_view input) {
  const auto* cursor = reinterpret_cast<const unsigned char*>(input.data());
  const X509Ptr cert(d2i_X509(nullptr, &cursor, static_cast<long>(input.size())));
  ERR_clear_error();
  return cert != nullptr;
}

// Refuses anything but certificates. Keys are checked across the whole file first: that a private
// key sits next to the certificate matters more than an "EC PARAMETERS" block before it.
Status checkBlockNames(const std::vector<PemBlock>& blocks, const std::string& source) {
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (isPrivateKeyBlock(blocks[i].name)) {
      return configError("the file contains private key material (PEM block " +
                         std::to_string(i + 1) + ", " + printableBlockName(blocks[i].name) +
                         "); give only the CA certificate, its key never belongs on the nodes");
    }
  }
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (blocks[i].name == PEM_STRING_X509) {
      continue;
    }
    std::string reason = "PEM block " + std::to_string(i + 1) + " is a " +
                         printableBlockName(blocks[i].name) +
                         ", not a CERTIFICATE; only certificates are accepted";
    if (blocks[i].name == PEM_STRING_X509_TRUSTED || blocks[i].name == PEM_STRING_X509_OLD) {
      reason += " (convert it with `openssl x509 -in " + source + " -out ca.pem`)";
    }
    return configError(std::move(reason));
  }
  return Ok{};
}

// Issuer and subject name match and the key identifiers agree; with verify_signature, the
// signature also verifies with the certificate's own key.
bool isSelfSigned(X509* cert, bool verify_signature) {
  const int issued = X509_check_issued(cert, cert);
  // KEYUSAGE_NO_CERTSIGN: all of the above holds but keyUsage lacks keyCertSign, as in a
  // self-signed server certificate. Go's TLS (containerd) trusts such a certificate when it is
  // itself in the CA file, so it is a valid anchor for a registry that has no separate CA.
  if (issued != X509_V_OK && issued != X509_V_ERR_KEYUSAGE_NO_CERTSIGN) {
    ERR_clear_error();
    return false;
  }
  if (!verify_signature) {
    return true;
  }
  EVP_PKEY* key = X509_get0_pubkey(cert);  // Borrowed: the certificate owns it.
  const bool verified = key != nullptr && X509_verify(cert, key) == 1;
  ERR_clear_error();
  return verified;
}

std::string daysLeftText(std::chrono::seconds left) {
  const auto days = std::chrono::floor<std::chrono::days>(left).count();
  if (days < 1) {
    return "within a day";
  }
  return "in " + std::to_string(days) + (days == 1 ? " day" : " days");
}

struct CheckedCertificate {
  CaCertificate info;
  std::string pem;  // re-encoded by OpenSSL
  std::optional<std::string> warning;
};

// Parses certificate `position` (1-based) and checks it against `now`.
Result<CheckedCertificate> checkCertificate(const PemBlock& block, size_t position, sys_seconds now,
                                            const std::string& source) {
  const std::string number = "certificate " + std::to_string(position);
  const unsigned char* cursor = block.der.data();
  const X509Ptr cert(d2i_X509(nullptr, &cursor, static_cast<long>(block.der.size())));
  if (!cert) {
    return configError(withOpensslReason(number + " does not parse"));
  }
  if (cursor != block.der.data() + block.der.size()) {
    return configError(number + " has trailing bytes after its DER encoding");
  }

  auto subject = printName(X509_get_subject_name(cert.get()));
  if (!subject.ok()) {
    return subject.error();
  }
  const std::string what =
      number + " (" + (subject.value().empty() ? "empty subject" : subject.value()) + ")";

  // Caching the extensions also validates them; OpenSSL's own verification refuses a certificate
  // with broken or duplicate extensions, so installing one would only fail later.
  const uint32_t flags = X509_get_extension_flags(cert.get());
  if ((flags & EXFLAG_INVALID) != 0) {
    return configError(withOpensslReason(what + " has invalid or duplicate extensions"));
  }

  const auto not_before = toSysSeconds(X509_get0_notBefore(cert.get()));
  const auto not_after = toSysSeconds(X509_get0_notAfter(cert.get()));
  if (!not_before || !not_after) {
    return configError(what + " has an unreadable validity period");
  }
  if (now < *not_before) {
    return configError(what + " is not valid until " + formatDateTime(*not_before) +
                       " (check this node's clock)");
  }
  if (now > *not_after) {
    return configError(what + " expired on " + formatDate(*not_after));
  }

  CheckedCertificate checked;
  CaCertificate& info = checked.info;
  info.subject = subject.value();
  info.not_after = toTimePoint(*not_after);
  info.is_ca = (flags & EXFLAG_CA) != 0;
  // The signature check is what accepts a self-signed certificate that is not a CA, so it runs
  // only then: measured, it was a third of the instructions of an apply that changes nothing.
  info.self_signed = isSelfSigned(cert.get(), !info.is_ca);
  if (!info.is_ca && !info.self_signed) {
    std::string reason = what +
                         " is not a CA (no basicConstraints CA:TRUE) and not self-signed: it looks "
                         "like the registry's server certificate; give the CA certificate that "
                         "signed it";
    if (auto issuer = printName(X509_get_issuer_name(cert.get()));
        issuer.ok() && !issuer.value().empty()) {
      reason += " (" + issuer.value() + ")";
    }
    return configError(std::move(reason));
  }

  if (const auto left = *not_after - now; left <= kCaExpiryWarning) {
    checked.warning =
        "CA certificate " + (info.subject.empty() ? std::to_string(position) : info.subject) +
        " in " + source + " expires " + daysLeftText(left) + " (" + formatDate(*not_after) + ")";
  }

  BioPtr out(BIO_new(BIO_s_mem()));
  if (!out || PEM_write_bio_X509(out.get(), cert.get()) != 1) {
    return configError(withOpensslReason("cannot re-encode " + what));
  }
  auto encoded = readAll(out.get());
  if (!encoded.ok()) {
    return encoded.error();
  }
  checked.pem = std::move(encoded).value();
  return checked;
}

Result<CaBundle> loadChecked(std::string_view input, const std::string& source,
                             system_clock::time_point now) {
  auto blocks = readPemBlocks(input);
  if (!blocks.ok()) {
    return blocks.error();
  }
  if (blocks.value().empty()) {
    std::string reason = "no PEM certificate found";
    if (input.empty()) {
      reason += " (the file is empty)";
    } else if (isDerCertificate(input)) {
      reason +=
          " (this is a DER-encoded certificate; convert it with `openssl x509 -inform der "
          "-in " +
          source + " -out ca.pem`)";
    }
    return configError(std::move(reason));
  }
  if (auto names = checkBlockNames(blocks.value(), source); !names.ok()) {
    return names.error();
  }

  CaBundle bundle;
  const auto now_seconds = std::chrono::floor<std::chrono::seconds>(now);
  for (size_t i = 0; i < blocks.value().size(); ++i) {
    auto cert = checkCertificate(blocks.value()[i], i + 1, now_seconds, source);
    if (!cert.ok()) {
      return cert.error();
    }
    bundle.pem += cert.value().pem;
    bundle.certificates.push_back(std::move(cert.value().info));
    if (cert.value().warning) {
      bundle.warnings.push_back(std::move(*cert.value().warning));
    }
  }
  return bundle;
}

}  // namespace

Result<CaBundle> loadCaBundle(std::string_view pem, const std::string& source,
                              std::chrono::system_clock::time_point now) {
  const ErrorQueueScope error_queue;
  auto bundle = loadChecked(pem, source, now);
  if (!bundle.ok()) {
    return bundle.error().context("load CA " + source);
  }
  return bundle;
}

}  // namespace k3sma
