#pragma once
// The agent's configuration (README.md "Configuration"; man 5 k3s-mirror-agent.yaml):
// /etc/k3s-mirror-agent/config.yaml plus config.d/*.yaml merged in name order. Parsing is pure
// and strict: text in, a Config or an error naming file, line and key out. Unknown keys are
// errors because k3s silently ignores unknown keys in registries.yaml, so a typo must stop
// here, not disappear on the node. k3s.distribution picks a row of common/distribution.h.
//
// Merging drop-ins: sections are merged key by key and a later file's scalar replaces an
// earlier one (as systemd drop-ins do); mirrors are the union, and the same upstream in two
// files is an error, because which project wins would otherwise depend on file names.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/distribution.h"
#include "common/duration.h"
#include "common/error.h"
#include "common/reference.h"

namespace k3sma {

class Root;

enum class MirrorMode { kPath, kRewrite };
enum class RestartPolicy { kOnChange, kNever };
enum class ReloadPolicy { kAuto, kRestart };  // k3s.reload (common/reload.h)
enum class DriftPolicy { kCorrect, kReport };

struct RegistryAuth {
  std::string username;
  std::string password_file;  // node path
  std::string password;       // filled by loadConfig from password_file; never logged
};

// The pull-through cache every node pulls through.
struct CacheRegistry {
  std::string url;       // normalised: scheme://host[:port], no trailing slash
  std::string scheme;    // "https" or "http"
  std::string host;      // host[:port] exactly as in the URL: the key of configs.<host>
  std::string hostname;  // host without port, without IPv6 brackets
  uint16_t port = 0;     // explicit or the scheme's default
  std::string ca_file;   // node path of the PEM; empty when the cache is publicly trusted
  bool insecure_skip_verify = false;
  std::optional<RegistryAuth> auth;
};

struct K3sSettings {
  Distribution distribution = Distribution::kK3s;
  std::string unit = "auto";  // "auto" or a unit name ending in .service
  RestartPolicy restart = RestartPolicy::kOnChange;
  // auto: a change containerd re-reads at every pull is written to certs.d without a restart
  // when the node provably writes what the model writes; restart: always restart.
  ReloadPolicy reload = ReloadPolicy::kAuto;
  Duration restart_timeout = std::chrono::seconds(120);
};

struct DaemonSettings {
  Duration debounce = std::chrono::seconds(2);
  Duration splay = std::chrono::seconds(30);
  DriftPolicy drift = DriftPolicy::kCorrect;
  Duration probe_interval = std::chrono::seconds(60);
  std::string metrics_textfile;  // empty: none
};

// verify.images: pull checks through the cache (each image's host must be a mirrors key).
enum class Preflight { kNone, kWarn, kRequire };
struct VerifyImage {
  std::string text;          // as written in the config
  ImageReference reference;  // parsed and normalised
  std::string origin;        // "file:line" of the entry, for messages
};
struct VerifySettings {
  std::vector<VerifyImage> images;  // a later file's list replaces an earlier one's
  Preflight preflight = Preflight::kWarn;
};

struct Config {
  CacheRegistry registry;
  std::map<std::string, std::string> mirrors;  // upstream host[:port] -> proxy-cache project
  MirrorMode mode = MirrorMode::kPath;
  K3sSettings k3s;
  DaemonSettings daemon;
  VerifySettings verify;
  // Where each key was last set, "file:line", for messages about values checked later
  // (e.g. a CA file that does not load). Keys are dotted: "registry.ca_file".
  std::map<std::string, std::string> origins;
  // SHA-256 of the config files (names and text, in merge order): equal on every node that has
  // the same config. Not of the password, which lives in its own file.
  std::string sha256;

  std::string originOf(const std::string& key) const;
};

struct ConfigSource {
  std::string path;  // as it should appear in messages
  std::string text;
};

// Parses and merges sources in order. Pure: reads no file named in the config.
Result<Config> parseConfig(const std::vector<ConfigSource>& sources);

// The dotted name of every key parseConfig accepts, sorted: "registry.url", "mirrors" (whose own
// keys are upstream hosts), "daemon.debounce", ... Sections ("registry", "registry.auth") are not
// listed, their keys are. Read from the parser's own tables; the man page test checks
// k3s-mirror-agent.yaml(5) against it.
std::vector<std::string> knownConfigKeys();

// The node path of the main config file.
inline constexpr const char* kDefaultConfigPath = "/etc/k3s-mirror-agent/config.yaml";

// Reads config_path (a path on this machine) and the *.yaml files of the config.d directory
// next to it in name order, parses them, then checks the files the config names (under root):
// password_file must be a regular file owned by root and not readable by group or others; its
// content becomes auth.password.
Result<Config> loadConfig(const std::string& config_path, const Root& root);

}  // namespace k3sma
