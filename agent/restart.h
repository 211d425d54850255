#pragma once
// After apply changed registries.yaml or the CA: which unit is k3s on this node, and restarting
// it so that it comes back healthy within our own deadline.
//
// The facts it relies on (k3s's install script and units; RKE2's packages; README.md, "How k3s
// reads registries.yaml and certs.d"):
// - k3s reads registries.yaml only when it starts, and its containerd loads the system CA
//   bundle once per process: a change to either reaches it only through a restart (unless
//   common/reload.h finds the change can go to certs.d instead).
// - The units are k3s.service (server) and k3s-agent.service (agent), k3s-<name>.service when
//   installed with INSTALL_K3S_NAME; RKE2's are rke2-server.service and rke2-agent.service. The
//   names live in common/distribution.h. Restarting k3s does not kill running pods.
// - The units have Type=notify and TimeoutStartSec=0, and a broken registries.yaml can keep a k3s
//   agent from ever reporting ready: a restart job for a k3s that cannot start may never end by
//   itself, hence our own deadline (k3s.restart_timeout).
// - TryRestartUnit restarts only a running unit: a k3s the operator stopped stays stopped.
// - Where the data dir exists, k3s regenerates certs.d/<upstream>/hosts.toml at start, naming the
//   cache endpoint: expectedHostsToml says what to look for after the restart.

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

// unit: auto picks the distribution's server unit when loaded, else its agent unit; an explicit
// name is used as given. std::nullopt when no such unit is installed: k3s is not installed yet
// and will read the files when it first starts. Both candidates loaded is an error that says to
// set k3s.unit.
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
