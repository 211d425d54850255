// Fuzzes the registries.yaml merge: renderRegistries over a hostile current file, and
// removeManagedEntries (restore) over it and over the rendered file. The input is the node's
// registries.yaml as is; each input is run against two configs (path mode with CA and auth and a
// previous state; rewrite mode over plain http as a first apply).
//
// Properties, beyond "no crash":
// - a second render over its own output changes nothing (the second apply writes nothing);
// - a file that cannot be re-emitted with the same meaning (anchors, aliases, tags, merge keys,
//   invalid UTF-8, NUL, non-scalar, null or duplicate keys) is refused, never rewritten;
// - when accepted, the output reads back to the same entries: every entry the agent does not
//   manage with the same meaning, the agent's own entries as the config says, nothing else;
// - restore (removeManagedEntries) of the output gives back exactly the unmanaged entries;
// - no error message holds a password, auth or identity_token value of the file.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>

#include "common/config.h"
#include "common/registries.h"
#include "common/state.h"
#include "tests/fuzz/fuzz_support.h"

namespace k3sma::fuzz {
namespace {

constexpr const char* kSource = "/etc/rancher/k3s/registries.yaml";
constexpr const char* kPassword = "Pa55-w0rd-F0r-Harb0r";

struct Variant {
  Config config;
  std::string ca_path;
  State previous;
};

Config mustParse(const std::string& text) {
  auto parsed = parseConfig({{"/etc/k3s-mirror-agent/config.yaml", text}});
  K3SMA_REQUIRE(parsed.ok(), "the harness's own config parses: " +
                                 (parsed.ok() ? std::string() : parsed.error().message));
  return parsed.value();
}

const std::vector<Variant>& variants() {
  static const std::vector<Variant> all = [] {
    std::vector<Variant> v(2);
    v[0].config = mustParse(
        "registry:\n"
        "  url: https://harbor.home.lab\n"
        "  ca_file: /etc/k3s-mirror-agent/ca.pem\n"
        "  auth: {username: robot$k3s, password_file: /etc/k3s-mirror-agent/password}\n"
        "mirrors: {docker.io: dockerhub-proxy, ghcr.io: ghcr-proxy}\n");
    v[0].config.registry.auth->password = kPassword;
    v[0].ca_path = caInstallPath(v[0].config.registry);
    v[0].previous.registries_path = kSource;
    v[0].previous.original = Original::kBackedUp;
    v[0].previous.mirrors = {"docker.io", "quay.io"};
    v[0].previous.configs = {"harbor.home.lab", "old-cache.lan:5000"};
    v[1].config = mustParse(
        "registry: {url: 'http://registry.internal:5000'}\n"
        "mirrors: {docker.io: hub, registry.k8s.io: k8s-proxy}\n"
        "mode: rewrite\n");
    return v;
  }();
  return all;
}

std::string show(const std::string& text) {
  return text.size() > 300 ? text.substr(0, 300) + "..." : text;
}

// Every scalar under a password, auth or identity_token key, at any depth.
std::vector<std::string> secretsIn(const YamlTree& tree) {
  std::vector<std::string> secrets;
  for (const auto& node : tree.nodes) {
    if (node.kind != YamlTree::Kind::kMap) {
      continue;
    }
    for (size_t k = 0; k + 1 < node.children.size(); k += 2) {
      const auto& key = tree.nodes[node.children[k]];
      const auto& value = tree.nodes[node.children[k + 1]];
      if (key.kind == YamlTree::Kind::kScalar &&
          (key.value == "password" || key.value == "auth" || key.value == "identity_token") &&
          value.kind == YamlTree::Kind::kScalar && value.value.size() >= 4) {
        secrets.push_back(value.value);
      }
    }
  }
  return secrets;
}

// An error message must not echo a secret of the file. A secret may also be ordinary words of
// the message ("such a file"), so a secret found in it counts only when it came from the input:
// with the secret replaced in the input by as many Zs, the message holds the Zs instead.
void requireNoSecret(const std::string& message, const std::string& text,
                     const std::optional<YamlTree>& input, const Variant& variant) {
  K3SMA_REQUIRE(message.find(kPassword) == std::string::npos,
                "an error message holds the config's password: " + message);
  if (!input) {
    return;
  }
  for (const auto& secret : secretsIn(*input)) {
    if (message.find(secret) == std::string::npos) {
      continue;
    }
    const std::string stand_in(secret.size(), secret.front() == 'Z' ? 'Y' : 'Z');
    const auto other =
        renderRegistries(variant.config, variant.ca_path, replaceAll(text, secret, stand_in),
                         kSource, variant.previous);
    K3SMA_REQUIRE(other.ok() || other.error().message.find(stand_in) == std::string::npos,
                  "an error message holds a secret of the file: " + message);
  }
}

// The entries of section (mirrors or configs) in the input whose keys are not in drop.
std::set<std::string> keysOf(const YamlTree& tree, std::optional<size_t> section) {
  std::set<std::string> keys;
  if (section && tree.nodes[*section].kind == YamlTree::Kind::kMap) {
    const auto& node = tree.nodes[*section];
    for (size_t k = 0; k < node.children.size(); k += 2) {
      keys.insert(tree.nodes[node.children[k]].value);
    }
  }
  return keys;
}

// Checks `out` against what the input's unmanaged entries and the agent's entries should give.
// managed_mirrors/managed_configs: the keys the output must have as the agent's (render), empty
// for restore. drop: keys of the input that must be gone.
void requireEntries(const std::string& what, const YamlTree& in, const YamlTree& out,
                    const std::set<std::string>& drop_mirrors,
                    const std::set<std::string>& drop_configs, const Variant& variant,
                    bool agent_entries) {
  const auto& config = variant.config;
  // Top level: every key but the two sections, as it was.
  const auto& in_root = in.root();
  if (in_root.kind == YamlTree::Kind::kMap) {
    for (size_t k = 0; k + 1 < in_root.children.size(); k += 2) {
      const auto& key = in.nodes[in_root.children[k]].value;
      if (key == "mirrors" || key == "configs") {
        continue;
      }
      const auto found = out.find(0, key);
      K3SMA_REQUIRE(found && sameMeaning(in, in_root.children[k + 1], out, *found),
                    what + ": the top-level key \"" + key + "\" is lost or changed");
    }
  }
  for (const char* section : {"mirrors", "configs"}) {
    const bool is_mirrors = std::string(section) == "mirrors";
    const auto& drop = is_mirrors ? drop_mirrors : drop_configs;
    const auto in_section =
        in_root.kind == YamlTree::Kind::kMap ? in.find(0, section) : std::optional<size_t>();
    const auto out_section = out.find(0, section);
    std::set<std::string> expected;
    for (const auto& key : keysOf(in, in_section)) {
      if (drop.count(key) != 0) {
        continue;
      }
      expected.insert(key);
      const auto kept = out_section ? out.find(*out_section, key) : std::nullopt;
      K3SMA_REQUIRE(kept && sameMeaning(in, *in.find(*in_section, key), out, *kept),
                    what + ": the unmanaged entry " + section + "." + key + " is lost or changed");
    }
    if (agent_entries && is_mirrors) {
      for (const auto& [upstream, project] : config.mirrors) {
        expected.insert(upstream);
        const auto entry = out_section ? out.find(*out_section, upstream) : std::nullopt;
        const auto endpoint = entry ? out.find(*entry, "endpoint") : std::nullopt;
        const auto& list = endpoint ? out.nodes[*endpoint] : out.nodes[0];
        K3SMA_REQUIRE(endpoint && list.kind == YamlTree::Kind::kSequence &&
                          list.children.size() == 1 &&
                          out.nodes[list.children[0]].value == mirrorEndpoint(config, project) &&
                          out.typeOf(list.children[0]) == "str",
                      what + ": mirrors." + upstream + ".endpoint is not [" +
                          mirrorEndpoint(config, project) + "]");
      }
    }
    const bool cache_entry =
        config.registry.auth || !variant.ca_path.empty() || config.registry.insecure_skip_verify;
    if (agent_entries && !is_mirrors && cache_entry) {
      expected.insert(config.registry.host);
      const auto entry = out_section ? out.find(*out_section, config.registry.host) : std::nullopt;
      K3SMA_REQUIRE(entry, what + ": configs." + config.registry.host + " is missing");
      if (config.registry.auth) {
        const auto auth = out.find(*entry, "auth");
        const auto password = auth ? out.find(*auth, "password") : std::nullopt;
        K3SMA_REQUIRE(password && out.nodes[*password].value == config.registry.auth->password,
                      what + ": configs." + config.registry.host + ".auth.password is wrong");
      }
    }
    K3SMA_REQUIRE(keysOf(out, out_section) == expected,
                  what + ": " + section + " has other keys than the unmanaged and the agent's");
  }
}

// The harness's own reading of the input, made after the code under test had it first: a crash
// is then the agent's, not the harness's.
class LazyTree {
 public:
  explicit LazyTree(const std::string& text) : text_(text) {}
  const std::optional<YamlTree>& get() {
    if (!read_) {
      tree_ = readYaml(text_);
      read_ = true;
    }
    return tree_;
  }

 private:
  const std::string& text_;
  bool read_ = false;
  std::optional<YamlTree> tree_;
};

void checkVariant(const std::string& text, const Variant& variant, LazyTree& lazy) {
  const auto rendered =
      renderRegistries(variant.config, variant.ca_path, text, kSource, variant.previous);
  const auto restored = removeManagedEntries(text, kSource, variant.previous);
  K3SMA_REQUIRE(restored.ok() == rendered.ok(),
                "render and restore disagree on whether the file is acceptable: " +
                    (rendered.ok() ? restored.error().message : rendered.error().message));
  if (!rendered.ok()) {
    const auto& message = rendered.error().message;
    K3SMA_REQUIRE(message.find(kSource) != std::string::npos,
                  "the error does not name the file: " + message);
    requireNoSecret(message, text, lazy.get(), variant);
    return;
  }
  const auto& input = lazy.get();

  const auto& out_text = rendered.value().text;
  // What must be refused (SPEC: never silently rewritten). yaml-cpp accepted it, so the harness's
  // own reading, through the same parser, has it too.
  K3SMA_REQUIRE(isValidUtf8(text), "a file with invalid UTF-8 is accepted (and rewritten)");
  K3SMA_REQUIRE(text.find('\0') == std::string::npos, "a file with NUL is accepted");
  if (!input) {
    return;  // larger than the harness reads; no crash is all that is checked
  }
  K3SMA_REQUIRE(!input->has_alias, "a file with an alias is accepted");
  K3SMA_REQUIRE(!input->has_anchor, "a file with an anchor is accepted");
  K3SMA_REQUIRE(!input->has_explicit_tag, "a file with a tag (!!...) is accepted");
  K3SMA_REQUIRE(!input->has_merge_key, "a file with a merge key (<<) is accepted");
  K3SMA_REQUIRE(!input->has_complex_key, "a file with a mapping or list as a key is accepted");
  K3SMA_REQUIRE(!input->has_null_key, "a file with a null key is accepted");
  K3SMA_REQUIRE(!input->has_duplicate_key, "a file with a duplicate key is accepted");

  const auto output = readYaml(out_text);
  K3SMA_REQUIRE(output.has_value(), "the rendered file does not read back:\n" + show(out_text));
  K3SMA_REQUIRE(isValidUtf8(out_text), "the rendered file is not UTF-8");
  K3SMA_REQUIRE(output->reEmittable(), "the rendered file has anchors, tags or odd keys");

  std::set<std::string> drop_mirrors(variant.previous.mirrors.begin(),
                                     variant.previous.mirrors.end());
  for (const auto& [upstream, unused] : variant.config.mirrors) {
    drop_mirrors.insert(upstream);
  }
  std::set<std::string> drop_configs(variant.previous.configs.begin(),
                                     variant.previous.configs.end());
  std::set<std::string> now_mirrors(rendered.value().mirrors.begin(),
                                    rendered.value().mirrors.end());
  std::set<std::string> now_configs(rendered.value().configs.begin(),
                                    rendered.value().configs.end());
  drop_configs.insert(now_configs.begin(), now_configs.end());
  requireEntries("render", *input, *output, drop_mirrors, drop_configs, variant, true);

  // The second apply: the state now records what the agent wrote; nothing changes.
  State after = variant.previous;
  after.mirrors = rendered.value().mirrors;
  after.configs = rendered.value().configs;
  const auto second = renderRegistries(variant.config, variant.ca_path, out_text, kSource, after);
  K3SMA_REQUIRE(second.ok() && second.value().text == out_text,
                "a second render over the rendered file changes it:\n" + show(out_text));

  // restore of the rendered file: the unmanaged entries, exactly; nothing when there are none.
  const auto back = removeManagedEntries(out_text, kSource, after);
  K3SMA_REQUIRE(back.ok(), "restore refuses the agent's own file: " +
                               (back.ok() ? std::string() : back.error().message));
  std::set<std::string> none;
  if (back.value()) {
    const auto back_tree = readYaml(*back.value());
    K3SMA_REQUIRE(back_tree.has_value(), "the restored file does not read back");
    requireEntries("restore", *input, *back_tree, drop_mirrors, drop_configs, variant, false);
  } else {
    const auto& root = input->root();
    size_t left = 0;
    if (root.kind == YamlTree::Kind::kMap) {
      left = root.children.size() / 2;
      for (const char* section : {"mirrors", "configs"}) {
        if (auto s = input->find(0, section)) {
          const auto& drop = std::string(section) == "mirrors" ? drop_mirrors : drop_configs;
          size_t kept = 0;
          for (const auto& key : keysOf(*input, s)) {
            kept += drop.count(key) == 0 ? 1 : 0;
          }
          left -= kept == 0 ? 1 : 0;
        }
      }
    }
    K3SMA_REQUIRE(left == 0, "restore removes the file although unmanaged entries are left");
  }
  // restore straight from the node's file keeps the same unmanaged entries.
  if (restored.value()) {
    const auto restored_tree = readYaml(*restored.value());
    K3SMA_REQUIRE(restored_tree.has_value(), "the restored file does not read back");
    std::set<std::string> prev_mirrors(variant.previous.mirrors.begin(),
                                       variant.previous.mirrors.end());
    std::set<std::string> prev_configs(variant.previous.configs.begin(),
                                       variant.previous.configs.end());
    requireEntries("restore of the node's file", *input, *restored_tree, prev_mirrors, prev_configs,
                   variant, false);
  }
}

}  // namespace
}  // namespace k3sma::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace k3sma::fuzz;
  const std::string text(reinterpret_cast<const char*>(data), size);
  LazyTree input(text);
  for (const auto& variant : variants()) {
    checkVariant(text, variant, input);
  }
  return 0;
}
