#include "common/duration.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace k3sma {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

struct Spelling {
  std::string text;
  Duration expected;
};

TEST(ParseDuration, ReadsEveryUnitAndTheirCombinations) {
  const std::vector<Spelling> cases = {
      {"0", Duration{0}},
      {"500ms", milliseconds(500)},
      {"2s", seconds(2)},
      {"5m", minutes(5)},
      {"1h", hours(1)},
      {"1m30s", minutes(1) + seconds(30)},
      {"1h2m3s4ms", hours(1) + minutes(2) + seconds(3) + milliseconds(4)},
      {"1h30m", hours(1) + minutes(30)},
      {"2m500ms", minutes(2) + milliseconds(500)},
      {"0s", Duration{0}},
      {"120s", seconds(120)},
      {"90m", minutes(90)},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    const auto parsed = parseDuration(c.text);
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(*parsed, c.expected);
  }
}

TEST(ParseDuration, TellsMillisecondsFromMinutes) {
  EXPECT_EQ(parseDuration("5ms"), milliseconds(5));
  EXPECT_EQ(parseDuration("5m"), minutes(5));
  EXPECT_EQ(parseDuration("5m5ms"), minutes(5) + milliseconds(5));
}

TEST(ParseDuration, RefusesTextThatIsNotADuration) {
  const std::vector<std::string> cases = {
      "",         // nothing
      "2",        // a number without a unit (only a bare 0 may go without one)
      "ms",       // a unit without a number
      "s",        //
      "1.5s",     // fractions
      "-1s",      // negative
      "+1s",      // signs at all
      "1s2m",     // units out of order
      "1s1s",     // a unit twice
      "1m1h",     //
      " 2s",      // surrounding space
      "2s ",      //
      "2 s",      // inner space
      "2S",       // upper case
      "2H",       //
      "2d",       // units Go does not have either
      "2us",      // units finer than the config needs
      "2sec",     // spelled out
      "1m30",     // a trailing number without a unit
      "00",       // only "0" itself is unit-less
      "1h 30m",   //
      "0x10s",    //
      "2s\n",     //
      "1e3ms",    //
      "1_000ms",  //
  };
  for (const auto& text : cases) {
    SCOPED_TRACE("\"" + text + "\"");
    EXPECT_FALSE(parseDuration(text).has_value());
  }
}

TEST(ParseDuration, RefusesNumbersTooLargeToBeMeant) {
  EXPECT_FALSE(parseDuration("10000000000s").has_value());
  EXPECT_FALSE(parseDuration("99999999999999999999s").has_value());
  EXPECT_FALSE(parseDuration("18446744073709551617ms").has_value());  // 2^64 + 1: no wrap-around
  EXPECT_FALSE(parseDuration("9223372036854775808h").has_value());    // 2^63
}

// The limit is a billion seconds (31 years) of total duration, whatever the unit: a limit on the
// number alone would let 999999999h (114 000 years) through, and durations are added to
// std::chrono::steady_clock::now() (restart_timeout in agent/apply.cpp), whose nanoseconds
// overflow past 292 years.
TEST(ParseDuration, RefusesDurationsLongerThanThirtyOneYearsWhateverTheUnit) {
  EXPECT_FALSE(parseDuration("999999999h").has_value());
  EXPECT_FALSE(parseDuration("3000000h").has_value());    // 342 years: overflows nanoseconds
  EXPECT_FALSE(parseDuration("999999999m").has_value());  // 1 900 years
}

TEST(ParseDuration, AcceptsUpToABillionSeconds) {
  EXPECT_EQ(parseDuration("1000000000s"), seconds(1'000'000'000));
  EXPECT_FALSE(parseDuration("1000000001s").has_value());
  EXPECT_EQ(parseDuration("277777h46m40s"), seconds(1'000'000'000));
  EXPECT_FALSE(parseDuration("277777h46m40s1ms").has_value());
}

}  // namespace
}  // namespace k3sma
