#pragma once
// The cache health probe and the pull checks (verify.images), both through one registry client
// (agent/registry.h, libcurl): the cache's `GET /v2/` answering 200 or 401 over TLS verified
// against the configured CA and the system's, host name checked; and each image's manifest
// resolved through the endpoint its upstream is mirrored to, as containerd would ask for it.
// Used by `check --probe`, apply's preflight and the daemon's interval probe. A Prober keeps its
// curl handle and trust store between probes: the daemon holds one while its config stays.

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/registry.h"
#include "common/config.h"

namespace k3sma {

struct ProbeResult {
  bool up = false;
  std::chrono::milliseconds latency{0};  // the whole GET /v2/
  int http_status = 0;                   // 0 when no response was read
  std::string error;                     // why it is down, "verb object: reason"
  // Days until the cache's own (leaf) certificate expires, when TLS got that far.
  std::optional<long> certificate_days_left;
};

struct ImageResult {
  std::string image;  // the reference, normalised: docker.io/library/busybox:1.36
  std::string url;    // the manifest URL asked
  bool up = false;
  int http_status = 0;
  std::string digest;
  std::chrono::milliseconds latency{0};
  std::string error;  // names the image, the URL and the registry's error code
};

// Where an image's manifest is asked for through the cache, and the repository path that
// registry sees (the token scope). Path mode: the endpoint <url>/v2/<project> with the image's
// repository after it (containerd's override_path); rewrite mode: <url>/v2/ and the repository
// rewritten to <project>/<repository>. Both reach the same URL on a Harbor. Pure.
struct ManifestLocation {
  std::string url;
  std::string path;
};
ManifestLocation manifestLocation(const Config& config, const ImageReference& image);

class Prober {
 public:
  // ca_pem: the configured CA (empty: the system's trust store only). while_waiting: called
  // about once a second while a request waits (the daemon pings its watchdog there).
  static Result<std::unique_ptr<Prober>> create(const Config& config, const std::string& ca_pem,
                                                std::chrono::milliseconds timeout,
                                                std::function<void()> while_waiting = {});

  ProbeResult probeCache(std::chrono::system_clock::time_point now);
  std::vector<ImageResult> resolveImages();

  // The cache, then every image. When the cache gave no HTTP answer at all (refused, timed
  // out, not trusted), the images are not asked, each of which would wait out the same
  // timeout: they are down with the cache's reason.
  struct Outcome {
    ProbeResult cache;
    std::vector<ImageResult> images;
  };
  Outcome probeAll(std::chrono::system_clock::time_point now);

 private:
  Prober(const Config& config, std::unique_ptr<CurlHttp> http);
  Config config_;
  std::unique_ptr<CurlHttp> http_;
  RegistryClient client_;
};

// One probe of the cache with a Prober made for it (check --probe).
ProbeResult probeCache(const Config& config, const std::string& ca_pem,
                       std::chrono::milliseconds timeout,
                       std::chrono::system_clock::time_point now);

// A result for every image, all down with the same reason (the client could not be set up).
std::vector<ImageResult> imagesDown(const Config& config, const std::string& why);

}  // namespace k3sma
