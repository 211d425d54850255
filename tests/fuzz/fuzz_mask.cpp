// Fuzzes secret masking (maskSecrets), what `diff` shows of registries.yaml. The input's first
// line is the config's password, the rest is the text to mask (a registries.yaml, usually).
//
// maskSecrets is being reworked to find secrets by parsing, without the password argument; the
// harness calls whichever of maskSecrets(text, password) and maskSecrets(text) common/ declares.
//
// Properties, beyond "no crash":
// - masking is idempotent (masking a masked text changes nothing);
// - every value of a password, auth or identity_token key that the text holds, at any depth and
//   in any YAML form (block scalars, continuation lines, flow mappings, "? password" keys), is
//   gone: each of its words (4 bytes or more) occurs fewer times after masking than before; so is
//   the userinfo of every URL scalar ("https://user:password@mirror");
// - a text without any secret key is not mangled: with the password argument, by a short
//   password (1 or 2 bytes: "o" must not turn docker.io into d********cker.i********); without
//   it, a YAML text without secret keys and without URLs with userinfo comes out as it went in.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "common/registries.h"
#include "common/yaml_emit.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

std::vector<std::string> words(const std::string& value) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < value.size()) {
    const size_t end = value.find_first_of(" \t\r\n", start);
    const size_t stop = end == std::string::npos ? value.size() : end;
    if (stop > start) {
      out.push_back(value.substr(start, stop - start));
    }
    start = stop + 1;
  }
  return out;
}

// maskSecrets(text, password) or maskSecrets(text), whichever exists.
const auto kMask = [](const auto&... args) -> decltype(k3sma::maskSecrets(args...)) {
  return k3sma::maskSecrets(args...);
};
constexpr bool kTakesPassword =
    std::is_invocable_v<decltype(kMask), const std::string&, const std::string&>;

// A template, so that the call that does not fit is discarded, not compiled.
template <class Mask>
std::string maskWith(const Mask& m, const std::string& text, const std::string& secret) {
  if constexpr (std::is_invocable_v<const Mask&, const std::string&, const std::string&>) {
    return m(text, secret);
  } else {
    return m(text);
  }
}

std::string mask(const std::string& text, const std::string& secret) {
  return maskWith(kMask, text, secret);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace k3sma;
  using namespace k3sma::fuzz;
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t newline = input.find('\n');
  const std::string secret = newline == std::string::npos ? input : input.substr(0, newline);
  const std::string text = newline == std::string::npos ? "" : input.substr(newline + 1);

  const std::string masked = mask(text, secret);
  if (secret.find_first_of("*\"") == std::string::npos) {
    K3SMA_REQUIRE(mask(masked, secret) == masked, "masking twice masks more");
  }
  const bool has_secret_key = text.find("password") != std::string::npos ||
                              text.find("auth") != std::string::npos ||
                              text.find("identity_token") != std::string::npos;
  if (kTakesPassword && !has_secret_key && !secret.empty() && secret.size() <= 2) {
    K3SMA_REQUIRE(masked == text, "a " + std::to_string(secret.size()) +
                                      "-byte password mangles a text without secrets");
  }

  const auto tree = readYaml(text);
  if (!tree) {
    return 0;
  }
  // Plain YAML: one document of the characters YAML allows (UTF-8 without control characters
  // or U+FFFE/U+FFFF), without anchors, tags or odd keys (the masking may refuse the rest).
  const bool plain = tree->documents <= 1 && tree->reEmittable() &&
                     firstDisallowedByte(text) == std::string::npos &&
                     std::none_of(tree->nodes.begin(), tree->nodes.end(),
                                  [](const YamlTree::Node& n) {
                                    return hasControlCharacter(
                                        replaceAll(replaceAll(n.value, "\n", ""), "\t", ""));
                                  }) &&
                     !hasControlCharacter(replaceAll(replaceAll(text, "\n", ""), "\t", ""));
  // What must not be shown: each secret value with what holds it (a key's name, or "URL").
  std::vector<std::pair<std::string, std::string>> secrets;
  for (const auto& node : tree->nodes) {
    if (node.kind == YamlTree::Kind::kScalar && hasUserinfo(node.value)) {
      // "https://user:password@mirror/": the userinfo, up to the authority's last '@'.
      const size_t from = node.value.find("://") + 3;
      const size_t authority_end =
          std::min(node.value.find_first_of("/?#", from), node.value.size());
      const size_t at = node.value.rfind('@', authority_end - 1);
      secrets.emplace_back("URL userinfo", node.value.substr(from, at - from));
    }
    if (node.kind != YamlTree::Kind::kMap) {
      continue;
    }
    for (size_t k = 0; k + 1 < node.children.size(); k += 2) {
      const auto& key = tree->nodes[node.children[k]];
      const auto& value = tree->nodes[node.children[k + 1]];
      if (key.kind == YamlTree::Kind::kScalar && value.kind == YamlTree::Kind::kScalar &&
          (key.value == "password" || key.value == "auth" || key.value == "identity_token")) {
        secrets.emplace_back(key.value + " value", value.value);
      }
    }
  }
  // A URL with userinfo is a secret as well: such a text may change even without secret keys.
  if (!kTakesPassword && !has_secret_key && secrets.empty() && plain) {
    K3SMA_REQUIRE(masked == text, "a YAML text without secrets is changed by masking");
  }
  for (const auto& [what, value] : secrets) {
    for (const auto& word : words(value)) {
      const size_t before = countOf(text, word);
      if (word.size() < 4 || word.find_first_of("*\"\\") != std::string::npos || before == 0) {
        continue;  // too short to tell from other text, or not written literally
      }
      if (countOf(masked, word) < before) {
        continue;
      }
      // Still there: a leak, unless the masking writes the word itself (its own notice).
      const std::string stand_in(word.size(), word.front() == 'Z' ? 'Y' : 'Z');
      K3SMA_REQUIRE(countOf(mask(replaceAll(text, word, stand_in), secret), word) > 0,
                    "the " + what + " is not masked: \"" + word + "\" is still shown");
    }
  }
  return 0;
}
