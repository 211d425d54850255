#include "agent/status.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <ctime>
#include <nlohmann/json.hpp>

#include "version.h"

namespace k3sma {
namespace {

using Json = nlohmann::ordered_json;

const char* driftName(DriftPolicy d) { return d == DriftPolicy::kReport ? "report" : "correct"; }

Json optionalString(const std::optional<std::string>& s) { return s ? Json(*s) : Json(nullptr); }

std::string cachePart(const CacheHealth& c) {
  if (!c.probe.up) {
    return "cache down: " + c.probe.error;
  }
  std::string text = "cache up (" + std::to_string(c.probe.latency.count()) + " ms";
  if (c.probe.certificate_days_left) {
    text += ", certificate expires in " + std::to_string(*c.probe.certificate_days_left) + " days";
  }
  text += ")";
  if (c.images.empty()) {
    return text;
  }
  size_t up = 0;
  const ImageResult* down = nullptr;
  for (const auto& i : c.images) {
    up += i.up ? 1 : 0;
    down = !i.up && down == nullptr ? &i : down;
  }
  text += ", images " + std::to_string(up) + "/" + std::to_string(c.images.size()) + " resolve";
  if (down != nullptr) {
    text += ": " + down->error;
  }
  return text;
}

// Prometheus label values escape backslash, double quote and newline.
std::string labelValue(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

double seconds(SystemTime t) { return std::chrono::duration<double>(t.time_since_epoch()).count(); }

}  // namespace

nlohmann::ordered_json imagesJson(const std::vector<ImageResult>& images) {
  Json list = Json::array();
  for (const auto& i : images) {
    list.push_back({{"image", i.image},
                    {"url", i.url},
                    {"up", i.up},
                    {"http_status", i.http_status},
                    {"digest", i.up ? Json(i.digest) : Json(nullptr)},
                    {"latency_ms", i.latency.count()},
                    {"error", i.up ? Json(nullptr) : Json(i.error)}});
  }
  return list;
}

std::string isoTime(SystemTime t) {
  // Through std::tm from fmt::gmtime: fmt 9 formats a time_point itself in local time.
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", fmt::gmtime(std::chrono::system_clock::to_time_t(t)));
}

std::string statusLine(const DaemonStatus& s) {
  std::string main;
  if (s.stopped) {
    main = "stopped";
  } else if (!s.doing.empty()) {
    main = s.doing;
  } else if (s.config_error && s.unconfigured) {
    main = "idle: " + *s.config_error;
  } else if (s.config_error) {
    main = "cannot apply, node left as it was: " + *s.config_error;
  } else if (s.held_back) {
    main = *s.held_back;
  } else if (!s.drifted.empty()) {
    main =
        "drift (drift: report, not corrected): " + fmt::format("{}", fmt::join(s.drifted, ", ")) +
        (s.drifted.size() == 1 ? " differs" : " differ") + " from the config";
  } else if (s.last_apply || !s.cache_url.empty()) {
    // A config that loaded and needed nothing (say, after starting unconfigured) is up to date
    // too, though the engine did not run.
    main = "up to date: " + std::to_string(s.mirrors) + (s.mirrors == 1 ? " mirror" : " mirrors") +
           " through " + s.cache_url;
  } else {
    main = "starting";
  }
  if (s.cache && !s.stopped) {
    main += "; " + cachePart(*s.cache);
  }
  return main;
}

std::string statusJson(const DaemonStatus& s) {
  Json j;
  j["version"] = kVersion;
  j["pid"] = s.pid;
  j["running"] = !s.stopped;
  j["started"] = isoTime(s.started);
  j["status"] = statusLine(s);
  j["config"] = {{"path", s.config_path},
                 {"sha256", s.config_sha256.empty() ? Json(nullptr) : Json(s.config_sha256)},
                 {"valid", !s.config_error},
                 {"error", optionalString(s.config_error)}};
  j["cache_url"] = s.cache_url.empty() ? Json(nullptr) : Json(s.cache_url);
  j["mirrors"] = s.mirrors;
  if (s.last_apply) {
    const auto& a = *s.last_apply;
    j["last_apply"] = {{"time", isoTime(a.time)},
                       {"trigger", a.trigger},
                       {"changed", a.changed},
                       {"restarted", optionalString(a.restarted)},
                       {"reload", optionalString(a.reload)},
                       {"rolled_back", a.rolled_back},
                       {"actions", a.actions},
                       {"error", optionalString(a.error)}};
  } else {
    j["last_apply"] = nullptr;
  }
  j["applies"] = s.applies;
  j["evaluations"] = s.evaluations;
  j["busy"] = s.busy;
  j["restarts"] = s.restarts;
  j["reloads"] = {{"hot", s.hot_reloads}, {"restart", s.restarts}};
  j["drift"] = {
      {"policy", driftName(s.drift)}, {"corrections", s.drift_corrections}, {"files", s.drifted}};
  j["held_back"] = optionalString(s.held_back);
  if (s.cache) {
    const auto& p = s.cache->probe;
    j["cache"] = {{"checked", isoTime(s.cache->checked)},
                  {"up", p.up},
                  {"latency_ms", p.latency.count()},
                  {"http_status", p.http_status},
                  {"certificate_days_left",
                   p.certificate_days_left ? Json(*p.certificate_days_left) : Json(nullptr)},
                  {"error", p.up ? Json(nullptr) : Json(p.error)}};
    j["cache"]["images"] = imagesJson(s.cache->images);
  } else {
    j["cache"] = nullptr;
  }
  j["probe_enabled"] = s.probe_enabled;
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string metricsText(const DaemonStatus& s) {
  std::string out;
  auto metric = [&](const std::string& name, const char* type, const char* help,
                    const std::string& value, const std::string& labels = "") {
    const std::string full = "k3s_mirror_agent_" + name;
    out += "# HELP " + full + " " + help + "\n# TYPE " + full + " " + type + "\n" + full + labels +
           " " + value + "\n";
  };
  // 15 significant digits, as printf's %.15g: a timestamp in seconds keeps its milliseconds.
  auto number = [](double v) { return fmt::format("{:.15g}", v); };
  metric("info", "gauge", "The agent's version.", "1",
         "{version=\"" + labelValue(kVersion) + "\"}");
  metric("config_valid", "gauge", "1 when the config loads; 0 when it has an error.",
         s.config_error ? "0" : "1");
  if (s.last_apply) {
    metric("last_apply_timestamp_seconds", "gauge", "When the daemon last ran an apply.",
           number(seconds(s.last_apply->time)));
    metric("last_apply_success", "gauge", "1 when the last apply succeeded.",
           s.last_apply->error ? "0" : "1");
  }
  metric("applies_total", "counter", "Applies run by the daemon, changed or not.",
         std::to_string(s.applies));
  metric("restarts_total", "counter", "k3s restarts made by the daemon.",
         std::to_string(s.restarts));
  // One family, two samples: how changes reached k3s.
  out +=
      "# HELP k3s_mirror_agent_reloads_total Changes k3s picked up, by how: hot (containerd's "
      "certs.d rewritten, no restart) or restart.\n# TYPE k3s_mirror_agent_reloads_total "
      "counter\nk3s_mirror_agent_reloads_total{kind=\"hot\"} " +
      std::to_string(s.hot_reloads) + "\nk3s_mirror_agent_reloads_total{kind=\"restart\"} " +
      std::to_string(s.restarts) + "\n";
  metric("drift_corrections_total", "counter", "Managed files put back after a hand edit.",
         std::to_string(s.drift_corrections));
  metric("drift_files", "gauge", "Managed files that differ from the config and were left so.",
         std::to_string(s.drifted.size()));
  if (s.cache) {
    const auto& p = s.cache->probe;
    metric("cache_up", "gauge", "1 when the cache answered GET /v2/ over verified TLS.",
           p.up ? "1" : "0");
    metric("cache_probe_timestamp_seconds", "gauge", "When the cache was last probed.",
           number(seconds(s.cache->checked)));
    if (p.up) {
      metric("cache_probe_latency_seconds", "gauge", "Connect to status line, last probe.",
             number(static_cast<double>(p.latency.count()) / 1000.0));
    }
    // One HELP/TYPE per family, then a sample per image (the text format wants them together).
    if (!s.cache->images.empty()) {
      out +=
          "# HELP k3s_mirror_agent_image_up 1 when the image's manifest resolved through the "
          "cache.\n# TYPE k3s_mirror_agent_image_up gauge\n";
      for (const auto& i : s.cache->images) {
        out += "k3s_mirror_agent_image_up{image=\"" + labelValue(i.image) + "\"} " +
               (i.up ? "1" : "0") + "\n";
      }
      out +=
          "# HELP k3s_mirror_agent_image_latency_seconds Resolving the image's manifest, "
          "token included, last probe.\n# TYPE k3s_mirror_agent_image_latency_seconds gauge\n";
      for (const auto& i : s.cache->images) {
        out += "k3s_mirror_agent_image_latency_seconds{image=\"" + labelValue(i.image) + "\"} " +
               number(static_cast<double>(i.latency.count()) / 1000.0) + "\n";
      }
    }
    if (p.certificate_days_left) {
      metric("cache_certificate_days_left", "gauge", "Days until the cache's certificate expires.",
             std::to_string(*p.certificate_days_left));
    }
  }
  return out;
}

Result<std::string> describeStatus(const std::optional<std::string>& status_json, bool alive,
                                   const State& state, const std::string& status_path) {
  std::string out;
  if (!status_json) {
    out += "daemon: not running on this boot (no " + status_path +
           "); `systemctl status k3s-mirror-agent` says more\n";
  } else {
    const Json j = Json::parse(*status_json, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      return Error{"read " + status_path + ": not the JSON object the daemon writes",
                   ErrorKind::kConfig};
    }
    // Accessors that never throw and never index a missing key: the file may come from another
    // version of the agent, or from an editor.
    auto field = [](const Json& v, const char* key) -> const Json* {
      auto it = v.find(key);
      return it == v.end() ? nullptr : &*it;
    };
    auto str = [&](const Json& v, const char* key) -> std::string {
      const Json* f = field(v, key);
      return f != nullptr && f->is_string() ? f->get<std::string>() : "";
    };
    auto num = [&](const Json& v, const char* key) -> std::string {
      const Json* f = field(v, key);
      return f != nullptr && f->is_number() ? f->dump() : "?";
    };
    auto flag = [&](const Json& v, const char* key, bool otherwise) {
      const Json* f = field(v, key);
      return f != nullptr && f->is_boolean() ? f->get<bool>() : otherwise;
    };
    auto object = [&](const Json& v, const char* key) -> const Json* {
      const Json* f = field(v, key);
      return f != nullptr && f->is_object() ? f : nullptr;
    };
    const bool said_running = flag(j, "running", false);
    out += "daemon: " +
           std::string(said_running && alive ? "running"
                       : said_running        ? "not running (it did not stop cleanly)"
                                             : "stopped") +
           ", pid " + num(j, "pid") + ", started " + str(j, "started") + "\n";
    out += "status: " + str(j, "status") + "\n";
    if (const Json* c = object(j, "config")) {
      out += "config: " + str(*c, "path") +
             (flag(*c, "valid", false) ? ", valid" : ", INVALID: " + str(*c, "error")) +
             (str(*c, "sha256").empty() ? "" : ", sha256 " + str(*c, "sha256").substr(0, 12)) +
             "\n";
    }
    if (const Json* a = object(j, "last_apply")) {
      std::string what = !str(*a, "error").empty()    ? "failed: " + str(*a, "error")
                         : flag(*a, "changed", false) ? "changed files"
                                                      : "nothing to change";
      if (!str(*a, "restarted").empty()) {
        what += ", restarted " + str(*a, "restarted");
      }
      out += "last apply: " + str(*a, "time") + " (" + str(*a, "trigger") + "): " + what + "\n";
    }
    out += "counts: " + num(j, "applies") + " applies, " + num(j, "restarts") + " restarts";
    if (const Json* d = object(j, "drift")) {
      out +=
          ", " + num(*d, "corrections") + " drift corrections (drift: " + str(*d, "policy") + ")";
    }
    out += "\n";
    if (const Json* c = object(j, "cache")) {
      std::string health = "DOWN: " + str(*c, "error");
      if (flag(*c, "up", false)) {
        health = "up, " + num(*c, "latency_ms") + " ms";
        if (num(*c, "certificate_days_left") != "?") {
          health += ", certificate expires in " + num(*c, "certificate_days_left") + " days";
        }
      }
      out += "cache: " + str(j, "cache_url") + " " + health + " (checked " + str(*c, "checked") +
             ")\n";
    } else if (!flag(j, "probe_enabled", true)) {
      out += "cache: not probed (daemon.probe_interval: 0)\n";
    }
  }
  if (state.original == Original::kUnknown && state.ca_files.empty()) {
    out += "managed: nothing yet (no apply has written this node)\n";
  } else {
    out += "managed: " + state.registries_path +
           " (mirrors: " + fmt::format("{}", fmt::join(state.mirrors, ", ")) + ")";
    if (!state.ca_files.empty()) {
      out += ", CA " + fmt::format("{}", fmt::join(state.ca_files, ", "));
    }
    out += "\n";
  }
  return out;
}

}  // namespace k3sma
