#pragma once
// The cache health probe: connect to the cache, speak TLS verified against the configured CA
// (and the system's) with the hostname checked, send `GET /v2/`, and count 200 and 401 as up
// (401 is what a registry that wants a token answers). OpenSSL only: one request needs no HTTP
// library. Used by `check --probe` now and by the daemon's interval probe.

#include <chrono>
#include <optional>
#include <string>

#include "common/config.h"

namespace k3sma {

struct ProbeResult {
  bool up = false;
  std::chrono::milliseconds latency{0};  // connect to the end of the response's status line
  int http_status = 0;                   // 0 when no response was read
  std::string error;                     // why it is down, "verb object: reason"
  // Days until the cache's own (leaf) certificate expires, when TLS got that far.
  std::optional<long> certificate_days_left;
};

// ca_pem: the configured CA (empty: the system's trust store only). now: for the expiry days.
ProbeResult probeCache(const CacheRegistry& registry, const std::string& ca_pem,
                       std::chrono::milliseconds timeout,
                       std::chrono::system_clock::time_point now);

}  // namespace k3sma
