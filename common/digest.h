#pragma once
// SHA-256 as lowercase hex, through OpenSSL: the daemon reports a hash of the config so a fleet's
// nodes can be compared at a glance ("same config everywhere?") without printing the config.

#include <string>
#include <string_view>

namespace k3sma {

std::string sha256Hex(std::string_view data);

}  // namespace k3sma
