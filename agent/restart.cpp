#include "agent/restart.h"

#include <algorithm>

#include "common/distribution.h"
#include "common/registries.h"

namespace k3sma {

Result<std::optional<std::string>> resolveUnit(Systemd& systemd, const K3sSettings& k3s) {
  std::vector<std::string> candidates;
  if (k3s.unit != "auto") {
    candidates = {k3s.unit};
  } else {
    const DistributionFacts& facts = factsOf(k3s.distribution);
    candidates = {std::string(facts.server_unit), std::string(facts.agent_unit)};
  }
  std::vector<std::string> loaded;
  for (const auto& unit : candidates) {
    auto state = systemd.unitState(unit);
    if (!state) {
      return state.error();
    }
    if (state.value().loaded()) {
      loaded.push_back(unit);
    }
  }
  if (loaded.empty()) {
    return std::optional<std::string>{};
  }
  if (loaded.size() > 1) {
    return configError("find the k3s unit: both " + loaded[0] + " and " + loaded[1] +
                       " are installed on this node; set k3s.unit to the one that runs here");
  }
  return std::optional<std::string>{loaded.front()};
}

namespace {

// After a restart job ended "done": waits until the unit has stayed active for kSettle.
Status waitHealthy(Systemd& systemd, Clock& clock, const std::string& unit,
                   std::chrono::steady_clock::time_point deadline) {
  // The job is done once the unit reported ready; it must also stay up: a k3s that cannot use
  // its new files may exit right after and be restarted by Restart=always.
  bool active = false;   // active since active_since, without a break
  bool dropped = false;  // seen not active since the job ended: a crash loop, or a slow start
  std::chrono::steady_clock::time_point active_since{};
  UnitState last;
  for (;;) {
    auto state = systemd.unitState(unit);
    if (!state) {
      return state.error();
    }
    last = state.value();
    const auto now = clock.now();
    if (last.active_state == "active") {
      if (!active) {
        active = true;
        active_since = now;
      }
      if (now - active_since >= kSettle) {
        return Ok{};
      }
    } else {
      active = false;
      dropped = true;
      if (last.active_state == "failed" || last.active_state == "inactive") {
        break;  // it stopped for good: no point waiting out the deadline
      }
    }
    if (now >= deadline) {
      // Active throughout, but the job took so much of the timeout that less than the settle
      // time was left: that is a slow start, not a failure. One that went down meanwhile is.
      if (active && !dropped) {
        return Ok{};
      }
      break;
    }
    clock.sleepFor(std::min<std::chrono::milliseconds>(
        std::chrono::milliseconds(100),
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now) +
            std::chrono::milliseconds(1)));
  }
  std::string why = "it did not stay active (now " + last.active_state + "/" + last.sub_state;
  if (!last.result.empty() && last.result != "success") {
    why += ", result " + last.result;
  }
  why += "; see journalctl -u " + unit + ")";
  if (last.result == "start-limit-hit") {
    why +=
        "; systemd refuses to start it again so soon: once it can start, run systemctl "
        "reset-failed " +
        unit;
  }
  return Error{"restart " + unit + ": " + why, ErrorKind::kApply};
}

}  // namespace

RestartAttempt restartUntilHealthy(Systemd& systemd, Clock& clock, const std::string& unit,
                                   std::chrono::steady_clock::time_point deadline) {
  auto job = systemd.tryRestart(unit, deadline);
  if (!job) {
    return {job.error(), false};
  }
  const RestartJob& j = job.value();
  if (j.result == "deadline") {
    return {Error{"restart " + unit + ": the restart job did not finish within restart_timeout",
                  ErrorKind::kApply},
            true};
  }
  if (j.result == "lost") {
    return {Error{j.error, ErrorKind::kApply}, true};
  }
  if (j.result != "done") {
    return {Error{"restart " + unit + ": the restart job ended with \"" + j.result +
                      "\" (see journalctl -u " + unit + ")",
                  ErrorKind::kApply},
            true};
  }
  return {waitHealthy(systemd, clock, unit, deadline), true};
}

std::vector<ExpectedHostsToml> expectedHostsToml(const Config& config) {
  const std::string certs_d = certsDPath(config.k3s.distribution);
  std::vector<ExpectedHostsToml> expected;
  for (const auto& [upstream, project] : config.mirrors) {
    expected.push_back({certs_d + "/" + upstream + "/hosts.toml", mirrorEndpoint(config, project)});
  }
  return expected;
}

}  // namespace k3sma
