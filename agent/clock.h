#pragma once
// Time, the one side effect every wait and every certificate check has: steady time for
// deadlines and sleeps (restart.cpp's "active and stays active", the daemon's settle), wall time
// for what is dated (a certificate's notAfter, a probe's timestamp). Behind an interface so the
// unit tests drive both with a fake that advances only when something sleeps.

#include <chrono>

namespace k3sma {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::chrono::steady_clock::time_point now() = 0;
  virtual std::chrono::system_clock::time_point wallNow() = 0;
  virtual void sleepFor(std::chrono::milliseconds d) = 0;
};

class RealClock final : public Clock {
 public:
  std::chrono::steady_clock::time_point now() override;
  std::chrono::system_clock::time_point wallNow() override;
  void sleepFor(std::chrono::milliseconds d) override;
};

}  // namespace k3sma
