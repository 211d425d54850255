#include "common/plan.h"

#include <algorithm>

namespace k3sma {

Plan makePlan(const std::vector<DesiredFile>& desired,
              const std::map<std::string, std::optional<std::string>>& current,
              const std::map<std::string, mode_t>& modes, bool rebuild_trust_store) {
  Plan plan;
  if (rebuild_trust_store) {
    plan.update_ca_certificates = true;
    plan.restart_needed = true;
  }
  for (const auto& want : desired) {
    auto it = current.find(want.path);
    std::optional<std::string> have = it == current.end() ? std::nullopt : it->second;
    auto mode = modes.find(want.path);
    const mode_t before_mode = mode == modes.end() ? want.mode : mode->second;
    if (have == want.content) {
      if (have && mode != modes.end() && mode->second != want.mode) {
        plan.changes.push_back(
            {want.path, have, want.content, want.mode, want.role, true, before_mode});
      }
      continue;
    }
    plan.changes.push_back(
        {want.path, have, want.content, want.mode, want.role, false, before_mode});
    // k3s reads registries.yaml at start and containerd loads the CA bundle once per process:
    // either change needs a restart to take effect.
    if (want.role == FileRole::kCa) {
      plan.update_ca_certificates = true;
      plan.restart_needed = true;
    }
    if (want.role == FileRole::kRegistries) {
      plan.restart_needed = true;
    }
  }
  return plan;
}

std::vector<Step> steps(const Plan& plan) {
  std::vector<Step> out;
  bool ca_pending = false;
  const bool ca_changes = std::any_of(plan.changes.begin(), plan.changes.end(),
                                      [](const FileChange& c) { return c.role == FileRole::kCa; });
  if (plan.update_ca_certificates && !ca_changes) {
    out.push_back({nullptr});  // the files are right, the store is not: rebuild it first
  }
  for (const auto& change : plan.changes) {
    if (ca_pending && change.role != FileRole::kCa) {
      out.push_back({nullptr});
      ca_pending = false;
    }
    out.push_back({&change});
    ca_pending = ca_pending || change.role == FileRole::kCa;
  }
  if (ca_pending) {
    out.push_back({nullptr});
  }
  return out;
}

}  // namespace k3sma
