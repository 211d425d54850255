#pragma once
// Logging: spdlog with one sink. Under systemd (stderr is the journal, per JOURNAL_STREAM) the
// journald sink, so priorities survive; otherwise stderr for people: "k3s-mirror-agent: warning:
// ...". Results (the text or JSON report) go to stdout, never through the log. Messages are
// escaped (printable) before any sink sees them.

#include <cstddef>
#include <string>
#include <string_view>

namespace k3sma {

// The length (1 to 4) of the well-formed UTF-8 sequence at text[i] (RFC 3629: no overlong form,
// no surrogate, at most U+10FFFF), and its code point; length 0 when the bytes there are not one.
struct Utf8Char {
  size_t length = 0;
  char32_t code_point = 0;
};
Utf8Char utf8At(std::string_view text, size_t i);

// text with control characters and bytes that are not UTF-8 written as \n, \t, \r, \xNN, so
// a message is one line of readable text whatever it quotes. Every log message passes here.
std::string printable(std::string_view text);

enum class Verbosity { kQuiet, kNormal, kDebug };

void setupLogging(Verbosity verbosity);

}  // namespace k3sma
