#include "agent/cli.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "agent/daemon.h"
#include "agent/probe.h"
#include "agent/stage.h"
#include "agent/status.h"
#include "common/certs_d.h"
#include "common/diff.h"
#include "common/distribution.h"
#include "common/json.h"
#include "common/log.h"
#include "common/registries.h"
#include "common/reload.h"
#include "version.h"

namespace k3sma {
namespace {

constexpr const char* kFooter = R"(Exit status:
  0  done (changed or not)
  1  apply failed; the previous files were put back
  2  usage, config or CA error; nothing was touched
  3  diff / apply --dry-run: changes are pending
  4  apply failed and the previous state could not be fully restored (the message says what)
  5  check --probe: the cache could not be reached or trusted, or a verify.images image could
     not be resolved through it; apply with verify.preflight: require: an image did not resolve

Config: /etc/k3s-mirror-agent/config.yaml plus config.d/*.yaml in name order; the README
describes every key.)";

// How long check --probe waits for each request to the cache (connect, TLS, the answer).
constexpr std::chrono::seconds kProbeTimeout{10};

struct Options {
  std::string config;
  std::string root;
  std::string output = "text";
  bool dry_run = false;
  bool no_restart = false;
  bool show_secrets = false;
  bool probe = false;
  bool verbose = false;
  bool quiet = false;
  std::string stage;    // restore --stage DIR
  std::string certs_d;  // render --certs-d DIR
  std::string k3s_layout = "1.32";
  bool no_default_endpoint = false;
};

int exitCodeFor(const Error& error) {
  switch (error.kind) {
    case ErrorKind::kConfig:
    case ErrorKind::kUnconfigured:
      return kExitUsage;
    case ErrorKind::kApply:
      return kExitRolledBack;
    case ErrorKind::kPartial:
      return kExitPartial;
    case ErrorKind::kProbe:
      return kExitProbe;
  }
  return kExitUsage;
}

// One line of JSON that never throws: bytes that are not UTF-8 (a file name, a message quoting
// a file) become U+FFFD rather than aborting the program; control characters are escaped by
// JSON itself.
template <class Json>
std::string dumpJson(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

nlohmann::json errorJson(const std::optional<Error>& error) {
  return error ? nlohmann::json(error->message) : nlohmann::json(nullptr);
}

ApplyOptions applyOptions(const Options& o) {
  ApplyOptions a;
  a.root = Root(o.root);
  a.config_path = o.config.empty() ? a.root.path(kDefaultConfigPath) : o.config;
  a.dry_run = o.dry_run;
  a.no_restart = o.no_restart;
  return a;
}

void printWarnings(const std::vector<std::string>& warnings) {
  for (const auto& w : warnings) {
    spdlog::warn("{}", w);
  }
}

// apply and restore share the report format.
int printReport(const Report& r, const Options& o, const char* what) {
  printWarnings(r.warnings);
  if (r.error) {
    spdlog::error("{}", r.error->message);
  }
  if (o.output == "json") {
    nlohmann::ordered_json j;
    j["changed"] = r.changed;
    j["restart_needed"] = r.restart_needed;
    j["restarted"] = r.restarted ? nlohmann::ordered_json(*r.restarted) : nullptr;
    j["reload"] = r.reload ? nlohmann::ordered_json(*r.reload) : nullptr;
    j["rolled_back"] = r.rolled_back;
    j["dry_run"] = r.dry_run;
    j["actions"] = nlohmann::ordered_json::array();
    for (const auto& a : r.actions) {
      j["actions"].push_back({{"action", a.verb}, {"target", a.target}});
    }
    j["warnings"] = r.warnings;
    j["notes"] = r.notes;
    j["error"] = errorJson(r.error);
    std::cout << dumpJson(j) << "\n";
  } else if (!r.error) {
    const char* prefix = r.dry_run ? "would " : "";
    if (r.actions.empty()) {
      std::cout << what << ": nothing to change\n";
    }
    for (const auto& a : r.actions) {
      std::cout << prefix << a.verb << " " << a.target << "\n";
    }
    if (r.restarted) {
      std::cout << *r.restarted << " was restarted and is active\n";
    } else if (r.restart_needed) {
      std::cout << kAnyDistributionWord
                << (r.dry_run ? " would be restarted\n" : " needs a restart to read them\n");
    }
    for (const auto& note : r.notes) {
      std::cout << note << "\n";
    }
  }
  if (r.error) {
    return exitCodeFor(*r.error);
  }
  return r.dry_run && r.changed ? kExitPending : kExitOk;
}

// restore --stage DIR: restore, carried out on a stage instead of the node (agent/stage.h).
int runStagedRestore(const Options& o, Deps& deps) {
  // A run killed midway is finished on the node itself first (that puts files back as they
  // were, which is no change of the agent's making); the stage is then worked out from there.
  Report report = recoverInterrupted(applyOptions(o), deps);
  if (report.error) {
    return printReport(report, o, "restore");
  }
  if (auto prepared = prepareStage(o.stage); !prepared) {
    report.error = prepared.error();
    return printReport(report, o, "restore");
  }
  StagingFiles files(deps.files, o.stage, applyOptions(o).root);
  StagingCommands commands(o.stage);
  Deps staged{
      .files = files,
      .commands = commands,
      .clock = deps.clock,
      .connect_systemd = deps.connect_systemd,
      .resolve_images = deps.resolve_images,
  };
  ApplyOptions options = applyOptions(o);
  options.journal = false;  // the journal would be staged, and postrm would put it in place
  report = restore(options, staged);
  if (!report.error && !report.actions.empty()) {
    if (auto finished = finishStage(o.stage); !finished) {
      report.error = finished.error();
    }
  }
  // Nothing on the node changed: say what was staged, and no more.
  report.changed = false;
  report.restart_needed = false;
  for (auto& action : report.actions) {
    action.verb = "stage " + action.verb;
  }
  if (!report.error && !report.actions.empty()) {
    report.notes = {"staged in " + o.stage +
                    ": this node was not changed; the package's purge puts it in place"};
  } else if (report.error) {
    // Half a stage is worse than none: postrm would carry it out, and would say the node's
    // own files are back because the stage exists. prerm promises that purge then leaves
    // the node as it is.
    report.actions.clear();
    std::error_code ec;
    std::filesystem::remove_all(o.stage, ec);
    if (ec) {
      report.error->message +=
          "; the unfinished stage " + o.stage + " could not be removed: " + ec.message();
    }
  }
  return printReport(report, o, "restore");
}

int failWith(const Error& error, const Options& o, nlohmann::ordered_json j) {
  spdlog::error("{}", error.message);
  if (o.output == "json") {
    j["error"] = error.message;
    std::cout << dumpJson(j) << "\n";
  }
  return exitCodeFor(error);
}

int runDiff(const Options& o, Deps& deps) {
  auto prepared = prepare(applyOptions(o), deps);
  if (!prepared) {
    return failWith(prepared.error(), o, {{"changed", false}, {"diff", ""}});
  }
  printWarnings(prepared.value().warnings);
  // Every password, auth and identity_token value, the node's other registries' included, is
  // masked by where it sits in the YAML, not by what it is (maskSecrets).
  auto mask = [&](const std::optional<std::string>& text) -> std::optional<std::string> {
    return text ? std::optional<std::string>(maskSecrets(*text)) : std::nullopt;
  };
  std::string out;
  for (const auto& change : prepared.value().plan.changes) {
    if (change.mode_only) {
      out += fmt::format("# {}: same content, mode set to {:04o}\n", change.path,
                         static_cast<unsigned>(change.mode));
      continue;
    }
    if (change.role == FileRole::kBackup) {
      // The backup is a copy of the node's file: its diff would repeat that file in full.
      out += "# keep a copy of the node's own registries.yaml at " + change.path + "\n";
      continue;
    }
    const std::string shown = unifiedDiff(mask(change.before), mask(change.after), change.path);
    // Masking can hide the only difference: say that a secret changed rather than nothing.
    out += shown.empty() ? "# " + change.path + ": a secret changed (masked)\n" : shown;
  }
  if (prepared.value().plan.update_ca_certificates) {
    out += "# then run update-ca-certificates\n";
  }
  const bool pending = !prepared.value().plan.empty();
  if (o.output == "json") {
    nlohmann::ordered_json j;
    j["changed"] = pending;
    j["diff"] = out;
    j["error"] = nullptr;
    std::cout << dumpJson(j) << "\n";
  } else {
    std::cout << out;
  }
  return pending ? kExitPending : kExitOk;
}

// render --certs-d DIR: the hosts.toml files k3s would write from the registries.yaml apply
// would write (common/certs_d.h), as k3s writes them: DIR/<key>/ 0700, hosts.toml 0644, each
// file atomic. Everything is rendered before the first write, so a registries.yaml the model
// refuses leaves DIR untouched. Other entries of DIR are left alone (k3s would clean them).
int runRenderCertsD(const Options& o, const Prepared& prepared, Deps& deps) {
  const nlohmann::ordered_json empty = {{"dir", o.certs_d}, {"files", nullptr}};
  CertsDOptions options = certsDOptionsFor(prepared.config.k3s.distribution);
  options.layout = parseK3sLayout(o.k3s_layout).value();  // CLI11 allowed only valid names
  options.disable_default_endpoint = o.no_default_endpoint;
  auto files = renderCertsD(prepared.registries_text, prepared.registries_path, options);
  if (!files) {
    // The lines are those of the file apply would write, which `render` prints.
    return failWith(
        files.error().context("render certs.d from the registries.yaml apply would write"), o,
        empty);
  }
  if (auto made = makeDirs(o.certs_d, 0700); !made) {
    // Nothing is written yet: a DIR that cannot be made is a usage error (exit 2).
    // makeDirs names the level that failed (DIR/..); say which DIR was asked for too.
    return failWith(configError("render --certs-d " + o.certs_d + ": " + made.error().message), o,
                    empty);
  }
  nlohmann::ordered_json written = nlohmann::ordered_json::array();
  for (const auto& file : files.value()) {
    const std::string dir = o.certs_d + "/" + file.dir;
    const std::string path = dir + "/hosts.toml";
    Status status = makeDirs(dir, 0700);
    if (status && ::chmod(dir.c_str(), 0700) != 0) {  // a directory that was there already
      status = configError("chmod " + dir + ": " + errnoText(errno));
    }
    if (status) {
      status = deps.files.write(path, file.content, 0644);
    }
    if (!status) {
      // Earlier files are written and complete: say which, so nobody trusts half a set.
      Error e = status.error();
      e.kind = ErrorKind::kApply;
      e.message += " (written before it: " + std::to_string(written.size()) + " of " +
                   std::to_string(files.value().size()) + " files)";
      return failWith(e, o, {{"dir", o.certs_d}, {"files", written}});
    }
    written.push_back({{"dir", file.dir}, {"path", path}});
  }
  if (o.output == "json") {
    nlohmann::ordered_json j = {{"dir", o.certs_d}, {"files", written}, {"error", nullptr}};
    std::cout << dumpJson(j) << "\n";
  } else {
    for (const auto& w : written) {
      std::cout << "wrote " << w["path"].get<std::string>() << "\n";
    }
    if (written.empty()) {
      std::cout << "k3s would write no hosts.toml for this registries.yaml\n";
    }
  }
  return kExitOk;
}

int runRender(const Options& o, Deps& deps) {
  auto prepared = prepare(applyOptions(o), deps);
  if (!prepared) {
    return failWith(prepared.error(), o,
                    o.certs_d.empty()
                        ? nlohmann::ordered_json{{"path", nullptr}, {"content", nullptr}}
                        : nlohmann::ordered_json{{"dir", o.certs_d}, {"files", nullptr}});
  }
  printWarnings(prepared.value().warnings);
  if (!o.certs_d.empty()) {
    return runRenderCertsD(o, prepared.value(), deps);
  }
  std::string text = prepared.value().registries_text;
  if (!o.show_secrets) {
    text = maskSecrets(text);
  }
  if (o.output == "json") {
    nlohmann::ordered_json j;
    j["path"] = prepared.value().registries_path;
    j["content"] = text;
    j["error"] = nullptr;
    std::cout << dumpJson(j) << "\n";
  } else {
    std::cout << text;
  }
  return kExitOk;
}

int runCheck(const Options& o, Deps& deps) {
  auto prepared = prepare(applyOptions(o), deps);
  if (!prepared) {
    return failWith(prepared.error(), o, {{"valid", false}, {"warnings", nlohmann::json::array()}});
  }
  const auto& p = prepared.value();
  printWarnings(p.warnings);
  std::optional<ProbeResult> probe;
  std::vector<ImageResult> images;
  if (o.probe) {
    // One client for the cache and every image: one handshake, one trust store.
    auto prober = Prober::create(p.config, p.ca_pem, kProbeTimeout);
    if (prober) {
      auto outcome = prober.value()->probeAll(deps.clock.wallNow());
      probe = std::move(outcome.cache);
      images = std::move(outcome.images);
    } else {
      probe = ProbeResult{};
      probe->error = prober.error().message;
      images = imagesDown(p.config, prober.error().message);
    }
  }
  std::optional<std::string> first_error;
  if (probe && !probe->up) {
    spdlog::error("{}", probe->error);
    first_error = probe->error;
  }
  for (const auto& image : images) {
    if (!image.up) {
      spdlog::error("{}", image.error);
      first_error = first_error ? first_error : image.error;
    }
  }
  if (o.output == "json") {
    nlohmann::ordered_json j;
    j["valid"] = true;
    j["warnings"] = p.warnings;
    j["changes_pending"] = !p.plan.empty();
    if (probe) {
      j["probe"] = {{"url", p.config.registry.url},
                    {"up", probe->up},
                    {"latency_ms", probe->latency.count()},
                    {"http_status", probe->http_status},
                    {"certificate_days_left", probe->certificate_days_left
                                                  ? nlohmann::json(*probe->certificate_days_left)
                                                  : nlohmann::json(nullptr)},
                    {"error", probe->up ? nlohmann::json(nullptr) : nlohmann::json(probe->error)},
                    {"images", imagesJson(images)}};
    }
    j["error"] = first_error ? nlohmann::json(*first_error) : nlohmann::json(nullptr);
    std::cout << dumpJson(j) << "\n";
  } else {
    std::cout << "config OK: " << p.config.mirrors.size() << " mirror"
              << (p.config.mirrors.size() == 1 ? "" : "s") << " through " << p.config.registry.url
              << (p.config.registry.ca_file.empty() ? "" : ", CA " + p.config.registry.ca_file)
              << "\n"
              << (p.plan.empty() ? "the node is up to date\n"
                                 : "changes are pending: see k3s-mirror-agent diff\n");
    if (probe && probe->up) {
      std::cout << "cache up: " << p.config.registry.url << "/v2/ answered HTTP "
                << probe->http_status << " in " << probe->latency.count() << " ms";
      if (probe->certificate_days_left) {
        std::cout << "; its certificate expires in " << *probe->certificate_days_left << " days";
      }
      std::cout << "\n";
    } else if (probe) {
      std::cout << "cache down: " << probe->error << "\n";
    }
    for (const auto& image : images) {
      if (image.up) {
        std::cout << "image up: " << image.image << " resolved to " << image.digest << " in "
                  << image.latency.count() << " ms\n";
      } else {
        std::cout << "image down: " << image.error << "\n";
      }
    }
  }
  return first_error ? kExitProbe : kExitOk;
}

int runStatus(const Options& o) {
  const Root root(o.root);
  const std::string status_path = root.path(kStatusPath);
  auto daemon = readFile(status_path);
  auto state_text = readFile(root.path(kStatePath), kMaxStateFileSize);
  auto fail = [&](const Error& e) {
    return failWith(e, o, {{"daemon", nullptr}, {"managed", nullptr}});
  };
  if (!daemon) {
    return fail(daemon.error().context("read " + status_path));
  }
  if (!state_text) {
    return fail(state_text.error().context("read " + root.path(kStatePath)));
  }
  // No state file: the agent manages nothing here yet (never applied, or restored).
  auto state = state_text.value() ? parseState(*state_text.value(), root.path(kStatePath))
                                  : Result<State>(State{});
  if (!state) {
    return fail(state.error());
  }
  // The pid in the file is alive: the daemon runs (a crash leaves "running": true behind).
  bool alive = false;
  nlohmann::ordered_json daemon_json;  // null without a file; discarded when it is not JSON
  if (daemon.value()) {
    daemon_json = nlohmann::ordered_json::parse(*daemon.value(), nullptr, false);
    // Only a real process id: kill(0 or -1, 0) asks about a process group or every process.
    const auto pid =
        daemon_json.is_object() ? jsonIntegerAt<pid_t>(daemon_json, "pid") : std::nullopt;
    if (pid && *pid > 0) {
      alive = ::kill(*pid, 0) == 0 || errno == EPERM;
    }
  }
  if (o.output == "json") {
    nlohmann::ordered_json j;
    j["daemon"] = daemon_json.is_object() ? daemon_json : nlohmann::ordered_json(nullptr);
    if (j["daemon"].is_object()) {
      j["daemon"]["alive"] = alive;
    }
    const State& st = state.value();
    j["managed"] = {{"registries_path", st.registries_path.empty()
                                            ? nlohmann::ordered_json(nullptr)
                                            : nlohmann::ordered_json(st.registries_path)},
                    {"mirrors", st.mirrors},
                    {"configs", st.configs},
                    {"ca_files", st.ca_files}};
    j["error"] = nullptr;
    std::cout << dumpJson(j) << "\n";
    return kExitOk;
  }
  auto text = describeStatus(daemon.value(), alive, state.value(), status_path);
  if (!text) {
    return fail(text.error());
  }
  std::cout << text.value();
  return kExitOk;
}

// `--apply` is the spelling playbooks use; it means the apply subcommand.
std::vector<std::string> normaliseArgs(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  for (auto& a : args) {
    if (a == "--apply") {
      a = "apply";
      break;
    }
    if (!a.empty() && a.front() != '-') {
      break;  // a subcommand came first: leave the rest alone
    }
  }
  return args;
}

void addCommonOptions(CLI::App& cmd, Options& o) {
  cmd.add_option("--config", o.config,
                 "Config file (default /etc/k3s-mirror-agent/config.yaml under --root); the "
                 "config.d/ next to it is read too");
  cmd.add_option("--root", o.root,
                 "Prefix every path the agent reads or writes with DIR, as dpkg --root does; "
                 "no unit is restarted")
      ->check(CLI::ExistingDirectory);
  cmd.add_option("--output", o.output, "Output format on stdout: text or json")
      ->check(CLI::IsMember({"text", "json"}));
  cmd.add_flag("-v,--verbose", o.verbose, "Log debug detail to stderr");
  cmd.add_flag("-q,--quiet", o.quiet, "Log only errors");
}

}  // namespace

int runCli(int argc, char** argv, Deps& deps) {
  Options o;
  CLI::App app{"k3s-mirror-agent " + std::string(kVersion) +
                   ": points k3s (or RKE2) at a pull-through registry cache — writes "
                   "registries.yaml and installs the cache's CA, only when they change.",
               kProgramName};
  app.set_version_flag("--version", kVersion);
  app.require_subcommand(1);
  app.footer(kFooter);

  auto* apply_cmd =
      app.add_subcommand("apply",
                         "Write registries.yaml and install the CA if they differ from the config "
                         "(also spelled --apply)");
  addCommonOptions(*apply_cmd, o);
  apply_cmd->add_flag("--dry-run", o.dry_run,
                      "Only say what would change (exit 3 when something would)");
  apply_cmd->add_flag("--no-restart", o.no_restart, "Write the files but restart nothing");

  auto* diff_cmd = app.add_subcommand(
      "diff",
      "Show what apply would change as a unified diff, secrets masked (exit 3 when "
      "something would)");
  addCommonOptions(*diff_cmd, o);

  auto* render_cmd =
      app.add_subcommand("render",
                         "Print the registries.yaml apply would write (secrets masked), or with "
                         "--certs-d write the hosts.toml files k3s would make of it");
  addCommonOptions(*render_cmd, o);
  render_cmd->add_flag("--show-secrets", o.show_secrets, "Print passwords instead of ********");
  auto* certs_d_opt =
      render_cmd
          ->add_option("--certs-d", o.certs_d,
                       "Instead, write under DIR the <host>/hosts.toml files k3s would generate "
                       "from that registries.yaml, byte for byte (dirs 0700, files 0644; no "
                       "secret is in them); DIR is created if missing")
          ->type_name("DIR");
  render_cmd
      ->add_option("--k3s-layout", o.k3s_layout,
                   "With --certs-d: the bytes of k3s 1.32 (v1.32.2 and later, the default) or "
                   "1.29 (v1.29.4 to v1.32.1)")
      ->check(CLI::IsMember({"1.29", "1.32"}))
      ->needs(certs_d_opt);
  render_cmd
      ->add_flag("--no-default-endpoint", o.no_default_endpoint,
                 "With --certs-d: as k3s --disable-default-registry-endpoint")
      ->needs(certs_d_opt);
  certs_d_opt->excludes("--show-secrets");

  auto* check_cmd = app.add_subcommand(
      "check", "Validate the config and the CA; change nothing (exit 0, 2, or 5 with --probe)");
  addCommonOptions(*check_cmd, o);
  check_cmd->add_flag("--probe", o.probe,
                      "Also reach the cache: TLS verified with the CA and the host name, then "
                      "GET /v2/ must answer 200 or 401, and resolve every verify.images manifest "
                      "through the cache (exit 5 when one fails)");

  auto* restore_cmd =
      app.add_subcommand("restore",
                         "Undo: put back the node's own registries.yaml, remove the agent's CA and "
                         "entries, forget the state");
  addCommonOptions(*restore_cmd, o);
  restore_cmd->add_flag("--dry-run", o.dry_run, "Only say what would change");
  restore_cmd
      ->add_option("--stage", o.stage,
                   "Change nothing; write what restore would put in place under DIR, for the "
                   "package's purge (which runs after this program is removed)")
      ->type_name("DIR")
      ->excludes("--dry-run");

  auto* run_cmd = app.add_subcommand(
      "run",
      "The daemon: apply now, then watch the config and the managed files, apply changes after "
      "the debounce (restarts after a random splay), put back hand edits, probe the cache; "
      "run it as the k3s-mirror-agent systemd service");
  addCommonOptions(*run_cmd, o);

  auto* status_cmd = app.add_subcommand(
      "status",
      "What the daemon reports (last apply, restarts, drift, cache health) and what "
      "the agent manages on this node");
  addCommonOptions(*status_cmd, o);

  auto args = normaliseArgs(argc, argv);
  std::reverse(args.begin(), args.end());  // CLI11 takes a reversed vector
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  setupLogging(o.quiet ? Verbosity::kQuiet : o.verbose ? Verbosity::kDebug : Verbosity::kNormal);
  // With --root, every path under DIR resolves inside it from here on (fs.h: confineTo).
  if (auto confined = confineTo(Root(o.root)); !confined) {
    return failWith(confined.error(), o, nlohmann::ordered_json::object());
  }

  if (apply_cmd->parsed()) {
    return printReport(apply(applyOptions(o), deps), o, "apply");
  }
  if (restore_cmd->parsed()) {
    return o.stage.empty() ? printReport(restore(applyOptions(o), deps), o, "restore")
                           : runStagedRestore(o, deps);
  }
  if (run_cmd->parsed()) {
    return runDaemon(applyOptions(o), deps);
  }
  if (status_cmd->parsed()) {
    return runStatus(o);
  }
  if (diff_cmd->parsed()) {
    return runDiff(o, deps);
  }
  if (render_cmd->parsed()) {
    return runRender(o, deps);
  }
  return runCheck(o, deps);
}

}  // namespace k3sma
