#pragma once
// Helpers the libFuzzer harnesses share: a failed property aborts with a sentence saying which
// (libFuzzer then reports a crash and keeps the input), and an independent reading of YAML.
//
// YamlTree reads a document through yaml-cpp's event interface, not YAML::Load, so an alias is
// one event instead of a shared node: a cycle or an alias bomb cannot make the harness itself
// loop or grow. It records what would change the meaning of a re-emitted file (anchors, aliases,
// explicit tags, merge keys, duplicate or non-scalar keys), and compares documents by meaning:
// a plain scalar's type is resolved as YAML 1.1 does (Go's yaml package, which k3s uses, follows
// it), so `true` and "true" differ, while `"a"` and `a` do not.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace k3sma::fuzz {

// Prints "property failed: <what>" and aborts; libFuzzer saves the input as a crash.
[[noreturn]] void fail(const std::string& what);

#define K3SMA_REQUIRE(condition, what) \
  do {                                 \
    if (!(condition)) {                \
      ::k3sma::fuzz::fail(what);       \
    }                                  \
  } while (false)

bool isValidUtf8(std::string_view text);
bool hasControlCharacter(std::string_view text);  // < 0x20 or 0x7f; tab and newline included
size_t countOf(std::string_view text, std::string_view needle);
std::string replaceAll(std::string text, const std::string& from, const std::string& to);

struct YamlTree {
  enum class Kind { kNull, kScalar, kSequence, kMap };
  struct Node {
    Kind kind = Kind::kNull;
    std::string tag;    // as yaml-cpp reports it: "?" plain, "!" quoted or block, else explicit
    std::string value;  // scalars
    std::vector<size_t> children;  // a sequence's items; a map's keys and values, alternating
  };
  std::vector<Node> nodes;  // nodes[0] is the first document's root (kNull when empty)

  bool has_alias = false;
  bool has_anchor = false;
  bool has_explicit_tag = false;  // any tag but the non-specific "?" and "!"
  bool has_merge_key = false;     // a plain << key
  bool has_complex_key = false;   // a key that is a mapping or a sequence
  bool has_null_key = false;
  bool has_duplicate_key = false;  // two keys of one mapping with the same text
  int documents = 0;               // in the whole stream

  // What yaml-cpp re-emits with the same meaning: none of the above.
  bool reEmittable() const {
    return !has_alias && !has_anchor && !has_explicit_tag && !has_merge_key && !has_complex_key &&
           !has_null_key && !has_duplicate_key;
  }

  const Node& root() const { return nodes.front(); }
  // The value under a scalar key of a map node, if present (first match).
  std::optional<size_t> find(size_t map, std::string_view key) const;
  // The meaning of a scalar: "str", "bool", "int", "float", "null", "merge" or an explicit tag.
  std::string typeOf(size_t node) const;
};

// Reads the first document of text. nullopt when yaml-cpp refuses the text (any of its
// documents), or it has more than max_nodes nodes or 16 documents (a harness has no use for
// larger ones).
std::optional<YamlTree> readYaml(const std::string& text, size_t max_nodes = 20000);

// Same meaning: same kinds, scalar types and values; maps equal as sets of key/value pairs,
// with keys compared by their text (Go reads these maps into map[string]...).
bool sameMeaning(const YamlTree& a, size_t a_node, const YamlTree& b, size_t b_node);

}  // namespace k3sma::fuzz
