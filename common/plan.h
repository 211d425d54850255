#pragma once
// Desired files vs the files on the node -> what apply has to do. Pure: the caller reads the
// disk and hands in contents; planning compares bytes and decides, in the order apply will do
// it, which files to write or remove, whether update-ca-certificates must run and whether k3s
// must be restarted to see the change.

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace k3sma {

// What a file is for; it decides what a change to it implies.
enum class FileRole {
  kBackup,      // the node's own registries.yaml, kept for restore
  kCa,          // a CA file under /usr/local/share/ca-certificates: update-ca-certificates, restart
  kRegistries,  // registries.yaml: restart
  // containerd's certs.d/<host>/hosts.toml, written by a restart-free apply (common/reload.h):
  // containerd re-reads it at the next pull, so nothing restarts. Directory 0700, file 0644.
  kHostsToml,
  kState,  // the agent's bookkeeping: nothing else
};

struct DesiredFile {
  std::string path;                    // node path
  std::optional<std::string> content;  // nullopt: the file must not exist
  mode_t mode = 0600;
  FileRole role = FileRole::kState;
};

struct FileChange {
  std::string path;                   // node path
  std::optional<std::string> before;  // nullopt: did not exist
  std::optional<std::string> after;   // nullopt: remove
  mode_t mode = 0600;
  FileRole role = FileRole::kState;
  bool mode_only = false;  // same content, wrong mode (say a 0644 registries.yaml with a password)
  mode_t before_mode = 0600;  // the mode it had (when it existed): an undo puts that back
};

struct Plan {
  std::vector<FileChange> changes;  // in the order apply performs them
  bool update_ca_certificates = false;
  bool restart_needed = false;

  bool empty() const { return changes.empty() && !update_ca_certificates; }
};

// current maps each desired path to its content on disk (nullopt: absent). A path missing from
// current is treated as absent. modes holds the permission bits of the files that exist; a file
// with the right content and another mode is rewritten with its mode, which needs no restart.
// Changes keep the order of desired. rebuild_trust_store: the CA files hold the right bytes but
// the trust bundle does not hold them (a run killed between writing a CA file and running
// update-ca-certificates): the store is rebuilt, and k3s restarted to load it.
Plan makePlan(const std::vector<DesiredFile>& desired,
              const std::map<std::string, std::optional<std::string>>& current,
              const std::map<std::string, mode_t>& modes = {}, bool rebuild_trust_store = false);

// The plan as the steps apply takes, in order: each file change, and the trust store rebuilt
// (update-ca-certificates) once, right after the last CA file of a run of them — before
// registries.yaml names the CA; first, when no CA file changes but the store must be rebuilt.
// A step with change == nullptr is that rebuild.
struct Step {
  const FileChange* change = nullptr;
};
std::vector<Step> steps(const Plan& plan);

}  // namespace k3sma
