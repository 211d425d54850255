#pragma once
// `k3s-mirror-agent run`, the daemon (README.md, "The daemon"): applies at start, then READY=1;
// applies a config change after a debounce (a burst of writes: one apply, at most one restart);
// puts back, or only reports, a managed file edited by hand; waits a random splay before a
// restart so a fleet given one config does not restart together; probes the cache on an
// interval; SIGHUP applies, SIGTERM stops cleanly. One sd-event loop, one thread:
// inotify on the config and the managed files, SIGTERM/SIGINT/SIGHUP, one-shot timers for the
// debounce and the splay, an interval timer for the cache probe, and sd-event's own watchdog
// pings. Every apply goes through the same engine as `apply` (agent/apply.h). What it decides
// is in daemon_rules.h; what it reports is in status.h.

#include "agent/apply.h"

namespace k3sma {

// Runs until SIGTERM or SIGINT: 0 after a clean stop, 2 when the loop could not be set up
// (the message says what).
int runDaemon(const ApplyOptions& options, Deps& deps);

}  // namespace k3sma
