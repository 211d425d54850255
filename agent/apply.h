#pragma once
// The apply transaction, and restore, its undo. prepare() reads the node and plans without
// changing anything (diff, render, check and --dry-run stop there); apply() finds the k3s unit,
// takes the lock, undoes an interrupted run it finds recorded in the journal (common/journal.h),
// plans again under the lock and executes: the journal first, then backup, CA files,
// update-ca-certificates, registries.yaml, state, then restarts k3s if it runs and waits for it
// to be healthy, and drops the journal. On any failure it puts back every file it had changed,
// in reverse order, rebuilds the trust store and restarts k3s on the old files.

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/clock.h"
#include "agent/command.h"
#include "agent/preflight.h"
#include "agent/systemd.h"
#include "common/ca.h"
#include "common/config.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/plan.h"
#include "common/reload.h"
#include "common/state.h"

namespace k3sma {

// The seams of apply: the side effects it has, each with one real implementation and a fake in
// the unit tests. Built with named fields ({.files = ..., .clock = ...}).
struct Deps {
  Files& files;
  CommandRunner& commands;
  // Deadlines and sleeps, and the wall time certificates are checked against.
  Clock& clock;
  // Connects to systemd only when a restart is due: a run that changes nothing opens no bus.
  // The daemon's closure carries its watchdog heartbeat into the waits of a restart job.
  std::function<Result<std::unique_ptr<Systemd>>()> connect_systemd;
  // verify.preflight's resolver (agent/preflight.h): empty means the real registry client,
  // without a heartbeat; the daemon's carries one.
  ImageResolver resolve_images = {};
};

struct ApplyOptions {
  std::string config_path;  // on this machine (not prefixed by root)
  Root root;
  bool dry_run = false;
  bool no_restart = false;
  // false for restore --stage, which changes nothing on the node: no journal is written.
  bool journal = true;
  // Unit tests only: drive the restart branches over a scratch root with a fake systemd. The
  // command line never sets it; with --root no unit is ever restarted.
  bool restart_under_root = false;
};

// The one rule for "may this run restart k3s": apply and the daemon both ask it. The reason
// when not (--root, --no-restart, k3s.restart: never), nullopt when a restart is allowed.
std::optional<std::string> whyNoRestart(const ApplyOptions& options, const K3sSettings& k3s);

struct Action {
  std::string verb;    // write, remove, run, restart
  std::string target;  // a node path, a command or a unit
};

struct Report {
  bool changed = false;
  bool restart_needed = false;
  std::optional<std::string> restarted;  // the unit restarted, when one was
  // "hot": the change went to containerd's certs.d without a restart (common/reload.h);
  // "restart": k3s was restarted; nullopt: neither (nothing to pick up, or no restart allowed).
  std::optional<std::string> reload;
  bool rolled_back = false;
  bool dry_run = false;
  std::vector<Action> actions;  // done, or with dry_run what would be done
  std::vector<std::string> warnings;
  std::vector<std::string> notes;  // sentences for people, e.g. why k3s was not restarted
  std::optional<Error> error;
};

struct Prepared {
  Config config;
  State state;                  // as on disk before this apply
  std::string registries_path;  // node path
  std::string registries_text;  // what registries.yaml should hold
  std::string ca_pem;           // the configured CA as it is installed; empty without one
  Plan plan;
  // Set when the change needs k3s to pick it up: hot (the plan then holds the hosts.toml files
  // and needs no restart) or restart, with the reason.
  std::optional<ReloadDecision> reload;
  std::vector<std::string> warnings;  // e.g. a CA that expires soon
};

Result<Prepared> prepare(const ApplyOptions& options, Deps& deps);

Report apply(const ApplyOptions& options, Deps& deps);

// Puts back the registries.yaml the node had before the agent (or removes the agent's entries
// when there was none), removes the agent's CA files and runs update-ca-certificates, then
// forgets the state. Needs no config: it must work after the config is gone (dpkg purge).
Report restore(const ApplyOptions& options, Deps& deps);

// Finishes what a run killed midway left in the journal — puts every file it recorded back as
// it was and rebuilds the trust store — under the lock. apply and restore do this first by
// themselves; the daemon calls it at start, and restore --stage with the node's own Files
// before it stages. A report with nothing in it when there was no journal.
Report recoverInterrupted(const ApplyOptions& options, Deps& deps);

// update-ca-certificates, with its directories pointed inside root when there is one. fresh
// (--fresh) when a CA file was removed: Debian's update-ca-certificates leaves the links of a
// removed local CA dangling in /etc/ssl/certs unless the set of certificates it added changed;
// --fresh rebuilds every link from what is there.
std::vector<std::string> updateCaCommand(const Root& root, bool fresh = false);

}  // namespace k3sma
