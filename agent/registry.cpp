#include "agent/registry.h"

#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cctype>
#include <ctime>
#include <mutex>
#include <nlohmann/json.hpp>

#include "common/challenge.h"
#include "common/digest.h"
#include "common/fs.h"
#include "common/handle.h"
#include "version.h"

namespace k3sma {
namespace {

using Clock = std::chrono::steady_clock;
using CurlPtr = Owned<CURL, curl_easy_cleanup>;
using SlistPtr = Owned<curl_slist, curl_slist_free_all>;
using CurlUrlPtr = Owned<CURLU, curl_url_cleanup>;
using StorePtr = Owned<X509_STORE, X509_STORE_free>;
using BioPtr = Owned<BIO, BIO_free_all>;
using X509Ptr = Owned<X509, X509_free>;

// A manifest is at most 4 MiB (the distribution spec's limit); a /v2/ or error body is small.
constexpr size_t kMaxBody = 4u << 20;

Error probeError(std::string message) { return {std::move(message), ErrorKind::kProbe}; }

std::string lower(std::string s) {
  for (char& c : s) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return s;
}

std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) {
    return "";
  }
  return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

// The OpenSSL error queue as text, emptied.
std::string sslErrors() {
  std::string text;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    text += (text.empty() ? "" : "; ") + std::string(buf);
  }
  return text.empty() ? "unknown OpenSSL error" : text;
}

// The trust store every connection of one CurlHttp shares: the system's (OpenSSL's default
// file and directory, i.e. Debian's /etc/ssl/certs) plus the configured CA. Built once, handed
// to each new SSL_CTX by reference (SSL_CTX_set1_cert_store) instead of parsed again.
Result<StorePtr> makeTrustStore(const std::string& ca_pem) {
  ERR_clear_error();
  StorePtr store(X509_STORE_new());
  if (!store) {
    return probeError("set up the trust store: " + sslErrors());
  }
  // The system's bundle file (Debian: /usr/lib/ssl/cert.pem -> /etc/ssl/certs/ca-certificates.crt,
  // which update-ca-certificates keeps), as containerd reads it. Not X509_STORE_set_default_paths:
  // OpenSSL 3 adds a directory and an OSSL_STORE lookup there, and the latter's "search only
  // supported for directories" error, left in the queue, replaced the verify failure's message
  // on a node.
  if (X509_STORE_load_file(store.get(), X509_get_default_cert_file()) != 1) {
    ERR_clear_error();  // no system store is not fatal when a CA is configured
  }
  if (ca_pem.empty()) {
    return store;
  }
  BioPtr bio(BIO_new_mem_buf(ca_pem.data(), static_cast<int>(ca_pem.size())));
  if (!bio) {
    return probeError("load the CA: " + sslErrors());
  }
  int added = 0;
  while (X509Ptr cert{PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)}) {
    if (X509_STORE_add_cert(store.get(), cert.get()) != 1) {
      return probeError("load the CA: " + sslErrors());
    }
    ++added;
  }
  ERR_clear_error();  // the loop ends on "no start line": expected, not an error
  if (added == 0) {
    return probeError("load the CA: no certificate in it");
  }
  return store;
}

std::optional<std::chrono::system_clock::time_point> notAfter(const X509* cert) {
  std::tm tm{};
  if (cert == nullptr || ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1) {
    return std::nullopt;
  }
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

}  // namespace

std::string HttpResponse::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? "" : it->second;
}

const char* const kManifestAccept =
    "Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json";

struct CurlHttp::Impl {
  CurlPtr curl;
  StorePtr store;
  char errbuf[CURL_ERROR_SIZE] = {};
  HttpResponse* current = nullptr;  // the response being read, for the callbacks
  bool body_too_large = false;
  std::function<void()> while_waiting;

  // libcurl's progress callback runs about once a second even while connecting: the daemon's
  // watchdog is pinged from there, so a slow cache never gets the daemon killed.
  static int onProgress(void* self, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    auto* impl = static_cast<Impl*>(self);
    if (impl->while_waiting) {
      impl->while_waiting();
    }
    return 0;
  }

  static CURLcode onSslCtx(CURL*, void* ssl_ctx, void* self) {
    auto* impl = static_cast<Impl*>(self);
    SSL_CTX_set1_cert_store(static_cast<SSL_CTX*>(ssl_ctx), impl->store.get());
    return CURLE_OK;
  }

  static size_t onBody(char* data, size_t size, size_t count, void* self) {
    auto* impl = static_cast<Impl*>(self);
    const size_t n = size * count;
    if (impl->current->body.size() + n > kMaxBody) {
      impl->body_too_large = true;
      return 0;  // libcurl stops with CURLE_WRITE_ERROR
    }
    impl->current->body.append(data, n);
    return n;
  }

  static size_t onHeader(char* data, size_t size, size_t count, void* self) {
    auto* impl = static_cast<Impl*>(self);
    const size_t n = size * count;
    const std::string line(data, n);
    HttpResponse& r = *impl->current;
    if (line.rfind("HTTP/", 0) == 0) {
      // A new response (after a redirect or a 100): its headers replace the last one's. The
      // TLS session is up by now, reused or not: read the server's certificate from it.
      r.headers.clear();
      curl_tlssessioninfo* tls = nullptr;
      if (curl_easy_getinfo(impl->curl.get(), CURLINFO_TLS_SSL_PTR, &tls) == CURLE_OK &&
          tls != nullptr && tls->backend == CURLSSLBACKEND_OPENSSL && tls->internals != nullptr) {
        r.certificate_not_after =
            notAfter(SSL_get0_peer_certificate(static_cast<SSL*>(tls->internals)));
      }
      return n;
    }
    const auto colon = line.find(':');
    if (colon != std::string::npos) {
      const std::string name = lower(trim(line.substr(0, colon)));
      const std::string value = trim(line.substr(colon + 1));
      auto [it, inserted] = r.headers.emplace(name, value);
      if (!inserted) {
        it->second += ", " + value;  // repeated headers are one comma-separated list
      }
    }
    return n;
  }
};

CurlHttp::CurlHttp(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CurlHttp::~CurlHttp() = default;

Result<std::unique_ptr<CurlHttp>> CurlHttp::create(const TlsSettings& tls) {
  static std::once_flag once;
  static CURLcode global = CURLE_OK;
  std::call_once(once, [] { global = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (global != CURLE_OK) {
    return probeError(std::string("set up libcurl: ") + curl_easy_strerror(global));
  }
  auto impl = std::make_unique<Impl>();
  impl->curl.reset(curl_easy_init());
  if (!impl->curl) {
    return probeError("set up libcurl: curl_easy_init failed");
  }
  auto store = makeTrustStore(tls.insecure_skip_verify ? "" : tls.ca_pem);
  if (!store) {
    return store.error();
  }
  impl->store = std::move(store.value());
  impl->while_waiting = tls.while_waiting;
  CURL* c = impl->curl.get();
  Impl* self = impl.get();
  const long verify = tls.insecure_skip_verify ? 0L : 1L;
  const std::string agent = std::string("k3s-mirror-agent/") + kVersion;
  // Every setter is checked: an option that did not take (an old libcurl, a typo) must not
  // quietly leave, say, host verification off.
  const std::pair<const char*, CURLcode> set[] = {
      {"CURLOPT_ERRORBUFFER", curl_easy_setopt(c, CURLOPT_ERRORBUFFER, self->errbuf)},
      {"CURLOPT_NOSIGNAL", curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L)},
      {"CURLOPT_PROTOCOLS_STR", curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https")},
      {"CURLOPT_REDIR_PROTOCOLS_STR",
       curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https")},
      {"CURLOPT_FOLLOWLOCATION", curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L)},
      {"CURLOPT_MAXREDIRS", curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L)},
      {"CURLOPT_CONNECTTIMEOUT_MS",
       curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(tls.timeout.count()))},
      {"CURLOPT_TIMEOUT_MS",
       curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(tls.timeout.count()))},
      {"CURLOPT_USERAGENT", curl_easy_setopt(c, CURLOPT_USERAGENT, agent.c_str())},
      {"CURLOPT_SSLVERSION", curl_easy_setopt(c, CURLOPT_SSLVERSION, CURL_SSLVERSION_TLSv1_2)},
      {"CURLOPT_SSL_VERIFYPEER", curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, verify)},
      {"CURLOPT_SSL_VERIFYHOST", curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, verify * 2L)},
      // No CA file or directory of libcurl's own: the store above is the only trust.
      {"CURLOPT_CAINFO", curl_easy_setopt(c, CURLOPT_CAINFO, nullptr)},
      {"CURLOPT_CAPATH", curl_easy_setopt(c, CURLOPT_CAPATH, nullptr)},
      {"CURLOPT_SSL_CTX_FUNCTION", curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, &Impl::onSslCtx)},
      {"CURLOPT_SSL_CTX_DATA", curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, self)},
      {"CURLOPT_WRITEFUNCTION", curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &Impl::onBody)},
      {"CURLOPT_WRITEDATA", curl_easy_setopt(c, CURLOPT_WRITEDATA, self)},
      {"CURLOPT_HEADERFUNCTION", curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &Impl::onHeader)},
      {"CURLOPT_HEADERDATA", curl_easy_setopt(c, CURLOPT_HEADERDATA, self)},
      {"CURLOPT_NOPROGRESS", curl_easy_setopt(c, CURLOPT_NOPROGRESS, tls.while_waiting ? 0L : 1L)},
      {"CURLOPT_XFERINFOFUNCTION",
       curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, &Impl::onProgress)},
      {"CURLOPT_XFERINFODATA", curl_easy_setopt(c, CURLOPT_XFERINFODATA, self)},
  };
  for (const auto& [name, code] : set) {
    if (code != CURLE_OK) {
      return probeError(std::string("set up libcurl: ") + name + ": " + curl_easy_strerror(code));
    }
  }
  return std::unique_ptr<CurlHttp>(new CurlHttp(std::move(impl)));
}

HttpResponse CurlHttp::send(const HttpRequest& request) {
  HttpResponse response;
  CURL* c = impl_->curl.get();
  impl_->current = &response;
  impl_->body_too_large = false;
  impl_->errbuf[0] = '\0';
  SlistPtr headers;
  for (const auto& h : request.headers) {
    curl_slist* appended = curl_slist_append(headers.get(), h.c_str());
    if (appended == nullptr) {
      response.error = "prepare the request to " + request.url + ": out of memory";
      return response;
    }
    (void)headers.release();
    headers.reset(appended);
  }
  const bool head = request.method == "HEAD";
  const CURLcode setup[] = {
      curl_easy_setopt(c, CURLOPT_URL, request.url.c_str()),
      curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get()),
      head ? curl_easy_setopt(c, CURLOPT_NOBODY, 1L) : curl_easy_setopt(c, CURLOPT_HTTPGET, 1L),
  };
  for (CURLcode code : setup) {
    if (code != CURLE_OK) {
      response.error = "prepare the request to " + request.url + ": " + curl_easy_strerror(code);
      return response;
    }
  }
  const auto start = Clock::now();
  const CURLcode rc = curl_easy_perform(c);
  response.latency = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  // The header list dies with this call: libcurl must not keep a pointer to it.
  (void)curl_easy_setopt(c, CURLOPT_HTTPHEADER, nullptr);
  impl_->current = nullptr;
  ERR_clear_error();
  if (rc != CURLE_OK) {
    std::string detail = impl_->errbuf[0] != '\0' ? impl_->errbuf : curl_easy_strerror(rc);
    long os_errno = 0;
    if (curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &os_errno) == CURLE_OK && os_errno != 0) {
      detail += " (" + errnoText(static_cast<int>(os_errno)) + ")";  // "Connection refused"
    }
    if (impl_->body_too_large) {
      response.error = "read " + request.url + ": the answer is larger than 4 MiB";
    } else if (long verify = 0;
               rc == CURLE_PEER_FAILED_VERIFICATION ||
               (curl_easy_getinfo(c, CURLINFO_SSL_VERIFYRESULT, &verify) == CURLE_OK &&
                verify != X509_V_OK)) {
      response.error = "TLS with " + request.url + ": certificate verify failed: " + detail;
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
      response.error = request.method + " " + request.url + ": timed out (" + detail + ")";
    } else {
      response.error = request.method + " " + request.url + ": " + detail;
    }
    response.status = 0;
    return response;
  }
  long code = 0;
  if (curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK || code <= 0) {
    response.error = request.method + " " + request.url + ": no HTTP response";
    return response;
  }
  response.status = static_cast<int>(code);
  return response;
}

std::string registryErrorCode(const std::string& body) {
  const auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("errors") || !j["errors"].is_array() || j["errors"].empty() ||
      !j["errors"][0].is_object()) {
    return "";
  }
  const auto& e = j["errors"][0];
  std::string text =
      e.contains("code") && e["code"].is_string() ? e["code"].get<std::string>() : "";
  if (e.contains("message") && e["message"].is_string() &&
      !e["message"].get<std::string>().empty()) {
    text += (text.empty() ? "" : " ") + ("(" + e["message"].get<std::string>() + ")");
  }
  return text;
}

V2Result RegistryClient::probeV2(const std::string& cache_url) {
  V2Result result;
  const std::string url = cache_url + "/v2/";
  const HttpResponse r = http_.send({"GET", url, {"Accept: application/json"}});
  result.latency = r.latency;
  result.http_status = r.status;
  result.certificate_not_after = r.certificate_not_after;
  if (r.status == 0) {
    result.error = r.error;
  } else if (r.status != 200 && r.status != 401) {
    result.error =
        "GET " + url + ": HTTP " + std::to_string(r.status) + " (a registry answers 200 or 401)";
  } else {
    result.up = true;
  }
  return result;
}

namespace {

std::string base64(const std::string& text) {
  std::string out(4 * ((text.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

// realm?service=…&scope=…, the query appended and encoded by libcurl's URL API (the realm may
// already carry a query of its own).
Result<std::string> tokenUrl(const std::string& realm, const Challenge& c,
                             const std::string& scope) {
  CurlUrlPtr u(curl_url());
  if (!u || curl_url_set(u.get(), CURLUPART_URL, realm.c_str(), 0) != CURLUE_OK) {
    return probeError("ask for a token: the realm \"" + realm + "\" is not a URL");
  }
  auto append = [&](const std::string& name, const std::string& value) {
    const std::string pair = name + "=" + value;
    return curl_url_set(u.get(), CURLUPART_QUERY, pair.c_str(),
                        CURLU_APPENDQUERY | CURLU_URLENCODE) == CURLUE_OK;
  };
  if (auto service = c.params.find("service"); service != c.params.end()) {
    if (!append("service", service->second)) {
      return probeError("ask for a token at " + realm + ": cannot add the service");
    }
  }
  if (!append("scope", scope)) {
    return probeError("ask for a token at " + realm + ": cannot add the scope");
  }
  char* text = nullptr;
  if (curl_url_get(u.get(), CURLUPART_URL, &text, 0) != CURLUE_OK || text == nullptr) {
    return probeError("ask for a token at " + realm + ": cannot build the URL");
  }
  Owned<char, curl_free> owned(text);
  return std::string(owned.get());
}

}  // namespace

Result<std::string> RegistryClient::answer(const HttpResponse& unauthorized,
                                           const std::string& path,
                                           std::chrono::milliseconds& spent) {
  const std::string header = unauthorized.header("www-authenticate");
  if (header.empty()) {
    return probeError("HTTP 401 without a WWW-Authenticate challenge");
  }
  auto challenges = parseChallenges(header);
  if (!challenges) {
    return challenges.error();
  }
  const std::string basic =
      credentials_ ? "Basic " + base64(credentials_->username + ":" + credentials_->password) : "";
  for (const auto& c : challenges.value()) {
    if (c.scheme == "bearer") {
      auto realm = c.params.find("realm");
      if (realm == c.params.end() || realm->second.empty()) {
        return probeError("the Bearer challenge names no realm");
      }
      // The scope the registry asked for, else the one containerd would ask for.
      auto asked = c.params.find("scope");
      const std::string scope =
          asked != c.params.end() ? asked->second : "repository:" + path + ":pull";
      auto url = tokenUrl(realm->second, c, scope);
      if (!url) {
        return url.error();
      }
      HttpRequest token_request{"GET", url.value(), {"Accept: application/json"}};
      if (!basic.empty()) {
        token_request.headers.push_back("Authorization: " + basic);
      }
      const HttpResponse t = http_.send(token_request);
      spent += t.latency;
      if (t.status == 0) {
        return probeError("ask for a token: " + t.error);
      }
      if (t.status != 200) {
        const std::string code = registryErrorCode(t.body);
        return probeError("ask for a token at " + realm->second + ": HTTP " +
                          std::to_string(t.status) + (code.empty() ? "" : " " + code) +
                          (credentials_ ? " (with registry.auth)" : " (anonymous)"));
      }
      const auto j = nlohmann::json::parse(t.body, nullptr, /*allow_exceptions=*/false);
      for (const char* field : {"token", "access_token"}) {
        if (j.is_object() && j.contains(field) && j[field].is_string() &&
            !j[field].get<std::string>().empty()) {
          return "Authorization: Bearer " + j[field].get<std::string>();
        }
      }
      return probeError("ask for a token at " + realm->second +
                        ": the answer has no \"token\" or \"access_token\"");
    }
    if (c.scheme == "basic") {
      if (basic.empty()) {
        return probeError("the registry wants a password (Basic) and registry.auth is not set");
      }
      return "Authorization: " + basic;
    }
  }
  return probeError("no challenge the agent can answer in \"" + header + "\"");
}

ManifestResult RegistryClient::resolveManifest(const std::string& image, const std::string& url,
                                               const std::string& path) {
  ManifestResult result;
  const std::string where = "resolve " + image + " at " + url + ": ";
  std::string authorization;
  bool authenticated = false;
  std::string method = "HEAD";
  HttpResponse r;
  // HEAD, then GET when HEAD is refused (or to read the registry's error code, which a HEAD's
  // empty body cannot carry); each answered once with credentials when it says 401.
  for (int attempt = 0; attempt < 4; ++attempt) {
    HttpRequest request{method, url, {kManifestAccept}};
    if (!authorization.empty()) {
      request.headers.push_back(authorization);
    }
    r = http_.send(request);
    result.latency += r.latency;
    if (r.status == 0) {
      break;
    }
    if (r.status == 401 && !authenticated) {
      authenticated = true;
      auto answered = answer(r, path, result.latency);
      if (!answered) {
        result.http_status = r.status;
        result.error = where + "HTTP 401 UNAUTHORIZED: " + answered.error().message;
        return result;
      }
      authorization = answered.value();
      continue;
    }
    const bool no_digest = r.status == 200 && r.header("docker-content-digest").empty();
    if (method == "HEAD" && (r.status != 200 || no_digest)) {
      method = "GET";
      continue;
    }
    break;
  }
  result.http_status = r.status;
  if (r.status == 0) {
    result.error = where + r.error;
    return result;
  }
  if (r.status != 200) {
    std::string code = registryErrorCode(r.body);
    if (code.empty() && r.status == 401) {
      code = "UNAUTHORIZED";
    }
    result.error = where + "HTTP " + std::to_string(r.status) + (code.empty() ? "" : " " + code);
    return result;
  }
  result.digest = r.header("docker-content-digest");
  if (result.digest.empty()) {
    result.digest = "sha256:" + sha256Hex(r.body);  // what the digest is: the body's hash
  }
  result.up = true;
  return result;
}

}  // namespace k3sma
