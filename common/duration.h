#pragma once
// Durations as the config writes them: "500ms", "2s", "5m", "1h", combinations such as "1m30s"
// (largest unit first, like Go's time.ParseDuration without fractions), or a bare "0".

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace k3sma {

using Duration = std::chrono::milliseconds;

// std::nullopt when text is not a duration; never throws.
std::optional<Duration> parseDuration(std::string_view text);

}  // namespace k3sma
