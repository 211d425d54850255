#include "agent/daemon_rules.h"

#include <algorithm>
#include <filesystem>

#include "common/distribution.h"
#include "common/registries.h"
#include "common/reload.h"

namespace k3sma {

std::string triggerName(unsigned triggers) {
  // The most deliberate cause names the apply: an operator's SIGHUP, then the daemon's start,
  // then a config edit; drift only when nothing else happened.
  if (triggers & kTriggerReload) {
    return "reload";
  }
  if (triggers & kTriggerStart) {
    return "start";
  }
  if (triggers & kTriggerConfig) {
    return "config";
  }
  return "drift";
}

Next decide(unsigned triggers, const Look& look, DriftPolicy drift, bool splay_served,
            Duration splay) {
  if (look.plan_empty) {
    // The daemon's start and a SIGHUP run the engine anyway, so the status shows an apply the
    // operator asked for, even one with nothing to change. It is cheap: it writes nothing.
    return triggers & (kTriggerStart | kTriggerReload) ? Next::kApply : Next::kNothing;
  }
  const bool drift_only = (triggers & ~static_cast<unsigned>(kTriggerManaged)) == 0;
  if (drift_only && drift == DriftPolicy::kReport) {
    return Next::kReportDrift;
  }
  if (look.same_as_failed && !(triggers & kTriggerReload)) {
    return Next::kHoldBack;
  }
  if (look.restart_needed && !(triggers & kTriggerStart) && !splay_served &&
      splay > Duration::zero()) {
    return Next::kSplay;
  }
  return Next::kApply;
}

namespace {

void addRule(std::vector<WatchDir>& dirs, const std::string& dir, WatchRule rule) {
  auto it =
      std::find_if(dirs.begin(), dirs.end(), [&](const WatchDir& d) { return d.path == dir; });
  if (it == dirs.end()) {
    dirs.push_back({dir, {}});
    it = std::prev(dirs.end());
  }
  it->rules.push_back(std::move(rule));
}

void addFile(std::vector<WatchDir>& dirs, const std::string& path, WatchKind kind) {
  const std::filesystem::path p(path);
  addRule(dirs, p.parent_path().string(), {p.filename().string(), kind});
}

}  // namespace

std::vector<WatchDir> watchPlan(const std::string& config_path, const Config* config,
                                const Root& root) {
  std::vector<WatchDir> dirs;
  const std::filesystem::path main(config_path);
  addFile(dirs, config_path, WatchKind::kConfig);
  // config.d itself appearing or going away changes what is merged.
  addRule(dirs, main.parent_path().string(), {"config.d", WatchKind::kConfig});
  addRule(dirs, (main.parent_path() / "config.d").string(), {"", WatchKind::kConfig});
  const Distribution distribution = config ? config->k3s.distribution : Distribution::kK3s;
  addFile(dirs, root.path(registriesPath(distribution)), WatchKind::kManaged);
  if (config != nullptr) {
    if (!config->registry.ca_file.empty()) {
      addFile(dirs, root.path(config->registry.ca_file), WatchKind::kConfig);
      addFile(dirs, root.path(caInstallPath(config->registry)), WatchKind::kManaged);
    }
    if (config->registry.auth) {
      addFile(dirs, root.path(config->registry.auth->password_file), WatchKind::kConfig);
    }
    // The hosts.toml files a restart-free apply may write (one per mirror and the cache's own):
    // an edit is drift once the state says the agent wrote them; otherwise the look finds
    // nothing to do.
    if (config->k3s.reload == ReloadPolicy::kAuto) {
      const std::string certs_d = certsDPath(distribution);
      for (const auto& [upstream, project] : config->mirrors) {
        addFile(dirs, root.path(certs_d + "/" + upstream + "/hosts.toml"), WatchKind::kManaged);
      }
      addFile(dirs, root.path(certs_d + "/" + config->registry.host + "/hosts.toml"),
              WatchKind::kManaged);
    }
  }
  return dirs;
}

std::optional<WatchKind> classify(const WatchDir& dir, std::string_view name) {
  // A config change outranks drift when one name is both (a CA kept in the install directory).
  std::optional<WatchKind> found;
  for (const auto& rule : dir.rules) {
    const bool matches = rule.name.empty() ? name.size() > 5 && name.front() != '.' &&
                                                 name.substr(name.size() - 5) == ".yaml"
                                           : name == rule.name;
    if (matches && (!found || rule.kind == WatchKind::kConfig)) {
      found = rule.kind;
    }
  }
  return found;
}

}  // namespace k3sma
