#include "agent/clock.h"

#include <thread>

namespace k3sma {

std::chrono::steady_clock::time_point RealClock::now() { return std::chrono::steady_clock::now(); }

std::chrono::system_clock::time_point RealClock::wallNow() {
  return std::chrono::system_clock::now();
}

void RealClock::sleepFor(std::chrono::milliseconds d) { std::this_thread::sleep_for(d); }

}  // namespace k3sma
