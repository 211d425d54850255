#pragma once
// The daemon's decisions, as pure functions so they are tested without a loop or a clock:
// what to do once the debounce has passed (apply now, wait the splay first, only report
// drift, or hold back after a failure), and which directories to watch for which file names.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"
#include "common/fs.h"

namespace k3sma {

// What made the daemon look again; several can pile up during one debounce.
enum Trigger : unsigned {
  kTriggerStart = 1,    // the daemon started
  kTriggerConfig = 2,   // the config, a drop-in, the CA file or the password file changed
  kTriggerManaged = 4,  // registries.yaml or the installed CA changed, not by the agent's apply
  kTriggerReload = 8,   // SIGHUP
};

// The word status.json and the log use for what started an apply.
std::string triggerName(unsigned triggers);

// What prepare() found, seen by the daemon.
struct Look {
  bool plan_empty = true;
  // A restart would follow the apply: the plan changes what k3s reads, and a restart can
  // happen at all (no --root, no --no-restart, k3s.restart: on-change).
  bool restart_needed = false;
  // The desired files are those of an apply that failed and was rolled back: applying them
  // again on a mere file event would restart k3s into the same failure, over and over.
  bool same_as_failed = false;
};

enum class Next {
  kNothing,      // the node already matches the config (start and SIGHUP apply even then)
  kApply,        // apply now
  kSplay,        // a restart would follow: wait a random 0..splay first, then look again
  kReportDrift,  // managed files were edited by hand and drift is report: say so, change nothing
  kHoldBack,     // the same apply already failed; wait for a config change or SIGHUP
};

// splay_served: the splay wait for this round of changes has passed. The daemon's own start
// never waits the splay (it must be ready soon, and a fleet's daemons rarely start together
// with a changed config); every other restart does, when splay is not zero.
Next decide(unsigned triggers, const Look& look, DriftPolicy drift, bool splay_served,
            Duration splay);

// A directory to watch and the names in it that matter.
enum class WatchKind { kConfig, kManaged };
struct WatchRule {
  std::string name;  // an exact file name; empty: any *.yaml not starting with a dot
  WatchKind kind = WatchKind::kConfig;
};
struct WatchDir {
  std::string path;  // on this machine (root applied)
  std::vector<WatchRule> rules;
};

// The directories to watch: the config's (config.yaml and config.d), config.d's drop-ins, the
// CA and password files' directories, registries.yaml's and the installed CA's. config is the
// last config that loaded (nullptr before one has), so the daemon still watches the files it
// manages while the config on disk is broken. Watching directories, not files, is what catches
// editors that save by renaming a new file over the old one, and files created later.
std::vector<WatchDir> watchPlan(const std::string& config_path, const Config* config,
                                const Root& root);

// The kind of change an event about `name` in dir means; nullopt: nothing the agent reads or
// writes (k3s's own k3s.yaml next to registries.yaml, an editor's swap file, a temporary file).
std::optional<WatchKind> classify(const WatchDir& dir, std::string_view name);

}  // namespace k3sma
