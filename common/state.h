#pragma once
// What the agent manages on a node, kept in /var/lib/k3s-mirror-agent/state.json (0600): which
// registries.yaml entries and CA files are its own, and what the node had before the agent first
// wrote registries.yaml. With it, a mirror dropped from the config is dropped from the file, and
// `restore` can give the node back its own file. The state holds no clock value and no secret, so
// a run that changes nothing writes the same bytes, and so writes nothing.

#include <optional>
#include <string>
#include <vector>

#include "common/error.h"

namespace k3sma {

inline constexpr const char* kStateDir = "/var/lib/k3s-mirror-agent";
inline constexpr const char* kStatePath = "/var/lib/k3s-mirror-agent/state.json";
// The apply lock lives in /run: it means nothing after a reboot, and keeps the state dir to state.
inline constexpr const char* kLockPath = "/run/k3s-mirror-agent/apply.lock";
// A copy of the registries.yaml the node had before the agent first replaced it.
inline constexpr const char* kBackupPath = "/var/lib/k3s-mirror-agent/registries.yaml.orig";

// The agent's own managed paths. The state and the journal are read back and acted on (restore
// removes the state's CA files, an undo writes the journal's before-images), so they may name
// only these: a hand-edited "../../etc/passwd" is refused rather than removed or written.
// A registries.yaml k3s or RKE2 reads (or "": none written yet).
bool isOwnRegistriesPath(const std::string& path);
// A CA file directly in the agent's CA folder, with a name caInstallPath could have made.
bool isOwnCaFile(const std::string& path);

// What registries.yaml was before the agent first wrote it.
enum class Original {
  kUnknown,  // the agent has not written registries.yaml yet
  kAbsent,   // there was no file: restore removes the agent's entries (and the file if empty)
  kBackedUp  // there was one: it is at kBackupPath, and restore puts it back
};

struct State {
  std::string registries_path;  // node path of the registries.yaml written
  Original original = Original::kUnknown;
  std::vector<std::string> mirrors;   // keys under mirrors: the agent wrote (sorted)
  std::vector<std::string> configs;   // keys under configs: the agent wrote (sorted)
  std::vector<std::string> ca_files;  // node paths of the CA files the agent installed (sorted)
  // The k3s setting ("1.32", "1.29 no-default-endpoint", ...) the agent last wrote containerd's
  // hosts.toml files in (a restart-free apply, common/reload.h); empty when k3s wrote them. With
  // it, those files are managed: a hand edit is drift.
  std::string hosts_toml;

  bool operator==(const State&) const = default;
};

// Both pure. An absent state file is State{}; `source` names the file in errors.
Result<State> parseState(const std::string& text, const std::string& source);
std::string renderState(const State& state);

}  // namespace k3sma
