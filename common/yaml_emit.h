#pragma once
// Emits a YAML tree as block-style text with every mapping's keys sorted, so the same content
// always gives the same bytes: the agent compares bytes to decide whether anything changed.
//
// Scalar style follows the node's tag: "!" (a quoted scalar in a parsed file, or a string the
// agent made with quoted()) is written double-quoted; anything else is written plain when that
// reads back the same, so `insecure_skip_verify: true` stays a boolean.

#include <yaml-cpp/yaml.h>

#include <string>

namespace k3sma {

std::string emitSorted(const YAML::Node& node);

// A string scalar that is always written double-quoted.
YAML::Node quoted(const std::string& value);

}  // namespace k3sma
