#pragma once
// YAML in and out. Out: emits a YAML tree as block-style text with every mapping's keys sorted, so
// the same content always gives the same bytes: the agent compares bytes to decide whether anything
// changed.
//
// Scalar style follows the node's tag: "!" (a quoted scalar in a parsed file, or a string the
// agent made with quoted()) is written double-quoted; anything else is written plain when that
// reads back the same, so `insecure_skip_verify: true` stays a boolean.

#include <yaml-cpp/yaml.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace k3sma {

std::string emitSorted(const YAML::Node& node);

// A string scalar that is always written double-quoted.
YAML::Node quoted(const std::string& value);

// ---------------------------------------------------------------------------------------------
// What the agent reads back and re-emits must mean the same to k3s's Go YAML reader. yaml-cpp
// and Go agree on plain mappings, sequences and scalars; they do not agree (or the emitter above
// cannot keep the meaning) on the features below, so a file using them is refused, never
// rewritten:
//   - anchors and aliases: yaml-cpp shares the aliased node, so `x: &a [*a]` is a cycle that
//     recurses for ever when walked, and a few hundred bytes of nested aliases expand to
//     gigabytes; Go expands them; the emitter would write copies.
//   - merge keys (`<<`): Go merges the aliased map into its parent; yaml-cpp keeps a key "<<".
//   - explicit tags (`!!binary`, `!foo`): the emitter would drop them.
//   - duplicate keys (Go's yaml.v3 refuses them, v2 keeps the last, yaml-cpp the first) and
//     keys that are not scalars (Go cannot decode them into a map of strings).
//   - more than one document (k3s reads only the first; the rest would be dropped).
//   - nesting deeper than kMaxYamlDepth (registries.yaml needs 5 levels, the config 4).
//   - bytes that YAML does not allow in a stream: invalid UTF-8, NUL and other C0 controls but
//     tab, LF and CR, DEL, and a NUL or control character produced by an escape ("\0").
inline constexpr int kMaxYamlDepth = 32;

// The offset of the first byte YAML does not allow in a stream (the last item above), or npos.
size_t firstDisallowedByte(std::string_view text);

// Whether a scalar is a URL with userinfo ("https://user:password@mirror"): the part between
// "://" and the first '/', '?' or '#' holds an '@'. The masking treats such a value as a secret.
bool hasUserinfo(const std::string& value);

// The first such problem, or nullopt. rules.keys off leaves duplicate and non-scalar keys,
// rules.syntax off a syntax error to a caller that reports them in its own words (the config
// parser). A second document is always a problem: yaml-cpp 0.7 yields empty documents for ever
// on some input (","), so nothing may read past the first.
struct YamlProblem {
  int line = 0;  // 1-based
  std::string reason;
  bool second_document = false;  // the problem is a second document
};
struct YamlRules {
  bool keys = true;
  bool syntax = true;
};
std::optional<YamlProblem> findUnsafeYaml(const std::string& text, YamlRules rules = {});

// The same as an error "SOURCE:LINE: reason", with every rule on.
Status checkPlainYaml(const std::string& text, const std::string& source);

// Where the secrets are: the byte ranges of every value under a key named password, auth (when
// it is not a mapping: configs.<host>.auth is the section, configs.<host>.auth.auth the token)
// or identity_token, at any depth, but an empty one (null: nothing to hide). A range runs from
// the value's first byte to the next YAML token, so a block scalar, a continuation line or a
// `? password` key's value is covered whole.
// A scalar that is a URL with userinfo (user:password@) counts as a secret as well.
// std::nullopt when the text cannot be parsed.
// Inside a flow collection ({...}, [...]) a range is the value alone (flow = true): what
// follows it, such as the closing braces, is structure to keep.
struct ByteRange {
  size_t begin = 0;
  size_t end = 0;
  bool flow = false;
};
std::optional<std::vector<ByteRange>> secretRanges(const std::string& text);

}  // namespace k3sma
