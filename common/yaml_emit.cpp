#include "common/yaml_emit.h"

#include <fmt/format.h>
#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <cctype>
#include <set>
#include <sstream>
#include <utility>
#include <variant>
#include <vector>

#include "common/log.h"

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

namespace k3sma {
namespace {

// The length of the UTF-8 character at text[i] when it is one YAML allows in a stream (its
// "printable" set: no C0 control but tab, LF and CR, no DEL, no C1 control but NEL, no
// U+FFFE/U+FFFF); 0 if not, or if the bytes are not well-formed UTF-8.
size_t allowedCharAt(std::string_view text, size_t i) {
  const auto ch = utf8At(text, i);
  const char32_t cp = ch.code_point;
  if (ch.length == 0 || (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') ||
      (cp >= 0x7f && cp <= 0x9f && cp != 0x85) || cp == 0xfffe || cp == 0xffff) {
    return 0;
  }
  return ch.length;
}

}  // namespace

size_t firstDisallowedByte(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    const size_t len = allowedCharAt(text, i);
    if (len == 0) {
      return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

bool hasUserinfo(const std::string& value) {
  const auto scheme = value.find("://");
  if (scheme == std::string::npos) {
    return false;
  }
  const auto authority_end = value.find_first_of("/?#", scheme + 3);
  return value
             .substr(scheme + 3, authority_end == std::string::npos ? std::string::npos
                                                                    : authority_end - scheme - 3)
             .find('@') != std::string::npos;
}

namespace {

bool isBlank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// Where the quoted scalar starting at text[i] (a ' or ") ends: after its closing quote.
size_t quotedEnd(std::string_view text, size_t i) {
  const char quote = text[i];
  for (size_t k = i + 1; k < text.size(); ++k) {
    if (quote == '"' && text[k] == '\\') {
      ++k;  // an escape: the next byte is never the closing quote
    } else if (text[k] == quote) {
      if (quote == '\'' && k + 1 < text.size() && text[k + 1] == '\'') {
        ++k;  // '' is a quote inside a single-quoted scalar
      } else {
        return k + 1;
      }
    }
  }
  return text.size();
}

// yaml-cpp reports an empty node at the token after it, not where it is: the mark of an empty
// sequence item ("-" alone, or with a comment) is the next item's '-', or the end of the text.
// Its own '-' comes earlier: the last line in (from, at) whose first character but spaces is a
// '-' followed by a blank or the line's end. That '-', or `at` when there is none.
size_t emptyItemStart(std::string_view text, size_t from, size_t at) {
  size_t found = at;
  for (size_t eol = text.find('\n', from); eol < at; eol = text.find('\n', eol + 1)) {
    const size_t first = text.find_first_not_of(' ', eol + 1);
    if (first < at && text[first] == '-' &&
        (first + 1 == text.size() || isBlank(text[first + 1]))) {
      found = first;
    }
  }
  return found;
}

// Where the value that starts at text[i] inside a flow collection ends, for a text the parser
// accepted: a quoted scalar at its closing quote, a collection at its matching bracket, a plain
// scalar before the first , [ ] { } or comment (none of which a plain scalar in flow may hold),
// trailing blanks left out.
size_t flowValueEnd(std::string_view text, size_t i) {
  if (i >= text.size()) {
    return text.size();
  }
  if (text[i] == '"' || text[i] == '\'') {
    return quotedEnd(text, i);
  }
  const auto comment = [&](size_t k) { return text[k] == '#' && k > 0 && isBlank(text[k - 1]); };
  if (text[i] == '[' || text[i] == '{') {
    int depth = 0;
    char last = '[';  // the last byte that is not blank: a quote after [ { , : ? opens a scalar
    for (size_t k = i; k < text.size(); ++k) {
      const char c = text[k];
      if ((c == '"' || c == '\'') && std::string_view("[{,:?").find(last) != std::string::npos) {
        k = quotedEnd(text, k) - 1;
        last = c;
        continue;
      }
      if (comment(k)) {
        k = std::min(text.find('\n', k), text.size()) - 1;
        continue;
      }
      if (c == '[' || c == '{') {
        ++depth;
      } else if ((c == ']' || c == '}') && --depth == 0) {
        return k + 1;
      }
      if (!isBlank(c)) {
        last = c;
      }
    }
    return text.size();
  }
  size_t k = i;
  while (k < text.size() && std::string_view(",[]{}").find(text[k]) == std::string::npos &&
         !comment(k)) {
    ++k;
  }
  while (k > i && isBlank(text[k - 1])) {
    --k;
  }
  return k;
}

struct Refused {
  int line;  // 1-based
  std::string reason;
  bool second_document = false;
};

bool isSecretKey(const std::string& key) {
  return key == "password" || key == "identity_token" || key == "auth";
}

// Walks the parser's events (no tree is built, so an alias is never expanded) and refuses what
// cannot be re-emitted with the same meaning; collects where the secrets are on the way.
class Checker final : public YAML::EventHandler {
 public:
  Checker(std::string_view text, size_t offset, YamlRules rules)
      : text_(text), offset_(offset), size_(text.size()), rules_(rules) {}

  void OnDocumentStart(const YAML::Mark& mark) override {
    // A second document is refused at its first node (the line a person looks for), or at its
    // end when it has none.
    if (++documents_ > 1) {
      second_document_line_ = mark.line + 1;
    }
  }
  void OnDocumentEnd() override {
    if (second_document_line_ > 0) {
      refuseSecondDocument(second_document_line_);
    }
  }
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    node(mark, "?", anchor, Kind::kNull, "");
  }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t /*anchor*/) override {
    throw Refused{mark.line + 1, "aliases (*name) are not supported; write the value out"};
  }
  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    for (size_t i = 0; i < value.size();) {
      const size_t len = allowedCharAt(value, i);
      if (len == 0) {
        throw Refused{mark.line + 1,
                      "a value holds a control character or invalid UTF-8 (from an escape)"};
      }
      i += len;
    }
    node(mark, tag, anchor, Kind::kLeaf, value);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value style) override {
    node(mark, tag, anchor, Kind::kSequence, "", style == YAML::EmitterStyle::Flow);
  }
  void OnSequenceEnd() override { pop(); }
  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value style) override {
    node(mark, tag, anchor, Kind::kMap, "", style == YAML::EmitterStyle::Flow);
  }
  void OnMapEnd() override { pop(); }
  void OnAnchor(const YAML::Mark& mark, const std::string& /*name*/) override {
    throw Refused{mark.line + 1, "anchors (&name) are not supported; write the value out"};
  }

  std::vector<ByteRange> finish() {
    for (size_t i : closing_) {
      ranges_[i].end = size_;
    }
    return ranges_;
  }

 private:
  enum class Kind { kLeaf, kNull, kSequence, kMap };  // kNull: an empty node or ~
  struct Frame {
    bool map = false;
    bool flow = false;  // {...} or [...]
    size_t items = 0;   // in a map: keys and values, so an even count means a key comes next
    std::set<std::string> keys;
    std::string key;         // the last key seen
    long secret_range = -1;  // this collection is a secret's value: it closes that range
  };

  void node(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor, Kind kind,
            const std::string& value, bool flow = false) {
    const size_t at = offset_ + static_cast<size_t>(mark.pos);
    for (size_t i : closing_) {
      // A range ends at the next token. An empty node's mark is past its own token.
      const size_t end = kind == Kind::kNull ? emptyItemStart(text_, ranges_[i].begin, at) : at;
      ranges_[i].end = std::max(end, ranges_[i].begin);
    }
    closing_.clear();
    const int line = mark.line + 1;
    if (second_document_line_ > 0) {
      refuseSecondDocument(line);
    }
    if (anchor != YAML::NullAnchor) {
      throw Refused{line, "anchors (&name) are not supported; write the value out"};
    }
    if (!tag.empty() && tag != "?" && tag != "!") {
      throw Refused{line, "tags such as " + tag + " are not supported; write a plain value"};
    }
    bool secret = false;
    if (!stack_.empty() && stack_.back().map) {
      Frame& f = stack_.back();
      if (f.items % 2 == 0) {
        if ((kind == Kind::kMap || kind == Kind::kSequence) && rules_.keys) {
          throw Refused{line, "a mapping or list as a key is not supported"};
        }
        // A null key (`~: x`, `: x`, `? ` alone) would come back as the string "": a
        // different key.
        if (kind == Kind::kNull && rules_.keys) {
          throw Refused{line,
                        "a null key (~ or nothing before the colon) is not supported; "
                        "write the key out"};
        }
        if (value == "<<") {
          throw Refused{line, "merge keys (<<) are not supported; write the keys out"};
        }
        if (!f.keys.insert(value).second && rules_.keys) {
          throw Refused{line, "the key \"" + value + "\" appears twice in one mapping"};
        }
        f.key = value;
      } else {
        // An empty value (`password:` or `password: ~`) hides nothing. Its position is the
        // next token's, possibly the end of the text: a range there would add a "********"
        // after the last line that was never in the file.
        secret =
            isSecretKey(f.key) && kind != Kind::kNull && !(f.key == "auth" && kind == Kind::kMap);
      }
      ++f.items;
    }
    // A URL with userinfo (an endpoint "https://user:password@mirror") is a secret too.
    const bool leaf = kind == Kind::kLeaf || kind == Kind::kNull;
    secret = secret || (leaf && hasUserinfo(value));
    // Inside a flow collection the next token may be a closing } or ], which the parser reports
    // without a position: such a range ends where the value itself ends, found in the text.
    const bool in_flow = !stack_.empty() && stack_.back().flow;
    if (secret) {
      ranges_.push_back(in_flow ? ByteRange{at, flowValueEnd(text_, at), true}
                                : ByteRange{at, size_});
    }
    if (leaf) {
      if (secret && !in_flow) {
        closing_.push_back(ranges_.size() - 1);
      }
      return;
    }
    if (stack_.size() >= static_cast<size_t>(kMaxYamlDepth)) {
      throw Refused{line, "nested deeper than " + std::to_string(kMaxYamlDepth) + " levels"};
    }
    Frame f;
    f.map = kind == Kind::kMap;
    f.flow = flow;
    f.secret_range = secret && !in_flow ? static_cast<long>(ranges_.size() - 1) : -1;
    stack_.push_back(std::move(f));
  }

  [[noreturn]] static void refuseSecondDocument(int line) {
    throw Refused{line, "more than one YAML document; keep one per file (k3s reads only the first)",
                  true};
  }

  void pop() {
    if (!stack_.empty()) {
      if (stack_.back().secret_range >= 0) {
        closing_.push_back(static_cast<size_t>(stack_.back().secret_range));
      }
      stack_.pop_back();
    }
  }

  std::string_view text_;
  size_t offset_;  // yaml-cpp's positions leave out a byte-order mark
  size_t size_;
  YamlRules rules_;
  int documents_ = 0;
  int second_document_line_ = 0;
  std::vector<Frame> stack_;
  std::vector<ByteRange> ranges_;
  std::vector<size_t> closing_;  // ranges that end at the next token
};

int lineAt(std::string_view text, size_t offset) {
  return 1 +
         static_cast<int>(std::count(text.begin(), text.begin() + static_cast<long>(offset), '\n'));
}

// The secrets' ranges, or the first problem.
std::variant<std::vector<ByteRange>, YamlProblem> walk(const std::string& text, YamlRules rules) {
  const size_t bad = firstDisallowedByte(text);
  if (bad != std::string::npos) {
    return YamlProblem{
        lineAt(text, bad),
        fmt::format("byte 0x{:02x} is {} (YAML is UTF-8 text without control characters)",
                    static_cast<unsigned>(static_cast<unsigned char>(text[bad])),
                    text[bad] == '\0' ? "NUL" : "not allowed")};
  }
  // A CR that is not part of CRLF is a line break to YAML (and to Go's reader in k3s) but not to
  // an editor or to diff, which show one line where the parser sees several; re-emitting such a
  // text moves or merges keys. Refused rather than guessed at.
  for (size_t cr = text.find('\r'); cr != std::string::npos; cr = text.find('\r', cr + 1)) {
    if (cr + 1 == text.size() || text[cr + 1] != '\n') {
      return YamlProblem{lineAt(text, cr),
                         "a carriage return (0x0d) that is not part of a CRLF line end is not "
                         "allowed; use LF or CRLF line ends"};
    }
  }
  const size_t bom = text.rfind("\xef\xbb\xbf", 0) == 0 ? 3 : 0;
  Checker checker(text, bom, rules);
  std::istringstream in(text);
  try {
    YAML::Parser parser(in);
    while (parser.HandleNextDocument(checker)) {
    }
  } catch (const Refused& r) {
    return YamlProblem{r.line, r.reason, r.second_document};
  } catch (const YAML::Exception& e) {
    if (rules.syntax) {
      return YamlProblem{e.mark.line + 1, e.msg};
    }
    return std::vector<ByteRange>{};
  }
  return checker.finish();
}

}  // namespace

std::optional<YamlProblem> findUnsafeYaml(const std::string& text, YamlRules rules) {
  auto walked = walk(text, rules);
  if (auto* problem = std::get_if<YamlProblem>(&walked)) {
    return *problem;
  }
  return std::nullopt;
}

Status checkPlainYaml(const std::string& text, const std::string& source) {
  if (auto problem = findUnsafeYaml(text)) {
    return configError(source + ":" + std::to_string(problem->line) + ": " + problem->reason);
  }
  return Ok{};
}

std::optional<std::vector<ByteRange>> secretRanges(const std::string& text) {
  auto walked = walk(text, YamlRules{});
  if (auto* ranges = std::get_if<std::vector<ByteRange>>(&walked)) {
    return std::move(*ranges);
  }
  return std::nullopt;
}

}  // namespace k3sma
