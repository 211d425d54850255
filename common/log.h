#pragma once
// Logging: spdlog with one sink. Under systemd (stderr is the journal, per JOURNAL_STREAM) the
// journald sink, so priorities survive; otherwise stderr for people: "k3s-mirror-agent: warning:
// ...". Results (the text or JSON report) go to stdout, never through the log.

namespace k3sma {

enum class Verbosity { kQuiet, kNormal, kDebug };

void setupLogging(Verbosity verbosity);

}  // namespace k3sma
