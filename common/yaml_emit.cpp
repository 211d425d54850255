#include "common/yaml_emit.h"

#include <algorithm>
#include <cctype>
#include <utility>
#include <vector>

namespace k3sma {
namespace {

// Keys such as "registry.internal:5000" or "^(.*)$" are valid plain YAML, but quoting anything
// beyond a simple name keeps every YAML reader (k3s uses Go's) from second-guessing them.
bool needsQuotes(const std::string& key) {
  if (key.empty() || !std::isalpha(static_cast<unsigned char>(key.front()))) {
    return true;
  }
  return std::any_of(key.begin(), key.end(), [](char c) {
    return !std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-';
  });
}

void emitNode(YAML::Emitter& out, const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      // Sort positions, not nodes: assigning a YAML::Node writes through to the node it refers
      // to, so letting std::sort move Nodes around would rewrite the tree itself.
      std::vector<std::pair<std::string, YAML::Node>> items;
      for (const auto& item : node) {
        items.emplace_back(item.first.Scalar(), item.second);
      }
      std::vector<size_t> order(items.size());
      for (size_t i = 0; i < order.size(); ++i) {
        order[i] = i;
      }
      std::stable_sort(order.begin(), order.end(),
                       [&](size_t a, size_t b) { return items[a].first < items[b].first; });
      out << YAML::BeginMap;
      for (size_t i : order) {
        out << YAML::Key;
        if (needsQuotes(items[i].first)) {
          out << YAML::DoubleQuoted;
        }
        out << items[i].first << YAML::Value;
        emitNode(out, items[i].second);
      }
      out << YAML::EndMap;
      break;
    }
    case YAML::NodeType::Sequence:
      out << YAML::BeginSeq;
      for (const auto& item : node) {
        emitNode(out, item);
      }
      out << YAML::EndSeq;
      break;
    case YAML::NodeType::Scalar:
      if (node.Tag() == "!") {
        out << YAML::DoubleQuoted << node.Scalar();
      } else {
        out << node.Scalar();
      }
      break;
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      out << YAML::Null;
      break;
  }
}

}  // namespace

std::string emitSorted(const YAML::Node& node) {
  YAML::Emitter out;
  out.SetIndent(2);
  out.SetSeqFormat(YAML::Block);
  out.SetMapFormat(YAML::Block);
  emitNode(out, node);
  std::string text = out.c_str();
  if (!text.empty() && text.back() != '\n') {
    text += '\n';
  }
  return text;
}

YAML::Node quoted(const std::string& value) {
  YAML::Node node(value);
  node.SetTag("!");
  return node;
}

}  // namespace k3sma
