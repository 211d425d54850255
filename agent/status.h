#pragma once
// What the daemon knows about the node, and the three ways it tells it: the one line systemd
// shows as "Status:" (STATUS=), /run/k3s-mirror-agent/status.json for `k3s-mirror-agent status`
// and scripts, and an optional Prometheus textfile for node_exporter. All pure functions of one
// DaemonStatus; none of them holds a secret (errors name files and keys, never a password).

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "agent/probe.h"
#include "common/config.h"
#include "common/error.h"
#include "common/state.h"

namespace k3sma {

// 0644: people and node_exporter's helpers read it; it holds nothing secret.
inline constexpr const char* kStatusPath = "/run/k3s-mirror-agent/status.json";

using SystemTime = std::chrono::system_clock::time_point;

// One run of the apply engine by the daemon.
struct ApplyRecord {
  SystemTime time;
  std::string trigger;  // start, config, drift, reload
  bool changed = false;
  std::optional<std::string> restarted;  // the unit restarted
  std::optional<std::string> reload;     // "hot" or "restart" (Report::reload)
  bool rolled_back = false;
  std::vector<std::string> actions;  // "write /etc/rancher/k3s/registries.yaml", ...
  std::optional<std::string> error;
};

struct CacheHealth {
  SystemTime checked;
  ProbeResult probe;
  std::vector<ImageResult> images;  // verify.images, resolved at the same probe
};

struct DaemonStatus {
  pid_t pid = 0;
  SystemTime started;
  bool stopped = false;  // written once more on SIGTERM, so a stale file says so
  std::string config_path;
  // From the last config that loaded; config_error says when the config on disk does not.
  std::string config_sha256;
  std::string cache_url;
  size_t mirrors = 0;
  std::optional<std::string> config_error;
  bool unconfigured = false;  // config_error is "not configured yet": the daemon idles
  std::string doing;  // what the daemon is busy with right now; empty when it waits for events
  std::optional<ApplyRecord> last_apply;
  uint64_t applies = 0;  // runs of the apply engine, including those that changed nothing
  // Evaluations finished: the config looked at and dealt with (applied, nothing to do, refused,
  // failed, held back, drift reported); a change waiting out its splay has not finished yet.
  // With `busy`, what a script waits on instead of sleeping: after a change, evaluations grows
  // past the value read before it and busy is false once the daemon has dealt with it.
  uint64_t evaluations = 0;
  // An evaluation is pending or running: the debounce or splay timer is armed, or an apply runs.
  bool busy = false;
  uint64_t restarts = 0;
  uint64_t hot_reloads = 0;        // changes that reached k3s through certs.d, without a restart
  uint64_t drift_corrections = 0;  // managed files put back after a hand edit
  DriftPolicy drift = DriftPolicy::kCorrect;
  std::vector<std::string> drifted;      // managed files that differ from the config, unfixed
  std::optional<std::string> held_back;  // why a failed apply is not retried on its own
  bool probe_enabled = true;
  std::optional<CacheHealth> cache;  // the last probe; nullopt before the first
};

// The verify.images results as check --probe's JSON and status.json's cache.images list them:
// [{"image", "url", "up", "http_status", "digest", "latency_ms", "error"}].
nlohmann::ordered_json imagesJson(const std::vector<ImageResult>& images);

// "2026-11-29T07:00:00Z"
std::string isoTime(SystemTime t);

// The line for STATUS=: what is wrong or what is going on, then the cache's health.
std::string statusLine(const DaemonStatus& s);

// status.json's content (one JSON object, with a trailing newline).
std::string statusJson(const DaemonStatus& s);

// The Prometheus text exposition format, every name prefixed k3s_mirror_agent_.
std::string metricsText(const DaemonStatus& s);

// What `k3s-mirror-agent status` prints for people: the daemon's status.json (text; absent when
// no daemon ever ran on this boot), whether its pid is alive, and what state.json says the agent
// manages. An unreadable status.json is an error naming it.
Result<std::string> describeStatus(const std::optional<std::string>& status_json, bool alive,
                                   const State& state, const std::string& status_path);

}  // namespace k3sma
