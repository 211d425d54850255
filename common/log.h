#pragma once
// Logging: spdlog with one sink. Under systemd (stderr is the journal, per JOURNAL_STREAM) the
// journald sink, so priorities survive; otherwise stderr for people: "k3s-mirror-agent: warning:
// ...". Results (the text or JSON report) go to stdout, never through the log. Messages are
// escaped (printable) before any sink sees them.

#include <string>
#include <string_view>

namespace k3sma {

// text with control characters and bytes that are not UTF-8 written as \n, \t, \r, \xNN, so
// a message is one line of readable text whatever it quotes. Every log message passes here.
std::string printable(std::string_view text);

enum class Verbosity { kQuiet, kNormal, kDebug };

void setupLogging(Verbosity verbosity);

}  // namespace k3sma
