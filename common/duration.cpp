#include "common/duration.h"

#include <array>
#include <cstdint>
#include <limits>

namespace k3sma {
namespace {

struct Unit {
  std::string_view suffix;
  int64_t millis;
};
// Ordered from largest to smallest: a combination must use each unit once, in this order.
constexpr std::array<Unit, 4> kUnits{{{"h", 3'600'000}, {"m", 60'000}, {"s", 1'000}, {"ms", 1}}};
// A billion seconds is 31 years: any duration beyond that in a config is a typo.
constexpr int64_t kMaxMillis = 1'000'000'000'000;

}  // namespace

std::optional<Duration> parseDuration(std::string_view text) {
  if (text == "0") {
    return Duration{0};
  }
  if (text.empty()) {
    return std::nullopt;
  }
  int64_t total = 0;
  size_t next_unit = 0;  // index into kUnits: units must come in decreasing order
  while (!text.empty()) {
    int64_t number = 0;
    size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') {
      number = number * 10 + (text[digits] - '0');
      if (number > kMaxMillis) {  // also keeps number * unit below int64's limit
        return std::nullopt;
      }
      ++digits;
    }
    if (digits == 0) {
      return std::nullopt;
    }
    text.remove_prefix(digits);
    // "ms" before "m": try the longest suffix that matches at this position.
    const Unit* unit = nullptr;
    size_t unit_index = 0;
    for (size_t i = 0; i < kUnits.size(); ++i) {
      const auto& u = kUnits[i];
      if (text.substr(0, u.suffix.size()) == u.suffix &&
          (unit == nullptr || u.suffix.size() > unit->suffix.size())) {
        unit = &u;
        unit_index = i;
      }
    }
    if (unit == nullptr || unit_index < next_unit) {
      return std::nullopt;
    }
    next_unit = unit_index + 1;
    text.remove_prefix(unit->suffix.size());
    total += number * unit->millis;
    if (total > kMaxMillis) {
      return std::nullopt;
    }
  }
  return Duration{total};
}

}  // namespace k3sma
