// Fuzzes secret masking (maskSecrets), what `diff` shows of registries.yaml. The input's first
// line is the config's password, the rest is the text to mask (a registries.yaml, usually).
//
// Properties, beyond "no crash":
// - masking is idempotent (masking a masked text changes nothing);
// - every value of a password, auth or identity_token key that the text holds, at any depth and
//   in any YAML form (block scalars, continuation lines, flow mappings, "? password" keys), is
//   gone: each of its words (4 bytes or more) occurs fewer times after masking than before;
// - a short password (1 or 2 bytes) does not mangle a text that has no secret key at all
//   ("o" must not turn docker.io into d********cker.i********).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/registries.h"
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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace k3sma;
  using namespace k3sma::fuzz;
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t newline = input.find('\n');
  const std::string secret = newline == std::string::npos ? input : input.substr(0, newline);
  const std::string text = newline == std::string::npos ? "" : input.substr(newline + 1);

  const std::string masked = maskSecrets(text, secret);
  if (secret.find_first_of("*\"") == std::string::npos) {
    K3SMA_REQUIRE(maskSecrets(masked, secret) == masked, "masking twice masks more");
  }
  const bool has_secret_key = text.find("password") != std::string::npos ||
                              text.find("auth") != std::string::npos ||
                              text.find("identity_token") != std::string::npos;
  if (!has_secret_key && !secret.empty() && secret.size() <= 2) {
    K3SMA_REQUIRE(masked == text, "a " + std::to_string(secret.size()) +
                                      "-byte password mangles a text without secrets");
  }

  const auto tree = readYaml(text);
  if (!tree) {
    return 0;
  }
  for (const auto& node : tree->nodes) {
    if (node.kind != YamlTree::Kind::kMap) {
      continue;
    }
    for (size_t k = 0; k + 1 < node.children.size(); k += 2) {
      const auto& key = tree->nodes[node.children[k]];
      const auto& value = tree->nodes[node.children[k + 1]];
      if (key.kind != YamlTree::Kind::kScalar || value.kind != YamlTree::Kind::kScalar ||
          (key.value != "password" && key.value != "auth" && key.value != "identity_token")) {
        continue;
      }
      for (const auto& word : words(value.value)) {
        const size_t before = countOf(text, word);
        if (word.size() < 4 || word.find_first_of("*\"\\") != std::string::npos || before == 0) {
          continue;  // too short to tell from other text, or not written literally
        }
        K3SMA_REQUIRE(countOf(masked, word) < before,
                      "the " + key.value + " value is not masked: \"" + word + "\" is still shown");
      }
    }
  }
  return 0;
}
