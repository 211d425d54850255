// Fuzzes the config parser and the drop-in merge: parseConfig over up to eight files. The input is
// the main config.yaml; a line "#=== next file ===" starts the next drop-in (config.d/10.yaml,
// 20.yaml, ...), so the seed corpus holds real, readable configs.
//
// Properties, beyond "no crash":
// - an error names one of the files ("<path>:") and echoes no credentials of a URL;
// - an accepted config is complete and consistent: https/http URL of host[:port] without
//   credentials, a port, lower-case upstreams without scheme or path, projects, auth with a
//   username and a password file, no CA or skip-verify with http, origins that name the files,
//   a CA install path whose file name fits a file system's name limit;
// - the merge: the mirrors are the union, whatever the order of the drop-ins; an empty drop-in
//   (comments only) changes nothing.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/registries.h"
#include "tests/fuzz/fuzz_support.h"

namespace k3sma::fuzz {
namespace {

constexpr std::string_view kSeparator = "\n#=== next file ===\n";
constexpr size_t kMaxFiles = 8;

std::vector<ConfigSource> split(const std::string& input) {
  std::vector<ConfigSource> sources;
  size_t start = 0;
  while (sources.size() < kMaxFiles) {
    const size_t end = input.find(kSeparator, start);
    const std::string path = sources.empty() ? std::string(kDefaultConfigPath)
                                             : "/etc/k3s-mirror-agent/config.d/" +
                                                   std::to_string(sources.size() * 10) + ".yaml";
    if (end == std::string::npos || sources.size() + 1 == kMaxFiles) {
      sources.push_back({path, input.substr(start)});
      break;
    }
    sources.push_back({path, input.substr(start, end - start)});
    start = end + kSeparator.size();
  }
  return sources;
}

// Equal settings; origins and sha256 name the files, so they may differ.
bool sameConfig(const Config& a, const Config& b) {
  const auto& x = a.registry;
  const auto& y = b.registry;
  const bool same_auth = x.auth.has_value() == y.auth.has_value() &&
                         (!x.auth || (x.auth->username == y.auth->username &&
                                      x.auth->password_file == y.auth->password_file));
  return x.url == y.url && x.scheme == y.scheme && x.host == y.host && x.hostname == y.hostname &&
         x.port == y.port && x.ca_file == y.ca_file &&
         x.insecure_skip_verify == y.insecure_skip_verify && same_auth && a.mirrors == b.mirrors &&
         a.mode == b.mode && a.k3s.distribution == b.k3s.distribution && a.k3s.unit == b.k3s.unit &&
         a.k3s.restart == b.k3s.restart && a.k3s.restart_timeout == b.k3s.restart_timeout &&
         a.daemon.debounce == b.daemon.debounce && a.daemon.splay == b.daemon.splay &&
         a.daemon.drift == b.daemon.drift && a.daemon.probe_interval == b.daemon.probe_interval &&
         a.daemon.metrics_textfile == b.daemon.metrics_textfile;
}

bool namesAFile(const std::string& text, const std::vector<ConfigSource>& sources) {
  return std::any_of(sources.begin(), sources.end(), [&](const ConfigSource& s) {
    return text.rfind(s.path + ":", 0) == 0 || text.find(" " + s.path + ":") != std::string::npos;
  });
}

// "user:password@" of every scheme://user:password@ in the files: text no message may hold.
// One that the files also hold outside a URL (a key "h:user:pw@ x", where it is no credential)
// is left out: a message may echo that key.
std::vector<std::string> urlCredentials(const std::vector<ConfigSource>& sources) {
  std::vector<std::string> found;
  std::map<std::string, size_t> in_urls;  // how often each occurs as a URL's userinfo
  for (const auto& source : sources) {
    const auto& t = source.text;
    for (size_t pos = t.find("://"); pos != std::string::npos; pos = t.find("://", pos + 1)) {
      const size_t start = pos + 3;
      const size_t end = t.find_first_of("/?#@ \t\r\n\"',}]", start);
      if (end != std::string::npos && t[end] == '@') {
        const std::string userinfo = t.substr(start, end - start + 1);
        const size_t colon = userinfo.find(':');
        if (colon != std::string::npos && userinfo.size() - colon > 2) {
          found.push_back(userinfo);
          ++in_urls[userinfo];
        }
      }
    }
  }
  std::erase_if(found, [&](const std::string& userinfo) {
    size_t anywhere = 0;
    for (const auto& source : sources) {
      anywhere += countOf(source.text, userinfo);
    }
    return anywhere > in_urls[userinfo];
  });
  return found;
}

bool isLowerHex(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

void checkAccepted(const Config& c, const std::vector<ConfigSource>& sources) {
  const auto& r = c.registry;
  K3SMA_REQUIRE(r.scheme == "https" || r.scheme == "http", "scheme is \"" + r.scheme + "\"");
  K3SMA_REQUIRE(r.url == r.scheme + "://" + r.host, "url " + r.url + " is not scheme://host");
  K3SMA_REQUIRE(!r.host.empty() && !r.hostname.empty() && r.host.find(r.hostname) != r.host.npos,
                "host/hostname inconsistent: " + r.host);
  K3SMA_REQUIRE(r.host.find_first_of("@/?# \t\r\n") == std::string::npos,
                "the cache host holds credentials, a path or blanks: " + r.host);
  K3SMA_REQUIRE(r.port != 0, "no port for " + r.url);
  K3SMA_REQUIRE(r.ca_file.empty() || r.ca_file.front() == '/', "ca_file is not absolute");
  K3SMA_REQUIRE(r.scheme == "https" || (r.ca_file.empty() && !r.insecure_skip_verify),
                "http with a CA or insecure_skip_verify is accepted");
  if (r.auth) {
    K3SMA_REQUIRE(!r.auth->username.empty(), "auth without a username is accepted");
    K3SMA_REQUIRE(!r.auth->password_file.empty() && r.auth->password_file.front() == '/',
                  "auth without an absolute password_file is accepted");
    K3SMA_REQUIRE(r.auth->password.empty(), "parseConfig filled in a password");
  }
  if (!r.ca_file.empty()) {
    // update-ca-certificates needs the file; a name past NAME_MAX (255) cannot be created, so
    // `check` must refuse what `apply` could not do.
    const std::string path = caInstallPath(r);
    const std::string name = path.substr(path.rfind('/') + 1);
    K3SMA_REQUIRE(name.size() <= 255, "the CA file name is " + std::to_string(name.size()) +
                                          " bytes, past NAME_MAX: " + r.host.substr(0, 40) + "...");
  }
  K3SMA_REQUIRE(!c.mirrors.empty(), "a config without mirrors is accepted");
  for (const auto& [upstream, project] : c.mirrors) {
    K3SMA_REQUIRE(!upstream.empty() && upstream.find_first_of("/ \t\r\n@") == std::string::npos &&
                      upstream != "*",
                  "the upstream \"" + upstream + "\" is accepted");
    K3SMA_REQUIRE(!std::any_of(upstream.begin(), upstream.end(),
                               [](char ch) { return ch >= 'A' && ch <= 'Z'; }),
                  "the upper-case upstream \"" + upstream + "\" is accepted");
    K3SMA_REQUIRE(!project.empty() && std::all_of(project.begin(), project.end(),
                                                  [](char ch) {
                                                    return (ch >= 'a' && ch <= 'z') ||
                                                           (ch >= '0' && ch <= '9') || ch == '.' ||
                                                           ch == '_' || ch == '-';
                                                  }),
                  "the project \"" + project + "\" is accepted");
  }
  K3SMA_REQUIRE(
      c.k3s.unit == "auto" ||
          (c.k3s.unit.size() > 8 && c.k3s.unit.compare(c.k3s.unit.size() - 8, 8, ".service") == 0),
      "the unit \"" + c.k3s.unit + "\" is accepted");
  K3SMA_REQUIRE(c.k3s.restart_timeout.count() > 0, "a zero restart_timeout is accepted");
  K3SMA_REQUIRE(isLowerHex(c.sha256), "sha256 is not 64 hex digits");
  for (const auto& [key, origin] : c.origins) {
    K3SMA_REQUIRE(namesAFile(origin, sources), "the origin of " + key + " names no file");
  }
}

}  // namespace
}  // namespace k3sma::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace k3sma;
  using namespace k3sma::fuzz;
  const auto sources = split(std::string(reinterpret_cast<const char*>(data), size));
  const auto parsed = parseConfig(sources);
  if (!parsed.ok()) {
    const auto& message = parsed.error().message;
    K3SMA_REQUIRE(!message.empty() && namesAFile(message, sources),
                  "the error names no file: " + message);
    for (const auto& credentials : urlCredentials(sources)) {
      K3SMA_REQUIRE(message.find(credentials) == std::string::npos,
                    "the error echoes a URL's credentials: " + message);
    }
  } else {
    checkAccepted(parsed.value(), sources);
  }

  // An extra drop-in holding only a comment is no change.
  auto with_empty = sources;
  with_empty.push_back({"/etc/k3s-mirror-agent/config.d/99-empty.yaml", "# nothing here\n"});
  const auto padded = parseConfig(with_empty);
  K3SMA_REQUIRE(
      padded.ok() == parsed.ok() && (!parsed.ok() || sameConfig(parsed.value(), padded.value())),
      "an empty drop-in changes the result");

  // Drop-ins in the other order: where both are accepted, the mirrors are the same union.
  if (sources.size() > 2) {
    auto reversed = sources;
    std::reverse(reversed.begin() + 1, reversed.end());
    for (size_t i = 1; i < reversed.size(); ++i) {
      reversed[i].path = sources[i].path;  // names keep their order; the contents swap
    }
    const auto swapped = parseConfig(reversed);
    if (parsed.ok() && swapped.ok()) {
      K3SMA_REQUIRE(parsed.value().mirrors == swapped.value().mirrors,
                    "the merged mirrors depend on the order of the drop-ins");
    }
  }
  return 0;
}
