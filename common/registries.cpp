#include "common/registries.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <regex>
#include <set>

#include "common/yaml_emit.h"

namespace k3sma {
namespace {

constexpr const char* kHeader =
    "# Managed by k3s-mirror-agent: the mirrors and cache entries below are rewritten on every\n"
    "# apply from /etc/k3s-mirror-agent/config.yaml; entries it does not manage are kept.\n"
    "# k3s reads this file only when it starts. Undo with: k3s-mirror-agent restore\n";

Result<YAML::Node> parseRegistries(const std::optional<std::string>& text,
                                   const std::string& source) {
  if (!text) {
    return YAML::Node(YAML::NodeType::Map);
  }
  // Refuse what could not be written back with the same meaning (yaml_emit.h says what and
  // why); after this, the tree has no alias, so walking it is bounded by the text.
  if (auto plain = checkPlainYaml(*text, source); !plain) {
    return configError("parse " + plain.error().message +
                       "; the agent does not rewrite such a file: fix it or move it away");
  }
  YAML::Node root;
  try {
    root = YAML::Load(*text);
  } catch (const YAML::Exception& e) {
    return configError("parse " + source + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg +
                       "; fix the file or move it away (k3s cannot read it either)");
  }
  if (root.IsNull()) {
    return YAML::Node(YAML::NodeType::Map);
  }
  if (!root.IsMap()) {
    return configError("parse " + source +
                       ": the top level is not a mapping; fix the file or "
                       "move it away");
  }
  for (const char* section : {"mirrors", "configs"}) {
    if (root[section] && !root[section].IsMap() && !root[section].IsNull()) {
      return configError("parse " + source + ":" + std::to_string(root[section].Mark().line + 1) +
                         ": " + section + " is not a mapping; fix the file or move it away");
    }
  }
  return root;
}

// A section (mirrors or configs) as a fresh map without the given keys. Building a new node
// rather than calling remove() keeps yaml-cpp from sharing nodes with the parsed document.
YAML::Node without(const YAML::Node& section, const std::set<std::string>& drop) {
  YAML::Node kept(YAML::NodeType::Map);
  if (section && section.IsMap()) {
    for (const auto& item : section) {
      if (drop.count(item.first.Scalar()) == 0) {
        kept[item.first.Scalar()] = item.second;
      }
    }
  }
  return kept;
}

// The document with sections replaced; empty sections are left out.
std::optional<std::string> assemble(const YAML::Node& current, const YAML::Node& mirrors,
                                    const YAML::Node& configs) {
  YAML::Node out(YAML::NodeType::Map);
  for (const auto& item : current) {
    const std::string key = item.first.Scalar();
    if (key != "mirrors" && key != "configs") {
      out[key] = item.second;  // not ours, not k3s's: keep it, k3s ignores it anyway
    }
  }
  if (mirrors.size() > 0) {
    out["mirrors"] = mirrors;
  }
  if (configs.size() > 0) {
    out["configs"] = configs;
  }
  if (out.size() == 0) {
    return std::nullopt;
  }
  return std::string(kHeader) + emitSorted(out);
}

std::set<std::string> managedBefore(const State& previous, bool mirrors) {
  const auto& keys = mirrors ? previous.mirrors : previous.configs;
  return {keys.begin(), keys.end()};
}

}  // namespace

std::string caInstallPath(const CacheRegistry& registry) {
  std::string name = registry.host;
  for (char& c : name) {
    const bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '-';
    if (!safe) {
      c = '_';
    }
  }
  return std::string(kCaDir) + "/" + name + ".crt";
}

std::string mirrorEndpoint(const Config& config, const std::string& project) {
  if (config.mode == MirrorMode::kRewrite) {
    return config.registry.url;
  }
  return config.registry.url + "/v2/" + project;
}

Result<RenderedRegistries> renderRegistries(const Config& config, const std::string& ca_node_path,
                                            const std::optional<std::string>& current,
                                            const std::string& source, const State& previous) {
  auto parsed = parseRegistries(current, source);
  if (!parsed) {
    return parsed.error();
  }
  const YAML::Node& doc = parsed.value();
  RenderedRegistries result;

  // Ours now: every configured upstream, and the cache host's configs entry when it needs one.
  std::set<std::string> mirror_keys;
  for (const auto& [upstream, unused] : config.mirrors) {
    mirror_keys.insert(upstream);
  }
  std::set<std::string> drop_mirrors = managedBefore(previous, true);
  drop_mirrors.insert(mirror_keys.begin(), mirror_keys.end());
  YAML::Node mirrors = without(doc["mirrors"], drop_mirrors);
  for (const auto& [upstream, project] : config.mirrors) {
    YAML::Node entry(YAML::NodeType::Map);
    YAML::Node endpoints(YAML::NodeType::Sequence);
    endpoints.push_back(quoted(mirrorEndpoint(config, project)));
    entry["endpoint"] = endpoints;
    if (config.mode == MirrorMode::kRewrite) {
      // Harbor serves the upstream's repositories under the project: library/nginx becomes
      // dockerhub-proxy/library/nginx. k3s applies this Go RE2 regex to the path.
      YAML::Node rewrite(YAML::NodeType::Map);
      rewrite["^(.*)$"] = quoted(project + "/$1");
      entry["rewrite"] = rewrite;
    }
    mirrors[upstream] = entry;
    result.mirrors.push_back(upstream);
  }

  // TLS and auth are looked up by the endpoint's host[:port] — the cache — never the upstream.
  YAML::Node cache_entry(YAML::NodeType::Map);
  const auto& reg = config.registry;
  if (!ca_node_path.empty() || reg.insecure_skip_verify) {
    YAML::Node tls(YAML::NodeType::Map);
    if (!ca_node_path.empty()) {
      tls["ca_file"] = quoted(ca_node_path);
    }
    if (reg.insecure_skip_verify) {
      tls["insecure_skip_verify"] = true;
    }
    cache_entry["tls"] = tls;
  }
  if (reg.auth) {
    YAML::Node auth(YAML::NodeType::Map);
    auth["username"] = quoted(reg.auth->username);
    auth["password"] = quoted(reg.auth->password);
    cache_entry["auth"] = auth;
  }
  std::set<std::string> drop_configs = managedBefore(previous, false);
  if (cache_entry.size() > 0) {
    drop_configs.insert(reg.host);
  }
  YAML::Node configs = without(doc["configs"], drop_configs);
  if (cache_entry.size() > 0) {
    configs[reg.host] = cache_entry;
    result.configs.push_back(reg.host);
  }

  result.text = assemble(doc, mirrors, configs).value_or(kHeader);
  return result;
}

Result<std::optional<std::string>> removeManagedEntries(const std::string& current,
                                                        const std::string& source,
                                                        const State& previous) {
  auto parsed = parseRegistries(current, source);
  if (!parsed) {
    return parsed.error();
  }
  const YAML::Node& doc = parsed.value();
  return assemble(doc, without(doc["mirrors"], managedBefore(previous, true)),
                  without(doc["configs"], managedBefore(previous, false)));
}

namespace {
// What a diff or render shows instead of a text whose secrets cannot be located.
std::string notShown(const std::string& text) {
  return "# (" + std::to_string(std::count(text.begin(), text.end(), '\n')) +
         " lines not shown: not valid YAML, so its secrets cannot be masked)\n";
}
}  // namespace

std::string maskSecrets(const std::string& text) {
  auto ranges = secretRanges(text);
  if (!ranges) {
    // Not YAML: no way to tell where its secrets are, so show none of it.
    return notShown(text);
  }
  // Each range runs from a secret's first byte to the next token. Its first line becomes
  // "********"; the lines it covers whole become empty; on the line of the next token, what
  // precedes the token is kept only when it is indentation and indicators ("- ", "? ", ", ").
  std::string out;
  size_t copied = 0;
  for (const auto& r : *ranges) {
    if (r.begin < copied) {
      continue;  // nested inside a range already masked
    }
    if (r.flow && r.end <= r.begin) {
      continue;  // an empty (null) value in a flow collection: nothing to hide
    }
    out.append(text, copied, r.begin - copied);
    out += "\"********\"";
    if (r.flow) {
      // The value alone: its line breaks are kept (the lines below keep their numbers), and so
      // is the indentation of its last line, which the closing bracket after it needs.
      size_t last_line = r.begin;
      for (size_t eol = text.find('\n', r.begin); eol < r.end; eol = text.find('\n', eol + 1)) {
        out += '\n';
        last_line = eol + 1;
      }
      if (last_line > r.begin) {
        const std::string_view last(text.data() + last_line, r.end - last_line);
        out += last.substr(0, std::min(last.find_first_not_of(" \t"), last.size()));
      }
      copied = r.end;
      // A comment right after the value ("password: x # the old one was y") goes with it.
      const size_t eol = std::min(text.find('\n', r.end), text.size());
      const size_t next = text.find_first_not_of(" \t", r.end);
      if (next < eol && text[next] == '#') {
        copied = eol;
      }
      continue;
    }
    const size_t first_eol = text.find('\n', r.begin);
    if (first_eol == std::string::npos || first_eol >= r.end) {
      // Ends on the same line: keep the separator after the value (", " in a flow mapping).
      size_t keep = r.end;
      while (keep > r.begin && (text[keep - 1] == ' ' || text[keep - 1] == ',')) {
        --keep;
      }
      out.append(text, keep, r.end - keep);
      copied = r.end;
      continue;
    }
    size_t line_start = first_eol;  // the '\n' that ends the masked first line is kept
    for (;;) {
      const size_t next_eol = text.find('\n', line_start + 1);
      if (next_eol == std::string::npos || next_eol >= r.end) {
        break;
      }
      out += '\n';  // a line wholly inside the range: emptied
      line_start = next_eol;
    }
    out += '\n';
    const std::string last = text.substr(line_start + 1, r.end - (line_start + 1));
    const bool only_indicators = last.find_first_not_of(" \t-?:,") == std::string::npos;
    const size_t first = last.find_first_not_of(" \t");
    if (r.end >= text.size() || (first != std::string::npos && last[first] == '#')) {
      // No token follows (the range ran to the end of the text) or the line is a comment:
      // nothing there belongs to the YAML's structure, so it is emptied like the lines above.
    } else if (only_indicators) {
      out += last;
    } else if (!last.empty()) {
      out += last.substr(0, last.find_first_not_of(" \t")) + "\"********\", ";
    }
    copied = r.end;
  }
  out.append(text, copied, std::string::npos);
  // A safety net under the rules above: a masked text that is no longer YAML would show its
  // reader something other than what the file says (and mask differently a second time).
  if (!secretRanges(out)) {
    return notShown(text);
  }
  return out;
}

}  // namespace k3sma
