#include "agent/apply.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <map>

#include "agent/restart.h"
#include "common/desired.h"
#include "common/journal.h"
#include "common/registries.h"

namespace k3sma {
namespace {

// The apply lock, waited for through deps.clock: a daemon keeps pinging its watchdog while an
// Ansible run holds the lock, and the log says why nothing happens meanwhile.
Result<FileLock> waitForLock(const Root& root, Deps& deps) {
  const std::string path = root.path(kLockPath);
  bool said = false;
  for (;;) {
    auto lock = deps.files.tryLock(path);
    if (!lock) {
      return lock.error();
    }
    if (lock.value()) {
      return std::move(*lock.value());
    }
    if (!said) {
      spdlog::info("waiting for another apply to finish (it holds {})", path);
      said = true;
    }
    deps.clock.sleepFor(std::chrono::milliseconds(100));
  }
}

// Reads a node file through deps.files; a read error is a config-kind error (nothing touched).
Result<std::optional<std::string>> readNodeFile(Deps& deps, const Root& root,
                                                const std::string& node_path) {
  return deps.files.read(root.path(node_path));
}

Result<State> readState(Deps& deps, const Root& root) {
  auto text = readNodeFile(deps, root, kStatePath);
  if (!text) {
    return text.error();
  }
  if (!text.value()) {
    return State{};
  }
  return parseState(*text.value(), root.path(kStatePath));
}

Result<std::optional<CaBundle>> loadCa(const Config& config, const Root& root, Deps& deps) {
  if (config.registry.ca_file.empty()) {
    return std::optional<CaBundle>{};
  }
  const std::string where = config.originOf("registry.ca_file") + ": registry.ca_file: ";
  const std::string path = root.path(config.registry.ca_file);
  auto bytes = deps.files.read(path);
  if (!bytes) {
    return configError(where + bytes.error().message);
  }
  if (!bytes.value()) {
    return configError(where + path + " does not exist");
  }
  auto bundle = loadCaBundle(*bytes.value(), path, deps.clock.wallNow());
  if (!bundle) {
    return configError(where + bundle.error().message);
  }
  return std::optional<CaBundle>{std::move(bundle.value())};
}

// Reads what is on disk now at each desired path (registries.yaml was read already).
struct OnDisk {
  std::map<std::string, std::optional<std::string>> content;
  std::map<std::string, mode_t> modes;  // of the files that exist
};
Result<OnDisk> readCurrent(const std::vector<DesiredFile>& desired, const Root& root, Deps& deps,
                           const std::string& registries_path,
                           const std::optional<std::string>& registries_now) {
  OnDisk on_disk;
  for (const auto& want : desired) {
    if (want.path == registries_path) {
      on_disk.content[want.path] = registries_now;
    } else {
      auto have = readNodeFile(deps, root, want.path);
      if (!have) {
        return have.error();
      }
      on_disk.content[want.path] = std::move(have.value());
    }
    if (on_disk.content[want.path]) {
      if (auto info = deps.files.stat(root.path(want.path))) {
        on_disk.modes[want.path] = info.value().mode;
      }
    }
  }
  return on_disk;
}

std::string parentDir(const std::string& path) { return path.substr(0, path.rfind('/')); }

// Writes content (or removes the file when nullopt) at a node path. A hosts.toml gets its
// directory as k3s makes it (0700) first, and an emptied one goes: containerd reads a directory
// without hosts.toml as "no config", but k3s never leaves one, so neither do we.
Status putFile(Deps& deps, const Root& root, const std::string& node_path, FileRole role,
               const std::optional<std::string>& content, mode_t mode) {
  const std::string path = root.path(node_path);
  if (role == FileRole::kHostsToml && content) {
    if (auto made = deps.files.makeDir(parentDir(path), 0700); !made) {
      return made;
    }
  }
  Status done = content ? deps.files.write(path, *content, mode) : deps.files.remove(path);
  if (done && role == FileRole::kHostsToml && !content) {
    return deps.files.removeDir(parentDir(path));
  }
  return done;
}

Action actionOf(const Step& step) {
  if (step.change == nullptr) {
    return {"run", "update-ca-certificates"};
  }
  return {step.change->after ? "write" : "remove", step.change->path};
}

std::vector<Action> describe(const Plan& plan) {
  std::vector<Action> actions;
  for (const auto& step : steps(plan)) {
    actions.push_back(actionOf(step));
  }
  return actions;
}

Status runUpdateCa(const Root& root, Deps& deps, bool fresh) {
  const auto argv = updateCaCommand(root, fresh);
  auto ran = deps.commands.run(argv);
  if (!ran) {
    return ran.error();
  }
  const auto& result = ran.value();
  for (std::string::size_type start = 0; start < result.output.size();) {
    auto end = result.output.find('\n', start);
    if (end == std::string::npos) {
      end = result.output.size();
    }
    if (end > start) {
      spdlog::debug("update-ca-certificates: {}", result.output.substr(start, end - start));
    }
    start = end + 1;
  }
  if (result.exit_code != 0) {
    std::string output = result.output;
    while (!output.empty() && output.back() == '\n') {
      output.pop_back();
    }
    return Error{"run update-ca-certificates: exit status " + std::to_string(result.exit_code) +
                     (output.empty() ? "" : ": " + output),
                 ErrorKind::kApply};
  }
  return Ok{};
}

// What executeFiles did, so that it can be undone.
struct Executed {
  std::vector<const FileChange*> done;  // in the order done
  bool ca_changed = false;              // a CA file, or the trust store itself
  // The trust bundle before anything ran: when the store cannot be rebuilt after an undo, it
  // tells whether it was ever changed (update-ca-certificates failed before writing it).
  std::optional<std::string> bundle_before;
};

std::optional<std::string> readBundle(const Root& root, Deps& deps) {
  auto bundle = deps.files.read(root.path(kTrustBundlePath));
  return bundle ? bundle.value() : std::nullopt;
}

// Puts back every file in executed, in reverse order, with the mode it had, and rebuilds the
// trust store if a CA file had changed. Returns what could not be put back; empty when all is
// as before. A rebuild that fails while the bundle is still what it was is not "left": nothing
// needed fixing, so it is only a note.
std::vector<std::string> undo(const Executed& executed, const Root& root, Deps& deps,
                              std::vector<std::string>& notes) {
  std::vector<std::string> left;
  bool ca_removed = false;  // putting back "absent" removes a CA file
  for (auto it = executed.done.rbegin(); it != executed.done.rend(); ++it) {
    const FileChange& change = **it;
    ca_removed = ca_removed || (change.role == FileRole::kCa && !change.before);
    Status undone =
        putFile(deps, root, change.path, change.role, change.before, change.before_mode);
    if (!undone) {
      left.push_back(change.path + " (" + undone.error().message + ")");
    }
  }
  if (executed.ca_changed) {
    if (auto ran = runUpdateCa(root, deps, ca_removed); !ran) {
      if (executed.bundle_before && readBundle(root, deps) == executed.bundle_before) {
        notes.push_back("the trust store was not rebuilt after the undo (" + ran.error().message +
                        "), but its bundle is as it was before");
      } else {
        left.push_back("the system trust store (" + ran.error().message + ")");
      }
    }
  }
  return left;
}

std::string joined(const std::vector<std::string>& items) {
  std::string list;
  for (const auto& item : items) {
    list += (list.empty() ? "" : "; ") + item;
  }
  return list;
}

Status dropJournal(const Root& root, Deps& deps) {
  return deps.files.remove(root.path(kJournalPath));
}

// The change is final (done, or undone in full): the journal goes. If it cannot, the next run
// undoes the change and makes it again: safe, so only a warning.
void finishJournal(const ApplyOptions& options, Deps& deps, Report& report) {
  if (!options.journal) {
    return;
  }
  if (auto dropped = dropJournal(options.root, deps); !dropped) {
    report.warnings.push_back(dropped.error().message +
                              "; the next run will undo this change and make it again");
  }
}

// Puts back what the journal recorded, under the lock the caller holds. Ok with nothing to do
// when there is no journal.
Status recover(const Root& root, Deps& deps, Report& report) {
  const std::string path = root.path(kJournalPath);
  auto text = deps.files.read(path);
  if (!text) {
    return text.error();
  }
  if (!text.value()) {
    return Ok{};
  }
  auto journal = parseJournal(*text.value(), path);
  if (!journal) {
    return journal.error();
  }
  const Journal& j = journal.value();
  spdlog::warn("an interrupted {} is recorded in {}: putting its {} files back as they were",
               j.operation, path, j.files.size());
  std::vector<std::string> left;
  for (auto it = j.files.rbegin(); it != j.files.rend(); ++it) {
    Status undone = putFile(deps, root, it->path, it->role, it->before, it->before_mode);
    if (!undone) {
      left.push_back(it->path + " (" + undone.error().message + ")");
    }
    // The killed run's half-done write of this file, if it was killed before the rename.
    const std::string stray = root.path(atomicTempPath(it->path, j.pid));
    if (j.pid > 0 && deps.files.stat(stray)) {
      if (Status removed = deps.files.remove(stray); !removed) {
        left.push_back(stray + " (" + removed.error().message + ")");
      }
    }
  }
  for (const auto& command : j.commands) {
    if (command != kRebuildTrustStore) {
      left.push_back("the command " + command + " (not one this version runs)");
      continue;
    }
    // --fresh: the interrupted run may have removed a CA file.
    if (auto ran = runUpdateCa(root, deps, true); !ran) {
      left.push_back("the system trust store (" + ran.error().message + ")");
    }
  }
  if (!left.empty()) {
    return Error{"undo the interrupted " + j.operation + " recorded in " + path +
                     ": these could NOT be put back: " + joined(left) +
                     "; the journal is kept, the next run tries again",
                 ErrorKind::kPartial};
  }
  if (auto dropped = dropJournal(root, deps); !dropped) {
    return dropped;
  }
  report.notes.push_back("an interrupted " + j.operation +
                         " was undone first: its files are back as they were before it");
  return Ok{};
}

Result<bool> journalPending(const Root& root, Deps& deps) {
  auto text = deps.files.read(root.path(kJournalPath));
  if (!text) {
    return text.error();
  }
  return text.value().has_value();
}

// Takes the lock once per run (flock conflicts even within one process across two opens) and
// finishes an interrupted run. An error leaves report.error set.
bool lockAndRecover(const ApplyOptions& options, Deps& deps, std::optional<FileLock>& lock,
                    Report& report) {
  if (!lock) {
    auto acquired = waitForLock(options.root, deps);
    if (!acquired) {
      report.error = acquired.error();
      return false;
    }
    lock.emplace(std::move(acquired.value()));
  }
  if (auto recovered = recover(options.root, deps, report); !recovered) {
    report.error = recovered.error();
    return false;
  }
  return true;
}

// Performs the plan's file changes in order, rebuilding the trust store once after the last CA
// file; the journal first. On the first failure undoes what it did and sets report.error.
Executed executeFiles(const Plan& plan, const ApplyOptions& options, const std::string& operation,
                      Deps& deps, Report& report) {
  const Root& root = options.root;
  Executed executed;
  if (options.journal) {
    Journal journal = journalFor(plan, operation);
    journal.pid = ::getpid();
    if (auto noted = deps.files.write(root.path(kJournalPath), renderJournal(journal), 0600);
        !noted) {
      report.error = Error{noted.error().message + "; nothing was changed", ErrorKind::kApply};
      return {};
    }
  }
  if (plan.update_ca_certificates) {
    executed.bundle_before = readBundle(root, deps);
  }
  std::optional<Error> failure;
  const bool ca_removed =
      std::any_of(plan.changes.begin(), plan.changes.end(),
                  [](const FileChange& c) { return c.role == FileRole::kCa && !c.after; });
  for (const auto& step : steps(plan)) {
    if (step.change == nullptr) {
      executed.ca_changed = true;
      if (auto ran = runUpdateCa(root, deps, ca_removed); !ran) {
        failure = ran.error();
        break;
      }
    } else {
      const FileChange& change = *step.change;
      Status done_one = putFile(deps, root, change.path, change.role, change.after, change.mode);
      if (!done_one) {
        failure = done_one.error();
        break;
      }
      executed.done.push_back(&change);
      executed.ca_changed = executed.ca_changed || change.role == FileRole::kCa;
      spdlog::debug("{} {}", change.after ? "wrote" : "removed", change.path);
    }
    report.actions.push_back(actionOf(step));
  }
  if (!failure) {
    report.changed = true;
    return executed;
  }
  spdlog::error("{}; putting the previous files back", failure->message);
  const auto left = undo(executed, root, deps, report.notes);
  report.rolled_back = true;
  report.actions.clear();
  if (left.empty()) {
    finishJournal(options, deps, report);
    report.error = Error{failure->message + "; the previous files were put back, nothing changed",
                         ErrorKind::kApply};
  } else {
    report.error =
        Error{failure->message + "; these could NOT be put back and need a look: " + joined(left),
              ErrorKind::kPartial};
  }
  return {};
}

std::string unitWord(const Config& config) {
  return std::string(factsOf(config.k3s.distribution).name);
}

// The unit to restart after the files change, decided before any file is touched so that a
// missing bus or an ambiguous unit leaves the node as it was. nullopt (with a note saying why)
// when nothing is to be restarted.
struct RestartTarget {
  std::unique_ptr<Systemd> systemd;
  std::string unit;
};
Result<std::optional<RestartTarget>> findRestartTarget(const ApplyOptions& options,
                                                       const Config& config, Deps& deps,
                                                       Report& report) {
  const std::string word = unitWord(config);
  auto skip = [&](const std::string& why) {
    report.notes.push_back(word + " reads these files only when it starts; " + why);
    return std::optional<RestartTarget>{};
  };
  if (auto why = whyNoRestart(options, config.k3s)) {
    return skip("no unit restarted: " + *why);
  }
  auto systemd = deps.connect_systemd();
  if (!systemd) {
    return systemd.error();
  }
  auto unit = resolveUnit(*systemd.value(), config.k3s);
  if (!unit) {
    return unit.error();
  }
  if (!unit.value()) {
    const DistributionFacts& facts = factsOf(config.k3s.distribution);
    std::string wanted = config.k3s.unit;
    if (wanted == "auto") {
      wanted = std::string(facts.server_unit) + " or " + std::string(facts.agent_unit);
    }
    report.notes.push_back(
        "no " + wanted + " is installed yet: " + word +
        " will read these files when it first starts" +
        (config.k3s.unit == "auto" ? "" : " (if the name is wrong, fix k3s.unit)"));
    return std::optional<RestartTarget>{};
  }
  auto state = systemd.value()->unitState(*unit.value());
  if (!state) {
    return state.error();
  }
  if (!state.value().running()) {
    return skip(*unit.value() + " is " + state.value().active_state +
                ", so it was not restarted (a stopped k3s stays stopped)");
  }
  return std::optional<RestartTarget>{RestartTarget{std::move(systemd.value()), *unit.value()}};
}

// The text the command line prints after a hot reload (the words).
constexpr const char* kHotNote =
    "reloaded without restarting k3s (containerd reads hosts.toml at the next pull)";

// Why this change is (or would be) hot or needs a restart, for people.
void sayReload(const Prepared& prepared, Report& report, bool dry_run) {
  if (!prepared.reload) {
    return;
  }
  const ReloadDecision& d = *prepared.reload;
  if (d.kind == ReloadKind::kHot) {
    if (dry_run) {
      report.reload = "hot";
      report.notes.push_back("would reload without restarting k3s: " + d.reason);
    }
    return;
  }
  report.notes.push_back("not reloaded without a restart: " + d.reason);
}

// After a restart, k3s rewrites containerd's hosts.toml for every mirror. Where k3s's data dir
// exists, wait (within the deadline) for each to be rewritten and to name the cache endpoint;
// report the ones that were not. Not a reason to roll back: k3s itself is up.
void checkHostsToml(const Config& config, const Root& root, Deps& deps,
                    std::chrono::system_clock::time_point since,
                    std::chrono::steady_clock::time_point deadline, Report& report) {
  if (!deps.files.stat(root.path(dataDir(config.k3s.distribution)))) {
    return;  // not a k3s that writes hosts.toml here (or not started yet)
  }
  auto pending = expectedHostsToml(config);
  for (;;) {
    std::erase_if(pending, [&](const ExpectedHostsToml& h) {
      auto info = deps.files.stat(root.path(h.path));
      if (!info || info.value().modified < since) {
        return false;
      }
      auto text = deps.files.read(root.path(h.path));
      return text && text.value() && text.value()->find(h.endpoint) != std::string::npos;
    });
    if (pending.empty() || deps.clock.now() >= deadline) {
      break;
    }
    deps.clock.sleepFor(std::chrono::milliseconds(100));
  }
  for (const auto& h : pending) {
    report.warnings.push_back(unitWord(config) + " did not rewrite " + h.path + " to name " +
                              h.endpoint + " after the restart; check its log");
  }
}

// Reads what the restart-free decision needs from the node: containerd's config.toml as k3s
// wrote it, and the hosts.toml of every directory in certs.d.
Result<ReloadDecision> decideHotOrRestart(Distribution distribution, ReloadPolicy policy,
                                          const Root& root, Deps& deps,
                                          const std::optional<std::string>& registries_now,
                                          const std::string& registries_new) {
  ReloadInputs in;
  in.distribution = distribution;
  in.policy = policy;
  in.registries_now = registries_now;
  in.registries_new = registries_new;
  if (in.policy == ReloadPolicy::kAuto) {
    auto toml = readNodeFile(deps, root, containerdConfigPath(in.distribution));
    if (!toml) {
      return toml.error();
    }
    in.containerd_config = std::move(toml.value());
    const std::string certs_d = certsDPath(in.distribution);
    auto dirs = deps.files.listDirs(root.path(certs_d));
    if (!dirs) {
      return dirs.error();
    }
    in.certs_d_exists = dirs.value().has_value();
    if (in.certs_d_exists) {
      auto info = deps.files.stat(root.path(certs_d));
      in.certs_d_read_only = info && info.value().read_only;
    }
    for (const auto& dir : dirs.value().value_or(std::vector<std::string>{})) {
      auto hosts = readNodeFile(deps, root, certs_d + "/" + dir + "/hosts.toml");
      if (!hosts) {
        return hosts.error();
      }
      in.certs_d[dir] = std::move(hosts.value());
    }
  }
  return decideReload(in);
}

}  // namespace

std::vector<std::string> updateCaCommand(const Root& root, bool fresh) {
  std::vector<std::string> argv{"update-ca-certificates"};
  if (fresh) {
    argv.emplace_back("--fresh");
  }
  if (root.isSystem()) {
    return argv;
  }
  argv.insert(argv.end(), {"--certsconf", root.path("/etc/ca-certificates.conf"), "--certsdir",
                           root.path("/usr/share/ca-certificates"), "--localcertsdir",
                           root.path("/usr/local/share/ca-certificates"), "--etccertsdir",
                           root.path("/etc/ssl/certs"), "--hooksdir",
                           root.path("/etc/ca-certificates/update.d")});
  return argv;
}

std::optional<std::string> whyNoRestart(const ApplyOptions& options, const K3sSettings& k3s) {
  if (!options.root.isSystem() && !options.restart_under_root) {
    return "--root was given";
  }
  if (options.no_restart) {
    return "--no-restart was given";
  }
  if (k3s.restart == RestartPolicy::kNever) {
    return "k3s.restart is never";
  }
  return std::nullopt;
}

Result<Prepared> prepare(const ApplyOptions& options, Deps& deps) {
  const Root& root = options.root;
  auto config = loadConfig(options.config_path, root);
  if (!config) {
    return config.error();
  }
  Prepared prepared{std::move(config.value()), {}, {}, {}, {}, {}, {}, {}};
  const Config& c = prepared.config;

  auto ca = loadCa(c, root, deps);
  if (!ca) {
    return ca.error();
  }
  if (ca.value()) {
    prepared.warnings = ca.value()->warnings;
    prepared.ca_pem = ca.value()->pem;
  }
  auto state = readState(deps, root);
  if (!state) {
    return state.error();
  }
  prepared.state = state.value();

  const std::string registries = registriesPath(c.k3s.distribution);
  if (!prepared.state.registries_path.empty() && prepared.state.registries_path != registries) {
    // The state (what to remove, the node's own file) belongs to the other file; carrying it
    // over would leave the agent's entries there and restore the wrong file here.
    return configError(c.originOf("k3s.distribution") + ": k3s.distribution: the agent manages " +
                       prepared.state.registries_path +
                       "; run k3s-mirror-agent restore first, "
                       "then apply again to manage " +
                       registries);
  }
  auto current = readNodeFile(deps, root, registries);
  if (!current) {
    return current.error();
  }
  auto backup = readNodeFile(deps, root, kBackupPath);
  if (!backup) {
    return backup.error();
  }
  const std::string ca_path = ca.value() ? caInstallPath(c.registry) : "";
  auto rendered =
      renderRegistries(c, ca_path, current.value(), root.path(registries), prepared.state);
  if (!rendered) {
    return rendered.error();
  }

  prepared.registries_path = registries;
  prepared.registries_text = rendered.value().text;

  ApplyInputs in;
  in.registries_path = registries;
  in.registries_text = rendered.value().text;
  in.mirrors = rendered.value().mirrors;
  in.configs = rendered.value().configs;
  in.registries_now = current.value();
  in.backup_exists = backup.value().has_value();
  in.state = prepared.state;
  in.ca_path = ca_path;
  if (ca.value()) {
    in.ca_pem = ca.value()->pem;
  }
  const DesiredFiles desired = desiredForApply(in);

  auto on_disk = readCurrent(desired.files, root, deps, registries, current.value());
  if (!on_disk) {
    return on_disk.error();
  }
  // The trust store is judged by what its bundle holds, not by the CA file alone: a run killed
  // between writing the CA file and update-ca-certificates left a right file and a store that
  // does not trust it.
  bool rebuild = false;
  if (ca.value() && on_disk.value().content[ca_path] == ca.value()->pem) {
    const auto bundle = readBundle(root, deps);
    rebuild = !bundle || !bundleHolds(*bundle, ca.value()->pem);
  }
  prepared.plan = makePlan(desired.files, on_disk.value().content, on_disk.value().modes, rebuild);
  // The restart-free apply (common/reload.h): the files k3s would write go to certs.d, and the
  // state records the setting they were written in, which makes them managed files.
  auto replan = [&](DesiredFiles next_files, const State& next) -> Status {
    for (auto& f : next_files.files) {
      if (f.role == FileRole::kState) {
        f.content = renderState(next);
      }
    }
    auto now = readCurrent(next_files.files, root, deps, registries, current.value());
    if (!now) {
      return now.error();
    }
    prepared.plan = makePlan(next_files.files, now.value().content, now.value().modes, rebuild);
    return Ok{};
  };
  const std::string certs_d = certsDPath(c.k3s.distribution);
  if (prepared.plan.restart_needed) {
    auto decided = decideHotOrRestart(c.k3s.distribution, c.k3s.reload, root, deps, current.value(),
                                      prepared.registries_text);
    if (!decided) {
      return decided.error();
    }
    prepared.reload = std::move(decided.value());
    State next = desired.next;
    DesiredFiles files = desired;
    const bool hot = prepared.reload->kind == ReloadKind::kHot;
    // After a restart k3s writes certs.d itself: the agent's files are no longer managed.
    next.hosts_toml = hot ? settingName(prepared.reload->options) : "";
    if (hot) {
      addHostsToml(files, certs_d, prepared.reload->files, prepared.reload->stale);
    }
    if (auto done = replan(files, next); !done) {
      return done.error();
    }
    if (hot) {
      prepared.plan.restart_needed = false;  // containerd reads the new files at the next pull
    }
  } else if (!prepared.state.hosts_toml.empty()) {
    // The hosts.toml files of a restart-free apply are managed: put back what a hand edit
    // changed, unless k3s itself rewrote them since (a restart, perhaps in another setting:
    // then that setting is recorded and nothing is written).
    State next = desired.next;
    DesiredFiles files = desired;
    auto setting = settingNamed(prepared.state.hosts_toml, c.k3s.distribution);
    auto decided = decideHotOrRestart(c.k3s.distribution, c.k3s.reload, root, deps, current.value(),
                                      prepared.registries_text);
    if (!decided) {
      return decided.error();
    }
    if (c.k3s.reload == ReloadPolicy::kRestart || !setting) {
      next.hosts_toml = "";
    } else if (decided.value().kind == ReloadKind::kHot) {
      next.hosts_toml = settingName(decided.value().options);
    } else {
      auto model = renderCertsD(prepared.registries_text, root.path(registries), *setting);
      if (!model) {
        return model.error();
      }
      addHostsToml(files, certs_d, model.value(), {});
    }
    if (auto done = replan(files, next); !done) {
      return done.error();
    }
  }
  // With --root, update-ca-certificates needs the root's trust store directory; find out now
  // rather than after the files were written.
  if (prepared.plan.update_ca_certificates && !root.isSystem() &&
      !deps.files.stat(root.path("/etc/ssl/certs"))) {
    return configError("update the trust store under --root " + root.dir() + ": " +
                       root.path("/etc/ssl/certs") +
                       " does not exist; the root must be laid out "
                       "like a Debian node's (see the README's --root)");
  }
  return prepared;
}

Report recoverInterrupted(const ApplyOptions& options, Deps& deps) {
  Report report;
  auto pending = journalPending(options.root, deps);
  if (!pending) {
    report.error = pending.error();
    return report;
  }
  if (pending.value()) {
    std::optional<FileLock> lock;
    lockAndRecover(options, deps, lock, report);
  }
  return report;
}

Report apply(const ApplyOptions& options, Deps& deps) {
  Report report;
  report.dry_run = options.dry_run;
  std::optional<FileLock> lock;
  // An interrupted run first: what is on disk now is half of it, and planning on that would
  // take the agent's own half-written files for the node's.
  auto pending = journalPending(options.root, deps);
  if (!pending) {
    report.error = pending.error();
    return report;
  }
  if (pending.value()) {
    if (options.dry_run) {
      report.notes.push_back(
          "an interrupted run is recorded in " + std::string(kJournalPath) +
          "; the next apply or restore undoes it first (shown here: the node as it is now)");
    } else if (!lockAndRecover(options, deps, lock, report)) {
      return report;
    }
  }
  auto prepared = prepare(options, deps);
  if (!prepared) {
    report.error = prepared.error();
    return report;
  }
  report.warnings = prepared.value().warnings;
  if (prepared.value().plan.empty()) {
    return report;  // the common case: nothing read differs, nothing is written or run
  }
  if (options.dry_run) {
    report.changed = true;
    report.restart_needed = prepared.value().plan.restart_needed;
    report.actions = describe(prepared.value().plan);
    sayReload(prepared.value(), report, true);
    return report;
  }
  // verify.preflight: the images through the new config, before anything is written.
  if (auto checked =
          preflight(prepared.value().config, prepared.value().ca_pem, deps.resolve_images);
      checked.error) {
    report.error = checked.error;
    return report;
  } else {
    report.warnings.insert(report.warnings.end(), checked.warnings.begin(), checked.warnings.end());
  }

  // Which unit to restart is settled before the lock and before any write, so that a missing
  // bus or an ambiguous unit leaves the node exactly as it was (not even a lock file).
  std::optional<RestartTarget> target;
  bool target_known = false;
  std::vector<std::string> target_notes;  // why nothing is restarted: said once files change
  auto find_target = [&]() -> Status {
    target_known = true;
    Report said;
    auto found = findRestartTarget(options, prepared.value().config, deps, said);
    target_notes = std::move(said.notes);
    if (!found) {
      return found.error();
    }
    target = std::move(found.value());
    return Ok{};
  };
  if (prepared.value().plan.restart_needed) {
    if (auto found = find_target(); !found) {
      report.error = found.error();
      return report;
    }
  }

  // Under the lock: an interrupted run (one killed while this one waited) is undone, and
  // another apply may have finished meanwhile: look again.
  if (!lockAndRecover(options, deps, lock, report)) {
    return report;
  }
  prepared = prepare(options, deps);
  if (!prepared) {
    report.error = prepared.error();
    return report;
  }
  const Plan& plan = prepared.value().plan;
  const Config& config = prepared.value().config;
  if (plan.empty()) {
    return report;
  }
  report.restart_needed = plan.restart_needed;
  if (plan.restart_needed && !target_known) {
    if (auto found = find_target(); !found) {
      report.error = found.error();
      return report;
    }
  }

  report.notes.insert(report.notes.end(), target_notes.begin(), target_notes.end());
  sayReload(prepared.value(), report, false);
  const Executed executed = executeFiles(plan, options, "apply", deps, report);
  if (report.error) {
    return report;
  }
  const bool hot = prepared.value().reload && prepared.value().reload->kind == ReloadKind::kHot;
  if (hot && !config.verify.images.empty()) {
    // No restart tells whether the new endpoints work, so the images are asked for through them
    // now (whatever verify.preflight says: the files are written, containerd pulls through them
    // at the next pull); one that does not resolve undoes the whole change.
    const auto failures = unresolvedImages(config, prepared.value().ca_pem, deps.resolve_images);
    if (!failures.empty()) {
      const std::string cause =
          "verify the hot reload (verify.images through the new endpoints): " + joined(failures);
      spdlog::error("{}; putting the previous files back", cause);
      const auto left = undo(executed, options.root, deps, report.notes);
      report.rolled_back = true;
      report.changed = false;
      report.actions.clear();
      if (left.empty()) {
        finishJournal(options, deps, report);
        report.error =
            Error{cause + "; the previous files were put back, nothing changed", ErrorKind::kApply};
      } else {
        // The journal stays: the next run puts back what this one could not.
        report.error =
            Error{cause + "; these could NOT be put back: " + joined(left), ErrorKind::kPartial};
      }
      return report;
    }
  }
  if (!target) {
    finishJournal(options, deps, report);
    if (hot) {
      report.reload = "hot";
      report.notes.push_back(kHotNote);
    }
    return report;
  }

  // The system clock, not deps.clock: it is compared with the mtimes k3s gives the hosts.toml
  // files it writes, which come from the kernel's clock whatever the test's clock says.
  const auto restart_started = std::chrono::system_clock::now();
  auto deadline = deps.clock.now() + config.k3s.restart_timeout;
  auto attempt = restartUntilHealthy(*target->systemd, deps.clock, target->unit, deadline);
  if (attempt.status) {
    finishJournal(options, deps, report);
    report.restarted = target->unit;
    report.reload = "restart";
    report.actions.push_back({"restart", target->unit});
    checkHostsToml(config, options.root, deps, restart_started, deadline, report);
    return report;
  }

  // k3s did not come back on the new files: the old files, the old trust store, and k3s on them.
  const std::string cause = attempt.status.error().message;
  spdlog::error("{}; putting the previous files back", cause);
  const auto left = undo(executed, options.root, deps, report.notes);
  if (left.empty()) {
    finishJournal(options, deps, report);
  }
  report.rolled_back = true;
  report.changed = false;
  report.actions.clear();
  if (!attempt.touched) {
    // systemd never queued the restart: k3s still runs as before, on the files it read then.
    report.error = left.empty() ? Error{cause + "; the previous files were put back and " +
                                            target->unit + " was not restarted",
                                        ErrorKind::kApply}
                                : Error{cause + "; these could NOT be put back: " + joined(left),
                                        ErrorKind::kPartial};
    return report;
  }
  deadline = deps.clock.now() + config.k3s.restart_timeout;
  auto back = restartUntilHealthy(*target->systemd, deps.clock, target->unit, deadline).status;
  if (left.empty() && back) {
    report.error = Error{cause + "; rolled back: the previous files are in place and " +
                             target->unit + " is active again on them",
                         ErrorKind::kApply};
    return report;
  }
  std::string state = left.empty() ? "the previous files are in place"
                                   : "these could NOT be put back: " + joined(left);
  state += back ? "; " + target->unit + " is active"
                : "; " + target->unit + " did not come back either: " + back.error().message;
  report.error = Error{cause + "; rollback incomplete: " + state, ErrorKind::kPartial};
  return report;
}

Report restore(const ApplyOptions& options, Deps& deps) {
  Report report;
  report.dry_run = options.dry_run;
  const Root& root = options.root;
  // Look before locking: on a node the agent never touched, restore must not create anything.
  auto state = readState(deps, root);
  if (!state) {
    report.error = state.error();
    return report;
  }
  auto pending = options.journal ? journalPending(root, deps) : Result<bool>(false);
  if (!pending) {
    report.error = pending.error();
    return report;
  }
  constexpr const char* kNothing = "nothing to restore: the agent has not changed this node";
  if (state.value() == State{} && !pending.value()) {
    report.notes.push_back(kNothing);
    return report;
  }
  std::optional<FileLock> lock;
  if (!options.dry_run) {
    // Decided under the lock: a restore that waited for another to finish finds nothing left.
    if (options.journal) {
      if (!lockAndRecover(options, deps, lock, report)) {
        return report;
      }
    } else {
      auto acquired = waitForLock(root, deps);
      if (!acquired) {
        report.error = acquired.error();
        return report;
      }
      lock.emplace(std::move(acquired.value()));
    }
    state = readState(deps, root);  // as it is now that no apply can run
    if (!state) {
      report.error = state.error();
      return report;
    }
    if (state.value() == State{}) {
      report.notes.push_back(kNothing);
      return report;
    }
  }
  const State& s = state.value();
  const std::string registries =
      s.registries_path.empty() ? registriesPath(Distribution::kK3s) : s.registries_path;
  auto current = readNodeFile(deps, root, registries);
  if (!current) {
    report.error = current.error();
    return report;
  }
  RestoreInputs in;
  in.registries_path = registries;
  in.registries_now = current.value();
  in.state = s;
  if (s.original == Original::kBackedUp) {
    auto backup = readNodeFile(deps, root, kBackupPath);
    if (!backup) {
      report.error = backup.error();
      return report;
    }
    in.backup = backup.value();
  } else if (current.value()) {
    auto stripped = removeManagedEntries(*current.value(), root.path(registries), s);
    if (!stripped) {
      report.error = stripped.error();
      return report;
    }
    in.stripped = stripped.value();
  }
  auto desired = desiredForRestore(in);
  if (!desired) {
    report.error = desired.error();
    return report;
  }
  // After a restart-free apply certs.d holds the agent's hosts.toml files, which k3s would only
  // replace at its next start: restore leaves the node as k3s would have it, so when the same
  // safety check holds for the restored registries.yaml its files are written too (before the
  // CA file they stop naming is removed), and nothing needs a restart.
  // Not for restore --stage (no journal): the purge's postrm carries a stage out with cp, mv and
  // rm only, which cannot make k3s's 0700 directories or remove emptied ones; the purge says to
  // restart k3s instead.
  bool hot = false;
  if (!s.hosts_toml.empty() && current.value() && options.journal) {
    const Distribution d = registries == registriesPath(Distribution::kRke2) ? Distribution::kRke2
                                                                             : Distribution::kK3s;
    const auto restored =
        std::find_if(desired.value().files.begin(), desired.value().files.end(),
                     [](const DesiredFile& f) { return f.role == FileRole::kRegistries; });
    auto decided = decideHotOrRestart(d, ReloadPolicy::kAuto, root, deps, current.value(),
                                      restored->content.value_or(""));
    if (!decided) {
      report.error = decided.error();
      return report;
    }
    if (decided.value().kind == ReloadKind::kHot) {
      DesiredFiles hosts;
      addHostsToml(hosts, certsDPath(d), decided.value().files, decided.value().stale);
      desired.value().files.insert(std::next(restored), hosts.files.begin(), hosts.files.end());
      hot = true;
    } else {
      report.notes.push_back("not reloaded without a restart: " + decided.value().reason);
    }
  }
  auto on_disk = readCurrent(desired.value().files, root, deps, registries, current.value());
  if (!on_disk) {
    report.error = on_disk.error();
    return report;
  }
  Plan plan = makePlan(desired.value().files, on_disk.value().content, on_disk.value().modes);
  if (hot && plan.restart_needed) {
    plan.restart_needed = false;  // containerd reads the restored files at the next pull
    report.reload = "hot";
    report.notes.push_back(options.dry_run ? "would reload without restarting k3s" : kHotNote);
  }
  if (options.dry_run) {
    report.changed = !plan.empty();
    report.restart_needed = plan.restart_needed;
    report.actions = describe(plan);
    return report;
  }
  executeFiles(plan, options, "restore", deps, report);
  if (report.error) {
    return report;
  }
  // The agent's own CA folder goes too once it is empty, as the package's purge does.
  if (auto removed = deps.files.removeDir(root.path(kCaDir)); !removed) {
    report.warnings.push_back(removed.error().message);
  }
  finishJournal(options, deps, report);
  if (plan.restart_needed) {
    report.restart_needed = true;
    report.notes.push_back(
        "k3s reads registries.yaml only when it starts: restart it to drop the "
        "agent's mirrors");
  }
  return report;
}

}  // namespace k3sma
