#include "tests/fuzz/fuzz_support.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <sstream>

namespace k3sma::fuzz {

void fail(const std::string& what) {
  std::fprintf(stderr, "\nproperty failed: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

bool isValidUtf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    size_t length = 0;
    uint32_t code = 0;
    if (c < 0x80) {
      ++i;
      continue;
    }
    if (c >= 0xc2 && c <= 0xdf) {
      length = 2;
      code = c & 0x1fu;
    } else if (c >= 0xe0 && c <= 0xef) {
      length = 3;
      code = c & 0x0fu;
    } else if (c >= 0xf0 && c <= 0xf4) {
      length = 4;
      code = c & 0x07u;
    } else {
      return false;
    }
    if (i + length > text.size()) {
      return false;
    }
    for (size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xc0u) != 0x80u) {
        return false;
      }
      code = (code << 6) | (next & 0x3fu);
    }
    // Overlong forms, surrogates and code points past U+10FFFF are not UTF-8.
    const std::array<uint32_t, 5> smallest{0, 0, 0x80, 0x800, 0x10000};
    if (code < smallest[length] || (code >= 0xd800 && code <= 0xdfff) || code > 0x10ffff) {
      return false;
    }
    i += length;
  }
  return true;
}

bool hasControlCharacter(std::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

size_t countOf(std::string_view text, std::string_view needle) {
  if (needle.empty()) {
    return 0;
  }
  size_t count = 0;
  for (size_t pos = text.find(needle); pos != std::string_view::npos;
       pos = text.find(needle, pos + 1)) {
    ++count;
  }
  return count;
}

std::string replaceAll(std::string text, const std::string& from, const std::string& to) {
  for (size_t pos = text.find(from); pos != std::string::npos;
       pos = text.find(from, pos + to.size())) {
    text.replace(pos, from.size(), to);
  }
  return text;
}

namespace {

// Builds the flat tree from yaml-cpp's events, without recursion.
class TreeBuilder : public YAML::EventHandler {
 public:
  TreeBuilder(YamlTree& tree, size_t max_nodes) : tree_(tree), max_nodes_(max_nodes) {}

  bool tooBig() const { return too_big_; }

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t anchor) override {
    add(YamlTree::Kind::kNull, "", "", anchor);
  }
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {
    tree_.has_alias = true;
    // Stands for the anchored node; the tree is only compared when there is no alias.
    add(YamlTree::Kind::kNull, "", "", YAML::NullAnchor);
  }
  void OnScalar(const YAML::Mark&, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    add(YamlTree::Kind::kScalar, tag, value, anchor);
  }
  void OnSequenceStart(const YAML::Mark&, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    open_.push_back(add(YamlTree::Kind::kSequence, tag, "", anchor));
  }
  void OnSequenceEnd() override { open_.pop_back(); }
  void OnMapStart(const YAML::Mark&, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    open_.push_back(add(YamlTree::Kind::kMap, tag, "", anchor));
  }
  void OnMapEnd() override {
    const auto& map = tree_.nodes[open_.back()];
    std::set<std::string> keys;
    for (size_t k = 0; k + 1 < map.children.size(); k += 2) {
      const auto& key = tree_.nodes[map.children[k]];
      if (key.kind == YamlTree::Kind::kScalar && !keys.insert(key.value).second) {
        tree_.has_duplicate_key = true;
      }
    }
    open_.pop_back();
  }

 private:
  size_t add(YamlTree::Kind kind, const std::string& tag, const std::string& value,
             YAML::anchor_t anchor) {
    if (anchor != YAML::NullAnchor) {
      tree_.has_anchor = true;
    }
    if (!tag.empty() && tag != "?" && tag != "!") {
      tree_.has_explicit_tag = true;
    }
    if (tree_.nodes.size() >= max_nodes_) {
      too_big_ = true;
      // Keep the shape valid: reuse the last node rather than growing.
      return tree_.nodes.size() - 1;
    }
    const size_t index = tree_.nodes.size();
    tree_.nodes.push_back({kind, tag, value, {}});
    if (!open_.empty()) {
      auto& parent = tree_.nodes[open_.back()];
      const bool is_key = parent.kind == YamlTree::Kind::kMap && parent.children.size() % 2 == 0;
      if (is_key) {
        if (kind == YamlTree::Kind::kMap || kind == YamlTree::Kind::kSequence) {
          tree_.has_complex_key = true;
        } else if (kind == YamlTree::Kind::kNull) {
          tree_.has_null_key = true;
        } else if (tag == "?" && value == "<<") {
          tree_.has_merge_key = true;
        }
      }
      parent.children.push_back(index);
    }
    return index;
  }

  YamlTree& tree_;
  size_t max_nodes_;
  std::vector<size_t> open_;
  bool too_big_ = false;
};

bool isOneOf(std::string_view s, std::initializer_list<std::string_view> choices) {
  return std::find(choices.begin(), choices.end(), s) != choices.end();
}

// Go's strconv.ParseInt(s, 0, 64) syntax, as yaml.v2 resolves a plain scalar (underscores too).
bool isInt(std::string_view s) {
  if (!s.empty() && (s.front() == '+' || s.front() == '-')) {
    s.remove_prefix(1);
  }
  if (s.empty()) {
    return false;
  }
  std::string_view digits = "0123456789_";
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    digits = "0123456789abcdefABCDEF_";
    s.remove_prefix(2);
  } else if (s.size() > 2 && s[0] == '0' && (s[1] == 'b' || s[1] == 'B')) {
    digits = "01_";
    s.remove_prefix(2);
  } else if (s.size() > 2 && s[0] == '0' && (s[1] == 'o' || s[1] == 'O')) {
    digits = "01234567_";
    s.remove_prefix(2);
  }
  return !s.empty() && s.find_first_not_of(digits) == std::string_view::npos;
}

// ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$ and the .inf/.nan spellings.
bool isFloat(std::string_view s) {
  if (isOneOf(s, {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF",
                  ".nan", ".NaN", ".NAN"})) {
    return true;
  }
  size_t i = 0;
  auto digits = [&] {
    const size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      ++i;
    }
    return i - start;
  };
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    ++i;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (digits() == 0) {
      return false;
    }
  } else {
    if (digits() == 0) {
      return false;
    }
    if (i < s.size() && s[i] == '.') {
      ++i;
      digits();
    }
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
      ++i;
    }
    if (digits() == 0) {
      return false;
    }
  }
  return i == s.size();
}

std::string resolvePlain(std::string_view s) {
  if (isOneOf(s, {"", "~", "null", "Null", "NULL"})) {
    return "null";
  }
  if (isOneOf(s,
              {"y",    "Y",    "yes",   "Yes",   "YES",   "n",  "N",  "no", "No",  "NO",  "true",
               "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF"})) {
    return "bool";
  }
  if (s == "<<") {
    return "merge";
  }
  if (isInt(s)) {
    return "int";
  }
  if (isFloat(s)) {
    return "float";
  }
  return "str";
}

bool sameKey(const YamlTree& a, size_t a_node, const YamlTree& b, size_t b_node) {
  const auto& x = a.nodes[a_node];
  const auto& y = b.nodes[b_node];
  if (x.kind == YamlTree::Kind::kScalar && y.kind == YamlTree::Kind::kScalar) {
    return x.value == y.value;
  }
  return sameMeaning(a, a_node, b, b_node);
}

}  // namespace

std::optional<size_t> YamlTree::find(size_t map, std::string_view key) const {
  const auto& node = nodes[map];
  if (node.kind != Kind::kMap) {
    return std::nullopt;
  }
  for (size_t k = 0; k + 1 < node.children.size(); k += 2) {
    const auto& key_node = nodes[node.children[k]];
    if (key_node.kind == Kind::kScalar && key_node.value == key) {
      return node.children[k + 1];
    }
  }
  return std::nullopt;
}

std::string YamlTree::typeOf(size_t node) const {
  const auto& n = nodes[node];
  if (n.kind == Kind::kNull) {
    return "null";
  }
  if (n.tag == "!") {
    return "str";
  }
  if (n.tag == "?" || n.tag.empty()) {
    return resolvePlain(n.value);
  }
  return n.tag;
}

std::optional<YamlTree> readYaml(const std::string& text, size_t max_nodes) {
  YamlTree tree;
  try {
    std::istringstream stream(text);
    YAML::Parser parser(stream);
    TreeBuilder builder(tree, max_nodes);
    parser.HandleNextDocument(builder);
    // The rest of the stream must parse too (an error after the first document makes the text
    // invalid YAML). Later documents go into a scratch tree. Bounded: yaml-cpp 0.7 reports
    // endless empty documents for some inputs (",": its LoadAll never returns).
    YamlTree rest;
    TreeBuilder rest_builder(rest, max_nodes);
    tree.documents = tree.nodes.empty() ? 0 : 1;
    while (parser.HandleNextDocument(rest_builder)) {
      if (++tree.documents >= 16 || rest.nodes.size() >= max_nodes) {
        return std::nullopt;
      }
    }
    if (builder.tooBig()) {
      return std::nullopt;
    }
  } catch (const YAML::Exception&) {
    return std::nullopt;
  }
  if (tree.nodes.empty()) {
    tree.nodes.push_back({});  // an empty document reads as null
  }
  return tree;
}

bool sameMeaning(const YamlTree& a, size_t a_node, const YamlTree& b, size_t b_node) {
  const auto& x = a.nodes[a_node];
  const auto& y = b.nodes[b_node];
  if (x.kind != y.kind) {
    return false;
  }
  switch (x.kind) {
    case YamlTree::Kind::kNull:
      return true;
    case YamlTree::Kind::kScalar:
      return x.value == y.value && a.typeOf(a_node) == b.typeOf(b_node);
    case YamlTree::Kind::kSequence:
      if (x.children.size() != y.children.size()) {
        return false;
      }
      for (size_t i = 0; i < x.children.size(); ++i) {
        if (!sameMeaning(a, x.children[i], b, y.children[i])) {
          return false;
        }
      }
      return true;
    case YamlTree::Kind::kMap:
      if (x.children.size() != y.children.size()) {
        return false;
      }
      for (size_t i = 0; i + 1 < x.children.size(); i += 2) {
        bool found = false;
        for (size_t j = 0; j + 1 < y.children.size() && !found; j += 2) {
          found = sameKey(a, x.children[i], b, y.children[j]) &&
                  sameMeaning(a, x.children[i + 1], b, y.children[j + 1]);
        }
        if (!found) {
          return false;
        }
      }
      return true;
  }
  return false;
}

}  // namespace k3sma::fuzz
