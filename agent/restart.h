#pragma once
// After apply changed registries.yaml or the CA: which unit is k3s on this node, and restarting
// it so that it comes back healthy within our own deadline — k3s's unit has TimeoutStartSec=0,
// so a job for a k3s that cannot start may never end by itself.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "agent/clock.h"
#include "agent/systemd.h"
#include "common/config.h"

namespace k3sma {

// How long the unit must stay active after the restart to count as healthy; capped by what
// is left of restart_timeout. k3s crash-loops show up within this window as activating again.
inline constexpr std::chrono::milliseconds kSettle{2000};

// unit: auto picks k3s.service when loaded, else k3s-agent.service (rke2-server/-agent with
// distribution rke2); an explicit name is used as given. std::nullopt when no such unit is
// installed: k3s is not installed yet and will read the files when it first starts.
// Both candidates loaded is an error that says to set k3s.unit.
Result<std::optional<std::string>> resolveUnit(Systemd& systemd, const K3sSettings& k3s);

// Restarts a running unit (TryRestartUnit), follows the job, then waits until the unit is
// active and has stayed active for kSettle, all before deadline. The error says what happened:
// the job's result, or the state the unit was left in. touched is false when systemd never
// queued the restart: then the unit still runs as it did, on whatever files it read before.
struct RestartAttempt {
  Status status = Ok{};
  bool touched = false;
};
RestartAttempt restartUntilHealthy(Systemd& systemd, Clock& clock, const std::string& unit,
                                   std::chrono::steady_clock::time_point deadline);

// The containerd hosts.toml files k3s writes from registries.yaml into its data dir, one per
// mirror, as {path on the node, endpoint it must name}.
struct ExpectedHostsToml {
  std::string path;
  std::string endpoint;
};
std::vector<ExpectedHostsToml> expectedHostsToml(const Config& config);

}  // namespace k3sma
