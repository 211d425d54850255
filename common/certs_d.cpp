#include "common/certs_d.h"

// Only the standard library, yaml-cpp and common/error.h here (see certs_d.h): the arm64 k3s
// stand-in compiles this file on its own.

#include <arpa/inet.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <utility>

namespace k3sma {
namespace {

// ---- registries.yaml as k3s (rancher/wharfie's registries.Registry) reads it ----

struct TlsConfig {
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  bool insecure_skip_verify = false;
};

struct RegistryConfig {
  bool has_auth = false;  // only whether it is there: auth never reaches hosts.toml
  std::optional<TlsConfig> tls;
  int line = 0;  // of its key, for errors
};

struct Mirror {
  std::vector<std::string> endpoints;
  std::vector<int> endpoint_lines;              // for errors
  int line = 0;                                 // of its key
  std::map<std::string, std::string> rewrites;  // Go's text/template ranges a map sorted by key
};

struct Registry {
  std::vector<std::pair<std::string, Mirror>> mirrors;  // in file order, for errors
  std::map<std::string, RegistryConfig> configs;
};

class Reader {
 public:
  explicit Reader(const std::string& source) : source_(source) {}

  Result<Registry> read(std::string_view text) {
    YAML::Node root;
    try {
      const std::string doc(text);
      if (Status s = checkStream(doc); !s) {
        return s.error();
      }
      root = YAML::Load(doc);
    } catch (const YAML::Exception& e) {
      return failAt(e.mark.line + 1, "", e.msg);
    }
    Registry registry;
    if (!root.IsDefined() || root.IsNull()) {
      return registry;  // an empty file: no mirrors, no configs
    }
    // Other top-level keys are ignored by k3s, and kept by the agent's own registries.yaml
    // rendering: ignore them too. Below mirrors and configs an unknown key is refused: there
    // it is a typo that would silently drop a setting.
    if (Status s = checkMap(root, "", {}); !s) {
      return s.error();
    }
    if (YAML::Node mirrors = root["mirrors"]; mirrors && !mirrors.IsNull()) {
      Status s = readMirrors(mirrors, registry);
      if (!s) {
        return s.error();
      }
    }
    if (YAML::Node configs = root["configs"]; configs && !configs.IsNull()) {
      Status s = readConfigs(configs, registry);
      if (!s) {
        return s.error();
      }
    }
    return registry;
  }

 private:
  static int lineOf(const YAML::Node& node) { return node.Mark().line + 1; }

  // Notes the first alias or anchor; builds nothing.
  class Scan final : public YAML::EventHandler {
   public:
    void OnDocumentStart(const YAML::Mark&) override {}
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override { note(mark, anchor); }
    void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { note(mark, 1); }
    void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  const std::string&) override {
      note(mark, anchor);
    }
    void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                         YAML::EmitterStyle::value) override {
      note(mark, anchor);
    }
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                    YAML::EmitterStyle::value) override {
      note(mark, anchor);
    }
    void OnMapEnd() override {}
    std::optional<int> alias_line;

   private:
    void note(const YAML::Mark& mark, YAML::anchor_t anchor) {
      if (anchor != YAML::NullAnchor && !alias_line) {
        alias_line = mark.line + 1;
      }
    }
  };

  // One document, read to its end, without anchors or aliases. Go's decoder reads only the
  // first document; a second one is refused rather than ignored. The parser is asked for two
  // documents at most: yaml-cpp 0.7 (issue 1040) returns "another document" forever on some
  // text (","), which is why YAML::LoadAll is not used. Anchors and aliases: k3s resolves them,
  // the agent never writes them, and a shared node would be walked once per alias.
  Status checkStream(const std::string& doc) const {
    std::istringstream in(doc);
    YAML::Parser parser(in);
    Scan scan;
    if (!parser.HandleNextDocument(scan)) {
      return Ok{};
    }
    if (scan.alias_line) {
      return failAt(*scan.alias_line, "", "YAML anchors and aliases are not supported");
    }
    Scan second;
    if (parser.HandleNextDocument(second)) {
      return failAt(static_cast<int>(std::count(doc.begin(), doc.end(), '\n')), "",
                    "a second YAML document, or text after the first that YAML cannot read; k3s "
                    "reads one document");
    }
    return Ok{};
  }

  Error failAt(int line, const std::string& key, const std::string& reason) const {
    return configError("read " + source_ + ":" + std::to_string(line) + ": " +
                       (key.empty() ? "" : key + ": ") + reason);
  }
  Error fail(const YAML::Node& node, const std::string& key, const std::string& reason) const {
    return failAt(lineOf(node), key, reason);
  }

  // A tag (!!str, !custom) would change what Go's YAML decoder makes of a value; refuse it.
  Status checkUntagged(const YAML::Node& node, const std::string& key) const {
    const std::string& tag = node.Tag();
    if (!tag.empty() && tag != "?" && tag != "!") {
      return fail(node, key, "the YAML tag " + tag + " is not supported");
    }
    return Ok{};
  }

  // A mapping whose keys are plain, unique strings from `allowed` (empty: any key).
  Status checkMap(const YAML::Node& node, const std::string& key,
                  const std::set<std::string>& allowed) const {
    if (Status s = checkUntagged(node, key); !s) {
      return s;
    }
    if (!node.IsMap()) {
      return fail(node, key, "must be a mapping");
    }
    std::set<std::string> seen;
    for (const auto& kv : node) {
      if (!kv.first.IsScalar()) {
        return fail(kv.first, key, "a key must be a plain string");
      }
      const std::string name = kv.first.Scalar();
      // Host names are quoted (mirrors."docker.io"), field names are not (tls.ca_file).
      const std::string here = key.empty()       ? name
                               : allowed.empty() ? keyName(key, name)
                                                 : key + "." + name;
      if (Status s = checkUntagged(kv.first, here); !s) {
        return s;
      }
      if (name == "<<") {
        return fail(kv.first, key, "YAML merge keys (<<) are not supported");
      }
      if (!seen.insert(name).second) {
        return fail(kv.first, here, "the key is given twice");
      }
      if (!allowed.empty() && allowed.count(name) == 0) {
        std::string list;
        for (const auto& a : allowed) {
          list += (list.empty() ? "" : ", ") + a;
        }
        return fail(kv.first, here, "unknown key (known: " + list + ")");
      }
    }
    return Ok{};
  }

  Result<std::string> scalar(const YAML::Node& node, const std::string& key) const {
    if (Status s = checkUntagged(node, key); !s) {
      return s.error();
    }
    if (node.IsNull()) {
      return std::string();
    }
    if (!node.IsScalar()) {
      return fail(node, key, "must be a string");
    }
    return node.Scalar();
  }

  Result<bool> boolean(const YAML::Node& node, const std::string& key) const {
    if (Status s = checkUntagged(node, key); !s) {
      return s.error();
    }
    if (node.IsNull()) {
      return false;
    }
    // A quoted "true" is a string to Go's decoder, and an error for a bool field.
    if (node.IsScalar() && node.Tag() == "?") {
      const std::string& v = node.Scalar();
      if (v == "true" || v == "True" || v == "TRUE") {
        return true;
      }
      if (v == "false" || v == "False" || v == "FALSE") {
        return false;
      }
    }
    return fail(node, key, "must be true or false");
  }

  static std::string keyName(const std::string& parent, const std::string& name) {
    return parent + ".\"" + name + "\"";
  }

  Status readMirrors(const YAML::Node& mirrors, Registry& registry) const {
    if (Status s = checkMap(mirrors, "mirrors", {}); !s) {
      return s;
    }
    for (const auto& kv : mirrors) {
      const std::string name = kv.first.Scalar();
      const std::string key = keyName("mirrors", name);
      Mirror mirror;
      mirror.line = lineOf(kv.first);
      const YAML::Node& body = kv.second;
      if (!body.IsNull()) {
        if (Status s = checkMap(body, key, {"endpoint", "rewrite"}); !s) {
          return s;
        }
        if (YAML::Node endpoints = body["endpoint"]; endpoints && !endpoints.IsNull()) {
          if (Status s = checkUntagged(endpoints, key + ".endpoint"); !s) {
            return s;
          }
          if (!endpoints.IsSequence()) {
            return fail(endpoints, key + ".endpoint", "must be a list of URLs");
          }
          for (std::size_t i = 0; i < endpoints.size(); ++i) {
            const std::string ekey = key + ".endpoint[" + std::to_string(i) + "]";
            Result<std::string> url = scalar(endpoints[i], ekey);
            if (!url) {
              return url.error();
            }
            if (url.value().empty()) {
              return fail(endpoints[i], ekey, "an endpoint must not be empty");
            }
            mirror.endpoints.push_back(url.value());
            mirror.endpoint_lines.push_back(lineOf(endpoints[i]));
          }
        }
        if (YAML::Node rewrites = body["rewrite"]; rewrites && !rewrites.IsNull()) {
          if (Status s = checkMap(rewrites, key + ".rewrite", {}); !s) {
            return s;
          }
          for (const auto& rw : rewrites) {
            const std::string pattern = rw.first.Scalar();
            Result<std::string> replace = scalar(rw.second, keyName(key + ".rewrite", pattern));
            if (!replace) {
              return replace.error();
            }
            mirror.rewrites[pattern] = replace.value();
          }
        }
      }
      registry.mirrors.emplace_back(name, std::move(mirror));
    }
    return Ok{};
  }

  Status readConfigs(const YAML::Node& configs, Registry& registry) const {
    if (Status s = checkMap(configs, "configs", {}); !s) {
      return s;
    }
    for (const auto& kv : configs) {
      const std::string name = kv.first.Scalar();
      const std::string key = keyName("configs", name);
      if (name == "*" || name == "_default") {
        // k3s releases differ on a wildcard configs entry (ignored, or merged into _default
        // while the mirror of "*" drops its TLS): there is no one answer to model.
        return fail(kv.first, key, "a wildcard configs entry is not supported; name the host");
      }
      RegistryConfig config;
      config.line = lineOf(kv.first);
      const YAML::Node& body = kv.second;
      if (!body.IsNull()) {
        if (Status s = checkMap(body, key, {"auth", "tls"}); !s) {
          return s;
        }
        if (YAML::Node auth = body["auth"]; auth && !auth.IsNull()) {
          if (Status s =
                  checkMap(auth, key + ".auth", {"username", "password", "auth", "identity_token"});
              !s) {
            return s;
          }
          for (const auto& a : auth) {
            // Values are read only to check they are strings; they are never kept.
            if (Result<std::string> v = scalar(a.second, key + ".auth." + a.first.Scalar()); !v) {
              return v.error();
            }
          }
          config.has_auth = true;
        }
        if (YAML::Node tls = body["tls"]; tls && !tls.IsNull()) {
          if (Status s = checkMap(tls, key + ".tls",
                                  {"ca_file", "cert_file", "key_file", "insecure_skip_verify"});
              !s) {
            return s;
          }
          TlsConfig t;
          for (auto [field, target] :
               {std::pair{"ca_file", &t.ca_file}, std::pair{"cert_file", &t.cert_file},
                std::pair{"key_file", &t.key_file}}) {
            if (YAML::Node v = tls[field]; v) {
              const std::string fkey = key + ".tls." + field;
              Result<std::string> s = scalar(v, fkey);
              if (!s) {
                return s.error();
              }
              for (char c : s.value()) {
                // char is signed on amd64 and unsigned on arm64: compare as unsigned.
                if (const auto u = static_cast<unsigned char>(c); u < 0x20 || u >= 0x7f) {
                  return fail(v, fkey, "only printable ASCII is supported in a file name");
                }
              }
              *target = s.value();
            }
          }
          if (YAML::Node v = tls["insecure_skip_verify"]; v) {
            Result<bool> b = boolean(v, key + ".tls.insecure_skip_verify");
            if (!b) {
              return b.error();
            }
            t.insecure_skip_verify = b.value();
          }
          config.tls = t;
        }
      }
      registry.configs[name] = config;
    }
    return Ok{};
  }

  const std::string& source_;
};

// ---- endpoint normalisation (k3s normalizeEndpointAddress, containerd's DefaultHost) ----

struct Url {
  std::string scheme;
  std::string host;  // host[:port], after docker.io -> registry-1.docker.io
  std::string path;
  std::string str() const { return scheme + "://" + host + path; }
};

struct Normalized {
  std::string
      registry;  // the host[:port] whose configs entry gives TLS (docker.io, not registry-1)
  Url url;
  bool override_path = false;
};

// containerd's docker.IsLocalhost: "localhost" or a loopback IP, the port aside.
bool isLocalhost(const std::string& hostport) {
  std::string host = hostport;
  if (!host.empty() && host.front() == '[') {
    const auto close = host.find(']');
    host = host.substr(1, close - 1);
  } else if (const auto colon = host.rfind(':'); colon != std::string::npos) {
    host = host.substr(0, colon);
  }
  if (host == "localhost") {
    return true;
  }
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) {
      return true;
    }
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

bool isHostChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

// host[:port] as Go's url.Parse keeps it, or the reason it is not one we can model.
std::optional<std::string> checkHostPort(const std::string& hp, std::string* port) {
  std::string host = hp;
  port->clear();
  if (!host.empty() && host.front() == '[') {
    const auto close = host.find(']');
    if (close == std::string::npos) {
      return "an IPv6 address needs a closing ]";
    }
    in6_addr v6{};
    if (inet_pton(AF_INET6, host.substr(1, close - 1).c_str(), &v6) != 1) {
      return "\"" + host.substr(1, close - 1) + "\" is not an IPv6 address";
    }
    std::string rest = host.substr(close + 1);
    if (rest.empty()) {
      return std::nullopt;
    }
    if (rest.front() != ':') {
      return "unexpected text after ]";
    }
    *port = rest.substr(1);
  } else {
    if (const auto colon = host.rfind(':'); colon != std::string::npos) {
      *port = host.substr(colon + 1);
      host = host.substr(0, colon);
      if (port->empty()) {
        return "the port after : is missing";
      }
    }
    if (host.empty()) {
      return "the host is missing";
    }
    if (!std::all_of(host.begin(), host.end(), isHostChar)) {
      return "\"" + host + "\" is not a host name this model supports ([A-Za-z0-9._-])";
    }
  }
  if (!port->empty() &&
      !std::all_of(port->begin(), port->end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return "port \"" + *port + "\" is not a number";
  }
  return std::nullopt;
}

// Characters Go's url.URL.String() writes back as they are in a path.
bool isPathChar(char c) { return isHostChar(c) || c == '/' || c == '~'; }

Result<Normalized> normalize(const std::string& endpoint, const std::string& mirror_addr) {
  std::string scheme;
  std::string rest = endpoint;
  if (const auto sep = endpoint.find("://"); sep != std::string::npos) {
    scheme = endpoint.substr(0, sep);
    std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (scheme != "http" && scheme != "https") {
      return configError("the scheme must be http or https, not \"" + scheme + "\"");
    }
    rest = endpoint.substr(sep + 3);
  }
  for (char c : rest) {
    if (c == '?' || c == '#' || c == '@' || c == '%') {
      return configError(std::string("a URL with '") + c +
                         "' (query, fragment, user info or escape) is not supported");
    }
  }
  const auto slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  std::string path = slash == std::string::npos ? "" : rest.substr(slash);
  std::string port;
  if (auto bad = checkHostPort(hostport, &port)) {
    return configError(*bad);
  }
  if (!std::all_of(path.begin(), path.end(), isPathChar)) {
    return configError("the path \"" + path +
                       "\" has characters this model does not support ([A-Za-z0-9._~/-])");
  }
  Normalized n;
  if (scheme.empty()) {
    // containerd's rule: localhost on an odd port is plain http, unless it is k3s's own
    // embedded registry.
    scheme = isLocalhost(hostport) && !port.empty() && port != "443" && hostport != mirror_addr
                 ? "http"
                 : "https";
  }
  n.registry = hostport;
  n.url.scheme = scheme;
  n.url.host = hostport == "docker.io" ? "registry-1.docker.io" : hostport;
  if (n.url.host == "registry-1.docker.io") {
    n.registry = "docker.io";
  }
  if (path.empty() || path == "/" || path == "/v2") {
    n.url.path = "/v2";
  } else {
    n.url.path = path;
    n.override_path = true;
  }
  return n;
}

// A key of mirrors or configs is a directory name under certs.d: host[:port] only. k3s would
// take "https://h" or "h/v2" as a URL and write certs.d/https:/h/ or certs.d/h/v2/, and ".."
// outside certs.d altogether.
Result<Normalized> normalizeKey(const std::string& key, const std::string& mirror_addr) {
  if (key.find('/') != std::string::npos) {
    return configError("a key is a registry host[:port], without scheme or path");
  }
  std::string port;
  if (auto bad = checkHostPort(key, &port)) {
    return configError(*bad);
  }
  if (key.front() == '.') {
    return configError("a registry host cannot start with '.'");
  }
  return normalize(key, mirror_addr);
}

// ---- the template's data: k3s's templates.HostConfig ----

struct Endpoint {
  std::optional<Url> url;  // nullopt: Go's nil *url.URL; for "*" a present but empty one
  bool empty_url = false;  // the "*" default: &url.URL{}, printed as server = ""
  RegistryConfig config;
  std::map<std::string, std::string> rewrites;
  bool override_path = false;

  std::string urlString() const { return empty_url || !url ? "" : url->str(); }
};

struct HostConfig {
  std::optional<Endpoint> default_endpoint;
  std::vector<Endpoint> endpoints;
};

// k3s configForHost: docker.io's TLS comes from registry-1.docker.io's entry when there is one.
RegistryConfig configForHost(const std::map<std::string, RegistryConfig>& configs,
                             const std::string& host) {
  if (host == "docker.io") {
    if (auto it = configs.find("registry-1.docker.io"); it != configs.end()) {
      return it->second;
    }
  }
  auto it = configs.find(host);
  return it == configs.end() ? RegistryConfig{} : it->second;
}

bool endpointHasConfig(const std::optional<Endpoint>& ep) {
  return ep && (ep->override_path || ep->config.has_auth || ep->config.tls.has_value() ||
                !ep->rewrites.empty());
}

// Go's strconv.Quote (printf "%q") for the printable ASCII the reader lets through.
std::string goQuote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
    }
    out += c;
  }
  return out + "\"";
}

// The TLS block the template writes at the root (indent "") and in each [host] (indent "  "):
// each line starts with its newline, and the block ends with one.
std::string tlsLines(const TlsConfig& tls, const std::string& indent) {
  std::string out;
  if (!tls.ca_file.empty()) {
    out += "\n" + indent + "ca = [" + goQuote(tls.ca_file) + "]";
  }
  if (!tls.cert_file.empty() || !tls.key_file.empty()) {
    out += "\n" + indent + "client = [[" + goQuote(tls.cert_file) + ", " + goQuote(tls.key_file) +
           "]]";
  }
  if (tls.insecure_skip_verify) {
    out += "\n" + indent + "skip_verify = true";
  }
  return out + "\n";
}

// The template, v1.29.4 layout: every blank line the Go template leaves where it leaves it.
// Pinned against k3s's own output in tests/data/certs_d/.
std::string renderRaw(const HostConfig& host, const std::string& header) {
  std::string out = header + "\n";
  if (const auto& d = host.default_endpoint) {
    if (d->url || d->empty_url) {
      out += "\nserver = \"" + d->urlString() +
             "\"\ncapabilities = [\"pull\", \"resolve\", \"push\"]\n";
    }
    if (const auto& tls = d->config.tls) {
      out += tlsLines(*tls, "");
    }
    out += "\n";
  }
  out += "\n[host]\n";
  for (const Endpoint& e : host.endpoints) {
    out += "[host.\"" + e.urlString() + "\"]\n  capabilities = [\"pull\", \"resolve\"]";
    if (e.override_path) {
      out += "\n  override_path = true";
    }
    if (const auto& tls = e.config.tls) {
      out += tlsLines(*tls, "  ");
    }
    if (!e.rewrites.empty()) {
      out += "\n  [host.\"" + e.urlString() + "\".rewrite]";
      for (const auto& [pattern, replace] : e.rewrites) {
        out += "\n    \"" + pattern + "\" = \"" + replace + "\"";
      }
      out += "\n";
    }
    out += "\n";
  }
  return out;
}

// k3s v1.32.2's trimEmpty: drop blank lines, put one before every line starting with '['.
std::string trimEmpty(const std::string& raw) {
  std::string out;
  std::size_t start = 0;
  while (start < raw.size()) {
    std::size_t end = raw.find('\n', start);
    if (end == std::string::npos) {
      end = raw.size();
    }
    const std::string line = raw.substr(start, end - start);
    start = end + 1;
    if (line.find_first_not_of(" \t\r\v\f") == std::string::npos) {
      continue;
    }
    if (line.front() == '[') {
      out += "\n";
    }
    out += line + "\n";
  }
  return out;
}

}  // namespace

Result<K3sLayout> parseK3sLayout(std::string_view text) {
  if (text == "1.29") {
    return K3sLayout::kV1_29;
  }
  if (text == "1.32") {
    return K3sLayout::kV1_32;
  }
  return configError("--k3s-layout: \"" + std::string(text) +
                     "\" is not a layout; use 1.29 (k3s v1.29.4 to v1.32.1) or 1.32 (v1.32.2 and "
                     "later)");
}

Result<std::vector<HostsToml>> renderCertsD(std::string_view registries_yaml,
                                            const std::string& source,
                                            const CertsDOptions& options) {
  Reader reader(source);
  Result<Registry> read = reader.read(registries_yaml);
  if (!read) {
    return read.error();
  }
  const Registry& registry = read.value();
  const std::string& mirror_addr = options.embedded_registry_addr;
  auto where = [&](int line, const std::string& key, const std::string& reason) {
    return configError("read " + source + ":" + std::to_string(line) + ": " + key + ": " + reason);
  };

  std::map<std::string, HostConfig> hosts;

  // A configs entry: its own directory, with its TLS at the root (k3s defaultHostConfig).
  for (const auto& [name, config] : registry.configs) {
    Result<Normalized> n = normalizeKey(name, mirror_addr);
    if (!n) {
      return where(config.line, "configs.\"" + name + "\"", n.error().message);
    }
    Endpoint d;
    d.url = n.value().url;
    d.config = config;
    hosts[name] = HostConfig{d, {}};
  }

  for (const auto& [name, mirror] : registry.mirrors) {
    const std::string key = "mirrors.\"" + name + "\"";
    const std::string dir = name == "*" ? "_default" : name;
    if (name == "_default") {
      return where(mirror.line, key, "the key collides with the directory of \"*\"; use \"*\"");
    }
    HostConfig config;
    if (auto it = hosts.find(name); it != hosts.end()) {
      config = it->second;  // the configs entry's default endpoint stays, flag or not
    } else {
      Endpoint d;
      if (name == "*") {
        d.empty_url = true;
      } else {
        Result<Normalized> n = normalizeKey(name, mirror_addr);
        if (!n) {
          return where(mirror.line, key, n.error().message);
        }
        d.url = n.value().url;
        d.config = configForHost(registry.configs, name);
      }
      if (!options.disable_default_endpoint) {
        config.default_endpoint = d;
      }
    }

    std::set<std::string> seen;
    for (std::size_t i = 0; i < mirror.endpoints.size(); ++i) {
      Result<Normalized> n = normalize(mirror.endpoints[i], mirror_addr);
      if (!n) {
        return where(mirror.endpoint_lines[i],
                     key + ".endpoint[" + std::to_string(i) + "] \"" + mirror.endpoints[i] + "\"",
                     n.error().message);
      }
      const std::string url = n.value().url.str();
      if (!seen.insert(url).second) {
        continue;  // k3s skips a duplicate endpoint (with a warning in its log)
      }
      Endpoint ep;
      ep.url = n.value().url;
      ep.config = configForHost(registry.configs, n.value().registry);
      ep.override_path = n.value().override_path;
      if (n.value().url.host != mirror_addr) {
        ep.rewrites = mirror.rewrites;
      }
      const std::string default_url =
          config.default_endpoint ? config.default_endpoint->urlString() : "";
      if (i + 1 == mirror.endpoints.size() && default_url == url) {
        config.default_endpoint = ep;  // the last endpoint is the default one: it is `server`
      } else {
        config.endpoints.push_back(ep);
      }
    }
    hosts[dir] = config;
  }

  std::vector<HostsToml> files;
  for (const auto& [dir, host] : hosts) {
    // A file that would say nothing beyond the upstream's defaults is not written.
    if (host.endpoints.empty() && !endpointHasConfig(host.default_endpoint)) {
      continue;
    }
    std::string raw = renderRaw(host, options.header);
    files.push_back({dir, options.layout == K3sLayout::kV1_32 ? trimEmpty(raw) : raw});
  }
  return files;  // std::map: already sorted by dir
}

}  // namespace k3sma
