#pragma once
// verify.preflight (README.md, "Pulls, not only files (verify)"): before an apply that would
// change something writes anything, resolve every verify.images manifest through the *new*
// config (its endpoints, its CA, its credentials). require: one that fails stops the apply with
// exit 5 and nothing touched; warn: a warning, and the apply goes on; none: no request at all.
// Kept out of apply.cpp so the apply transaction calls it from one place.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "agent/probe.h"
#include "common/config.h"
#include "common/error.h"

namespace k3sma {

// Resolves config.verify.images with the given CA PEM; the real one is resolveWithCurl.
using ImageResolver =
    std::function<std::vector<ImageResult>(const Config& config, const std::string& ca_pem)>;

// while_waiting: called about once a second while a request waits (the daemon's watchdog).
std::vector<ImageResult> resolveWithCurl(const Config& config, const std::string& ca_pem,
                                         std::function<void()> while_waiting = {});

struct PreflightOutcome {
  std::vector<std::string> warnings;  // warn: one per image that did not resolve
  std::optional<Error> error;         // require: the first failure, kind kProbe (exit 5)
};

// The error of each verify.images image that does not resolve through config (each names the
// image, the URL and the registry's error); empty when all do. resolver empty: resolveWithCurl.
// The preflight and the check after a hot apply both ask through this.
std::vector<std::string> unresolvedImages(const Config& config, const std::string& ca_pem,
                                          const ImageResolver& resolver);

// resolver empty: resolveWithCurl.
PreflightOutcome preflight(const Config& config, const std::string& ca_pem,
                           const ImageResolver& resolver);

}  // namespace k3sma
