#pragma once
// WWW-Authenticate challenges (RFC 9110 section 11.6.1) as registries send them: pure, over the
// header's text. A registry that wants a token answers 401 with
//   Bearer
//   realm="https://harbor/service/token",service="harbor-registry",scope="repository:p/x:pull"
// and one that wants a password with `Basic realm="…"`. One header may carry several challenges
// ("Basic realm=a, Bearer realm=b"); a parameter value is a token or a quoted string whose
// backslash escapes the next character.

#include <map>
#include <string>
#include <vector>

#include "common/error.h"

namespace k3sma {

struct Challenge {
  std::string scheme;                         // lower case: "bearer", "basic"
  std::map<std::string, std::string> params;  // names in lower case: "realm", "service", "scope"
};

// Every challenge in the header's value, in order. An error names what could not be read.
Result<std::vector<Challenge>> parseChallenges(const std::string& header_value);

}  // namespace k3sma
