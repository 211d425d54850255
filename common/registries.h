#pragma once
// Renders the registries.yaml k3s reads (/etc/rancher/k3s/, RKE2 /etc/rancher/rke2/:
// common/distribution.h) from the config, the file on the node and the state. Pure and
// deterministic: sorted keys, same input -> same bytes. tests/unit/registries_test.cpp pins each
// rule; README.md, "How k3s reads registries.yaml and certs.d", has them with their sources.
//
// The k3s rules it follows (k3s-io/k3s pkg/agent/containerd/config.go, containerd
// remotes/docker/config/hosts.go):
// - k3s reads the file once, at start; the agent restarts the unit after a change (or writes
//   certs.d itself where that is provably what k3s would write: common/reload.h).
// - Schema: mirrors.<host>.endpoint: [url...], mirrors.<host>.rewrite: {regex: replacement},
//   configs.<host>.auth: {username, password, auth, identity_token},
//   configs.<host>.tls: {ca_file, cert_file, key_file, insecure_skip_verify}. k3s ignores
//   unknown keys silently, so nothing else is ever written.
// - An endpoint whose path is not "", "/" or "/v2" is used verbatim (containerd's
//   override_path): https://harbor.home.lab/v2/dockerhub-proxy sends nginx to
//   .../v2/dockerhub-proxy/library/nginx/manifests/<tag>. That is path mode, the default: one
//   Harbor proxy-cache project per upstream. The path must include /v2.
// - rewrite is a Go RE2 regex over the repository path without the host (docker.io names are
//   already normalised: nginx is library/nginx); k3s-only, with past fallback and token-scope
//   bugs, so it is the opt-in rewrite mode ("^(.*)$": "<project>/$1").
// - TLS and auth of an endpoint are looked up under configs.<endpoint host[:port]>: never the
//   upstream's name, never a URL with a scheme.
// - The upstream's own endpoint stays the last fallback (unless k3s runs with
//   --disable-default-registry-endpoint), so the endpoint list holds only the cache.
// - containerd loads the system CA bundle once per process: tls.ca_file names the installed CA
//   file, which containerd reads at every pull.

#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/error.h"
#include "common/state.h"

namespace k3sma {

inline constexpr const char* kCaDir = "/usr/local/share/ca-certificates/k3s-mirror-agent";

// The node path the cache's CA is installed at: <kCaDir>/<name>.crt, where name is the cache's
// host[:port] with anything but [A-Za-z0-9.-] replaced by '_' (update-ca-certificates only
// picks up *.crt, and a port's ':' or an IPv6 bracket has no business in a file name).
std::string caInstallPath(const CacheRegistry& registry);

// The endpoint k3s is given for one upstream: "<url>/v2/<project>" in path mode (containerd's
// override_path), "<url>" in rewrite mode.
std::string mirrorEndpoint(const Config& config, const std::string& project);

struct RenderedRegistries {
  std::string text;
  std::vector<std::string> mirrors;  // the keys under mirrors: the agent now manages
  std::vector<std::string> configs;  // the keys under configs: the agent now manages
};

// current: the file on the node (nullopt: none); source names it in errors. Entries the agent
// does not manage are kept; entries in previous (the state) that the config no longer wants are
// dropped; entries the config names replace whatever the file had under the same key.
// ca_node_path: where the CA is installed as the node sees it, empty when there is no CA.
Result<RenderedRegistries> renderRegistries(const Config& config, const std::string& ca_node_path,
                                            const std::optional<std::string>& current,
                                            const std::string& source, const State& previous);

// For restore: the current file without the entries the state says the agent wrote.
// nullopt when nothing is left, so the file can be removed.
Result<std::optional<std::string>> removeManagedEntries(const std::string& current,
                                                        const std::string& source,
                                                        const State& previous);

// The text with every password, auth and identity_token value (of any registry, in any YAML
// form: block scalar, continuation lines, `? password` keys, flow mappings) replaced by
// "********". Found by parsing, never by searching the text for a password, so a short password
// cannot mangle other text. Text that is not valid YAML is not shown at all.
std::string maskSecrets(const std::string& text);

}  // namespace k3sma
