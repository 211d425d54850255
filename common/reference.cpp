#include "common/reference.h"

#include <algorithm>
#include <string_view>

namespace k3sma {
namespace {

bool isLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool isHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

// A path component as the distribution spec's grammar has it:
// [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
bool isComponent(std::string_view s) {
  if (s.empty() || !isLowerAlnum(s.front()) || !isLowerAlnum(s.back())) {
    return false;
  }
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (isLowerAlnum(c)) {
      continue;
    }
    if (c == '.' || c == '-') {
      if (c == '.' && !isLowerAlnum(s[i + 1])) {
        return false;  // one dot between alphanumerics
      }
      continue;
    }
    if (c == '_') {
      if (s[i + 1] == '_') {
        ++i;  // "__" is one separator
      }
      if (!isLowerAlnum(s[i + 1])) {
        return false;
      }
      continue;
    }
    return false;
  }
  return true;
}

// A tag: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
bool isTag(std::string_view s) {
  auto word = [](char c) { return isLowerAlnum(c) || (c >= 'A' && c <= 'Z') || c == '_'; };
  return !s.empty() && s.size() <= 128 && word(s.front()) &&
         std::all_of(s.begin(), s.end(), [&](char c) { return word(c) || c == '.' || c == '-'; });
}

// A registry host as docker tells it from a first path component: it has a '.' or a ':', or is
// "localhost". Host names and ports themselves are checked against the mirrors keys later.
bool looksLikeHost(std::string_view s) {
  return s.find_first_of(".:") != std::string_view::npos || s == "localhost";
}

}  // namespace

std::string ImageReference::canonical() const {
  std::string text = host + "/" + repository;
  if (!tag.empty()) {
    text += ":" + tag;
  }
  if (!digest.empty()) {
    text += "@" + digest;
  }
  return text;
}

Result<ImageReference> parseImageReference(const std::string& text) {
  auto bad = [&](const std::string& why) {
    return configError("\"" + text + "\" is not a valid image reference: " + why);
  };
  if (text.empty()) {
    return bad("it is empty");
  }
  if (text.find_first_of(" \t\r\n") != std::string::npos) {
    return bad("it contains white space");
  }
  ImageReference ref;
  std::string rest = text;
  if (auto at = rest.find('@'); at != std::string::npos) {
    ref.digest = rest.substr(at + 1);
    rest.resize(at);
    const std::string_view d = ref.digest;
    if (d.rfind("sha256:", 0) != 0 || d.size() != 7 + 64 ||
        !std::all_of(d.begin() + 7, d.end(), isHex)) {
      return bad("a digest is sha256: and 64 lower-case hex digits");
    }
  }
  // The host is the first component when it looks like one; a ':' after the last '/' is a tag.
  const auto slash = rest.find('/');
  if (slash != std::string::npos && looksLikeHost(std::string_view(rest).substr(0, slash))) {
    ref.host = rest.substr(0, slash);
    rest = rest.substr(slash + 1);
  } else {
    ref.host = "docker.io";
  }
  if (ref.host == "index.docker.io" || ref.host == "registry-1.docker.io") {
    ref.host = "docker.io";  // the same registry by its other names, as docker normalises them
  }
  if (ref.host.find_first_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") != std::string::npos) {
    return bad("write the registry host in lower case");
  }
  const auto last_slash = rest.rfind('/');
  if (auto colon = rest.rfind(':');
      colon != std::string::npos && (last_slash == std::string::npos || colon > last_slash)) {
    ref.tag = rest.substr(colon + 1);
    rest.resize(colon);
    if (!isTag(ref.tag)) {
      return bad("the tag \"" + ref.tag + "\" is not [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}");
    }
  }
  if (rest.empty()) {
    return bad("the repository name is missing");
  }
  size_t start = 0;
  while (start <= rest.size()) {
    auto end = rest.find('/', start);
    if (end == std::string::npos) {
      end = rest.size();
    }
    if (!isComponent(std::string_view(rest).substr(start, end - start))) {
      return bad("\"" + rest.substr(start, end - start) +
                 "\" is not a repository path component (lower-case letters, digits, and . _ - "
                 "between them)");
    }
    start = end + 1;
  }
  // Docker Hub's official images: "nginx" is "library/nginx" there, and only there.
  if (ref.host == "docker.io" && rest.find('/') == std::string::npos) {
    rest = "library/" + rest;
  }
  ref.repository = rest;
  if (ref.tag.empty() && ref.digest.empty()) {
    ref.tag = "latest";
  }
  return ref;
}

}  // namespace k3sma
