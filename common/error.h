#pragma once
// Errors a user can cause (bad config, unreadable file, failed command) travel as values.
// A message reads "verb object: reason" and names the file (and, for YAML, the line), so it can
// be printed as is. Broken invariants are not errors: they abort.

#include <cstdlib>
#include <string>
#include <utility>
#include <variant>

namespace k3sma {

// What kind of failure it was; the command line maps it to an exit code (agent/cli.h).
enum class ErrorKind {
  kConfig,        // usage, config or CA problem: nothing was touched (exit 2)
  kUnconfigured,  // the config sets nothing yet (the package's example): exit 2, the daemon idles
  kApply,         // applying failed, previous state restored (exit 1)
  kPartial,       // applying failed and the previous state could not be fully restored (exit 4)
  kProbe,         // the cache could not be reached or trusted (exit 5)
};

struct Error {
  std::string message;
  ErrorKind kind = ErrorKind::kConfig;

  // Prefixes context, keeping the kind: "load config: " + "open x: No such file".
  Error context(const std::string& what) const { return {what + ": " + message, kind}; }
};

inline Error configError(std::string message) { return {std::move(message), ErrorKind::kConfig}; }

// A value or an Error. Deliberately small: ok(), value(), error(), and nothing clever.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }

  T& value() & { return (expect(ok()), std::get<T>(v_)); }
  const T& value() const& { return (expect(ok()), std::get<T>(v_)); }
  T&& value() && { return (expect(ok()), std::get<T>(std::move(v_))); }
  const Error& error() const { return (expect(!ok()), std::get<Error>(v_)); }

 private:
  // Asking for the wrong side is a programming error, not a user error.
  static void expect(bool holds) {
    if (!holds) {
      std::abort();
    }
  }
  std::variant<T, Error> v_;
};

// Result<void>: success carries nothing.
struct Ok {};
using Status = Result<Ok>;

}  // namespace k3sma
