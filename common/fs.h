#pragma once
// Files on the node: an owned fd, reading with a size limit, atomic writes, the apply lock, a
// temporary directory for tests, and --root prefixing. Everything apply does to the disk goes
// through the small Files interface so tests can swap in a fake that fails on purpose.

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace k3sma {

// Move-only owner of a file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd();

  int get() const { return fd_; }
  // Gives the descriptor up (to fdopendir, which then owns it).
  int release() { return std::exchange(fd_, -1); }
  bool valid() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// Maps the paths a node sees (/etc/rancher/k3s/registries.yaml) to the paths this process uses.
// With --root DIR every path is prefixed with DIR, as `systemctl --root` and `dpkg --root` do.
class Root {
 public:
  Root() = default;
  explicit Root(std::string dir);
  std::string path(std::string_view node_path) const;
  const std::string& dir() const { return dir_; }
  bool isSystem() const { return dir_.empty(); }

 private:
  std::string dir_;  // empty: the real root
};

// Size limits per kind of file, so a mistaken or hostile file is refused, not read into memory.
// registries.yaml and CA bundles (everything read through Files): 1 MiB, room for thousands of
// entries or certificates (a PEM certificate is about 2 KiB). The agent's own config, each
// drop-in and the state: 256 KiB. A password file: 64 KiB.
inline constexpr size_t kMaxFileSize = size_t{1024} * 1024;
inline constexpr size_t kMaxConfigFileSize = size_t{256} * 1024;
inline constexpr size_t kMaxStateFileSize = size_t{256} * 1024;
inline constexpr size_t kMaxPasswordFileSize = size_t{64} * 1024;

// Reads a whole file. std::nullopt when it does not exist; an error for anything else, and for
// anything but a regular file (a FIFO, device, socket or directory is refused without blocking:
// the file is opened O_NONBLOCK) or a file larger than limit.
Result<std::optional<std::string>> readFile(const std::string& path, size_t limit = kMaxFileSize);

// The names in a directory (not "." or ".."), opened like readFile: under --root confined to
// it, so a config.d that is a symlink out of the root is not listed. std::nullopt when it does
// not exist.
Result<std::optional<std::vector<std::string>>> listDir(const std::string& path);

// Confines every function below to root for the rest of the process: a path under root.dir()
// is resolved by the kernel as if root.dir() were "/" (openat2 RESOLVE_IN_ROOT), so no "..",
// symlink or absolute symlink inside it leads out. Paths outside root.dir() (a --config given
// elsewhere) are opened as they are. A system root (no --root) confines nothing. An error when
// the directory cannot be opened or the kernel has no openat2.
Status confineTo(const Root& root);

// Writes content to path atomically: a temporary file in the same directory, fsync, rename
// over path, fsync of the directory. Creates missing parent directories with mode 0755.
// A crash leaves either the old or the new file, never a torn one.
Status writeFileAtomic(const std::string& path, std::string_view content, mode_t mode);
// The temporary file writeFileAtomic(path) of process pid writes first: "<dir>/.<name>.tmp-PID".
// A process killed before its rename leaves it; the journal's undo removes it.
std::string atomicTempPath(const std::string& path, pid_t pid);

// Removes path and fsyncs its directory; a path that does not exist is not an error.
Status removeFile(const std::string& path);

// Creates a directory and its parents with mode.
Status makeDirs(const std::string& path, mode_t mode);

struct FileInfo {
  bool regular = false;
  uid_t owner = 0;
  mode_t mode = 0;  // permission bits only
  std::chrono::system_clock::time_point modified;
  // On a mount this process cannot write to (statvfs ST_RDONLY): the hardened unit's namespace
  // makes a directory read-only when it did not exist yet at the daemon's start ("-" prefix of
  // ReadWritePaths=), which no mode bit shows.
  bool read_only = false;
};
Result<FileInfo> statFile(const std::string& path);

// Removes an empty directory and fsyncs its parent. A directory that does not exist, or still
// holds something (ENOTEMPTY), is left alone and is not an error: "remove it once it is empty".
Status removeEmptyDir(const std::string& path);

// The names of the directories in path (symlinks are not followed, so not listed), sorted;
// nullopt when path does not exist.
Result<std::optional<std::vector<std::string>>> listSubdirs(const std::string& path);

class FileLock;

// Everything apply, restore and the stage do to the disk — reads, writes, removals, metadata,
// the lock — goes through here; one real implementation (RealFiles) and fakes in tests (which
// prove that no operation goes around it). Only config loading reads on its own.
class Files {
 public:
  virtual ~Files() = default;
  virtual Result<std::optional<std::string>> read(const std::string& path) = 0;
  virtual Status write(const std::string& path, std::string_view content, mode_t mode) = 0;
  virtual Status remove(const std::string& path) = 0;
  // Metadata (mode, mtime) of what is at path; an error when there is nothing.
  virtual Result<FileInfo> stat(const std::string& path) = 0;
  virtual Status removeDir(const std::string& path) = 0;             // removeEmptyDir's rules
  virtual Status makeDir(const std::string& path, mode_t mode) = 0;  // makeDirs' rules
  virtual Result<std::optional<std::vector<std::string>>> listDirs(
      const std::string& path) = 0;  // listSubdirs' rules
  // FileLock::tryAcquire's rules.
  virtual Result<std::optional<FileLock>> tryLock(const std::string& path) = 0;
};

class RealFiles final : public Files {
 public:
  Result<std::optional<std::string>> read(const std::string& path) override {
    return readFile(path);
  }
  Status write(const std::string& path, std::string_view content, mode_t mode) override {
    return writeFileAtomic(path, content, mode);
  }
  Status remove(const std::string& path) override { return removeFile(path); }
  Result<FileInfo> stat(const std::string& path) override { return statFile(path); }
  Status removeDir(const std::string& path) override { return removeEmptyDir(path); }
  Status makeDir(const std::string& path, mode_t mode) override { return makeDirs(path, mode); }
  Result<std::optional<std::vector<std::string>>> listDirs(const std::string& path) override {
    return listSubdirs(path);
  }
  Result<std::optional<FileLock>> tryLock(const std::string& path) override;
};

// An exclusive advisory lock (flock) held for the whole of an apply, so a daemon and an Ansible
// run never interleave. Released when the object dies, or by the kernel when the process does:
// the lock file a killed agent leaves behind holds no lock and never blocks the next run.
class FileLock {
 public:
  // Blocks until the lock is free; creates the lock file (0600) and its directory if needed.
  static Result<FileLock> acquire(const std::string& path);
  // The same without waiting: std::nullopt while another process holds the lock.
  static Result<std::optional<FileLock>> tryAcquire(const std::string& path);

 private:
  explicit FileLock(Fd fd) : fd_(std::move(fd)) {}
  Fd fd_;
};

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  TempDir(TempDir&& other) noexcept : path_(std::exchange(other.path_, {})) {}
  TempDir& operator=(TempDir&&) = delete;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// "reason" text for errno, as strerror gives it.
std::string errnoText(int err);

}  // namespace k3sma
