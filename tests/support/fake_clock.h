#pragma once
// The unit tests' clock: time passes only when something sleeps, so a 2 s settle or a
// 10 s restart deadline takes no real time. Its wall time starts where the test says (the day
// its certificates are checked against) and moves with the steady time.

#include <chrono>

#include "agent/clock.h"

namespace k3sma::testing {

class FakeClock final : public Clock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  explicit FakeClock(std::chrono::system_clock::time_point wall_start = {})
      : wall_start_(wall_start) {}

  TimePoint now() override { return now_; }
  std::chrono::system_clock::time_point wallNow() override {
    return wall_start_ +
           std::chrono::duration_cast<std::chrono::system_clock::duration>(now_ - start());
  }
  void sleepFor(std::chrono::milliseconds d) override { now_ += d; }

  // The steady time the clock started at.
  TimePoint start() const { return TimePoint{}; }

 private:
  std::chrono::system_clock::time_point wall_start_;
  TimePoint now_{};
};

}  // namespace k3sma::testing
