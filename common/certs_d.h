#pragma once
// The model of k3s: registries.yaml -> the certs.d/<dir>/hosts.toml files k3s writes for
// containerd, byte for byte. Pure: text in, files out, no disk. `render --certs-d` prints it, the
// k3s stand-in of the node tests writes it, and a restart-free apply will compare it with what
// k3s wrote. This file must compile with the standard library, yaml-cpp and common/error.h only:
// the arm64 stand-in is cross-compiled from a few files in one compiler call.
//
// What k3s does (read from k3s-io/k3s pkg/agent/containerd/config.go and
// pkg/agent/templates/templates.go at 2a1e2e8cf41b, the commit rancher/rke2 pins, and
// containerd's remotes/docker/config/hosts.go at v1.6.20, v1.7.34 and v2.0.0; checked against
// Debian 12's containerd 1.6.20; README.md, "How k3s reads registries.yaml and certs.d"):
//
// - Only at start: registries.yaml is read once; config.toml is written with
//   `config_path = "<data-dir>/agent/etc/containerd/certs.d"`; then one
//   certs.d/<dir>/hosts.toml for every key of `mirrors` and of `configs`; then containerd
//   starts. Key "*" is the directory `_default`. Directories 0700, files 0644. certs.d exists
//   since v1.29.1 / v1.28.6 / v1.27.10 / v1.26.13 (January 2024); this data model (normalised
//   `server`, `push`, `/v2`, `server = ""` for `_default`) since v1.29.3, the `[host]` stub line
//   since v1.29.4 (containerd ignores a file with no [host...] table, Debian's 1.6.20 included).
// - Two byte layouts of one template: K3sLayout::kV1_29 (v1.29.4 ... v1.32.1: the blank lines
//   the Go template leaves) and kV1_32 (v1.32.2 and later, "trimEmpty": every line that is not
//   blank after trimming spaces is kept with its newline, an empty line is inserted before every
//   line whose first character is '[', so an indented "  [host.\"…\".rewrite]" gets none).
// - The first line is exactly the distribution's header (common/distribution.h). Since
//   v1.31.1 / v1.30.5 / v1.29.9 / v1.28.14 k3s removes at start the directories it is about to
//   write and every directory whose hosts.toml starts with that line; earlier releases remove
//   the whole certs.d.
//
// The rules of the template (each pinned by a test in tests/unit/certs_d_test.cpp):
// - server: the key's own default endpoint "https://<key>/v2", docker.io ->
//   registry-1.docker.io; "http" for localhost or a loopback IP with a port other than 443 (and
//   not the embedded registry's address). capabilities = ["pull", "resolve", "push"]. With
//   --disable-default-registry-endpoint a key under `mirrors` has no server line, unless the
//   same key is under `configs` too. For "*": server = "".
// - The `configs` entry of the key itself (docker.io: registry-1.docker.io's first) gives the
//   root-level ca, client, skip_verify lines.
// - One [host."<endpoint>"] per mirror endpoint, in registries.yaml order, duplicates (after
//   normalisation) skipped; capabilities = ["pull", "resolve"]; override_path = true when the
//   endpoint's path is not "", "/" or "/v2"; an endpoint without a path gets "/v2". An endpoint
//   without a scheme gets https (http for localhost/loopback on a port other than 443). TLS of
//   an endpoint comes from configs.<endpoint host[:port]>: ca = ["<ca_file>"],
//   client = [["<cert>", "<key>"]], skip_verify = true (file names Go-quoted).
// - rewrite becomes a [host."<endpoint>".rewrite] sub-table of every endpoint but the embedded
//   registry's, patterns written unescaped, sorted. Only k3s's containerd fork honours it.
// - When the last endpoint equals the default endpoint, it becomes `server` (with its own
//   configs TLS) instead of a [host].
// - A key whose file would say nothing (no [host] endpoint, and no TLS, auth, rewrite or
//   override_path on the default endpoint) gets no directory; a `configs` entry with tls or auth
//   gets its own directory (e.g. certs.d/harbor.home.lab/) even without a mirror.
// - Credentials never go to hosts.toml: configs.<host>.auth goes to config.toml, which
//   containerd reads only at start.
//
// What containerd does with these files (why a model is worth having): it re-reads hosts.toml
// and the ca/client files it names at every pull, so endpoint, path and TLS changes apply
// without a restart; credentials and k3s flags do not. A torn or undecodable hosts.toml is not
// an error to containerd: it pulls from the upstream instead.
//
// What is refused (an error naming the file, line and key), because k3s would silently do
// something else or the bytes depend on k3s's version: unknown keys below mirrors and configs (a
// typo there silently drops a setting; unknown top-level keys are ignored, as k3s ignores them),
// YAML tags, anchors, aliases, merge keys, duplicate keys and a second document, non-scalar values,
// a "*" or "_default" key under configs, keys and endpoints that are not http(s) URLs or
// host[:port] (user info, query, fragment, %-escapes, characters a URL would escape), non-ASCII or
// control characters in file names. The embedded registry (spegel) is not modelled: give the
// registries.yaml after its injection (endpoint https://127.0.0.1:6443 and its configs entry).

#include <string>
#include <string_view>
#include <vector>

#include "common/distribution.h"
#include "common/error.h"

namespace k3sma {

enum class K3sLayout { kV1_29, kV1_32 };  // v1.29.4 … v1.32.1; v1.32.2 and later

struct CertsDOptions {
  K3sLayout layout = K3sLayout::kV1_32;
  bool disable_default_endpoint = false;  // k3s --disable-default-registry-endpoint
  // The distribution's header line and embedded registry's address (common/distribution.h):
  // an endpoint on that address without a scheme stays https, and it gets no rewrite.
  std::string header{kK3sFacts.hosts_header};
  std::string embedded_registry_addr{kK3sFacts.embedded_registry_addr};
};

struct HostsToml {
  std::string dir;      // directory under certs.d: "docker.io", "_default", "harbor.home.lab:8443"
  std::string content;  // the bytes of dir/hosts.toml

  bool operator==(const HostsToml&) const = default;
};

// registries.yaml as k3s reads it -> the hosts.toml files k3s writes, sorted by dir.
// source names the file in errors.
Result<std::vector<HostsToml>> renderCertsD(std::string_view registries_yaml,
                                            const std::string& source,
                                            const CertsDOptions& options);

// "1.29" or "1.32" (the command line's --k3s-layout); a config error naming the value otherwise.
Result<K3sLayout> parseK3sLayout(std::string_view text);

}  // namespace k3sma
