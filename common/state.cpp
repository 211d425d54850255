#include "common/state.h"

#include <nlohmann/json.hpp>

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

}  // namespace

Result<State> parseState(const std::string& text, const std::string& source) {
  // The state is ours, but a person may have edited or truncated it; say which file is broken
  // and how to recover rather than guess.
  const std::string fix = "; move it away and run apply again (the backup, if any, is kept)";
  try {
    const auto j = nlohmann::json::parse(text);
    if (j.value("version", 0) != kStateVersion) {
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
  return j.dump(2) + "\n";
}

}  // namespace k3sma
