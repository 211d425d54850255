#pragma once
// The intent record that makes a crash at any step of an apply or a restore recoverable, in
// dpkg's manner: before the first change, under the lock, the agent writes (atomically, 0600)
// what it is about to change — every file with its role and its before-image (content and mode,
// or "absent"), and the commands that rebuild what depends on them (update-ca-certificates) —
// and removes the record only once the change is final (for an apply: after k3s came back on
// the new files, or after the undo). Whatever run comes next (apply, restore, the daemon's
// start) and finds the record puts every before-image back, which is safe to do twice, reruns
// the commands, drops the record, and only then plans from the node as it is: the change is
// redone from scratch. Rolling back rather than forward is always possible and never wrong —
// the journal lives until the restart's verdict, so "the files changed but k3s never restarted
// on them" is undone too, and the next apply restarts it.
//
// Generic over files: a later kind of file (containerd's hosts.toml) is one more entry with its
// own role. The before-images hold what registries.yaml holds, passwords included, so the
// journal lives beside the backup under /var/lib (0600) and is never printed.

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/plan.h"

namespace k3sma {

inline constexpr const char* kJournalPath = "/var/lib/k3s-mirror-agent/journal.json";

// The command run after the files were put back when any CA file was among them.
inline constexpr const char* kRebuildTrustStore = "update-ca-certificates";

struct JournalFile {
  std::string path;  // node path
  FileRole role = FileRole::kState;
  std::optional<std::string> before;  // nullopt: the file did not exist
  mode_t before_mode = 0600;          // permission bits it had

  bool operator==(const JournalFile&) const = default;
};

struct Journal {
  std::string operation;              // "apply" or "restore", for messages
  std::vector<JournalFile> files;     // in the order they are changed
  std::vector<std::string> commands;  // run after putting the files back (kRebuildTrustStore)
  // The process that made the changes (0: not recorded): a kill between writing a file's
  // temporary copy and its rename leaves atomicTempPath(file, pid), which the undo removes, so
  // that certs.d ends as k3s or `render --certs-d` makes it, with no stray file in it.
  pid_t pid = 0;

  bool operator==(const Journal&) const = default;
};

// The journal for carrying out plan.
Journal journalFor(const Plan& plan, const std::string& operation);

// Both pure. Contents are base64 in the JSON: the node's file may hold any bytes.
std::string renderJournal(const Journal& journal);
Result<Journal> parseJournal(const std::string& text, const std::string& source);

}  // namespace k3sma
