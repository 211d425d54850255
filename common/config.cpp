#include "common/config.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <set>
#include <string_view>

#include "common/digest.h"
#include "common/fs.h"
#include "common/yaml_emit.h"

namespace k3sma {
namespace {

// Hand-written matchers rather than std::regex: compiling three std::regex objects at start-up
// was half of the instructions of an apply that changes nothing.

bool isLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool isAlnum(char c) { return isLowerAlnum(c) || (c >= 'A' && c <= 'Z'); }

// Docker distribution's grammar for one repository path component, which Harbor project names
// follow: [a-z0-9]+ ( ( [._] | __ | -+ ) [a-z0-9]+ )*. A project is one component.
bool isPathComponent(std::string_view s) {
  size_t i = 0;
  auto alnum_run = [&] {
    const size_t start = i;
    while (i < s.size() && isLowerAlnum(s[i])) {
      ++i;
    }
    return i > start;
  };
  if (!alnum_run()) {
    return false;
  }
  while (i < s.size()) {
    if (s[i] == '.') {
      ++i;
    } else if (s[i] == '_') {
      i += (i + 1 < s.size() && s[i + 1] == '_') ? 2u : 1u;
    } else if (s[i] == '-') {
      while (i < s.size() && s[i] == '-') {
        ++i;
      }
    } else {
      return false;
    }
    if (!alnum_run()) {
      return false;
    }
  }
  return true;
}

// DNS's limits (RFC 1035): 63 bytes a label, 253 a name.
constexpr size_t kMaxDnsLabel = 63;
constexpr size_t kMaxDnsName = 253;
// The cache's host[:port] becomes a file name: the CA at <ca dir>/<host>.crt, written through
// ".<host>.crt.tmp-<pid>" (pid up to 7 digits), which must fit NAME_MAX (255). A longer host
// passes DNS's limits but would fail in apply with "File name too long".
constexpr size_t kMaxHostInFileName = 255 - std::char_traits<char>::length("..crt.tmp-4194304");

// A DNS name (labels of letters, digits and inner hyphens, joined by dots) or an IPv4 address.
bool isHostname(std::string_view s) {
  if (s.empty() || s.size() > kMaxDnsName) {
    return false;
  }
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find('.', start);
    if (end == std::string_view::npos) {
      end = s.size();
    }
    const auto label = s.substr(start, end - start);
    if (label.empty() || label.size() > kMaxDnsLabel || label.front() == '-' ||
        label.back() == '-' ||
        !std::all_of(label.begin(), label.end(), [](char c) { return isAlnum(c) || c == '-'; })) {
      return false;
    }
    start = end + 1;
  }
  return true;
}

// A URL as it may be shown: userinfo (user:password@) and the query and fragment (where tokens
// go) replaced by "***". Structural: the parts are found by the URL's syntax, not by looking
// for a known password.
std::string maskUrl(const std::string& url) {
  const auto scheme_end = url.find("://");
  const size_t authority = scheme_end == std::string::npos ? 0 : scheme_end + 3;
  std::string out = url.substr(0, authority);
  std::string rest = url.substr(authority);
  const auto query = rest.find_first_of("?#");
  std::string tail;
  if (query != std::string::npos) {
    tail = std::string(1, rest[query]) + "***";
    rest.resize(query);
  }
  const auto path = rest.find('/');
  std::string host = rest.substr(0, path);
  const std::string after_host = path == std::string::npos ? "" : rest.substr(path);
  if (const auto at = host.rfind('@'); at != std::string::npos) {
    host = "***@" + host.substr(at + 1);
  }
  // An '@' further on (in the path) may still be userinfo a reader mistook: mask up to it.
  std::string shown_path = after_host;
  if (const auto at = shown_path.rfind('@'); at != std::string::npos) {
    shown_path = "/***@" + shown_path.substr(at + 1);
  }
  return out + host + shown_path + tail;
}

// The text with the userinfo of every "scheme://userinfo@host" in it replaced by "***". The
// authority runs from "://" to the first '/', '?', '#', blank or quote; an '@' in it ends
// userinfo. For messages that echo the file's text, whatever part of it they echo.
std::string maskUrlCredentials(std::string_view text) {
  std::string out;
  size_t copied = 0;
  for (size_t scheme = text.find("://"); scheme != std::string_view::npos;
       scheme = text.find("://", scheme + 3)) {
    const size_t start = scheme + 3;
    const size_t end = std::min(text.find_first_of("/?# \t\r\n\"'", start), text.size());
    const size_t at = end > start ? text.rfind('@', end - 1) : std::string_view::npos;
    if (start < copied || at == std::string_view::npos || at < start) {
      continue;
    }
    out.append(text, copied, start - copied);
    out += "***";
    copied = at;  // the '@' and the host stay
  }
  out.append(text, copied);
  return out;
}

// The characters systemd allows in a unit name.
bool isUnitName(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return isAlnum(c) || c == ':' || c == '_' || c == '.' || c == '\\' || c == '@' || c == '-';
  });
}

int lineOf(const YAML::Node& node) { return node.Mark().line + 1; }

// Walks one file's YAML tree, applying what it finds to a Config and recording where.
class FileParser {
 public:
  FileParser(const std::string& file, Config& config,
             std::map<std::string, std::string>& first_seen_mirror)
      : file_(file), config_(config), mirror_origin_(first_seen_mirror) {}

  Status parse(const std::string& text) {
    // No anchors, aliases, tags, merge keys, duplicate keys, deep nesting or control bytes in
    // the config either (yaml_emit.h): none is needed to write it, and refusing them keeps
    // parsing bounded by the file's size.
    // A second document is refused here, before yaml-cpp's LoadAll, which never returns on
    // some input (",").
    if (auto problem = findUnsafeYaml(text, {.keys = false, .syntax = false})) {
      if (problem->second_document) {
        return configError(file_ + ":" + std::to_string(problem->line) +
                           ": more than one YAML document; put one config in each file");
      }
      return configError(file_ + ":" + std::to_string(problem->line) +
                         ": invalid YAML: " + problem->reason);
    }
    std::vector<YAML::Node> docs;
    try {
      docs = YAML::LoadAll(text);
    } catch (const YAML::Exception& e) {
      return configError(file_ + ":" + std::to_string(e.mark.line + 1) +
                         ": invalid YAML: " + e.msg);
    }
    if (docs.size() > 1) {
      return configError(file_ + ":" + std::to_string(lineOf(docs[1])) +
                         ": more than one YAML document; put one config in each file");
    }
    if (docs.empty() || docs[0].IsNull()) {
      return Ok{};  // an empty file (or only comments) sets nothing
    }
    return document(docs[0]);
  }

  // The dotted name of every key the parser accepts (knownConfigKeys), read from the same
  // handler tables that parse documents: each section lists its table's keys and runs their
  // handlers on null nodes, so a nested section (registry.auth) lists its own keys in turn.
  static std::vector<std::string> keys() {
    const std::string file = "(keys)";
    Config scratch;
    std::map<std::string, std::string> no_mirrors;
    FileParser parser(file, scratch, no_mirrors);
    std::vector<std::string> listed;
    parser.listed_keys_ = &listed;
    (void)parser.document(YAML::Node());
    std::sort(listed.begin(), listed.end());
    return listed;
  }

 private:
  // A handler is given its key's full dotted name ("k3s.restart_timeout"), which section()
  // computes from where the key sits: errors and origins name the key from there, so no handler
  // spells its own key and a new key is one line in its section's table.
  using Handler = std::function<Status(const std::string& key, const YAML::Node& key_node,
                                       const YAML::Node& value)>;
  // A reader turns a value into a T, or an error naming the key and line.
  template <class T>
  using Reader = Result<T> (FileParser::*)(const std::string& key, const YAML::Node& k,
                                           const YAML::Node& v);

  Status document(const YAML::Node& root) {
    return section(root, "", 0,
                   {
                       {"registry", method(&FileParser::registry)},
                       {"mirrors", method(&FileParser::mirrors)},
                       {"mode", setChoice(config_.mode, {{"path", MirrorMode::kPath},
                                                         {"rewrite", MirrorMode::kRewrite}})},
                       {"k3s", method(&FileParser::k3s)},
                       {"daemon", method(&FileParser::daemon)},
                       {"verify", method(&FileParser::verify)},
                   });
  }

  Error at(int line, const std::string& key, const std::string& reason) const {
    return configError(file_ + ":" + std::to_string(line) + ": " + key + ": " + reason);
  }
  // Values that are null ("key:" with nothing after it) carry no useful mark; use the key's.
  Error at(const YAML::Node& key_node, const YAML::Node& value, const std::string& key,
           const std::string& reason) const {
    return at(value.IsNull() ? lineOf(key_node) : lineOf(value), key, reason);
  }

  void record(const std::string& key, const YAML::Node& key_node) {
    config_.origins[key] = file_ + ":" + std::to_string(lineOf(key_node));
  }

  static std::string join(const std::string& prefix, const std::string& key) {
    return prefix.empty() ? key : prefix + "." + key;
  }

  // A mapping whose keys must all be known. A null section ("k3s:" with everything commented
  // out) counts as empty.
  Status section(const YAML::Node& node, const std::string& name, int name_line,
                 const std::map<std::string, Handler>& handlers) {
    if (listed_keys_ != nullptr) {
      // Listing keys (keys()): a section is not a key itself, its members are.
      std::erase(*listed_keys_, name);
      for (const auto& [key, handler] : handlers) {
        listed_keys_->push_back(join(name, key));
        (void)handler(join(name, key), YAML::Node(), YAML::Node());
      }
      return Ok{};
    }
    if (node.IsNull()) {
      return Ok{};
    }
    if (!node.IsMap()) {
      const std::string what = name.empty() ? "the top level" : name;
      return at(name.empty() ? lineOf(node) : name_line, what.empty() ? "config" : what,
                "must be a mapping of keys to values");
    }
    std::set<std::string> seen;
    for (const auto& item : node) {
      const YAML::Node& k = item.first;
      const YAML::Node& v = item.second;
      if (!k.IsScalar()) {
        return at(lineOf(k), name.empty() ? "config" : name, "keys must be plain names");
      }
      const std::string key = k.Scalar();
      const std::string full = join(name, key);
      if (!seen.insert(key).second) {
        return at(lineOf(k), full, "duplicate key");
      }
      auto handler = handlers.find(key);
      if (handler == handlers.end()) {
        std::string known;
        for (const auto& [known_key, unused] : handlers) {
          known += (known.empty() ? "" : ", ") + known_key;
        }
        std::string hint;
        if (full == "registry.auth.password") {
          hint = "; put the password in a root-only file and name it with password_file";
        }
        return at(lineOf(k), full, "unknown key (known keys here: " + known + ")" + hint);
      }
      if (auto handled = handler->second(full, k, v); !handled) {
        return handled;
      }
    }
    return Ok{};
  }

  Result<std::string> scalar(const std::string& key, const YAML::Node& k, const YAML::Node& v) {
    if (v.IsNull()) {
      return at(k, v, key, "has no value");
    }
    if (!v.IsScalar()) {
      return at(k, v, key,
                std::string("must be a single value, not a ") + (v.IsMap() ? "mapping" : "list"));
    }
    record(key, k);
    return v.Scalar();
  }

  // Strict booleans: YAML 1.1's yes/no/on/off are exactly the kind of surprise to refuse.
  Result<bool> boolean(const std::string& key, const YAML::Node& k, const YAML::Node& v) {
    auto s = scalar(key, k, v);
    if (!s) {
      return s.error();
    }
    if (s.value() == "true") {
      return true;
    }
    if (s.value() == "false") {
      return false;
    }
    return at(k, v, key, "must be true or false, got \"" + s.value() + "\"");
  }

  Result<Duration> duration(const std::string& key, const YAML::Node& k, const YAML::Node& v,
                            bool allow_zero) {
    auto s = scalar(key, k, v);
    if (!s) {
      return s.error();
    }
    auto d = parseDuration(s.value());
    if (!d) {
      return at(k, v, key,
                "\"" + s.value() + "\" is not a duration; write e.g. 500ms, 2s, 5m, 1h or 1m30s");
    }
    if (!allow_zero && d->count() == 0) {
      return at(k, v, key, "must be longer than 0");
    }
    return *d;
  }
  Result<Duration> anyDuration(const std::string& key, const YAML::Node& k, const YAML::Node& v) {
    return duration(key, k, v, true);
  }
  Result<Duration> positiveDuration(const std::string& key, const YAML::Node& k,
                                    const YAML::Node& v) {
    return duration(key, k, v, false);
  }

  template <class E>
  Result<E> choice(const std::string& key, const YAML::Node& k, const YAML::Node& v,
                   const std::vector<std::pair<std::string, E>>& choices) {
    auto s = scalar(key, k, v);
    if (!s) {
      return s.error();
    }
    std::string names;
    for (const auto& [name, value] : choices) {
      if (name == s.value()) {
        return value;
      }
      names += (names.empty() ? "" : " or ") + name;
    }
    return at(k, v, key, "must be " + names + ", got \"" + s.value() + "\"");
  }

  Result<std::string> absolutePath(const std::string& key, const YAML::Node& k,
                                   const YAML::Node& v) {
    auto s = scalar(key, k, v);
    if (!s) {
      return s.error();
    }
    if (s.value().empty() || s.value().front() != '/') {
      return at(k, v, key, "must be an absolute path, got \"" + s.value() + "\"");
    }
    return s;
  }

  // The handlers the tables list: one per kind of value, each storing what its reader returns
  // in a field of config_ (which outlives every handler).
  template <class T, class Read>
  static Handler store(T& field, Read read) {
    return
        [&field, read](const std::string& key, const YAML::Node& k, const YAML::Node& v) -> Status {
          auto value = read(key, k, v);
          if (!value) {
            return value.error();
          }
          field = std::move(value.value());
          return Ok{};
        };
  }
  template <class T>
  Handler set(T& field, Reader<T> read) {
    return store(field, [this, read](const std::string& key, const YAML::Node& k,
                                     const YAML::Node& v) { return (this->*read)(key, k, v); });
  }
  template <class E>
  Handler setChoice(E& field, std::vector<std::pair<std::string, E>> choices) {
    return store(field, [this, choices = std::move(choices)](
                            const std::string& key, const YAML::Node& k, const YAML::Node& v) {
      return choice(key, k, v, choices);
    });
  }
  // A single value with a check of its own: check returns what to store (the value, or it
  // spelled the long way), or an error whose message is the reason, placed at the key's line.
  using Check = std::function<Result<std::string>(const std::string& value)>;
  Handler setText(std::string& field, Check check) {
    return store(field,
                 [this, check = std::move(check)](const std::string& key, const YAML::Node& k,
                                                  const YAML::Node& v) -> Result<std::string> {
                   auto s = scalar(key, k, v);
                   if (!s) {
                     return s.error();
                   }
                   auto checked = check(s.value());
                   if (!checked) {
                     return at(k, v, key, checked.error().message);
                   }
                   return checked;
                 });
  }
  // A section, or a value a function of its own parses.
  using Method = Status (FileParser::*)(const std::string& key, const YAML::Node& k,
                                        const YAML::Node& v);
  Handler method(Method m) {
    return [this, m](const std::string& key, const YAML::Node& k, const YAML::Node& v) {
      return (this->*m)(key, k, v);
    };
  }

  Status registry(const std::string& key, const YAML::Node& name, const YAML::Node& node) {
    auto& r = config_.registry;
    return section(node, key, lineOf(name),
                   {
                       {"url", method(&FileParser::url)},
                       {"ca_file", set(r.ca_file, &FileParser::absolutePath)},
                       {"insecure_skip_verify", set(r.insecure_skip_verify, &FileParser::boolean)},
                       {"auth", method(&FileParser::auth)},
                   });
  }

  Status auth(const std::string& key, const YAML::Node& name, const YAML::Node& node) {
    auto& r = config_.registry;
    if (!r.auth) {
      r.auth.emplace();
    }
    record(key, name);
    return section(node, key, lineOf(name),
                   {
                       {"username", setText(r.auth->username,
                                            [](const std::string& s) -> Result<std::string> {
                                              if (s.empty()) {
                                                return configError("must not be empty");
                                              }
                                              return s;
                                            })},
                       {"password_file", set(r.auth->password_file, &FileParser::absolutePath)},
                   });
  }

  Status url(const std::string& key, const YAML::Node& k, const YAML::Node& v) {
    auto s = scalar(key, k, v);
    if (!s) {
      return s.error();
    }
    return parseUrl(key, k, v, s.value());
  }

  Status parseUrl(const std::string& key, const YAML::Node& k, const YAML::Node& v,
                  const std::string& url) {
    auto& r = config_.registry;
    std::string rest;
    // Credentials are never echoed: not in this message, nor in any below (the message goes to
    // stderr, the JSON error and the daemon's world-readable status.json).
    if (url.find('@') != std::string::npos) {
      return at(k, v, key,
                "must not contain credentials (user:password@); use registry.auth, got \"" +
                    maskUrl(url) + "\"");
    }
    if (url.rfind("https://", 0) == 0) {
      r.scheme = "https";
      rest = url.substr(8);
    } else if (url.rfind("http://", 0) == 0) {
      r.scheme = "http";
      rest = url.substr(7);
    } else {
      return at(k, v, key, "must start with https:// or http://, got \"" + maskUrl(url) + "\"");
    }
    if (!rest.empty() && rest.back() == '/') {
      rest.pop_back();
    }
    if (rest.find_first_of("/?#") != std::string::npos) {
      return at(k, v, key,
                "must be scheme://host[:port] without a path; the proxy-cache projects go under "
                "mirrors, got \"" +
                    maskUrl(url) + "\"");
    }
    if (rest.find('@') != std::string::npos) {
      return at(k, v, key, "must not contain credentials; use registry.auth");
    }
    auto parsed = splitHostPort(rest);
    if (!parsed) {
      return at(k, v, key, parsed.error().message + ", got \"" + maskUrl(url) + "\"");
    }
    if (rest.size() > kMaxHostInFileName) {
      return at(k, v, key,
                "the host[:port] is " + std::to_string(rest.size()) + " bytes; at most " +
                    std::to_string(kMaxHostInFileName) +
                    " fit the file name of its CA (<host>.crt, written atomically)");
    }
    r.host = rest;
    r.hostname = parsed.value().first;
    r.port = parsed.value().second != 0 ? parsed.value().second
                                        : static_cast<uint16_t>(r.scheme == "https" ? 443 : 80);
    r.url = r.scheme + "://" + rest;
    return Ok{};
  }

 public:
  // "host", "host:port", "[v6]" or "[v6]:port" -> (hostname, port or 0). Used for the cache URL
  // and for mirror keys.
  static Result<std::pair<std::string, uint16_t>> splitHostPort(const std::string& text) {
    std::string host = text;
    std::optional<std::string> port;  // set when a ':' introduces one, even an empty one
    if (!text.empty() && text.front() == '[') {
      auto close = text.find(']');
      if (close == std::string::npos) {
        return configError("an IPv6 address needs a closing ]");
      }
      host = text.substr(1, close - 1);
      std::string after = text.substr(close + 1);
      if (!after.empty()) {
        if (after.front() != ':') {
          return configError("unexpected text after ]");
        }
        port = after.substr(1);
      }
      in6_addr v6{};
      if (host.empty() || ::inet_pton(AF_INET6, host.c_str(), &v6) != 1) {
        return configError("\"" + host + "\" is not an IPv6 address");
      }
    } else {
      auto colon = text.find(':');
      if (colon != std::string::npos) {
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
      }
      if (host.empty()) {
        return configError("the host is missing");
      }
      if (!isHostname(host)) {
        return configError("\"" + host + "\" is not a valid host name");
      }
      // STRICT HERE: a name of digits and dots is an IPv4 address or nothing. "https://1.2.3"
      // once skipped the certificate's name check (an unchecked X509_VERIFY_PARAM_set1_ip_asc);
      // the registry client (agent/registry.cpp) also leaves host verification on in libcurl.
      in_addr v4{};
      if (host.find_first_not_of("0123456789.") == std::string::npos &&
          ::inet_pton(AF_INET, host.c_str(), &v4) != 1) {
        return configError("\"" + host + "\" is neither a host name nor an IPv4 address");
      }
    }
    if (!port) {
      return std::pair{host, uint16_t{0}};
    }
    if (port->empty()) {
      return configError("the port after : is missing");
    }
    // Digits only and no leading zero: "host:0080" would be a second spelling of one host,
    // and the host[:port] text is the configs key k3s looks TLS settings up by.
    if (port->size() > 5 || port->find_first_not_of("0123456789") != std::string::npos ||
        port->front() == '0' || std::stoi(*port) > 65535) {
      return configError("port \"" + *port + "\" is not a number from 1 to 65535");
    }
    return std::pair{host, static_cast<uint16_t>(std::stoi(*port))};
  }

 private:
  Status mirrors(const std::string& section_key, const YAML::Node& name, const YAML::Node& node) {
    if (node.IsNull()) {
      return Ok{};
    }
    if (!node.IsMap()) {
      return at(lineOf(name), section_key,
                "must be a mapping of upstream registry to proxy-cache project, e.g. "
                "\"docker.io: dockerhub-proxy\"");
    }
    std::set<std::string> seen;
    for (const auto& item : node) {
      const YAML::Node& k = item.first;
      const YAML::Node& v = item.second;
      if (!k.IsScalar()) {
        return at(lineOf(k), section_key, "keys must be registry host names");
      }
      const std::string upstream = k.Scalar();
      const std::string key = section_key + "." + upstream;
      if (!seen.insert(upstream).second) {
        return at(lineOf(k), key, "duplicate key");
      }
      if (upstream.find("://") != std::string::npos) {
        return at(lineOf(k), key,
                  "an upstream is a registry host such as docker.io, without a scheme");
      }
      if (upstream.find('/') != std::string::npos) {
        return at(lineOf(k), key,
                  "an upstream is a registry host such as docker.io, without a path");
      }
      if (upstream == "*") {
        return at(lineOf(k), key,
                  "the wildcard mirror is not supported: one proxy-cache project proxies one "
                  "upstream, so name each upstream");
      }
      if (auto hp = splitHostPort(upstream); !hp) {
        return at(lineOf(k), key, hp.error().message);
      }
      if (std::any_of(upstream.begin(), upstream.end(),
                      [](char c) { return c >= 'A' && c <= 'Z'; })) {
        return at(lineOf(k), key, "write registry hosts in lower case, as image names do");
      }
      auto project = scalar(key, k, v);
      if (!project) {
        return project.error();
      }
      if (!isPathComponent(project.value())) {
        return at(k, v, key,
                  "project \"" + project.value() +
                      "\" is not a valid repository path component (lower-case letters, digits "
                      "and single . _ or - between them, e.g. dockerhub-proxy)");
      }
      const std::string here = file_ + ":" + std::to_string(lineOf(k));
      if (auto first = mirror_origin_.find(upstream); first != mirror_origin_.end()) {
        return at(lineOf(k), key,
                  "already set at " + first->second + "; each upstream may be mirrored once");
      }
      mirror_origin_[upstream] = here;
      config_.mirrors[upstream] = project.value();
    }
    return Ok{};
  }

  Status k3s(const std::string& key, const YAML::Node& name, const YAML::Node& node) {
    auto& s = config_.k3s;
    return section(
        node, key, lineOf(name),
        {
            {"distribution",
             setChoice(s.distribution, {{std::string(kK3sFacts.name), Distribution::kK3s},
                                        {std::string(kRke2Facts.name), Distribution::kRke2}})},
            {"unit", setText(s.unit, checkUnit)},
            {"restart", setChoice(s.restart, {{"on-change", RestartPolicy::kOnChange},
                                              {"never", RestartPolicy::kNever}})},
            {"reload", setChoice(s.reload, {{"auto", ReloadPolicy::kAuto},
                                            {"restart", ReloadPolicy::kRestart}})},
            {"restart_timeout", set(s.restart_timeout, &FileParser::positiveDuration)},
        });
  }

  static Result<std::string> checkUnit(const std::string& value) {
    std::string unit = value;
    if (unit == "auto") {
      return unit;
    }
    if (!isUnitName(unit)) {
      return configError("\"" + unit + "\" is not a systemd unit name");
    }
    // systemctl accepts "k3s" for "k3s.service"; so do we, but say it the long way.
    if (unit.find('.') == std::string::npos) {
      unit += ".service";
    } else if (unit.size() < 8 || unit.substr(unit.size() - 8) != ".service") {
      return configError("must be a .service unit, got \"" + unit + "\"");
    }
    return unit;
  }

  Status daemon(const std::string& key, const YAML::Node& name, const YAML::Node& node) {
    auto& d = config_.daemon;
    return section(node, key, lineOf(name),
                   {
                       {"debounce", set(d.debounce, &FileParser::anyDuration)},
                       {"splay", set(d.splay, &FileParser::anyDuration)},
                       {"probe_interval", set(d.probe_interval, &FileParser::anyDuration)},
                       {"drift", setChoice(d.drift, {{"correct", DriftPolicy::kCorrect},
                                                     {"report", DriftPolicy::kReport}})},
                       {"metrics_textfile", setText(d.metrics_textfile, checkMetricsTextfile)},
                   });
  }

  static Result<std::string> checkMetricsTextfile(const std::string& path) {
    if (path.empty()) {
      return path;  // no textfile
    }
    if (path.front() != '/') {
      return configError("must be an absolute path or \"\"");
    }
    if (path.size() < 5 || path.substr(path.size() - 5) != ".prom") {
      return configError("must end in .prom, or node_exporter's textfile collector ignores it");
    }
    return path;
  }

  // verify: images to resolve through the cache, and whether apply waits for them. Whether an
  // image's host is mirrored is checked once all files are merged (checkComplete).
  Status verify(const std::string& key, const YAML::Node& name, const YAML::Node& node) {
    auto& verify = config_.verify;
    return section(
        node, key, lineOf(name),
        {
            {"images", method(&FileParser::images)},
            {"preflight", setChoice(verify.preflight, {{"none", Preflight::kNone},
                                                       {"warn", Preflight::kWarn},
                                                       {"require", Preflight::kRequire}})},
        });
  }

  Status images(const std::string& key, const YAML::Node& k, const YAML::Node& v) {
    auto& verify = config_.verify;
    if (!v.IsNull() && !v.IsSequence()) {
      return at(k, v, key,
                "must be a list of image references, e.g. [docker.io/library/busybox:1.36]");
    }
    record(key, k);
    verify.images.clear();
    for (const auto& item : v) {
      if (!item.IsScalar()) {
        return at(lineOf(item), key, "each entry must be one reference");
      }
      auto ref = parseImageReference(item.Scalar());
      if (!ref) {
        return at(lineOf(item), key, ref.error().message);
      }
      verify.images.push_back(
          {item.Scalar(), std::move(ref.value()), file_ + ":" + std::to_string(lineOf(item))});
    }
    return Ok{};
  }

  const std::string& file_;
  Config& config_;
  std::map<std::string, std::string>& mirror_origin_;
  std::vector<std::string>* listed_keys_ = nullptr;  // set only by keys()
};

// Checks that need the whole merged config.
Status checkComplete(const Config& c, const std::vector<ConfigSource>& sources) {
  const std::string where = sources.empty() ? "config" : sources.front().path;
  if (c.registry.url.empty() && c.mirrors.empty()) {
    // The package's example config (all comments), or daemon settings only: not a mistake,
    // just not set up yet. The daemon idles on it and says so.
    return Error{where +
                     ": not configured yet: set registry.url and mirrors (the file shows how; "
                     "man k3s-mirror-agent.yaml)",
                 ErrorKind::kUnconfigured};
  }
  auto missing = [&](const std::string& key, const std::string& example) {
    return configError(where + ": " + key + ": is not set; add e.g. \"" + example + "\"");
  };
  if (c.registry.url.empty()) {
    return missing("registry.url", "registry: {url: https://harbor.home.lab}");
  }
  if (c.mirrors.empty()) {
    return missing("mirrors", "mirrors: {docker.io: dockerhub-proxy}");
  }
  if (c.registry.auth) {
    const std::string at = c.originOf("registry.auth");
    if (c.registry.auth->username.empty()) {
      return configError(at + ": registry.auth.username: is not set; auth needs a username");
    }
    if (c.registry.auth->password_file.empty()) {
      return configError(at +
                         ": registry.auth.password_file: is not set; auth needs a file "
                         "holding the password");
    }
  }
  if (c.registry.scheme == "http" && !c.registry.ca_file.empty()) {
    return configError(c.originOf("registry.ca_file") +
                       ": registry.ca_file: the cache URL is http://, so no TLS is used and a CA "
                       "has no effect; use https:// or remove ca_file");
  }
  for (const auto& image : c.verify.images) {
    // The image is resolved through the endpoint its upstream is mirrored to; an image of an
    // upstream that is not mirrored would test the upstream, not the cache.
    if (c.mirrors.count(image.reference.host) == 0) {
      return configError(image.origin + ": verify.images: \"" + image.text + "\" is from " +
                         image.reference.host +
                         ", which is not mirrored; add it under mirrors or pick an image of a "
                         "mirrored upstream");
    }
  }
  if (c.registry.scheme == "http" && c.registry.insecure_skip_verify) {
    return configError(c.originOf("registry.insecure_skip_verify") +
                       ": registry.insecure_skip_verify: the cache URL is http://, so there is "
                       "no TLS to skip verifying");
  }
  return Ok{};
}

}  // namespace

std::string Config::originOf(const std::string& key) const {
  auto it = origins.find(key);
  return it == origins.end() ? "config" : it->second;
}

std::vector<std::string> knownConfigKeys() { return FileParser::keys(); }

Result<Config> parseConfig(const std::vector<ConfigSource>& sources) {
  Config config;
  std::map<std::string, std::string> mirror_origin;
  // An error may echo the files: a key or a value as written, which may hold a URL with
  // credentials (an upstream spelled "https://robot:pw@host", a project that runs into one).
  // Masked here, once, whichever message echoed it.
  const auto masked = [](Error error) {
    error.message = maskUrlCredentials(error.message);
    return error;
  };
  for (const auto& source : sources) {
    FileParser parser(source.path, config, mirror_origin);
    if (auto parsed = parser.parse(source.text); !parsed) {
      return masked(parsed.error());
    }
  }
  if (auto complete = checkComplete(config, sources); !complete) {
    return masked(complete.error());
  }
  // Names without directories, so nodes (and a --root copy) with the same files hash the same.
  std::string all;
  for (const auto& source : sources) {
    all += std::filesystem::path(source.path).filename().string();
    all += '\0';
    all += source.text;
    all += '\0';
  }
  config.sha256 = sha256Hex(all);
  return config;
}

namespace {

// The password file: a regular file, root's, not readable by group or others. Its content,
// without the trailing newline editors add, is the password.
Result<std::string> readPasswordFile(const Config& config, const Root& root) {
  const std::string key = "registry.auth.password_file";
  const std::string where = config.originOf(key) + ": " + key + ": ";
  const std::string path = root.path(config.registry.auth->password_file);
  auto info = statFile(path);
  if (!info) {
    return configError(where + info.error().message);
  }
  if (!info.value().regular) {
    return configError(where + path + " is not a regular file");
  }
  if (info.value().owner != 0) {
    return configError(where + path + " must be owned by root (chown root: " + path + ")");
  }
  if ((info.value().mode & 077) != 0) {
    return configError(
        fmt::format("{}{} is readable by group or others (mode {:04o}); run chmod 600 {}", where,
                    path, info.value().mode, path));
  }
  auto content = readFile(path, kMaxPasswordFileSize);
  if (!content) {
    return configError(where + content.error().message);
  }
  if (!content.value()) {
    return configError(where + path + " does not exist");
  }
  std::string password = std::move(*content.value());
  while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) {
    password.pop_back();
  }
  if (password.empty()) {
    return configError(where + path + " is empty");
  }
  if (password.find('\n') != std::string::npos) {
    return configError(where + path + " has more than one line; it must hold only the password");
  }
  // Written into registries.yaml as a YAML string: a NUL, a control character or a byte that is
  // not UTF-8 would be rewritten on the way (to U+FFFD), giving k3s another password.
  if (const size_t bad = firstDisallowedByte(password); bad != std::string::npos) {
    return configError(where + path + " holds a control character or a byte that is not UTF-8 " +
                       "(at byte " + std::to_string(bad + 1) + "); a password must be UTF-8 text");
  }
  return password;
}

}  // namespace

Result<Config> loadConfig(const std::string& config_path, const Root& root) {
  std::vector<ConfigSource> sources;
  auto main_text = readFile(config_path, kMaxConfigFileSize);
  if (!main_text) {
    return configError("read config " + config_path + ": " + main_text.error().message);
  }
  if (!main_text.value()) {
    return configError("read config " + config_path +
                       ": no such file; write one (see the README's config reference)");
  }
  sources.push_back({config_path, std::move(*main_text.value())});

  const auto dropin_dir = std::filesystem::path(config_path).parent_path() / "config.d";
  std::vector<std::string> dropins;
  auto names = listDir(dropin_dir.string());
  if (!names) {
    return configError("read config directory: " + names.error().message);
  }
  for (const auto& name : names.value().value_or(std::vector<std::string>{})) {
    const std::filesystem::path p = dropin_dir / name;
    if (p.extension() == ".yaml" && name.front() != '.') {
      dropins.push_back(p.string());
    }
  }
  std::sort(dropins.begin(), dropins.end());
  for (const auto& path : dropins) {
    auto text = readFile(path, kMaxConfigFileSize);
    if (!text) {
      return configError("read config " + path + ": " + text.error().message);
    }
    if (text.value()) {  // removed between listing and reading: it no longer counts
      sources.push_back({path, std::move(*text.value())});
    }
  }

  auto config = parseConfig(sources);
  if (!config) {
    return config;
  }
  if (config.value().registry.auth) {
    auto password = readPasswordFile(config.value(), root);
    if (!password) {
      return password.error();
    }
    config.value().registry.auth->password = std::move(password.value());
  }
  return config;
}

}  // namespace k3sma
