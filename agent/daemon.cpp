#include "agent/daemon.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/inotify.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <memory>
#include <random>

#include "agent/cli.h"
#include "agent/daemon_rules.h"
#include "agent/status.h"
#include "common/digest.h"
#include "common/handle.h"
#include "common/registries.h"
#include "version.h"

namespace k3sma {
namespace {

using EventPtr = Owned<sd_event, sd_event_unref>;
// Disabling before the last unref means no callback can arrive for a source being dropped.
using SourcePtr = Owned<sd_event_source, sd_event_source_disable_unref>;

// How long each request of the probe may take (the cache's /v2/, each image's manifest and
// token): it blocks the loop, and the loop pings the watchdog before each probe.
constexpr std::chrono::seconds kProbeTimeout{10};

// Timer slack: sd-event may fire this much late and coalesces wake-ups within it.
constexpr uint64_t kExactUsec = 10'000;     // debounce and splay: people wait on them
constexpr uint64_t kLooseUsec = 1'000'000;  // the probe: a second either way does not matter

constexpr uint32_t kWatchMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE |
                                IN_DELETE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;

std::string passwordOf(const Config& c) { return c.registry.auth ? c.registry.auth->password : ""; }

uint64_t usec(Duration d) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
}

std::string seconds(Duration d) {
  return fmt::format("{:g} s", static_cast<double>(d.count()) / 1000.0);
}

// sd_notify, with the bookkeeping: STATUS= only when it changed, watchdog pings from inside
// long waits at most every second, and, until READY=1, start-timeout extensions, so a start
// whose first apply restarts a slow k3s is not killed by TimeoutStartSec.
class Notifier {
 public:
  Notifier() {
    uint64_t watchdog = 0;
    watchdog_ = sd_watchdog_enabled(0, &watchdog) > 0;
  }
  void status(const std::string& line) {
    if (line != last_status_) {
      last_status_ = line;
      sd_notify(0, ("STATUS=" + line).c_str());
    }
  }
  void ready() {
    ready_ = true;
    sd_notify(0, "READY=1");
  }
  void stopping() { sd_notify(0, "STOPPING=1"); }
  void heartbeat() {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::seconds(1)) {
      return;
    }
    last_ = now;
    if (watchdog_) {
      sd_notify(0, "WATCHDOG=1");
    }
    if (!ready_) {
      sd_notify(0, "EXTEND_TIMEOUT_USEC=30000000");
    }
  }

 private:
  bool watchdog_ = false;
  bool ready_ = false;
  std::string last_status_;
  std::chrono::steady_clock::time_point last_{};
};

// The daemon's clock for apply: sleeps in slices and beats the heart between them.
class HeartbeatClock final : public Clock {
 public:
  HeartbeatClock(Clock& inner, Heartbeat heartbeat)
      : inner_(inner), heartbeat_(std::move(heartbeat)) {}
  std::chrono::steady_clock::time_point now() override { return inner_.now(); }
  std::chrono::system_clock::time_point wallNow() override { return inner_.wallNow(); }
  void sleepFor(std::chrono::milliseconds d) override {
    while (d > std::chrono::milliseconds::zero()) {
      const auto slice = std::min<std::chrono::milliseconds>(d, std::chrono::milliseconds(500));
      heartbeat_();
      inner_.sleepFor(slice);
      d -= slice;
    }
  }

 private:
  Clock& inner_;
  Heartbeat heartbeat_;
};

bool isDirectory(const std::filesystem::path& p) {
  std::error_code ec;
  return std::filesystem::is_directory(p, ec);
}

class Daemon;

// One inotify watch on a directory. `waiting_for` set: the wanted directory does not exist yet
// and this watches its nearest existing ancestor for the next path component to appear.
struct Watch {
  Daemon* daemon = nullptr;
  WatchDir dir;
  std::optional<std::string> waiting_for;
  std::string key;
  bool dead = false;  // the directory went away; the next sync replaces this watch
  SourcePtr source;

  unsigned trigger() const {
    for (const auto& rule : dir.rules) {
      if (rule.kind == WatchKind::kConfig) {
        return kTriggerConfig;
      }
    }
    return kTriggerManaged;
  }
};

class Daemon {
 public:
  Daemon(const ApplyOptions& options, Deps& deps)
      : options_(options),
        clock_(deps.clock, [this] { notifier_.heartbeat(); }),
        // The daemon's own seams: each wait an apply makes (a restart job, a settle sleep, a
        // preflight request) pings systemd's watchdog, which the command line has none of.
        deps_{
            .files = deps.files,
            .commands = deps.commands,
            .clock = clock_,
            .connect_systemd = [this] { return connectSystemd([this] { notifier_.heartbeat(); }); },
            .resolve_images =
                [this](const Config& config, const std::string& ca_pem) {
                  return resolveWithCurl(config, ca_pem, [this] { notifier_.heartbeat(); });
                },
        } {
    status_.pid = ::getpid();
    status_.started = clock_.wallNow();
    status_.config_path = options_.config_path;
  }

  int run() {
    if (auto set_up = setUp(); !set_up) {
      spdlog::error("{}", set_up.error().message);
      return kExitUsage;
    }
    spdlog::info("k3s-mirror-agent {} started: config {} (and config.d), state {}", kVersion,
                 options_.config_path, options_.root.path(kStatePath));
    recoverAtStart();
    note(kTriggerStart);
    evaluate();  // the start apply, before READY=1: systemd reports active only after it
    notifier_.ready();
    const int r = sd_event_loop(event_.get());
    if (r < 0) {
      spdlog::error("event loop: {}", errnoText(-r));
      return kExitRolledBack;
    }
    spdlog::info("stopped");
    return kExitOk;
  }

 private:
  Status setUp() {
    // sd-event takes signals through a signalfd: they must be blocked, or they would kill us.
    sigset_t mask;
    sigemptyset(&mask);
    for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
      sigaddset(&mask, sig);
    }
    if (sigprocmask(SIG_BLOCK, &mask, nullptr) != 0) {
      return Error{"block signals: " + errnoText(errno)};
    }
    sd_event* raw = nullptr;
    if (int r = sd_event_new(&raw); r < 0) {
      return Error{"create the event loop: " + errnoText(-r)};
    }
    event_.reset(raw);
    // Pings WATCHDOG=1 at half of WATCHDOG_USEC, from the loop: a loop stuck anywhere is caught.
    if (int r = sd_event_set_watchdog(event_.get(), 1); r < 0) {
      return Error{"enable the watchdog: " + errnoText(-r)};
    }
    for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
      sd_event_source* s = nullptr;
      if (int r = sd_event_add_signal(event_.get(), &s, sig, onSignal, this); r < 0) {
        return Error{"watch signal " + std::to_string(sig) + ": " + errnoText(-r)};
      }
      signals_.emplace_back(s);
    }
    const std::pair<SourcePtr*, sd_event_time_handler_t> timers[] = {
        {&debounce_, onDebounce}, {&splay_, onSplay}, {&probe_, onProbe}};
    for (auto [source, callback] : timers) {
      sd_event_source* s = nullptr;
      const uint64_t accuracy = source == &probe_ ? kLooseUsec : kExactUsec;
      if (int r = sd_event_add_time_relative(event_.get(), &s, CLOCK_MONOTONIC, 0, accuracy,
                                             callback, this);
          r < 0) {
        return Error{"create a timer: " + errnoText(-r)};
      }
      source->reset(s);
      sd_event_source_set_enabled(s, SD_EVENT_OFF);
    }
    return Ok{};
  }

  // --- events ------------------------------------------------------------------------------

  static int onSignal(sd_event_source*, const struct signalfd_siginfo* info, void* self) {
    auto& d = *static_cast<Daemon*>(self);
    if (info->ssi_signo == SIGHUP) {
      spdlog::info("SIGHUP: reading the config again and applying it now");
      d.note(kTriggerReload);
      return 0;
    }
    spdlog::info("{}: stopping", info->ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
    d.notifier_.stopping();
    d.status_.stopped = true;
    d.status_.doing.clear();
    d.publish();
    sd_event_exit(d.event_.get(), 0);
    return 0;
  }

  static int onInotify(sd_event_source*, const struct inotify_event* event, void* data) {
    auto& w = *static_cast<Watch*>(data);
    if (event->mask & IN_Q_OVERFLOW) {
      w.daemon->note(kTriggerConfig);  // events were lost: look at everything
      return 0;
    }
    if (event->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) {
      w.dead = true;
      w.daemon->note(w.trigger());
      return 0;
    }
    const std::string_view name = event->len > 0 ? event->name : "";
    if (w.waiting_for) {
      if (name == *w.waiting_for) {
        w.daemon->note(w.trigger());
      }
      return 0;
    }
    if (auto kind = classify(w.dir, name)) {
      spdlog::debug("{}/{} changed", w.dir.path, name);
      w.daemon->note(*kind == WatchKind::kConfig ? kTriggerConfig : kTriggerManaged);
    }
    return 0;
  }

  static int onDebounce(sd_event_source*, uint64_t, void* self) {
    static_cast<Daemon*>(self)->evaluate();
    return 0;
  }

  static int onSplay(sd_event_source*, uint64_t, void* self) {
    auto& d = *static_cast<Daemon*>(self);
    d.splay_served_ = true;
    if (!armed(d.debounce_)) {  // edits still arriving: the debounce looks once they stop
      d.evaluate();
    }
    return 0;
  }

  static int onProbe(sd_event_source*, uint64_t, void* self) {
    static_cast<Daemon*>(self)->probe();
    return 0;
  }

  static bool armed(const SourcePtr& timer) {
    int enabled = SD_EVENT_OFF;
    sd_event_source_get_enabled(timer.get(), &enabled);
    return enabled != SD_EVENT_OFF;
  }

  static void arm(const SourcePtr& timer, Duration in) {
    sd_event_source_set_time_relative(timer.get(), usec(in));
    sd_event_source_set_enabled(timer.get(), SD_EVENT_ONESHOT);
  }

  // Something changed: look again once things have been quiet for the debounce (SIGHUP: now).
  // Published at once: status.json says busy from the event on, not only once the debounce ends.
  void note(unsigned trigger) {
    pending_ |= trigger;
    arm(debounce_, trigger == kTriggerReload ? Duration::zero() : debounce());
    publish();
  }

  Duration debounce() const {
    return config_ ? config_->daemon.debounce : DaemonSettings{}.debounce;
  }

  // --- deciding and applying ---------------------------------------------------------------

  void evaluate() {
    auto prepared = prepare(options_, deps_);
    if (!prepared) {
      const std::string& message = prepared.error().message;
      const bool unconfigured = prepared.error().kind == ErrorKind::kUnconfigured;
      if (status_.config_error != message) {
        if (unconfigured) {
          spdlog::info("{}; idle until then", message);
        } else {
          spdlog::error("{}; the node is left as it is until this is fixed", message);
        }
      }
      status_.config_error = message;
      status_.unconfigured = unconfigured;
      finishRound();
      syncWatches();
      publish();
      return;
    }
    if (status_.config_error) {
      spdlog::info("the config loads again");
      status_.config_error.reset();
      status_.unconfigured = false;
    }
    adopt(prepared.value());
    syncWatches();

    const Prepared& p = prepared.value();
    const std::string fingerprint = sha256Hex(p.registries_text + '\0' + p.ca_pem);
    Look look;
    look.plan_empty = p.plan.empty();
    look.restart_needed = p.plan.restart_needed && !whyNoRestart(options_, p.config.k3s);
    look.same_as_failed = fingerprint == failed_fingerprint_;
    const auto& settings = config_->daemon;
    switch (decide(pending_, look, settings.drift, splay_served_, settings.splay)) {
      case Next::kNothing:
        status_.drifted.clear();
        status_.held_back.reset();
        finishRound();
        break;
      case Next::kReportDrift:
        reportDrift(p.plan);
        finishRound();
        break;
      case Next::kHoldBack:
        finishRound();
        break;
      case Next::kSplay:
        if (!armed(splay_)) {
          const auto wait = drawSplay(settings.splay);
          spdlog::info("a change needs a restart of k3s: waiting {} (splay) first", seconds(wait));
          status_.doing =
              "waiting " + seconds(wait) + " (splay) before applying a change that restarts k3s";
          arm(splay_, wait);
        }
        break;
      case Next::kApply:
        runApply(fingerprint);
        break;
    }
    publish();
  }

  // A run killed midway (the daemon's own, or an apply's) is undone before anything is
  // planned, whether or not the config loads: the start apply then redoes it from the node as
  // it was. One that cannot be undone is logged; the apply after it tries again.
  void recoverAtStart() {
    const Report r = recoverInterrupted(options_, deps_);
    for (const auto& n : r.notes) {
      spdlog::info("{}", n);
    }
    if (r.error) {
      spdlog::error("{}", r.error->message);
    }
  }

  // The config loaded: take its settings, and probe soon when the cache or its CA changed.
  void adopt(const Prepared& p) {
    const bool first = !config_;
    const bool cache_changed =
        first || p.config.registry.url != config_->registry.url || p.ca_pem != ca_pem_ ||
        p.config.daemon.probe_interval != config_->daemon.probe_interval ||
        p.config.sha256 != config_->sha256 || passwordOf(p.config) != passwordOf(*config_);
    if (cache_changed) {
      prober_.reset();  // the next probe builds a client for the new cache, CA and images
    }
    config_ = p.config;
    ca_pem_ = p.ca_pem;
    status_.config_sha256 = p.config.sha256;
    status_.cache_url = p.config.registry.url;
    status_.mirrors = p.config.mirrors.size();
    status_.drift = p.config.daemon.drift;
    status_.probe_enabled = p.config.daemon.probe_interval > Duration::zero();
    if (!status_.probe_enabled) {
      status_.cache.reset();
      sd_event_source_set_enabled(probe_.get(), SD_EVENT_OFF);
    } else if (cache_changed) {
      status_.cache.reset();
      arm(probe_, Duration::zero());
    }
  }

  void runApply(const std::string& fingerprint) {
    const std::string trigger = triggerName(pending_);
    const bool drift_only = pending_ == kTriggerManaged;
    status_.doing = "applying the config (" + trigger + ")";
    publish();
    const Report r = apply(options_, deps_);
    ++status_.applies;
    ApplyRecord record;
    record.time = clock_.wallNow();
    record.trigger = trigger;
    record.changed = r.changed;
    record.restarted = r.restarted;
    record.reload = r.reload;
    record.rolled_back = r.rolled_back;
    for (const auto& a : r.actions) {
      record.actions.push_back(a.verb + " " + a.target);
    }
    for (const auto& w : r.warnings) {
      spdlog::warn("{}", w);
    }
    if (r.restarted) {
      ++status_.restarts;
    }
    if (r.reload == "hot") {
      ++status_.hot_reloads;
    }
    if (r.error) {
      record.error = r.error->message;
      spdlog::error("apply ({}) failed: {}", trigger, r.error->message);
      if (r.error->kind == ErrorKind::kConfig) {
        status_.config_error = r.error->message;  // e.g. both k3s units installed: set k3s.unit
      } else {
        failed_fingerprint_ = fingerprint;
        status_.held_back =
            "the last apply failed (" + r.error->message +
            "); not retrying the same change: fix the config or reload (systemctl reload "
            "k3s-mirror-agent) to try again";
      }
    } else {
      failed_fingerprint_.clear();
      status_.held_back.reset();
      if (r.changed && drift_only) {
        ++status_.drift_corrections;
      }
      if (r.changed) {
        spdlog::info("applied ({}): {}{}", trigger, fmt::join(record.actions, ", "),
                     r.restarted         ? "; restarted " + *r.restarted + ", it is active"
                     : r.reload == "hot" ? "; reloaded hot, no restart"
                                         : "");
      } else {
        spdlog::info("applied ({}): nothing to change", trigger);
      }
      for (const auto& note : r.notes) {
        spdlog::info("{}", note);
      }
    }
    status_.last_apply = std::move(record);
    status_.drifted.clear();
    finishRound();
    syncWatches();  // the apply may have created the directories of the managed files
    // The apply's own writes raise inotify events that are still queued; they would start one
    // more look after the debounce. Arming it here keeps status.json's busy true until that look
    // is done, so whoever waits for "evaluated and idle" does not see idle in between.
    if (r.changed || r.rolled_back) {
      note(kTriggerManaged);
    }
  }

  void reportDrift(const Plan& plan) {
    std::vector<std::string> files;
    for (const auto& change : plan.changes) {
      if (change.role == FileRole::kRegistries || change.role == FileRole::kCa ||
          change.role == FileRole::kHostsToml) {
        files.push_back(change.path);
      }
    }
    if (files != status_.drifted) {
      spdlog::warn(
          "drift: {} changed by hand and differ{} from the config; drift: report, so "
          "they are left as they are (k3s-mirror-agent diff shows how)",
          fmt::join(files, ", "), files.size() == 1 ? "s" : "");
    }
    status_.drifted = std::move(files);
  }

  // This round of changes is dealt with: forget the triggers and any splay in progress.
  void finishRound() {
    ++status_.evaluations;
    pending_ = 0;
    splay_served_ = false;
    sd_event_source_set_enabled(splay_.get(), SD_EVENT_OFF);
    status_.doing.clear();
  }

  Duration drawSplay(Duration splay) {
    std::uniform_int_distribution<Duration::rep> pick(0, splay.count());
    return Duration(pick(random_));
  }

  // --- the cache probe ---------------------------------------------------------------------

  void probe() {
    if (!config_ || config_->daemon.probe_interval <= Duration::zero()) {
      return;
    }
    notifier_.heartbeat();
    const auto now = clock_.wallNow();
    // One client while the config stays: the connection, TLS session and trust store are
    // reused from one interval to the next.
    if (!prober_) {
      // The watchdog is pinged while a request waits: each may take kProbeTimeout.
      auto made =
          Prober::create(*config_, ca_pem_, kProbeTimeout, [this] { notifier_.heartbeat(); });
      if (!made) {
        ProbeResult down;
        down.error = made.error().message;
        status_.cache = CacheHealth{now, down, imagesDown(*config_, made.error().message)};
        warnOnce(made.error().message);
        arm(probe_, config_->daemon.probe_interval);
        publish();
        return;
      }
      prober_ = std::move(made.value());
    }
    auto outcome = prober_->probeAll(now);
    ProbeResult result = std::move(outcome.cache);
    std::vector<ImageResult> images = std::move(outcome.images);
    for (const auto& image : images) {
      // Say it when an image changes state (or on the first probe), not every interval.
      const ImageResult* before = nullptr;
      if (status_.cache) {
        for (const auto& old : status_.cache->images) {
          before = old.image == image.image ? &old : before;
        }
      }
      if (before == nullptr || before->up != image.up) {
        if (image.up) {
          spdlog::info("image {} resolves through the cache: {} in {} ms", image.image,
                       image.digest, image.latency.count());
        } else {
          spdlog::warn("image {} does not resolve: {}", image.image, image.error);
        }
      }
    }
    const bool was_up = status_.cache ? status_.cache->probe.up : !result.up;
    if (result.up != was_up || !status_.cache) {
      if (result.up) {
        spdlog::info("cache {} is up: GET /v2/ answered {} in {} ms", config_->registry.url,
                     result.http_status, result.latency.count());
      } else {
        spdlog::warn("cache {} is down: {}", config_->registry.url, result.error);
      }
    }
    status_.cache = CacheHealth{now, std::move(result), std::move(images)};
    arm(probe_, config_->daemon.probe_interval);
    publish();
  }

  // --- telling -----------------------------------------------------------------------------

  void publish() {
    status_.busy =
        !status_.stopped && (armed(debounce_) || armed(splay_) || !status_.doing.empty());
    notifier_.status(statusLine(status_));
    const std::string json = statusJson(status_);
    if (json != written_status_) {
      if (auto w = writeFileAtomic(options_.root.path(kStatusPath), json, 0644); !w) {
        warnOnce(w.error().message);
      } else {
        written_status_ = json;
      }
    }
    if (config_ && !config_->daemon.metrics_textfile.empty()) {
      const std::string text = metricsText(status_);
      const std::string path = options_.root.path(config_->daemon.metrics_textfile);
      if (text != written_metrics_ || path != metrics_path_) {
        if (auto w = writeFileAtomic(path, text, 0644); !w) {
          warnOnce(w.error().message);
        } else {
          written_metrics_ = text;
          metrics_path_ = path;
        }
      }
    }
  }

  void warnOnce(const std::string& message) {
    if (message != last_warning_) {
      spdlog::warn("{}", message);
      last_warning_ = message;
    }
  }

  // --- watching ----------------------------------------------------------------------------

  // Brings the inotify watches in line with watchPlan(): keeps those still wanted, adds the
  // missing ones (on the nearest existing ancestor when a directory is not there yet), drops
  // the rest. Runs outside inotify callbacks, so no source is dropped while it dispatches.
  void syncWatches() {
    const auto plan = watchPlan(options_.config_path, config_ ? &*config_ : nullptr, options_.root);
    std::vector<std::unique_ptr<Watch>> next;
    for (const auto& dir : plan) {
      std::filesystem::path target(dir.path);
      std::optional<std::string> waiting_for;
      while (!isDirectory(target) && target.has_relative_path() && target != target.parent_path()) {
        waiting_for = target.filename().string();
        target = target.parent_path();
      }
      std::string key = target.string() + "|" + waiting_for.value_or("");
      for (const auto& rule : dir.rules) {
        key += "|" + rule.name + (rule.kind == WatchKind::kConfig ? "c" : "m");
      }
      auto kept = std::find_if(watches_.begin(), watches_.end(),
                               [&](const auto& w) { return w && !w->dead && w->key == key; });
      if (kept != watches_.end()) {
        next.push_back(std::move(*kept));
        continue;
      }
      auto watch = std::make_unique<Watch>();
      watch->daemon = this;
      watch->dir = dir;
      watch->waiting_for = waiting_for;
      watch->key = key;
      sd_event_source* s = nullptr;
      if (int r = sd_event_add_inotify(event_.get(), &s, target.c_str(), kWatchMask, onInotify,
                                       watch.get());
          r < 0) {
        warnOnce("watch " + target.string() + ": " + errnoText(-r) +
                 (r == -ENOSPC ? " (raise fs.inotify.max_user_watches)" : ""));
        continue;
      }
      watch->source.reset(s);
      spdlog::debug("watching {}{}", target.string(),
                    waiting_for ? " for " + *waiting_for + " to appear" : "");
      next.push_back(std::move(watch));
    }
    watches_ = std::move(next);
  }

  ApplyOptions options_;
  Notifier notifier_;
  HeartbeatClock clock_;
  Deps deps_;
  EventPtr event_;
  std::vector<SourcePtr> signals_;
  SourcePtr debounce_;
  SourcePtr splay_;
  SourcePtr probe_;
  std::vector<std::unique_ptr<Watch>> watches_;
  std::optional<Config> config_;  // the last config that loaded
  std::string ca_pem_;
  std::unique_ptr<Prober> prober_;  // built at the first probe of a config, kept while it stays
  unsigned pending_ = 0;
  bool splay_served_ = false;
  std::string failed_fingerprint_;
  std::mt19937_64 random_{std::random_device{}()};
  DaemonStatus status_;
  std::string written_status_;
  std::string written_metrics_;
  std::string metrics_path_;
  std::string last_warning_;
};

}  // namespace

int runDaemon(const ApplyOptions& options, Deps& deps) {
  Daemon daemon(options, deps);
  return daemon.run();
}

}  // namespace k3sma
