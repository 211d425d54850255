#include "agent/preflight.h"

namespace k3sma {
namespace {

// Each request of the preflight may take this long: an apply waits for it.
constexpr std::chrono::seconds kPreflightTimeout{10};

}  // namespace

std::vector<ImageResult> resolveWithCurl(const Config& config, const std::string& ca_pem,
                                         std::function<void()> while_waiting) {
  auto prober = Prober::create(config, ca_pem, kPreflightTimeout, std::move(while_waiting));
  if (!prober) {
    return imagesDown(config, prober.error().message);
  }
  return prober.value()->resolveImages();
}

std::vector<std::string> unresolvedImages(const Config& config, const std::string& ca_pem,
                                          const ImageResolver& resolver) {
  const auto results = resolver ? resolver(config, ca_pem) : resolveWithCurl(config, ca_pem);
  std::vector<std::string> failures;
  for (const auto& r : results) {
    if (!r.up) {
      failures.push_back(r.error);
    }
  }
  return failures;
}

PreflightOutcome preflight(const Config& config, const std::string& ca_pem,
                           const ImageResolver& resolver) {
  PreflightOutcome outcome;
  if (config.verify.preflight == Preflight::kNone || config.verify.images.empty()) {
    return outcome;
  }
  const auto failures = unresolvedImages(config, ca_pem, resolver);
  if (failures.empty()) {
    return outcome;
  }
  if (config.verify.preflight == Preflight::kRequire) {
    std::string message = "preflight (verify.preflight: require): nothing was changed: ";
    for (size_t i = 0; i < failures.size(); ++i) {
      message += (i == 0 ? "" : "; ") + failures[i];
    }
    outcome.error = Error{message, ErrorKind::kProbe};
    return outcome;
  }
  for (const auto& f : failures) {
    outcome.warnings.push_back("preflight (verify.preflight: warn): " + f + "; applying anyway");
  }
  return outcome;
}

}  // namespace k3sma
