#include "common/reload.h"

#include <yaml-cpp/yaml.h>

#include <set>

namespace k3sma {
namespace {

std::string trim(std::string_view s) {
  const auto begin = s.find_first_not_of(" \t\r");
  if (begin == std::string_view::npos) {
    return "";
  }
  const auto end = s.find_last_not_of(" \t\r");
  return std::string(s.substr(begin, end - begin + 1));
}

// The CRI registry tables k3s's templates write config_path under: containerd config version 2
// (k3s < v1.32.2) and version 3 (k3s >= v1.32.2). A config_path anywhere else is not the one the
// CRI plugin, which does the pulls for the kubelet, reads.
bool isCriRegistryTable(const std::string& header) {
  return header == R"([plugins."io.containerd.grpc.v1.cri".registry])" ||
         header == R"([plugins.'io.containerd.cri.v1.images'.registry])" ||
         header == R"([plugins."io.containerd.cri.v1.images".registry])";
}

// The value of config_path in the CRI registry table, or nullopt. A line scan, not a TOML
// parser: k3s's template writes `config_path = "<path>"` on one line under the table header,
// and anything it does not write that way is not a config k3s wrote.
std::optional<std::string> criConfigPath(std::string_view toml) {
  std::string table;
  size_t start = 0;
  while (start <= toml.size()) {
    auto end = toml.find('\n', start);
    if (end == std::string_view::npos) {
      end = toml.size();
    }
    const std::string line = trim(toml.substr(start, end - start));
    start = end + 1;
    if (line.empty() || line[0] == '#') {
      continue;
    }
    if (line[0] == '[') {
      table = line;
      continue;
    }
    if (!isCriRegistryTable(table) || line.rfind("config_path", 0) != 0) {
      continue;
    }
    const std::string rest = trim(std::string_view(line).substr(11));
    if (rest.empty() || rest[0] != '=') {
      continue;
    }
    const std::string value = trim(std::string_view(rest).substr(1));
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
        value.back() == value.front()) {
      return value.substr(1, value.size() - 2);
    }
  }
  return std::nullopt;
}

bool hasHeader(const std::optional<std::string>& text, const std::string& header) {
  return text && text->size() > header.size() && text->compare(0, header.size(), header) == 0 &&
         (*text)[header.size()] == '\n';
}

// configs.<host>.auth of a registries.yaml, each emitted as YAML, by host. An unreadable file
// is an error: the caller restarts.
Result<std::map<std::string, std::string>> authsOf(const std::optional<std::string>& text,
                                                   const std::string& source) {
  std::map<std::string, std::string> auths;
  if (!text) {
    return auths;
  }
  try {
    const YAML::Node root = YAML::Load(*text);
    if (!root.IsMap() || !root["configs"] || !root["configs"].IsMap()) {
      return auths;
    }
    for (const auto& entry : root["configs"]) {
      if (entry.second.IsMap() && entry.second["auth"]) {
        YAML::Emitter out;
        out << entry.second["auth"];
        auths[entry.first.as<std::string>()] = out.c_str();
      }
    }
  } catch (const YAML::Exception& e) {
    return configError("read " + source + ": " + e.what());
  }
  return auths;
}

ReloadDecision restartBecause(std::string why) {
  ReloadDecision d;
  d.kind = ReloadKind::kRestart;
  d.reason = std::move(why);
  return d;
}

// The k3s-headed directories of certs.d, as the model's files.
std::vector<HostsToml> headedDirs(const ReloadInputs& in, const std::string& header) {
  std::vector<HostsToml> headed;
  for (const auto& [dir, text] : in.certs_d) {
    if (hasHeader(text, header)) {
      headed.push_back({dir, *text});
    }
  }
  return headed;  // sorted by dir, as renderCertsD's output
}

// Why the headed directories are not the model's output under options; nullopt when they are.
std::optional<std::string> mismatch(const std::vector<HostsToml>& headed,
                                    const std::vector<HostsToml>& model, const ReloadInputs& in) {
  std::set<std::string> modelled;
  for (const auto& m : model) {
    modelled.insert(m.dir);
  }
  for (const auto& h : headed) {
    if (!modelled.contains(h.dir)) {
      return "certs.d/" + h.dir +
             " carries k3s's header but the model makes no such directory (an embedded "
             "registry, or a flag the model does not know)";
    }
  }
  for (const auto& m : model) {
    auto it = in.certs_d.find(m.dir);
    if (it == in.certs_d.end() || !it->second) {
      return "certs.d/" + m.dir +
             "/hosts.toml is missing (k3s has not started on this "
             "registries.yaml yet)";
    }
    if (*it->second != m.content) {
      return "certs.d/" + m.dir + "/hosts.toml is not what the model makes of registries.yaml";
    }
  }
  return std::nullopt;
}

}  // namespace

CertsDOptions certsDOptionsFor(Distribution d) {
  CertsDOptions options;
  options.header = factsOf(d).hosts_header;
  options.embedded_registry_addr = factsOf(d).embedded_registry_addr;
  return options;
}

std::string settingName(const CertsDOptions& options) {
  return std::string(options.layout == K3sLayout::kV1_29 ? "1.29" : "1.32") +
         (options.disable_default_endpoint ? " no-default-endpoint" : "");
}

std::optional<CertsDOptions> settingNamed(const std::string& name, Distribution d) {
  for (K3sLayout layout : {K3sLayout::kV1_32, K3sLayout::kV1_29}) {
    for (bool disable : {false, true}) {
      CertsDOptions options = certsDOptionsFor(d);
      options.layout = layout;
      options.disable_default_endpoint = disable;
      if (settingName(options) == name) {
        return options;
      }
    }
  }
  return std::nullopt;
}

std::string describeCertsDOptions(const CertsDOptions& options) {
  return std::string("k3s layout ") + (options.layout == K3sLayout::kV1_29 ? "1.29" : "1.32") +
         (options.disable_default_endpoint ? ", --disable-default-registry-endpoint"
                                           : ", default endpoint on");
}

ReloadDecision decideReload(const ReloadInputs& in) {
  if (in.policy == ReloadPolicy::kRestart) {
    return restartBecause("k3s.reload is restart");
  }
  const std::string config_toml = containerdConfigPath(in.distribution);
  const std::string certs_d = certsDPath(in.distribution);
  if (!in.containerd_config) {
    return restartBecause(config_toml + " does not exist (k3s has not started here yet)");
  }
  const auto path = criConfigPath(*in.containerd_config);
  if (!path) {
    return restartBecause(config_toml +
                          " sets no config_path for the CRI registry (a k3s before January "
                          "2024 writes the mirrors into config.toml itself)");
  }
  if (*path != certs_d) {
    return restartBecause(config_toml + " sets config_path to " + *path + ", not " + certs_d);
  }
  if (!in.certs_d_exists) {
    return restartBecause(certs_d + " does not exist");
  }
  if (in.certs_d_read_only) {
    return restartBecause(certs_d +
                          " is read-only to this process (k3s made it after "
                          "k3s-mirror-agent.service started, whose sandbox then cannot write "
                          "it); restart k3s-mirror-agent.service to reload without a restart");
  }

  auto auth_now = authsOf(in.registries_now, registriesPath(in.distribution));
  if (!auth_now) {
    return restartBecause(auth_now.error().message);
  }
  auto auth_new = authsOf(in.registries_new, "the new registries.yaml");
  if (!auth_new) {
    return restartBecause(auth_new.error().message);
  }
  if (auth_now.value() != auth_new.value()) {
    return restartBecause(
        "a configs.*.auth changed (containerd reads credentials only when k3s starts)");
  }

  const CertsDOptions base = certsDOptionsFor(in.distribution);
  const auto headed = headedDirs(in, base.header);
  const std::string now_text = in.registries_now.value_or("");
  std::vector<CertsDOptions> matched;
  std::string first_mismatch;
  for (K3sLayout layout : {K3sLayout::kV1_32, K3sLayout::kV1_29}) {
    for (bool disable : {false, true}) {
      CertsDOptions options = base;
      options.layout = layout;
      options.disable_default_endpoint = disable;
      auto model = renderCertsD(now_text, registriesPath(in.distribution), options);
      if (!model) {
        return restartBecause("the model cannot read the registries.yaml on disk: " +
                              model.error().message);
      }
      if (auto why = mismatch(headed, model.value(), in)) {
        if (first_mismatch.empty()) {
          first_mismatch = *why;
        }
        continue;
      }
      matched.push_back(options);
    }
  }
  if (matched.empty()) {
    return restartBecause(first_mismatch);
  }

  // More than one setting can match (no registries.yaml, or every key also under configs): hot
  // only when they all agree on the new files, since which one this k3s runs is unknown.
  std::optional<std::vector<HostsToml>> files;
  for (const auto& options : matched) {
    auto next = renderCertsD(in.registries_new, registriesPath(in.distribution), options);
    if (!next) {
      return restartBecause("render the new hosts.toml files: " + next.error().message);
    }
    if (files && *files != next.value()) {
      return restartBecause("the hosts.toml files on disk match more than one k3s setting (" +
                            describeCertsDOptions(matched.front()) + "; " +
                            describeCertsDOptions(options) +
                            ") and the new registries.yaml renders differently under them");
    }
    files = std::move(next.value());
  }

  ReloadDecision d;
  d.kind = ReloadKind::kHot;
  d.options = matched.front();
  d.reason = "certs.d is what the model makes (" + describeCertsDOptions(d.options) + ")";
  d.files = std::move(*files);
  std::set<std::string> kept;
  for (const auto& f : d.files) {
    kept.insert(f.dir);
  }
  for (const auto& h : headed) {
    if (!kept.contains(h.dir)) {
      d.stale.push_back(h.dir);
    }
  }
  return d;
}

}  // namespace k3sma
