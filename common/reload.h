#pragma once
// Restart-free apply: may this change reach the running k3s by rewriting containerd's
// certs.d/<key>/hosts.toml files, or must k3s restart? Pure: the caller reads the node (the
// containerd config.toml k3s wrote, the hosts.toml of every directory in certs.d, the
// registries.yaml on disk and the one to write) and hands in contents; this decides and says why.
//
// Why this is safe at all (containerd's remotes/docker/config/hosts.go at v1.6.20, v1.7.34,
// v2.0.0, verified on Debian's 1.6.20: a mirror switch and a CA file replaced in place took
// effect at the next pull): containerd (1.6, 1.7, 2.x) builds a new resolver for every pull that
// reads certs.d/<host>/hosts.toml and every ca/client file it names; nothing is cached
// ("Updates under this directory do not require restarting the containerd daemon"). k3s writes
// those files only at start, from registries.yaml (common/certs_d.h). So if this node's k3s
// provably writes exactly what our model writes, writing the model's files for the new
// registries.yaml is what k3s itself would do at its next start, minus the restart. What still
// needs a restart: credentials (config.toml), a CA only in the system trust store (Go loads that
// pool once per process), any other config.toml setting or k3s flag. A torn or undecodable
// hosts.toml is no error to containerd (it logs "failed to decode hosts.toml" and pulls from
// the upstream), and a missing ca file fails the pull: the apply writes each file atomically,
// the CA file before the hosts.toml that names it.
//
// Hot only when all of these hold (otherwise restart, with the reason):
// 1. config.toml sets `config_path` to <data-dir>/agent/etc/containerd/certs.d in the CRI
//    registry table (`[plugins."io.containerd.grpc.v1.cri".registry]`, or
//    `[plugins.'io.containerd.cri.v1.images'.registry]` in the version-3 config of k3s >=
//    v1.32.2). k3s releases before January 2024 (v1.29.1 / v1.28.6 / v1.27.10 / v1.26.13) put
//    the mirrors inline in config.toml instead: no config_path, no hot reload.
// 2. The directories in certs.d whose hosts.toml starts with the distribution's header line
//    (common/distribution.h) are exactly the model's output for the registries.yaml
//    now on disk, byte for byte, in one layout (1.29 or 1.32) and default-endpoint setting;
//    that setting is then used for the new files. An embedded registry (spegel) adds its own
//    k3s-headed certs.d/127.0.0.1:6443/ and an endpoint the model does not make; an unknown k3s
//    flag or release changes the bytes; a hand-edited hosts.toml differs (or lost the header and
//    leaves a key's directory missing): all fail here.
// 3. No `configs.<host>.auth` differs between the two registries.yaml: credentials go to
//    config.toml, which containerd reads only at start.
// 4. k3s.reload is auto (k3s.reload: restart opts out).
// 5. This process can write certs.d. The hardened unit's ReadWritePaths= for the containerd
//    dirs carries "-" (k3s may not have run yet): a dir made after the daemon started stays
//    read-only inside the daemon's mount namespace, and a hot write would fail with EROFS and
//    roll back on every change. Restarting k3s works; restarting k3s-mirror-agent.service
//    gives it write access for the next change.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/certs_d.h"
#include "common/config.h"

namespace k3sma {

enum class ReloadKind { kHot, kRestart };

// k3s's (or rke2's) header line, without its newline, and the embedded registry's address.
CertsDOptions certsDOptionsFor(Distribution d);

struct ReloadInputs {
  Distribution distribution = Distribution::kK3s;
  ReloadPolicy policy = ReloadPolicy::kAuto;
  std::optional<std::string> containerd_config;  // config.toml; nullopt: absent
  // Every directory under certs.d -> its hosts.toml (nullopt: the directory has none).
  std::map<std::string, std::optional<std::string>> certs_d;
  bool certs_d_exists = false;
  // certs.d is on a mount this process cannot write (the daemon's sandbox, see FileInfo).
  bool certs_d_read_only = false;
  std::optional<std::string> registries_now;  // on disk; nullopt: no file
  std::string registries_new;                 // what apply writes
};

struct ReloadDecision {
  ReloadKind kind = ReloadKind::kRestart;
  // For a restart: why not hot, one sentence ("certs.d/127.0.0.1:6443 carries k3s's header but
  // the model makes no such directory (an embedded registry?)"). For hot: the setting matched.
  std::string reason;
  CertsDOptions options;           // the layout and default-endpoint setting that matched
  std::vector<HostsToml> files;    // hot: every hosts.toml of the new registries.yaml
  std::vector<std::string> stale;  // hot: k3s-headed directories the new model no longer makes
};

// The setting as the state records it ("1.32", "1.29 no-default-endpoint"), and back (nullopt
// for anything else) with the distribution's header.
std::string settingName(const CertsDOptions& options);
std::optional<CertsDOptions> settingNamed(const std::string& name, Distribution d);

// "layout 1.32, default endpoint on" and the like, for notes.
std::string describeCertsDOptions(const CertsDOptions& options);

ReloadDecision decideReload(const ReloadInputs& in);

}  // namespace k3sma
