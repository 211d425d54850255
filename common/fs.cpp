#include "common/fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <mutex>
#include <system_error>
#include <vector>

#include "common/handle.h"

namespace k3sma {
namespace {

// The --root the process is confined to (confineTo), and a directory fd on it. Set once, at
// start-up, before any file is touched; read-only afterwards.
struct Confinement {
  std::string dir;
  Fd fd;
};
Confinement& confinement() {
  static Confinement c;
  return c;
}

std::string parentOf(const std::string& path) {
  auto parent = std::filesystem::path(path).parent_path().string();
  return parent.empty() ? "." : parent;
}

std::string baseOf(const std::string& path) {
  return std::filesystem::path(path).filename().string();
}

Error sysError(const std::string& what, int err) {
  return {what + ": " + errnoText(err), ErrorKind::kApply};
}

// Opens path. Under --root DIR, a path inside DIR is resolved by the kernel with
// RESOLVE_IN_ROOT: "..", absolute symlinks and absolute paths all stay inside DIR, as they would
// for a process chrooted there (openat2(2), Linux 5.6; Debian 12 runs 6.1). Magic links
// (/proc/self/fd/N) are refused too. Other paths (a --config outside DIR) open as usual.
// Returns -1 with errno set.
int openPath(const std::string& path, int flags, mode_t mode = 0) {
  const auto& c = confinement();
  struct open_how how {};
  how.flags = static_cast<__u64>(static_cast<unsigned>(flags | O_CLOEXEC));
  how.mode = (flags & O_CREAT) != 0 ? static_cast<__u64>(mode) : 0;
  int dirfd = AT_FDCWD;
  std::string rel = path;
  if (c.fd.valid() && (path == c.dir || path.rfind(c.dir + "/", 0) == 0)) {
    dirfd = c.fd.get();
    // DIR itself, or DIR/ with nothing after it, is "." (one expression: GCC 12 -O3 reported a
    // false -Wrestrict overlap for a second assignment of ".").
    rel = path.size() > c.dir.size() + 1 ? path.substr(c.dir.size() + 1) : std::string(".");
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  }
  if (how.resolve == 0) {
    // Not confined: plain openat, so no path depends on openat2 (a container's seccomp filter
    // may lack it; confineTo says so when it is needed).
    return ::openat(AT_FDCWD, path.c_str(), flags | O_CLOEXEC, mode);
  }
  for (;;) {
    const long fd = ::syscall(SYS_openat2, dirfd, rel.c_str(), &how, sizeof how);
    if (fd >= 0) {
      return static_cast<int>(fd);
    }
    // EAGAIN: RESOLVE_IN_ROOT saw a concurrent rename and asks for a retry.
    if (errno != EINTR && errno != EAGAIN) {
      return -1;
    }
  }
}

// The directory that holds path, opened (confined like openPath), and the last component: the
// *at() calls then work on a name inside a directory that is known to be inside the root.
struct Parent {
  Fd dir;
  std::string name;
  int err = 0;  // errno when dir could not be opened
};
Parent openParentOf(const std::string& path) {
  const std::string name = baseOf(path);
  if (name.empty() || name == "." || name == "..") {
    return {Fd(), name, EINVAL};
  }
  Fd dir(openPath(parentOf(path), O_PATH | O_DIRECTORY));
  const int err = dir.valid() ? 0 : errno;
  return {std::move(dir), name, err};
}
Result<Parent> openParent(const std::string& path, const std::string& verb) {
  Parent parent = openParentOf(path);
  if (!parent.dir.valid()) {
    return sysError(verb + " " + path, parent.err);
  }
  return parent;
}

Status fsyncDir(const std::string& dir) {
  Fd fd(openPath(dir, O_RDONLY | O_DIRECTORY));
  if (!fd.valid()) {
    return sysError("open directory " + dir, errno);
  }
  if (::fsync(fd.get()) != 0) {
    return sysError("fsync directory " + dir, errno);
  }
  return Ok{};
}

Status writeAll(int fd, std::string_view content, const std::string& path) {
  while (!content.empty()) {
    ssize_t n = ::write(fd, content.data(), content.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return sysError("write " + path, errno);
    }
    content.remove_prefix(static_cast<size_t>(n));
  }
  return Ok{};
}

std::string typeName(mode_t mode) {
  if (S_ISDIR(mode)) {
    return "a directory";
  }
  if (S_ISFIFO(mode)) {
    return "a FIFO";
  }
  if (S_ISSOCK(mode)) {
    return "a socket";
  }
  if (S_ISCHR(mode) || S_ISBLK(mode)) {
    return "a device";
  }
  return "not a regular file";
}

}  // namespace

std::string errnoText(int err) { return std::strerror(err); }

Fd& Fd::operator=(Fd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

Fd::~Fd() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

Root::Root(std::string dir) : dir_(std::move(dir)) {
  // Absolute, so that commands run with paths inside the root (update-ca-certificates cd's
  // into one of them) see the same directory the agent does.
  if (!dir_.empty() && dir_.front() != '/') {
    std::error_code ec;
    dir_ = std::filesystem::absolute(dir_, ec).string();
  }
  while (dir_.size() > 1 && dir_.back() == '/') {
    dir_.pop_back();
  }
  if (dir_ == "/") {
    dir_.clear();
  }
}

std::string Root::path(std::string_view node_path) const { return dir_ + std::string(node_path); }

Status confineTo(const Root& root) {
  auto& c = confinement();
  if (root.isSystem()) {
    c = Confinement{};
    return Ok{};
  }
  Fd fd(::open(root.dir().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) {
    return configError("open --root " + root.dir() + ": " + errnoText(errno));
  }
  // Refuse early on a kernel (or a seccomp filter) without openat2: confinement that silently
  // does not happen is worse than none.
  struct open_how how {};
  how.flags = static_cast<__u64>(static_cast<unsigned>(O_PATH | O_DIRECTORY | O_CLOEXEC));
  how.resolve = RESOLVE_IN_ROOT;
  Fd probe(static_cast<int>(::syscall(SYS_openat2, fd.get(), ".", &how, sizeof how)));
  if (!probe.valid()) {
    return configError("confine paths to --root " + root.dir() + ": openat2: " + errnoText(errno));
  }
  c.dir = root.dir();
  c.fd = std::move(fd);
  return Ok{};
}

Result<std::optional<std::string>> readFile(const std::string& path, size_t limit) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer for ever. The type
  // is checked on the open fd (no race with a rename), and nothing but a regular file is read.
  Fd fd(openPath(path, O_RDONLY | O_NOCTTY | O_NONBLOCK));
  if (!fd.valid()) {
    if (errno == ENOENT) {
      return std::optional<std::string>{};
    }
    return Error{"read " + path + ": " + errnoText(errno), ErrorKind::kConfig};
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return Error{"read " + path + ": " + errnoText(errno), ErrorKind::kConfig};
  }
  if (!S_ISREG(st.st_mode)) {
    return Error{"read " + path + ": " + typeName(st.st_mode) + ", not a regular file",
                 ErrorKind::kConfig};
  }
  if (static_cast<uint64_t>(st.st_size) > limit) {
    return Error{"read " + path + ": larger than " + std::to_string(limit) + " bytes",
                 ErrorKind::kConfig};
  }
  std::string content;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return Error{"read " + path + ": " + errnoText(errno), ErrorKind::kConfig};
    }
    if (n == 0) {
      break;
    }
    content.append(buf, static_cast<size_t>(n));
    if (content.size() > limit) {  // it grew while being read
      return Error{"read " + path + ": larger than " + std::to_string(limit) + " bytes",
                   ErrorKind::kConfig};
    }
  }
  return std::optional<std::string>{std::move(content)};
}

namespace {
// The names in a directory opened through openPath (so with --root it cannot lead out of it);
// dirs_only keeps the subdirectories, symlinks to directories not counted.
Result<std::optional<std::vector<std::string>>> listEntries(const std::string& path,
                                                            bool dirs_only) {
  Fd fd(openPath(path, O_RDONLY | O_DIRECTORY | O_NONBLOCK));
  if (!fd.valid()) {
    if (errno == ENOENT) {
      return std::optional<std::vector<std::string>>{};
    }
    return Error{"list " + path + ": " + errnoText(errno), ErrorKind::kConfig};
  }
  // fdopendir takes the fd over; closedir closes it.
  Owned<DIR, &::closedir> dir(::fdopendir(fd.get()));
  if (!dir) {
    return Error{"list " + path + ": " + errnoText(errno), ErrorKind::kConfig};
  }
  (void)fd.release();
  std::vector<std::string> names;
  errno = 0;
  while (const dirent* entry = ::readdir(dir.get())) {
    const std::string name = entry->d_name;
    if (name == "." || name == "..") {
      continue;
    }
    if (dirs_only) {
      struct stat st {};
      const bool is_dir = entry->d_type == DT_DIR || (entry->d_type == DT_UNKNOWN &&
                                                      ::fstatat(::dirfd(dir.get()), entry->d_name,
                                                                &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                                                      S_ISDIR(st.st_mode));
      if (!is_dir) {
        errno = 0;
        continue;
      }
    }
    names.push_back(name);
    errno = 0;
  }
  if (errno != 0) {
    return Error{"list " + path + ": " + errnoText(errno), ErrorKind::kConfig};
  }
  return std::optional<std::vector<std::string>>{std::move(names)};
}
}  // namespace

Result<std::optional<std::vector<std::string>>> listDir(const std::string& path) {
  return listEntries(path, false);
}

Status makeDirs(const std::string& path, mode_t mode) {
  {
    Fd existing(openPath(path, O_PATH | O_DIRECTORY));
    if (existing.valid()) {
      return Ok{};
    }
  }
  // One level at a time so the last level gets the mode asked for and the parents the usual
  // 0755 (mkdir honours the umask, so each is chmod'ed). Each level is created inside its
  // parent's fd, so a symlinked level cannot lead out of --root.
  std::filesystem::path target(path);
  std::filesystem::path built;
  for (auto part = target.begin(); part != target.end(); ++part) {
    built /= *part;
    const bool last = std::next(part) == target.end();
    const std::string level = built.string();
    if (level == "/" || level == "." || level.empty()) {
      continue;
    }
    Fd existing(openPath(level, O_PATH | O_DIRECTORY));
    if (existing.valid()) {
      continue;
    }
    auto parent = openParent(level, "create directory");
    if (!parent) {
      return parent.error();
    }
    const mode_t want = last ? mode : 0755;
    if (::mkdirat(parent.value().dir.get(), parent.value().name.c_str(), want) == 0) {
      Fd made(::openat(parent.value().dir.get(), parent.value().name.c_str(),
                       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!made.valid() || ::fchmod(made.get(), want) != 0) {
        return sysError("chmod directory " + level, errno);
      }
    } else if (errno != EEXIST) {
      return sysError("create directory " + level, errno);
    } else if (Fd raced(openPath(level, O_PATH | O_DIRECTORY)); !raced.valid()) {
      return sysError("create directory " + level, ENOTDIR);  // exists, not a directory
    }
  }
  return Ok{};
}

std::string atomicTempPath(const std::string& path, pid_t pid) {
  const size_t slash = path.rfind('/');
  const size_t start = slash == std::string::npos ? 0 : slash + 1;
  return path.substr(0, start) + "." + path.substr(start) + ".tmp-" + std::to_string(pid);
}

Status writeFileAtomic(const std::string& path, std::string_view content, mode_t mode) {
  const std::string dir = parentOf(path);
  if (auto made = makeDirs(dir, 0755); !made) {
    return made;
  }
  auto parent = openParent(path, "write");
  if (!parent) {
    return parent.error();
  }
  const int dirfd = parent.value().dir.get();
  // The temporary name is unique per process and hidden, so a crash leaves at worst a stray
  // ".name.tmp-PID" next to the target, never a half-written target.
  const std::string tmp_name = atomicTempPath(parent.value().name, ::getpid());
  const std::string tmp = dir + "/" + tmp_name;
  Fd fd(::openat(dirfd, tmp_name.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                 mode));
  if (!fd.valid()) {
    return sysError("create " + tmp, errno);
  }
  auto cleanup_on_error = [&](Error e) -> Status {
    ::unlinkat(dirfd, tmp_name.c_str(), 0);
    return e;
  };
  // open() honours the umask; set the mode explicitly so 0644 stays 0644 under umask 077.
  if (::fchmod(fd.get(), mode) != 0) {
    return cleanup_on_error(sysError("chmod " + tmp, errno));
  }
  if (auto written = writeAll(fd.get(), content, tmp); !written) {
    return cleanup_on_error(written.error());
  }
  if (::fsync(fd.get()) != 0) {
    return cleanup_on_error(sysError("fsync " + tmp, errno));
  }
  fd = Fd();
  if (::renameat(dirfd, tmp_name.c_str(), dirfd, parent.value().name.c_str()) != 0) {
    return cleanup_on_error(sysError("rename " + tmp + " to " + path, errno));
  }
  return fsyncDir(dir);
}

Status removeFile(const std::string& path) {
  Parent parent = openParentOf(path);
  if (!parent.dir.valid()) {
    if (parent.err == ENOENT) {
      return Ok{};  // no directory, so no file
    }
    return sysError("remove " + path, parent.err);
  }
  if (::unlinkat(parent.dir.get(), parent.name.c_str(), 0) != 0) {
    if (errno == ENOENT) {
      return Ok{};
    }
    return sysError("remove " + path, errno);
  }
  return fsyncDir(parentOf(path));
}

Status removeEmptyDir(const std::string& path) {
  if (::rmdir(path.c_str()) != 0) {
    if (errno == ENOENT || errno == ENOTEMPTY || errno == EEXIST) {
      return Ok{};
    }
    return sysError("remove the empty folder " + path, errno);
  }
  return fsyncDir(parentOf(path));
}

Result<FileInfo> statFile(const std::string& path) {
  struct stat st {};
  Fd fd(openPath(path, O_PATH));
  if (!fd.valid() || ::fstat(fd.get(), &st) != 0) {
    return Error{"stat " + path + ": " + errnoText(errno), ErrorKind::kConfig};
  }
  const auto modified = std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec)));
  // fstatvfs on an O_PATH descriptor works since Linux 3.12; f_flag carries the per-mount
  // read-only flag of a bind mount, which is what a sandboxed service sees.
  struct statvfs vfs {};
  const bool read_only = ::fstatvfs(fd.get(), &vfs) == 0 && (vfs.f_flag & ST_RDONLY) != 0;
  return FileInfo{S_ISREG(st.st_mode), st.st_uid, st.st_mode & 07777, modified, read_only};
}

namespace {

Result<Fd> openLockFile(const std::string& path) {
  // 0755: the directory (/run/k3s-mirror-agent) also holds the status file others may read.
  if (auto made = makeDirs(parentOf(path), 0755); !made) {
    return made.error();
  }
  Fd fd(openPath(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK, 0600));
  if (!fd.valid()) {
    return sysError("open lock " + path, errno);
  }
  return fd;
}

}  // namespace
Result<FileLock> FileLock::acquire(const std::string& path) {
  auto fd = openLockFile(path);
  if (!fd) {
    return fd.error();
  }
  while (::flock(fd.value().get(), LOCK_EX) != 0) {
    if (errno != EINTR) {
      return sysError("lock " + path, errno);
    }
  }
  return FileLock(std::move(fd.value()));
}

Result<std::optional<FileLock>> FileLock::tryAcquire(const std::string& path) {
  auto fd = openLockFile(path);
  if (!fd) {
    return fd.error();
  }
  while (::flock(fd.value().get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return std::optional<FileLock>();
    }
    if (errno != EINTR) {
      return sysError("lock " + path, errno);
    }
  }
  return std::optional<FileLock>(FileLock(std::move(fd.value())));
}

Result<std::optional<FileLock>> RealFiles::tryLock(const std::string& path) {
  return FileLock::tryAcquire(path);
}

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl =
      std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/k3sma-test-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) {
    std::abort();  // a test machine without a writable /tmp is broken, not a user error
  }
  path_ = buf.data();
}

TempDir::~TempDir() {
  if (!path_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
}

Result<std::optional<std::vector<std::string>>> listSubdirs(const std::string& path) {
  auto names = listEntries(path, true);
  if (names && names.value()) {
    std::sort(names.value()->begin(), names.value()->end());
  }
  return names;
}

}  // namespace k3sma
