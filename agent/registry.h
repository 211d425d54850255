#pragma once
// The registry client: what the agent says to the cache over HTTP, the way containerd does it.
// Two layers. Http is the one side effect (one request, one response); CurlHttp is its real
// implementation on libcurl (Debian's libcurl4-openssl, so TLS stays OpenSSL) and keeps one easy
// handle and one trust store for its life, so the daemon's probe every interval reuses the
// connection, the TLS session and the parsed CA instead of building them again (before, each
// probe made a new SSL_CTX and reloaded the system's trust store: most of the idle CPU).
// RegistryClient is the protocol over any Http: `GET /v2/`, and a manifest resolved with the
// token dance (401 + WWW-Authenticate: Bearer -> the realm for a token -> the request again) or
// Basic, HEAD first and GET when HEAD is refused. Unit tests drive it with a fake Http.

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"

namespace k3sma {

struct HttpRequest {
  std::string method = "GET";  // GET or HEAD
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
};

struct HttpResponse {
  int status = 0;     // 0: no HTTP response (error says why)
  std::string error;  // a transport failure: "connect …", "certificate verify failed: …"
  std::map<std::string, std::string> headers;  // lower-case names; repeats joined with ", "
  std::string body;
  std::chrono::milliseconds latency{0};
  // notAfter of the server's (leaf) certificate, when TLS was used.
  std::optional<std::chrono::system_clock::time_point> certificate_not_after;

  std::string header(const std::string& lower_name) const;
};

class Http {
 public:
  virtual ~Http() = default;
  virtual HttpResponse send(const HttpRequest& request) = 0;
};

struct TlsSettings {
  std::string ca_pem;  // the configured CA; the system's trust store is always used too
  bool insecure_skip_verify = false;
  std::chrono::milliseconds timeout{10000};  // connect, and the whole request
  std::function<void()> while_waiting;       // called about once a second during a request
};

// One libcurl easy handle. Redirects are followed (5 at most, http/https only), HTTPS_PROXY,
// https_proxy and NO_PROXY are honoured (libcurl reads them), the peer and its host name (or IP
// address) are verified unless insecure_skip_verify.
class CurlHttp final : public Http {
 public:
  static Result<std::unique_ptr<CurlHttp>> create(const TlsSettings& tls);
  ~CurlHttp() override;
  CurlHttp(const CurlHttp&) = delete;
  CurlHttp& operator=(const CurlHttp&) = delete;

  HttpResponse send(const HttpRequest& request) override;

  struct Impl;

 private:
  explicit CurlHttp(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct Credentials {
  std::string username;
  std::string password;  // never logged, never in an error
};

struct ManifestResult {
  bool up = false;
  int http_status = 0;                   // the last answer; 0 when none came
  std::string digest;                    // "sha256:…" from Docker-Content-Digest, or of the body
  std::chrono::milliseconds latency{0};  // every request of the resolution, token included
  std::string error;  // "resolve IMAGE at URL: HTTP 404 MANIFEST_UNKNOWN (manifest unknown)"
};

struct V2Result {
  bool up = false;
  int http_status = 0;
  std::chrono::milliseconds latency{0};
  std::string error;
  std::optional<std::chrono::system_clock::time_point> certificate_not_after;
};

// The Accept header containerd sends for a manifest: OCI index and manifest, Docker manifest
// list and schema 2 manifest.
extern const char* const kManifestAccept;

class RegistryClient {
 public:
  RegistryClient(Http& http, std::optional<Credentials> credentials)
      : http_(http), credentials_(std::move(credentials)) {}

  // GET <cache_url>/v2/: up on 200, or 401 (a registry that wants a token says so here).
  V2Result probeV2(const std::string& cache_url);

  // Resolves one manifest. url: …/v2/<path>/manifests/<reference>; path: the repository as
  // that registry names it (the token scope is repository:<path>:pull); image: for messages.
  ManifestResult resolveManifest(const std::string& image, const std::string& url,
                                 const std::string& path);

 private:
  // The Authorization header that answers a 401's challenge, or an error naming the realm.
  Result<std::string> answer(const HttpResponse& unauthorized, const std::string& path,
                             std::chrono::milliseconds& spent);

  Http& http_;
  std::optional<Credentials> credentials_;
};

// "code (message)" of the first entry of a registry's {"errors": [...]} body; empty if none.
std::string registryErrorCode(const std::string& body);

}  // namespace k3sma
