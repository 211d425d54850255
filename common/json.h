// Reading numbers from JSON files the agent writes (state.json, the journal, status.json) but
// that anyone may have edited. nlohmann's get<int>() of a float out of int's range is undefined
// behaviour (the fuzzer found it in the state's "version"), and get<int>() of a large integer
// wraps. The agent reads each number through jsonInteger instead.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>

namespace k3sma {

// The value as an Int when it is a JSON integer that fits; nullopt for anything else (a float,
// a string, null, an integer out of range).
template <class Int, class Json>
std::optional<Int> jsonInteger(const Json& value) {
  if (value.is_number_unsigned()) {
    const auto u = value.template get<std::uint64_t>();
    return std::in_range<Int>(u) ? std::optional<Int>(static_cast<Int>(u)) : std::nullopt;
  }
  if (value.is_number_integer()) {
    const auto i = value.template get<std::int64_t>();
    return std::in_range<Int>(i) ? std::optional<Int>(static_cast<Int>(i)) : std::nullopt;
  }
  return std::nullopt;
}

// The member KEY of an object as an Int (jsonInteger); nullopt when it is absent too.
template <class Int, class Json>
std::optional<Int> jsonIntegerAt(const Json& object, const char* key) {
  const auto it = object.find(key);
  return it == object.end() ? std::nullopt : jsonInteger<Int>(*it);
}

}  // namespace k3sma
