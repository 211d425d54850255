#pragma once
// Renders /etc/rancher/k3s/registries.yaml from the config, the file on the node and the state.
// Pure and deterministic: sorted keys, same input -> same bytes. The k3s rules it follows are in
// SPEC.md "How k3s reads registries.yaml"; tests/unit/registries_test.cpp pins each one.

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
