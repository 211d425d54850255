#include "agent/probe.h"

#include "common/registries.h"

namespace k3sma {
namespace {

std::optional<Credentials> credentialsOf(const Config& config) {
  if (!config.registry.auth) {
    return std::nullopt;
  }
  return Credentials{config.registry.auth->username, config.registry.auth->password};
}

}  // namespace

ManifestLocation manifestLocation(const Config& config, const ImageReference& image) {
  const std::string& project = config.mirrors.at(image.host);  // the config checked it is there
  const std::string endpoint = mirrorEndpoint(config, project);
  const std::string path = project + "/" + image.repository;
  const std::string ref = image.manifestReference();
  if (config.mode == MirrorMode::kPath) {
    return {endpoint + "/" + image.repository + "/manifests/" + ref, path};
  }
  return {endpoint + "/v2/" + path + "/manifests/" + ref, path};
}

Prober::Prober(const Config& config, std::unique_ptr<CurlHttp> http)
    : config_(config), http_(std::move(http)), client_(*http_, credentialsOf(config)) {}

Result<std::unique_ptr<Prober>> Prober::create(const Config& config, const std::string& ca_pem,
                                               std::chrono::milliseconds timeout,
                                               std::function<void()> while_waiting) {
  auto http = CurlHttp::create(
      {ca_pem, config.registry.insecure_skip_verify, timeout, std::move(while_waiting)});
  if (!http) {
    return http.error();
  }
  return std::unique_ptr<Prober>(new Prober(config, std::move(http.value())));
}

ProbeResult Prober::probeCache(std::chrono::system_clock::time_point now) {
  const V2Result v2 = client_.probeV2(config_.registry.url);
  ProbeResult result;
  result.up = v2.up;
  result.latency = v2.latency;
  result.http_status = v2.http_status;
  result.error = v2.error;
  if (v2.certificate_not_after) {
    // Whole days from now, toward zero; negative once expired (insecure_skip_verify).
    result.certificate_days_left = static_cast<long>(
        std::chrono::duration_cast<std::chrono::hours>(*v2.certificate_not_after - now).count() /
        24);
  }
  return result;
}

std::vector<ImageResult> Prober::resolveImages() {
  std::vector<ImageResult> results;
  for (const auto& image : config_.verify.images) {
    const auto where = manifestLocation(config_, image.reference);
    const std::string name = image.reference.canonical();
    const ManifestResult m = client_.resolveManifest(name, where.url, where.path);
    results.push_back({name, where.url, m.up, m.http_status, m.digest, m.latency, m.error});
  }
  return results;
}

Prober::Outcome Prober::probeAll(std::chrono::system_clock::time_point now) {
  Outcome outcome{probeCache(now), {}};
  if (outcome.cache.http_status == 0) {
    outcome.images =
        imagesDown(config_, "not asked, the cache did not answer: " + outcome.cache.error);
  } else {
    outcome.images = resolveImages();
  }
  return outcome;
}

ProbeResult probeCache(const Config& config, const std::string& ca_pem,
                       std::chrono::milliseconds timeout,
                       std::chrono::system_clock::time_point now) {
  auto prober = Prober::create(config, ca_pem, timeout);
  if (!prober) {
    ProbeResult down;
    down.error = prober.error().message;
    return down;
  }
  return prober.value()->probeCache(now);
}

std::vector<ImageResult> imagesDown(const Config& config, const std::string& why) {
  std::vector<ImageResult> results;
  for (const auto& image : config.verify.images) {
    const auto where = manifestLocation(config, image.reference);
    results.push_back({image.reference.canonical(),
                       where.url,
                       false,
                       0,
                       "",
                       {},
                       "resolve " + image.reference.canonical() + ": " + why});
  }
  return results;
}

}  // namespace k3sma
