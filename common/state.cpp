#include "common/state.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/config.h"
#include "common/distribution.h"
#include "common/json.h"
#include "common/registries.h"

namespace k3sma {
namespace {

constexpr int kStateVersion = 1;

const char* originalName(Original o) {
  switch (o) {
    case Original::kAbsent:
      return "absent";
    case Original::kBackedUp:
      return "backed-up";
    case Original::kUnknown:
      break;
  }
  return "unknown";
}

// A registries.yaml key the agent wrote: printable, one line (it is shown by status).
bool isPrintableKey(const std::string& k) {
  return !k.empty() && std::none_of(k.begin(), k.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
}

}  // namespace

bool isOwnRegistriesPath(const std::string& p) {
  return p.empty() || p == registriesPath(Distribution::kK3s) ||
         p == registriesPath(Distribution::kRke2);
}

bool isOwnCaFile(const std::string& p) {
  const std::string dir = std::string(kCaDir) + "/";
  if (p.rfind(dir, 0) != 0) {
    return false;
  }
  const std::string name = p.substr(dir.size());
  if (name.size() <= 4 || name.size() > 255 || name.compare(name.size() - 4, 4, ".crt") != 0 ||
      name.front() == '.') {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
  });
}

Result<State> parseState(const std::string& text, const std::string& source) {
  // The state is ours, but a person may have edited or truncated it; say which file is broken
  // and how to recover rather than guess.
  const std::string fix = "; move it away and run apply again (the backup, if any, is kept)";
  try {
    const auto j = nlohmann::json::parse(text);
    if (!j.is_object() || jsonIntegerAt<int>(j, "version") != kStateVersion) {
      return configError("read state " + source + ": unsupported version" + fix);
    }
    State s;
    const auto& reg = j.at("registries");
    s.registries_path = reg.at("path").get<std::string>();
    const auto original = reg.at("original").get<std::string>();
    if (original == "absent") {
      s.original = Original::kAbsent;
    } else if (original == "backed-up") {
      s.original = Original::kBackedUp;
    } else if (original == "unknown") {
      s.original = Original::kUnknown;
    } else {
      return configError("read state " + source + ": unknown original \"" + original + "\"" + fix);
    }
    s.mirrors = reg.at("mirrors").get<std::vector<std::string>>();
    s.configs = reg.at("configs").get<std::vector<std::string>>();
    s.ca_files = j.at("ca_files").get<std::vector<std::string>>();
    s.hosts_toml = j.value("hosts_toml", "");  // absent in the state of an agent before it
    if (!isOwnRegistriesPath(s.registries_path)) {
      return configError("read state " + source + ": registries.path \"" + s.registries_path +
                         "\" is not a registries.yaml the agent writes" + fix);
    }
    for (const auto& ca : s.ca_files) {
      if (!isOwnCaFile(ca)) {
        return configError("read state " + source + ": ca_files: \"" + ca + "\" is not in " +
                           kCaDir + fix);
      }
    }
    for (const auto* keys : {&s.mirrors, &s.configs}) {
      for (const auto& key : *keys) {
        if (!isPrintableKey(key)) {
          return configError("read state " + source + ": a registries.yaml key is empty or " +
                             "holds a control character" + fix);
        }
      }
    }
    return s;
  } catch (const nlohmann::json::exception& e) {
    return configError("read state " + source + ": " + e.what() + fix);
  }
}

std::string renderState(const State& state) {
  nlohmann::ordered_json j;
  j["version"] = kStateVersion;
  j["registries"] = {{"path", state.registries_path},
                     {"original", originalName(state.original)},
                     {"mirrors", state.mirrors},
                     {"configs", state.configs}};
  j["ca_files"] = state.ca_files;
  if (!state.hosts_toml.empty()) {
    j["hosts_toml"] = state.hosts_toml;
  }
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace k3sma
