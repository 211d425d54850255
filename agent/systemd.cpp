#include "agent/systemd.h"

#include <systemd/sd-bus.h>

#include <cerrno>

#include "common/fs.h"
#include "common/handle.h"

namespace k3sma {
namespace {

constexpr const char* kDestination = "org.freedesktop.systemd1";
constexpr const char* kManagerPath = "/org/freedesktop/systemd1";
constexpr const char* kManager = "org.freedesktop.systemd1.Manager";
constexpr const char* kUnitInterface = "org.freedesktop.systemd1.Unit";

using BusPtr = Owned<sd_bus, sd_bus_flush_close_unref>;
using MessagePtr = Owned<sd_bus_message, sd_bus_message_unref>;
using SlotPtr = Owned<sd_bus_slot, sd_bus_slot_unref>;

// sd_bus_error is filled by calls and must be freed whatever happens.
class BusError {
 public:
  BusError() = default;
  BusError(const BusError&) = delete;
  BusError& operator=(const BusError&) = delete;
  ~BusError() { sd_bus_error_free(&error_); }
  sd_bus_error* get() { return &error_; }
  bool is(const char* name) const { return sd_bus_error_has_name(&error_, name) != 0; }
  // "Access denied" etc. from the error, or errno text when the call failed locally.
  std::string text(int r) const {
    if (sd_bus_error_is_set(&error_) != 0 && error_.message != nullptr) {
      return error_.message;
    }
    return errnoText(-r);
  }

 private:
  sd_bus_error error_ = SD_BUS_ERROR_NULL;
};

Error busError(const std::string& what, int r, const BusError& error) {
  std::string reason = error.text(r);
  if (error.is(SD_BUS_ERROR_ACCESS_DENIED) || r == -EACCES || r == -EPERM) {
    reason += " (run as root, or allow it in polkit)";
  }
  return {what + ": " + reason, ErrorKind::kApply};
}

// Follows one job: JobRemoved for our job path sets the result.
struct JobWatch {
  std::string path;
  std::string result;
  bool removed = false;
};

int onJobRemoved(sd_bus_message* message, void* userdata, sd_bus_error* /*error*/) {
  auto* watch = static_cast<JobWatch*>(userdata);
  uint32_t id = 0;
  const char* path = nullptr;
  const char* unit = nullptr;
  const char* result = nullptr;
  if (sd_bus_message_read(message, "uoss", &id, &path, &unit, &result) < 0) {
    return 0;  // not the signal we know; ignore rather than abort the wait
  }
  if (!watch->path.empty() && watch->path == path) {
    watch->removed = true;
    watch->result = result;
  }
  return 0;
}

class BusSystemd final : public Systemd {
 public:
  BusSystemd(BusPtr bus, Heartbeat heartbeat)
      : bus_(std::move(bus)), heartbeat_(std::move(heartbeat)) {}

  Result<UnitState> unitState(const std::string& unit) override {
    // LoadUnit answers for any name, with LoadState "not-found" when there is no such unit;
    // GetUnit would fail for units that exist but are not loaded right now.
    auto path = callForPath("ask systemd for " + unit, "LoadUnit", "s", unit.c_str());
    if (!path) {
      return path.error();
    }
    UnitState state;
    for (auto [name, field] :
         {std::pair{"LoadState", &state.load_state}, std::pair{"ActiveState", &state.active_state},
          std::pair{"SubState", &state.sub_state}}) {
      BusError property_error;
      char* value = nullptr;
      const int r = sd_bus_get_property_string(bus_.get(), kDestination, path.value().c_str(),
                                               kUnitInterface, name, property_error.get(), &value);
      Owned<char, free> owned(value);
      if (r < 0) {
        return busError("read " + std::string(name) + " of " + unit, r, property_error);
      }
      *field = value;
    }
    // Why a service last stopped (Service.Result); says "start-limit-hit" when systemd refuses
    // to start it again so soon. Only services have it, and it is only for messages.
    BusError result_error;
    char* result = nullptr;
    if (sd_bus_get_property_string(bus_.get(), kDestination, path.value().c_str(),
                                   "org.freedesktop.systemd1.Service", "Result", result_error.get(),
                                   &result) >= 0) {
      Owned<char, free> owned(result);
      state.result = result;
    }
    return state;
  }

  Result<RestartJob> tryRestart(const std::string& unit,
                                std::chrono::steady_clock::time_point deadline) override {
    // Subscribe first, then watch JobRemoved, then start the job: a job that ends quickly
    // cannot end before we listen.
    BusError error;
    int r = sd_bus_call_method(bus_.get(), kDestination, kManagerPath, kManager, "Subscribe",
                               error.get(), nullptr, "");
    if (r < 0 && !error.is("org.freedesktop.systemd1.AlreadySubscribed")) {
      return busError("subscribe to systemd's job signals", r, error);
    }
    JobWatch watch;
    sd_bus_slot* raw_slot = nullptr;
    r = sd_bus_match_signal(bus_.get(), &raw_slot, kDestination, kManagerPath, kManager,
                            "JobRemoved", onJobRemoved, &watch);
    SlotPtr slot(raw_slot);
    if (r < 0) {
      return busError("watch systemd's JobRemoved signal", r, error);
    }
    auto job = callForPath("restart " + unit, "TryRestartUnit", "ss", unit.c_str(), "replace");
    if (!job) {
      return job.error();
    }
    watch.path = job.value();
    // From here on the restart is queued: failures are results, not errors.
    while (!watch.removed) {
      r = sd_bus_process(bus_.get(), nullptr);
      if (r < 0) {
        return RestartJob{"lost", "follow the restart job of " + unit + ": " + errnoText(-r)};
      }
      if (r > 0) {
        continue;  // processed something; there may be more queued
      }
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) {
        return RestartJob{"deadline", ""};
      }
      // Waits in slices of at most kHeartbeatEvery so a daemon can tell the watchdog it lives.
      const auto left = std::min<std::chrono::microseconds>(
          std::chrono::duration_cast<std::chrono::microseconds>(deadline - now), kHeartbeatEvery);
      if (heartbeat_) {
        heartbeat_();
      }
      r = sd_bus_wait(bus_.get(), static_cast<uint64_t>(left.count()));
      if (r < 0 && r != -EINTR) {
        return RestartJob{"lost", "wait for the restart job of " + unit + ": " + errnoText(-r)};
      }
    }
    return RestartJob{watch.result, ""};
  }

 private:
  // Calls a Manager method whose answer is one object path (LoadUnit, TryRestartUnit).
  template <class... Args>
  Result<std::string> callForPath(const std::string& what, const char* method, const char* types,
                                  Args... args) {
    BusError error;
    sd_bus_message* raw = nullptr;
    int r = sd_bus_call_method(bus_.get(), kDestination, kManagerPath, kManager, method,
                               error.get(), &raw, types, args...);
    MessagePtr reply(raw);
    if (r < 0) {
      return busError(what, r, error);
    }
    const char* path = nullptr;
    r = sd_bus_message_read(reply.get(), "o", &path);
    if (r < 0) {
      return busError("read systemd's answer to " + what, r, error);
    }
    return std::string(path);
  }

  BusPtr bus_;
  Heartbeat heartbeat_;
};

}  // namespace

Result<std::unique_ptr<Systemd>> connectSystemd(Heartbeat heartbeat) {
  sd_bus* raw = nullptr;
  int r = sd_bus_open_system(&raw);
  BusPtr bus(raw);
  if (r < 0) {
    std::string hint = r == -ENOENT || r == -ECONNREFUSED
                           ? " (is systemd running? DBUS_SYSTEM_BUS_ADDRESS names the bus)"
                           : "";
    if (r == -EACCES || r == -EPERM) {
      hint = " (run as root)";
    }
    return Error{"connect to the system bus: " + errnoText(-r) + hint, ErrorKind::kApply};
  }
  return std::unique_ptr<Systemd>(
      std::make_unique<BusSystemd>(std::move(bus), std::move(heartbeat)));
}

}  // namespace k3sma
