#pragma once
// A restore staged for later, for the Debian package's purge. dpkg runs `postrm purge` after the
// package's files are gone, the binary included, so the package's prerm runs
// `k3s-mirror-agent restore --stage DIR` while the binary still exists. The restore is worked
// out and carried out as usual, reading the real node, but through these two stand-ins: a file
// it would write lands under DIR/put/<node path> (same mode), a file it would remove is listed
// in DIR/remove (one node path a line), and a rebuild of the trust store leaves the file
// DIR/update-ca-certificates. The node itself is not changed. The stage is complete only once
// DIR/complete exists (finishStage, the last thing restore --stage does): a prerm killed midway
// leaves a stage without it, which postrm does not carry out. postrm then needs only cp, mv, rm
// and update-ca-certificates to put the node back (packaging/debian/postrm). Under --root the
// stage still holds node paths (/etc/rancher/k3s/registries.yaml, not ROOT/etc/...): they are
// what postrm, run on that node or chrooted into it, puts in place.

#include <string>

#include "agent/command.h"
#include "common/fs.h"

namespace k3sma {

// Empties (or creates) DIR, mode 0700: the staged registries.yaml may hold a password.
Status prepareStage(const std::string& dir);

// Marks the stage complete (DIR/complete): postrm carries out only a complete stage.
Status finishStage(const std::string& dir);

class StagingFiles final : public Files {
 public:
  // root: the --root restore runs under; it hands over root.path(node path) for every file.
  StagingFiles(Files& node, std::string dir, Root root = {})
      : node_(node), dir_(std::move(dir)), root_(std::move(root)) {}
  Result<std::optional<std::string>> read(const std::string& path) override;
  Status write(const std::string& path, std::string_view content, mode_t mode) override;
  Status remove(const std::string& path) override;
  Result<FileInfo> stat(const std::string& path) override { return node_.stat(path); }
  // The only folder restore removes is the agent's CA folder once empty; postrm removes it
  // itself (rmdir), so staging it needs nothing, and the node's folder stays.
  Status removeDir(const std::string&) override { return Ok{}; }
  // Restore makes no folder (it touches no certs.d); listing reads the node as it is.
  Status makeDir(const std::string&, mode_t) override { return Ok{}; }
  Result<std::optional<std::vector<std::string>>> listDirs(const std::string& path) override {
    return node_.listDirs(path);
  }
  // The lock is the node's: no apply may run on the node while the stage is worked out.
  Result<std::optional<FileLock>> tryLock(const std::string& path) override {
    return node_.tryLock(path);
  }

 private:
  Files& node_;      // reads come from the node as it is
  std::string dir_;  // the stage
  Root root_;
};

class StagingCommands final : public CommandRunner {
 public:
  explicit StagingCommands(std::string dir) : dir_(std::move(dir)) {}
  // Only update-ca-certificates is ever run by restore; it is noted, not run.
  Result<CommandResult> run(const std::vector<std::string>& argv) override;

 private:
  std::string dir_;
};

}  // namespace k3sma
