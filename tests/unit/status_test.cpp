// What the daemon tells about the node: the STATUS= line, status.json, the Prometheus textfile,
// and what `k3s-mirror-agent status` prints from them.
#include "agent/status.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/log.h"
#include "version.h"

namespace k3sma {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;
using Json = nlohmann::json;

// 2026-11-29T07:00:00Z, and seconds after it.
SystemTime at(std::chrono::seconds after = 0s) {
  return std::chrono::sys_days{std::chrono::year{2026} / 11 / 29} + 7h + after;
}

constexpr const char* kSha = "3f0c5e2a9b1d4c7e8f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e";
constexpr const char* kCacheDown = "connect harbor.home.lab:443: Connection refused";

// A daemon that started, applied once (restarting k3s) and probed a healthy cache.
DaemonStatus upToDate() {
  DaemonStatus s;
  s.pid = 4242;
  s.started = at();
  s.config_path = "/etc/k3s-mirror-agent/config.yaml";
  s.config_sha256 = kSha;
  s.cache_url = "https://harbor.home.lab";
  s.mirrors = 3;
  ApplyRecord apply;
  apply.time = at(5s);
  apply.trigger = "start";
  apply.changed = true;
  apply.restarted = "k3s.service";
  apply.actions = {"write /etc/rancher/k3s/registries.yaml",
                   "write /usr/local/share/ca-certificates/k3s-mirror-agent/harbor.home.lab.crt",
                   "restart k3s.service"};
  s.last_apply = apply;
  s.applies = 1;
  s.evaluations = 2;  // the start apply, then the look at the events its own writes raised
  s.restarts = 1;
  CacheHealth cache;
  cache.checked = at(60s);
  cache.probe.up = true;
  cache.probe.latency = 12ms;
  cache.probe.http_status = 401;
  cache.probe.certificate_days_left = 40;
  s.cache = cache;
  return s;
}

// A daemon that has only just started: nothing loaded, applied or probed yet.
DaemonStatus justStarted() {
  DaemonStatus s;
  s.pid = 4242;
  s.started = at();
  s.config_path = "/etc/k3s-mirror-agent/config.yaml";
  return s;
}

CacheHealth cacheDown() {
  CacheHealth cache;
  cache.checked = at(60s);
  cache.probe.up = false;
  cache.probe.error = kCacheDown;
  return cache;
}

Json parsed(const DaemonStatus& s) {
  const std::string text = statusJson(s);
  EXPECT_TRUE(Json::accept(text)) << text;
  return Json::parse(text, nullptr, /*allow_exceptions=*/false);
}

std::set<std::string> keysOf(const Json& object) {
  std::set<std::string> keys;
  for (const auto& [key, value] : object.items()) {
    keys.insert(key);
  }
  return keys;
}

// ---------------------------------------------------------------------------------------------
// isoTime

TEST(IsoTime, WritesUtcWithASecondsResolutionAndAZ) {
  EXPECT_EQ(isoTime(at()), "2026-11-29T07:00:00Z");
  EXPECT_EQ(isoTime(at(3661s)), "2026-11-29T08:01:01Z");
  EXPECT_EQ(isoTime(SystemTime{}), "1970-01-01T00:00:00Z");
}

TEST(IsoTime, DropsTheFractionOfASecondInsteadOfRoundingUp) {
  // 07:00:00.999 has not reached 07:00:01 yet.
  EXPECT_EQ(isoTime(at() + 999ms), "2026-11-29T07:00:00Z");
}

// ---------------------------------------------------------------------------------------------
// statusLine

TEST(StatusLine, SaysStartingBeforeAnything) { EXPECT_EQ(statusLine(justStarted()), "starting"); }

// Started unconfigured, then given a config the node already matched: no apply ran, and the
// node is in line with the config all the same.
TEST(StatusLine, SaysUpToDateWhenALoadedConfigNeededNoApply) {
  DaemonStatus s = justStarted();
  s.cache_url = "https://harbor.home.lab";
  s.mirrors = 2;
  EXPECT_EQ(statusLine(s), "up to date: 2 mirrors through https://harbor.home.lab");
}

TEST(StatusLine, SaysUpToDateWithTheMirrorsAndTheCachesHealth) {
  EXPECT_EQ(statusLine(upToDate()),
            "up to date: 3 mirrors through https://harbor.home.lab; "
            "cache up (12 ms, certificate expires in 40 days)");
}

TEST(StatusLine, CountsOneMirrorInTheSingular) {
  DaemonStatus s = upToDate();
  s.mirrors = 1;
  s.cache.reset();
  EXPECT_EQ(statusLine(s), "up to date: 1 mirror through https://harbor.home.lab");
}

TEST(StatusLine, LeavesOutTheCertificateWhenTlsDidNotGetThatFar) {
  DaemonStatus s = upToDate();
  s.cache->probe.certificate_days_left.reset();
  EXPECT_EQ(statusLine(s),
            "up to date: 3 mirrors through https://harbor.home.lab; cache up (12 ms)");
}

TEST(StatusLine, SaysWhyTheCacheIsDown) {
  DaemonStatus s = upToDate();
  s.cache = cacheDown();
  EXPECT_EQ(statusLine(s), "up to date: 3 mirrors through https://harbor.home.lab; cache down: " +
                               std::string(kCacheDown));
}

TEST(StatusLine, ABrokenConfigComesFirstAndSaysTheNodeWasLeftAlone) {
  DaemonStatus s = upToDate();  // the last apply's "up to date" is stale now
  s.config_error = "/etc/k3s-mirror-agent/config.yaml:3: mirrors: must not be empty";
  s.held_back = "the last apply failed";
  s.drifted = {"/etc/rancher/k3s/registries.yaml"};
  EXPECT_EQ(statusLine(s),
            "cannot apply, node left as it was: /etc/k3s-mirror-agent/config.yaml:3: mirrors: "
            "must not be empty; cache up (12 ms, certificate expires in 40 days)");
}

TEST(StatusLine, SaysWhyAFailedApplyIsHeldBack) {
  DaemonStatus s = upToDate();
  s.cache.reset();
  s.held_back = "the last apply failed (k3s.service did not stay active); not retrying";
  s.drifted = {"/etc/rancher/k3s/registries.yaml"};
  EXPECT_EQ(statusLine(s), *s.held_back);
}

TEST(StatusLine, NamesTheDriftedFilesWhenDriftIsOnlyReported) {
  DaemonStatus s = upToDate();
  s.cache.reset();
  s.drift = DriftPolicy::kReport;
  s.drifted = {"/etc/rancher/k3s/registries.yaml",
               "/usr/local/share/ca-certificates/k3s-mirror-agent/harbor.home.lab.crt"};
  EXPECT_EQ(statusLine(s),
            "drift (drift: report, not corrected): /etc/rancher/k3s/registries.yaml, "
            "/usr/local/share/ca-certificates/k3s-mirror-agent/harbor.home.lab.crt differ from "
            "the config");
}

TEST(StatusLine, SaysWhatTheDaemonIsBusyWith) {
  DaemonStatus s = upToDate();
  s.doing = "waiting 12s (splay) before applying a change that restarts k3s";
  EXPECT_EQ(statusLine(s),
            "waiting 12s (splay) before applying a change that restarts k3s; "
            "cache up (12 ms, certificate expires in 40 days)");
}

TEST(StatusLine, AStoppedDaemonSaysOnlyThat) {
  // The cache's health would be stale by the time anyone reads it.
  DaemonStatus s = upToDate();
  s.stopped = true;
  s.doing = "applying the config (config)";
  s.config_error = "broken";
  EXPECT_EQ(statusLine(s), "stopped");
}

// What common/config.cpp says about the package's example config, all comments.
constexpr const char* kNotConfigured =
    "/etc/k3s-mirror-agent/config.yaml: not configured yet: set registry.url and mirrors (the "
    "file shows how; man k3s-mirror-agent.yaml)";

// A daemon started on the package's example config: nothing to apply until someone fills it in.
DaemonStatus unconfigured() {
  DaemonStatus s = justStarted();
  s.config_error = kNotConfigured;
  s.unconfigured = true;
  return s;
}

TEST(StatusLine, AnUnconfiguredDaemonSaysItIdlesAndWhy) {
  EXPECT_EQ(statusLine(unconfigured()), std::string("idle: ") + kNotConfigured);
}

TEST(StatusLine, AnUnconfiguredDaemonStillGivesTheCachesHealth) {
  DaemonStatus s = unconfigured();
  s.cache = cacheDown();
  EXPECT_THAT(statusLine(s), ::testing::StartsWith("idle: "));
  EXPECT_THAT(statusLine(s), ::testing::EndsWith("; cache down: " + std::string(kCacheDown)));
}

TEST(StatusLine, OnlyANotConfiguredYetConfigIsIdleAnyOtherErrorIsNot) {
  DaemonStatus s = unconfigured();
  s.unconfigured = false;  // the same text, as any other config error
  EXPECT_EQ(statusLine(s), std::string("cannot apply, node left as it was: ") + kNotConfigured);
}

// ---------------------------------------------------------------------------------------------
// statusJson

TEST(StatusJson, IsOneJsonObjectEndingInANewline) {
  const std::string text = statusJson(upToDate());
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  EXPECT_TRUE(parsed(upToDate()).is_object());
}

TEST(StatusJson, HoldsExactlyTheDocumentedFieldsSoNothingElseCanLeak) {
  // status.json is 0644: any field beyond these would be one more place a secret could end up.
  const Json j = parsed(upToDate());
  EXPECT_EQ(keysOf(j), (std::set<std::string>{
                           "version", "pid", "running", "started", "status", "config", "cache_url",
                           "mirrors", "last_apply", "applies", "evaluations", "busy", "restarts",
                           "reloads", "drift", "held_back", "cache", "probe_enabled"}));
  EXPECT_EQ(keysOf(j["config"]), (std::set<std::string>{"path", "sha256", "valid", "error"}));
  EXPECT_EQ(keysOf(j["last_apply"]),
            (std::set<std::string>{"time", "trigger", "changed", "restarted", "reload",
                                   "rolled_back", "actions", "error"}));
  EXPECT_EQ(keysOf(j["reloads"]), (std::set<std::string>{"hot", "restart"}));
  EXPECT_EQ(keysOf(j["drift"]), (std::set<std::string>{"policy", "corrections", "files"}));
  EXPECT_EQ(keysOf(j["cache"]),
            (std::set<std::string>{"checked", "up", "latency_ms", "http_status",
                                   "certificate_days_left", "error", "images"}));
}

// verify.images as the daemon probes them: status.json, STATUS= and the textfile.
DaemonStatus withImages() {
  DaemonStatus s = upToDate();
  ImageResult up;
  up.image = "docker.io/library/busybox:1.36";
  up.url = "https://harbor.home.lab/v2/dockerhub-proxy/library/busybox/manifests/1.36";
  up.up = true;
  up.http_status = 200;
  up.digest = "sha256:" + std::string(64, 'b');
  up.latency = std::chrono::milliseconds(25);
  ImageResult down = up;
  down.image = "docker.io/library/busybox:9.99";
  down.up = false;
  down.http_status = 404;
  down.error = "resolve docker.io/library/busybox:9.99 at u: HTTP 404 MANIFEST_UNKNOWN";
  s.cache->images = {up, down};
  return s;
}

TEST(StatusJson, ListsEveryImageWithTheFieldsOfCheckProbe) {
  const Json j = parsed(withImages());
  ASSERT_EQ(j["cache"]["images"].size(), 2u);
  const Json& up = j["cache"]["images"][0];
  EXPECT_EQ(keysOf(up), (std::set<std::string>{"image", "url", "up", "http_status", "digest",
                                               "latency_ms", "error"}));
  EXPECT_EQ(up["digest"], "sha256:" + std::string(64, 'b'));
  EXPECT_EQ(up["latency_ms"], 25);
  EXPECT_TRUE(up["error"].is_null());
  const Json& down = j["cache"]["images"][1];
  EXPECT_EQ(down["up"], false);
  EXPECT_TRUE(down["digest"].is_null());
  EXPECT_EQ(down["http_status"], 404);
}

TEST(StatusLine, CountsTheImagesThatResolveAndSaysWhyOneDoesNot) {
  EXPECT_EQ(statusLine(withImages()),
            "up to date: 3 mirrors through https://harbor.home.lab; cache up (12 ms, certificate "
            "expires in 40 days), images 1/2 resolve: resolve docker.io/library/busybox:9.99 at u: "
            "HTTP 404 MANIFEST_UNKNOWN");
}

TEST(Metrics, HasOneImageUpAndLatencySamplePerImageUnderOneTypeLine) {
  const std::string text = metricsText(withImages());
  EXPECT_THAT(text,
              HasSubstr("# TYPE k3s_mirror_agent_image_up gauge\n"
                        "k3s_mirror_agent_image_up{image=\"docker.io/library/busybox:1.36\"} 1\n"
                        "k3s_mirror_agent_image_up{image=\"docker.io/library/busybox:9.99\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("k3s_mirror_agent_image_latency_seconds{image=\"docker.io/library/"
                              "busybox:1.36\"} 0.025\n"));
}

TEST(StatusJson, WritesEveryFieldOfARunningUpToDateDaemon) {
  const Json j = parsed(upToDate());
  EXPECT_EQ(j["version"], kVersion);
  EXPECT_EQ(j["pid"], 4242);
  EXPECT_EQ(j["running"], true);
  EXPECT_EQ(j["started"], "2026-11-29T07:00:00Z");
  EXPECT_EQ(j["status"], statusLine(upToDate()));
  EXPECT_EQ(j["config"]["path"], "/etc/k3s-mirror-agent/config.yaml");
  EXPECT_EQ(j["config"]["sha256"], kSha);
  EXPECT_EQ(j["config"]["valid"], true);
  EXPECT_TRUE(j["config"]["error"].is_null());
  EXPECT_EQ(j["cache_url"], "https://harbor.home.lab");
  EXPECT_EQ(j["mirrors"], 3);
  EXPECT_EQ(j["applies"], 1);
  EXPECT_EQ(j["evaluations"], 2);
  EXPECT_EQ(j["busy"], false);
  EXPECT_EQ(j["restarts"], 1);
  EXPECT_TRUE(j["held_back"].is_null());
  EXPECT_EQ(j["probe_enabled"], true);

  const Json& a = j["last_apply"];
  EXPECT_EQ(a["time"], "2026-11-29T07:00:05Z");
  EXPECT_EQ(a["trigger"], "start");
  EXPECT_EQ(a["changed"], true);
  EXPECT_EQ(a["restarted"], "k3s.service");
  EXPECT_EQ(a["rolled_back"], false);
  EXPECT_EQ(a["actions"], Json(upToDate().last_apply->actions));
  EXPECT_TRUE(a["error"].is_null());

  EXPECT_EQ(j["drift"], Json::parse(R"({"policy": "correct", "corrections": 0, "files": []})"));

  const Json& c = j["cache"];
  EXPECT_EQ(c["checked"], "2026-11-29T07:01:00Z");
  EXPECT_EQ(c["up"], true);
  EXPECT_EQ(c["latency_ms"], 12);
  EXPECT_EQ(c["http_status"], 401);
  EXPECT_EQ(c["certificate_days_left"], 40);
  EXPECT_TRUE(c["error"].is_null());  // a stale error from an earlier probe would mislead
}

TEST(StatusJson, UsesNullForWhatIsNotKnownYet) {
  const Json j = parsed(justStarted());
  EXPECT_EQ(j["status"], "starting");
  EXPECT_TRUE(j["config"]["sha256"].is_null());
  EXPECT_TRUE(j["config"]["error"].is_null());
  EXPECT_EQ(j["config"]["valid"], true);
  EXPECT_TRUE(j["cache_url"].is_null());
  EXPECT_EQ(j["mirrors"], 0);
  EXPECT_TRUE(j["last_apply"].is_null());
  EXPECT_TRUE(j["held_back"].is_null());
  EXPECT_TRUE(j["cache"].is_null());
  EXPECT_EQ(j["applies"], 0);
  EXPECT_EQ(j["evaluations"], 0);
}

// What a script waits on after a change: evaluations past the value it read before, busy false.
TEST(StatusJson, SaysWhileAnEvaluationIsPendingAndHowManyFinished) {
  DaemonStatus s = upToDate();
  s.busy = true;  // the debounce is armed: the change is seen, not yet dealt with
  EXPECT_EQ(parsed(s)["busy"], true);
  EXPECT_EQ(parsed(s)["evaluations"], 2);
  s.busy = false;
  s.evaluations = 3;
  EXPECT_EQ(parsed(s)["busy"], false);
  EXPECT_EQ(parsed(s)["evaluations"], 3);
}

TEST(StatusJson, SaysWhyTheConfigIsInvalid) {
  DaemonStatus s = upToDate();
  s.config_error = "/etc/k3s-mirror-agent/config.yaml:2: registry.url: must be https:// or http://";
  const Json j = parsed(s);
  EXPECT_EQ(j["config"]["valid"], false);
  EXPECT_EQ(j["config"]["error"], *s.config_error);
  EXPECT_EQ(j["config"]["sha256"], kSha);  // of the last config that loaded
}

TEST(StatusJson, AnUnconfiguredDaemonHasNoValidConfigAndIdles) {
  const Json j = parsed(unconfigured());
  EXPECT_EQ(j["config"]["valid"], false);
  EXPECT_EQ(j["config"]["error"], kNotConfigured);
  EXPECT_TRUE(j["config"]["sha256"].is_null());
  EXPECT_EQ(j["status"], std::string("idle: ") + kNotConfigured);
}

TEST(StatusJson, RecordsAFailedRolledBackApplyAndWhyItIsHeldBack) {
  DaemonStatus s = upToDate();
  s.last_apply->trigger = "config";
  s.last_apply->changed = false;
  s.last_apply->rolled_back = true;
  s.last_apply->restarted.reset();
  s.last_apply->error = "k3s.service did not stay active";
  s.held_back = "the last apply failed; not retrying the same change";
  const Json j = parsed(s);
  EXPECT_EQ(j["last_apply"]["rolled_back"], true);
  EXPECT_TRUE(j["last_apply"]["restarted"].is_null());
  EXPECT_EQ(j["last_apply"]["error"], "k3s.service did not stay active");
  EXPECT_EQ(j["held_back"], *s.held_back);
}

TEST(StatusJson, DescribesADownCacheWithItsError) {
  DaemonStatus s = upToDate();
  s.cache = cacheDown();
  const Json j = parsed(s);
  const Json& c = j["cache"];
  EXPECT_EQ(c["up"], false);
  EXPECT_EQ(c["error"], kCacheDown);
  EXPECT_EQ(c["http_status"], 0);
  EXPECT_TRUE(c["certificate_days_left"].is_null());
}

TEST(StatusJson, ListsTheDriftedFilesAndThePolicy) {
  DaemonStatus s = upToDate();
  s.drift = DriftPolicy::kReport;
  s.drift_corrections = 2;
  s.drifted = {"/etc/rancher/k3s/registries.yaml"};
  EXPECT_EQ(parsed(s)["drift"], Json::parse(R"({"policy": "report", "corrections": 2,
                                                "files": ["/etc/rancher/k3s/registries.yaml"]})"));
}

TEST(StatusJson, AStoppedDaemonIsNotRunning) {
  DaemonStatus s = upToDate();
  s.stopped = true;
  const Json j = parsed(s);
  EXPECT_EQ(j["running"], false);
  EXPECT_EQ(j["status"], "stopped");
}

TEST(StatusJson, EscapesWhatAnErrorMessageCarries) {
  DaemonStatus s = upToDate();
  s.config_error = "config.yaml:3: \"mirrors\": bad\tvalue\\ here\nand more";
  EXPECT_EQ(parsed(s)["config"]["error"], *s.config_error);
}

TEST(StatusJson, NeverAbortsOnBytesThatAreNotUtf8) {
  DaemonStatus s = upToDate();
  s.config_error = "read config /etc/k3s-mirror-agent/config.d/\xff\xfe.yaml: bogus";
  const Json j = parsed(s);  // statusJson threw (exit 134) before
  EXPECT_EQ(j["config"]["error"],
            "read config /etc/k3s-mirror-agent/config.d/\xef\xbf\xbd\xef\xbf\xbd.yaml: bogus");
}

// Every log message passes through printable(): one line, no terminal escape, valid UTF-8.
TEST(Printable, EscapesControlCharactersAndInvalidBytesAndKeepsUtf8) {
  EXPECT_EQ(printable("caf\xc3\xa9 \xe2\x9c\x93"), "caf\xc3\xa9 \xe2\x9c\x93");
  EXPECT_EQ(printable("a\nb\tc\rd"), "a\\nb\\tc\\rd");
  EXPECT_EQ(printable("\x1b[2J"), "\\x1b[2J");
  EXPECT_EQ(printable(std::string("x\0y", 3)), "x\\x00y");
  EXPECT_EQ(printable("\xff\xc0\xaf"), "\\xff\\xc0\\xaf");  // invalid, overlong
  EXPECT_EQ(printable("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // a surrogate
  EXPECT_EQ(printable("\xc2\x9b"), "\\xc2\\x9b");           // C1 CSI
  EXPECT_EQ(printable("\xe2\x9c"), "\\xe2\\x9c");           // cut short
}

// ---------------------------------------------------------------------------------------------
// metricsText

struct Metric {
  int helps = 0;
  int types = 0;
  std::string type;
  std::vector<std::string> samples;  // the lines after the name: labels, a space, the value
};

// Reads the exposition format back, failing on any line that is not one of its three kinds.
std::map<std::string, Metric> readMetrics(const std::string& text) {
  std::map<std::string, Metric> metrics;
  EXPECT_TRUE(!text.empty() && text.back() == '\n') << "the last line must end in a newline";
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
      const std::string rest = line.substr(7);
      const auto space = rest.find(' ');
      EXPECT_NE(space, std::string::npos) << line;
      const std::string name = rest.substr(0, space);
      EXPECT_TRUE(metrics[name].samples.empty()) << name << ": HELP and TYPE come before samples";
      if (line[2] == 'H') {
        ++metrics[name].helps;
        EXPECT_GT(rest.size(), space + 1) << name << " has an empty HELP";
      } else {
        ++metrics[name].types;
        metrics[name].type = rest.substr(space + 1);
      }
      continue;
    }
    const auto end = line.find_first_of("{ ");
    EXPECT_NE(end, std::string::npos) << line;
    EXPECT_NE(line.front(), '#') << "a comment that is neither HELP nor TYPE: " << line;
    const std::string name = line.substr(0, end);
    EXPECT_TRUE(metrics.contains(name)) << name << " has no HELP or TYPE before it";
    metrics[name].samples.push_back(line.substr(end));
  }
  return metrics;
}

// The one sample of a metric without labels: its value.
std::string valueOf(const std::map<std::string, Metric>& metrics, const std::string& name) {
  auto it = metrics.find("k3s_mirror_agent_" + name);
  if (it == metrics.end() || it->second.samples.size() != 1) {
    ADD_FAILURE() << name << " is missing or has more than one sample";
    return {};
  }
  const std::string& sample = it->second.samples[0];
  EXPECT_EQ(sample.front(), ' ') << name << " has labels";
  return sample.substr(1);
}

TEST(MetricsText, PrefixesEveryMetricAndGivesEachOneHelpAndType) {
  for (const DaemonStatus& s : {upToDate(), justStarted()}) {
    for (const auto& [name, metric] : readMetrics(metricsText(s))) {
      SCOPED_TRACE(name);
      EXPECT_EQ(name.rfind("k3s_mirror_agent_", 0), 0u);
      EXPECT_EQ(name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_"), std::string::npos);
      EXPECT_EQ(metric.helps, 1);
      EXPECT_EQ(metric.types, 1);
      // reloads_total is one family with a sample per kind.
      EXPECT_EQ(metric.samples.size(), name == "k3s_mirror_agent_reloads_total" ? 2u : 1u);
      // Counters end in _total, and only counters do.
      const bool total = name.size() > 6 && name.substr(name.size() - 6) == "_total";
      EXPECT_EQ(metric.type, total ? "counter" : "gauge");
    }
  }
}

TEST(MetricsText, GivesTheValuesOfARunningDaemon) {
  DaemonStatus s = upToDate();
  s.applies = 7;
  s.restarts = 2;
  s.hot_reloads = 3;
  s.drift_corrections = 1;
  const auto m = readMetrics(metricsText(s));
  EXPECT_EQ(valueOf(m, "config_valid"), "1");
  EXPECT_EQ(valueOf(m, "last_apply_timestamp_seconds"), "1795935605");
  EXPECT_EQ(valueOf(m, "last_apply_success"), "1");
  EXPECT_EQ(valueOf(m, "applies_total"), "7");
  EXPECT_EQ(valueOf(m, "restarts_total"), "2");
  const auto& reloads = m.at("k3s_mirror_agent_reloads_total").samples;
  EXPECT_EQ(reloads, (std::vector<std::string>{"{kind=\"hot\"} 3", "{kind=\"restart\"} 2"}));
  EXPECT_EQ(valueOf(m, "drift_corrections_total"), "1");
  EXPECT_EQ(valueOf(m, "drift_files"), "0");
  EXPECT_EQ(valueOf(m, "cache_up"), "1");
  EXPECT_EQ(valueOf(m, "cache_probe_timestamp_seconds"), "1795935660");
  EXPECT_EQ(valueOf(m, "cache_probe_latency_seconds"), "0.012");  // seconds, not milliseconds
  EXPECT_EQ(valueOf(m, "cache_certificate_days_left"), "40");
}

TEST(MetricsText, KeepsTheFractionOfATimestamp) {
  DaemonStatus s = upToDate();
  s.last_apply->time = at(5s) + 250ms;
  EXPECT_EQ(valueOf(readMetrics(metricsText(s)), "last_apply_timestamp_seconds"), "1795935605.25");
}

TEST(MetricsText, LabelsTheInfoMetricWithTheVersionQuoted) {
  const auto m = readMetrics(metricsText(upToDate()));
  ASSERT_TRUE(m.contains("k3s_mirror_agent_info"));
  EXPECT_EQ(m.at("k3s_mirror_agent_info").samples,
            std::vector<std::string>{"{version=\"" + std::string(kVersion) + "\"} 1"});
  // The version is the only label value; it has nothing that needs escaping, and if it ever did
  // the line above would show it unescaped.
  EXPECT_EQ(std::string(kVersion).find_first_of("\\\"\n"), std::string::npos);
}

TEST(MetricsText, LeavesOutTheCacheMetricsWhenNothingWasProbed) {
  // Before the first probe, or with probe_interval: 0: no made-up "down".
  DaemonStatus s = upToDate();
  s.cache.reset();
  const std::string text = metricsText(s);
  EXPECT_THAT(text, Not(HasSubstr("cache_")));
  EXPECT_EQ(valueOf(readMetrics(text), "config_valid"), "1");
}

TEST(MetricsText, LeavesOutTheLastApplyBeforeTheFirstApply) {
  const std::string text = metricsText(justStarted());
  EXPECT_THAT(text, Not(HasSubstr("last_apply")));
  const auto m = readMetrics(text);
  EXPECT_EQ(valueOf(m, "applies_total"), "0");
  EXPECT_EQ(valueOf(m, "restarts_total"), "0");
}

TEST(MetricsText, ADownCacheHasNoLatencyButKeepsItsCertificate) {
  DaemonStatus s = upToDate();
  s.cache = cacheDown();
  auto m = readMetrics(metricsText(s));
  EXPECT_EQ(valueOf(m, "cache_up"), "0");
  EXPECT_EQ(valueOf(m, "cache_probe_timestamp_seconds"), "1795935660");
  EXPECT_FALSE(m.contains("k3s_mirror_agent_cache_probe_latency_seconds"));
  EXPECT_FALSE(m.contains("k3s_mirror_agent_cache_certificate_days_left"));

  // Down for the status code, say, after a TLS handshake that saw the certificate.
  s.cache->probe.certificate_days_left = -3;  // expired three days ago
  m = readMetrics(metricsText(s));
  EXPECT_EQ(valueOf(m, "cache_certificate_days_left"), "-3");
}

TEST(MetricsText, ReportsABrokenConfigAFailedApplyAndDrift) {
  DaemonStatus s = upToDate();
  s.config_error = "broken";
  s.last_apply->error = "k3s.service did not stay active";
  s.drifted = {"/etc/rancher/k3s/registries.yaml",
               "/usr/local/share/ca-certificates/k3s-mirror-agent/harbor.home.lab.crt"};
  const auto m = readMetrics(metricsText(s));
  EXPECT_EQ(valueOf(m, "config_valid"), "0");
  EXPECT_EQ(valueOf(m, "last_apply_success"), "0");
  EXPECT_EQ(valueOf(m, "drift_files"), "2");
}

// ---------------------------------------------------------------------------------------------
// describeStatus

State managedNode() {
  State state;
  state.registries_path = "/etc/rancher/k3s/registries.yaml";
  state.original = Original::kAbsent;
  state.mirrors = {"docker.io", "ghcr.io", "quay.io"};
  state.configs = {"harbor.home.lab"};
  state.ca_files = {"/usr/local/share/ca-certificates/k3s-mirror-agent/harbor.home.lab.crt"};
  return state;
}

std::string describe(const DaemonStatus& s, bool alive, const State& state = managedNode()) {
  auto text = describeStatus(statusJson(s), alive, state, kStatusPath);
  if (!text) {
    ADD_FAILURE() << text.error().message;
    return {};
  }
  return text.value();
}

TEST(DescribeStatus, TellsARunningDaemonsWholeStory) {
  EXPECT_EQ(describe(upToDate(), true),
            "daemon: running, pid 4242, started 2026-11-29T07:00:00Z\n"
            "status: up to date: 3 mirrors through https://harbor.home.lab; cache up (12 ms, "
            "certificate expires in 40 days)\n"
            "config: /etc/k3s-mirror-agent/config.yaml, valid, sha256 3f0c5e2a9b1d\n"
            "last apply: 2026-11-29T07:00:05Z (start): changed files, restarted k3s.service\n"
            "counts: 1 applies, 1 restarts, 0 drift corrections (drift: correct)\n"
            "cache: https://harbor.home.lab up, 12 ms, certificate expires in 40 days (checked "
            "2026-11-29T07:01:00Z)\n"
            "managed: /etc/rancher/k3s/registries.yaml (mirrors: docker.io, ghcr.io, quay.io), CA "
            "/usr/local/share/ca-certificates/k3s-mirror-agent/harbor.home.lab.crt\n");
}

TEST(DescribeStatus, WithoutAStatusFileSaysNoDaemonRanOnThisBoot) {
  auto text = describeStatus(std::nullopt, false, State{}, kStatusPath);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(text.value(),
            "daemon: not running on this boot (no /run/k3s-mirror-agent/status.json); "
            "`systemctl status k3s-mirror-agent` says more\n"
            "managed: nothing yet (no apply has written this node)\n");
}

TEST(DescribeStatus, ARunningDaemonWhosePidIsGoneDidNotStopCleanly) {
  EXPECT_THAT(describe(upToDate(), false),
              HasSubstr("daemon: not running (it did not stop cleanly), pid 4242"));
}

TEST(DescribeStatus, AStoppedDaemonIsStoppedWhateverItsPid) {
  DaemonStatus s = upToDate();
  s.stopped = true;
  EXPECT_THAT(describe(s, false), HasSubstr("daemon: stopped, pid 4242"));
  // The pid may be reused by another process after a clean stop.
  EXPECT_THAT(describe(s, true), HasSubstr("daemon: stopped, pid 4242"));
}

TEST(DescribeStatus, SaysWhyTheConfigIsInvalid) {
  DaemonStatus s = justStarted();
  s.config_error = "/etc/k3s-mirror-agent/config.yaml:2: registry.url: is not set";
  EXPECT_THAT(describe(s, true),
              HasSubstr("config: /etc/k3s-mirror-agent/config.yaml, INVALID: "
                        "/etc/k3s-mirror-agent/config.yaml:2: registry.url: is not set\n"));
}

TEST(DescribeStatus, SaysWhyTheLastApplyFailed) {
  DaemonStatus s = upToDate();
  s.last_apply->trigger = "config";
  s.last_apply->restarted.reset();
  s.last_apply->error = "k3s.service did not stay active";
  EXPECT_THAT(describe(s, true), HasSubstr("last apply: 2026-11-29T07:00:05Z (config): failed: "
                                           "k3s.service did not stay active\n"));
}

TEST(DescribeStatus, AnApplyThatChangedNothingSaysSo) {
  DaemonStatus s = upToDate();
  s.last_apply->trigger = "reload";
  s.last_apply->changed = false;
  s.last_apply->restarted.reset();
  EXPECT_THAT(describe(s, true),
              HasSubstr("last apply: 2026-11-29T07:00:05Z (reload): nothing to change\n"));
}

TEST(DescribeStatus, SaysWhyTheCacheIsDown) {
  DaemonStatus s = upToDate();
  s.cache = cacheDown();
  EXPECT_THAT(describe(s, true),
              HasSubstr("cache: https://harbor.home.lab DOWN: " + std::string(kCacheDown) +
                        " (checked 2026-11-29T07:01:00Z)\n"));
}

TEST(DescribeStatus, SaysWhenTheCacheIsNotProbedAtAll) {
  DaemonStatus s = upToDate();
  s.cache.reset();
  s.probe_enabled = false;
  EXPECT_THAT(describe(s, true), HasSubstr("cache: not probed (daemon.probe_interval: 0)\n"));
  s.probe_enabled = true;  // not probed yet: nothing to say
  EXPECT_THAT(describe(s, true), Not(HasSubstr("cache:")));
}

TEST(DescribeStatus, ListsTheManagedFilesFromTheState) {
  State state = managedNode();
  state.ca_files.clear();
  state.mirrors = {"docker.io"};
  EXPECT_THAT(describe(upToDate(), true, state),
              HasSubstr("managed: /etc/rancher/k3s/registries.yaml (mirrors: docker.io)\n"));
}

TEST(DescribeStatus, AStatusFileThatIsNotTheDaemonsIsAnErrorNamingIt) {
  for (const std::string text : {"", "{\"pid\": 42", "not json", "[1, 2]", "\"running\""}) {
    SCOPED_TRACE(text);
    auto out = describeStatus(text, true, managedNode(), "/run/k3s-mirror-agent/status.json");
    ASSERT_FALSE(out.ok());
    EXPECT_THAT(out.error().message, HasSubstr("/run/k3s-mirror-agent/status.json"));
    EXPECT_EQ(out.error().kind, ErrorKind::kConfig);
  }
}

TEST(DescribeStatus, AnObjectWithFieldsMissingIsDescribedAsFarAsItGoes) {
  auto out = describeStatus(std::string("{}"), true, State{}, kStatusPath);
  ASSERT_TRUE(out.ok());
  EXPECT_THAT(out.value(), HasSubstr("daemon: stopped, pid ?, started \n"));
  EXPECT_THAT(out.value(), HasSubstr("counts: ? applies, ? restarts\n"));
}

// A status.json from another version of the daemon, or edited by hand, is still read: either
// described or refused with an error naming it, never an exception out of a function that
// reports errors as values.
TEST(DescribeStatus, FieldsOfAnotherTypeAreNotAnException) {
  for (const std::string text :
       {R"({"running": "yes"})", R"({"config": {"valid": 1}})",
        R"({"last_apply": {"changed": "true"}})", R"({"probe_enabled": "no"})",
        R"({"cache": {"up": 1, "certificate_days_left": null}})"}) {
    SCOPED_TRACE(text);
    EXPECT_NO_THROW({
      auto out = describeStatus(text, true, State{}, kStatusPath);
      if (!out.ok()) {
        EXPECT_THAT(out.error().message, HasSubstr(kStatusPath));
      }
    });
  }
}

// Same for a cache object without certificate_days_left, the one field read without checking
// it is there (nlohmann's const operator[] on a missing key is undefined behaviour: an assertion
// in a debug build, a read past the object's storage otherwise; four members fill that storage,
// so AddressSanitizer sees it). In a child process, so that a crash fails this test only.
TEST(DescribeStatusDeathTest, ACacheWithoutCertificateDaysLeftIsStillDescribed) {
  const std::string text = R"({"cache_url": "https://harbor.home.lab",
    "cache": {"checked": "2026-11-29T07:01:00Z", "up": true, "latency_ms": 12,
              "http_status": 401}})";
  EXPECT_EXIT(
      {
        auto out = describeStatus(text, true, State{}, kStatusPath);
        const bool described = out.ok() && out.value().find(
                                               "cache: https://harbor.home.lab up, 12 ms (checked "
                                               "2026-11-29T07:01:00Z)\n") != std::string::npos;
        std::exit(described ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace k3sma
