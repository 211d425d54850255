#pragma once
// What an apply or a restore wants on disk: every file with its bytes (or "absent"), mode and
// role, and the state to record. Pure: the caller reads the node (registries.yaml, the backup,
// the state) and renders; these functions only decide, so apply.cpp merely executes and the
// rules about the node's own file are tested over literal text. Planning (plan.h) then compares
// this list with the disk.
//
// The one rule that matters most: the node's own registries.yaml, once backed up, is never
// overwritten or dropped by an apply, and a file that carries the agent's header is never taken
// for the node's own — it is what the agent wrote, whatever the state file says or lacks.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/certs_d.h"
#include "common/error.h"
#include "common/plan.h"
#include "common/state.h"

namespace k3sma {

// The first line of every registries.yaml the agent renders (common/registries.cpp's header;
// tests/unit/desired_test.cpp pins that the two agree).
inline constexpr std::string_view kAgentHeaderStart = "# Managed by k3s-mirror-agent:";

// True when text is a registries.yaml the agent wrote.
bool isAgentWritten(std::string_view text);

// The system trust bundle update-ca-certificates builds, as the node sees it.
inline constexpr const char* kTrustBundlePath = "/etc/ssl/certs/ca-certificates.crt";

// True when every certificate of pem (PEM blocks) is in bundle. update-ca-certificates appends
// each CA file to the bundle verbatim (sed '$a\'), so a block that is not a substring of the
// bundle is not trusted yet: the trust store has to be rebuilt.
bool bundleHolds(std::string_view bundle, std::string_view pem);

struct ApplyInputs {
  std::string registries_path;                // node path
  std::string registries_text;                // what registries.yaml should hold
  std::vector<std::string> mirrors;           // the entries the agent then manages
  std::vector<std::string> configs;           //
  std::optional<std::string> registries_now;  // on disk now; nullopt: no file
  bool backup_exists = false;                 // kBackupPath is on disk
  State state;                                // on disk now
  std::string ca_path;                        // node path; empty without a CA
  std::optional<std::string> ca_pem;          // the CA as installed; nullopt without one
};

struct DesiredFiles {
  std::vector<DesiredFile> files;  // in the order apply (or restore) performs them
  State next;                      // the state they amount to
};

// Backup (only the first time, and only a file that is the node's own), the CA files (old ones
// removed when the cache host changed), registries.yaml, state.
DesiredFiles desiredForApply(const ApplyInputs& in);

// The restart-free apply's files added to an apply's: every hosts.toml of the new
// registries.yaml (0644) and the removal of the hosts.toml of each stale k3s-headed directory,
// after registries.yaml and before the state — so the CA file and update-ca-certificates come
// before the hosts.toml that names the CA. certs_d is the node path of k3s's certs.d.
void addHostsToml(DesiredFiles& desired, const std::string& certs_d,
                  const std::vector<HostsToml>& files, const std::vector<std::string>& stale);

struct RestoreInputs {
  std::string registries_path;                // node path
  std::optional<std::string> registries_now;  // on disk now
  // registries_now without the agent's entries (removeManagedEntries); nullopt: nothing left,
  // or no file. Only used when the state has no backup of the node's own file.
  std::optional<std::string> stripped;
  std::optional<std::string> backup;  // kBackupPath's content, if there
  State state;
};

// registries.yaml back as the node had it, the agent's CA files, backup and state gone. A
// restore that already put the node's file back (the backup is gone but registries.yaml is not
// the agent's) wants the same files again, so it is safe to run twice. An error when the node's
// own file cannot be known: the state says there was a backup, it is gone, and registries.yaml
// is the agent's.
Result<DesiredFiles> desiredForRestore(const RestoreInputs& in);

}  // namespace k3sma
