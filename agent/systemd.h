#pragma once
// What the agent needs from systemd, over its D-Bus API (sd-bus): a unit's state, and
// "restart it if it is running, and tell me how the job ended". Not a mirror of sd-bus: the
// waiting for "active and stays active" lives in restart.cpp, over this small interface, so it
// can be tested with a fake and a fake clock; the real client runs against a booted systemd.

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "common/error.h"

namespace k3sma {

struct UnitState {
  std::string load_state;    // loaded, not-found, masked, error, ...
  std::string active_state;  // active, activating, deactivating, inactive, failed, reloading
  std::string sub_state;     // running, start, dead, auto-restart, ...
  std::string result;        // a service's Result: success, exit-code, start-limit-hit, ...

  bool loaded() const { return load_state == "loaded"; }
  bool running() const {
    return active_state == "active" || active_state == "activating" || active_state == "reloading";
  }
};

// A restart job systemd accepted, and how it ended: "done", "failed", "timeout", "canceled",
// "dependency", "skipped"; "deadline" when our deadline passed first; "lost" when following it
// failed (error says why).
struct RestartJob {
  std::string result;
  std::string error;
};

class Systemd {
 public:
  virtual ~Systemd() = default;
  // The unit's state; a unit systemd does not know reads as load_state "not-found".
  virtual Result<UnitState> unitState(const std::string& unit) = 0;
  // TryRestartUnit(unit, "replace") — a stopped unit stays stopped — and follows the job until
  // systemd removes it (JobRemoved) or the deadline passes. An error means systemd did not
  // queue the restart (refused, no bus): the unit was not touched.
  virtual Result<RestartJob> tryRestart(const std::string& unit,
                                        std::chrono::steady_clock::time_point deadline) = 0;
};

// Called at least every kHeartbeatEvery while a wait blocks (a restart job, a settle sleep), so
// the daemon can ping systemd's watchdog through a restart that takes minutes.
using Heartbeat = std::function<void()>;
inline constexpr std::chrono::seconds kHeartbeatEvery{1};

// The system bus ($DBUS_SYSTEM_BUS_ADDRESS when set, as sd-bus reads it). An error says whether
// the bus is missing or access was denied.
Result<std::unique_ptr<Systemd>> connectSystemd(Heartbeat heartbeat = {});

}  // namespace k3sma
