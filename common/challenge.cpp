#include "common/challenge.h"

#include <cctype>

namespace k3sma {
namespace {

// RFC 9110 tchar.
bool isTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string lower(std::string s) {
  for (char& c : s) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return s;
}

class Reader {
 public:
  explicit Reader(const std::string& text) : text_(text) {}

  void skipSpace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t')) {
      ++pos_;
    }
  }
  bool atEnd() {
    skipSpace();
    return pos_ >= text_.size();
  }
  bool eat(char c) {
    skipSpace();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  std::string token() {
    skipSpace();
    const size_t start = pos_;
    while (pos_ < text_.size() && isTokenChar(text_[pos_])) {
      ++pos_;
    }
    return text_.substr(start, pos_ - start);
  }
  // A quoted string after its opening quote; false when the closing quote is missing.
  bool quoted(std::string& out) {
    while (pos_ < text_.size()) {
      const char c = text_[pos_++];
      if (c == '"') {
        return true;
      }
      if (c == '\\' && pos_ < text_.size()) {
        out += text_[pos_++];
      } else {
        out += c;
      }
    }
    return false;
  }
  // Looks past the next token: is it a parameter name (followed by '=') or a new scheme?
  bool nextIsParam() {
    const size_t saved = pos_;
    const bool is_param = !token().empty() && eat('=');
    pos_ = saved;
    return is_param;
  }
  size_t pos() const { return pos_; }

 private:
  const std::string& text_;
  size_t pos_ = 0;
};

}  // namespace

Result<std::vector<Challenge>> parseChallenges(const std::string& header_value) {
  auto bad = [&](const std::string& why) {
    return Error{"read the WWW-Authenticate header \"" + header_value + "\": " + why,
                 ErrorKind::kProbe};
  };
  std::vector<Challenge> challenges;
  Reader r(header_value);
  while (!r.atEnd()) {
    if (r.eat(',')) {
      continue;  // empty list elements are allowed
    }
    Challenge c;
    c.scheme = lower(r.token());
    if (c.scheme.empty()) {
      return bad("expected an auth scheme at offset " + std::to_string(r.pos()));
    }
    // Parameters until the end or a token that starts the next challenge.
    while (!r.atEnd()) {
      if (!r.nextIsParam()) {
        if (r.eat(',')) {
          continue;
        }
        break;  // token68 forms (Basic's credentials) are not used in challenges here
      }
      const std::string name = lower(r.token());
      (void)r.eat('=');
      std::string value;
      if (r.eat('"')) {
        if (!r.quoted(value)) {
          return bad("the value of " + name + " has no closing quote");
        }
      } else {
        value = r.token();
      }
      c.params[name] = value;
      if (!r.eat(',')) {
        if (!r.atEnd()) {
          return bad("expected a comma after " + name + " at offset " + std::to_string(r.pos()));
        }
      }
    }
    challenges.push_back(std::move(c));
  }
  if (challenges.empty()) {
    return bad("no challenge in it");
  }
  return challenges;
}

}  // namespace k3sma
