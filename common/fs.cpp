#include "common/fs.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <system_error>
#include <vector>

namespace k3sma {
namespace {

std::string parentOf(const std::string& path) {
  auto parent = std::filesystem::path(path).parent_path().string();
  return parent.empty() ? "." : parent;
}

Error sysError(const std::string& what, int err) {
  return {what + ": " + errnoText(err), ErrorKind::kApply};
}

Status fsyncDir(const std::string& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
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

Result<std::optional<std::string>> readFile(const std::string& path, size_t limit) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd.valid()) {
    if (errno == ENOENT) {
      return std::optional<std::string>{};
    }
    return Error{"read " + path + ": " + errnoText(errno), ErrorKind::kConfig};
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
    if (content.size() > limit) {
      return Error{"read " + path + ": larger than " + std::to_string(limit) + " bytes",
                   ErrorKind::kConfig};
    }
  }
  return std::optional<std::string>{std::move(content)};
}

Status makeDirs(const std::string& path, mode_t mode) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return Ok{};
  }
  // create_directories uses 0777 & ~umask; create one level at a time so the last level gets
  // the mode asked for and the parents the usual 0755.
  std::filesystem::path target(path);
  std::filesystem::path built;
  for (auto part = target.begin(); part != target.end(); ++part) {
    built /= *part;
    const bool last = std::next(part) == target.end();
    if (::mkdir(built.c_str(), last ? mode : 0755) == 0) {
      if (::chmod(built.c_str(), last ? mode : 0755) != 0) {  // mkdir honours the umask
        return sysError("chmod directory " + built.string(), errno);
      }
    } else if (errno != EEXIST) {
      return sysError("create directory " + built.string(), errno);
    }
  }
  return Ok{};
}

Status writeFileAtomic(const std::string& path, std::string_view content, mode_t mode) {
  const std::string dir = parentOf(path);
  if (auto made = makeDirs(dir, 0755); !made) {
    return made;
  }
  // The temporary name is unique per process and hidden, so a crash leaves at worst a stray
  // ".name.tmp-PID" next to the target, never a half-written target.
  const std::string tmp = dir + "/." + std::filesystem::path(path).filename().string() + ".tmp-" +
                          std::to_string(::getpid());
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
  if (!fd.valid()) {
    return sysError("create " + tmp, errno);
  }
  auto cleanup_on_error = [&](Error e) -> Status {
    ::unlink(tmp.c_str());
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
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return cleanup_on_error(sysError("rename " + tmp + " to " + path, errno));
  }
  return fsyncDir(dir);
}

Status removeFile(const std::string& path) {
  if (::unlink(path.c_str()) != 0) {
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
  if (::stat(path.c_str(), &st) != 0) {
    return Error{"stat " + path + ": " + errnoText(errno), ErrorKind::kConfig};
  }
  const auto modified = std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec)));
  return FileInfo{S_ISREG(st.st_mode), st.st_uid, st.st_mode & 07777, modified};
}

namespace {

Result<Fd> openLockFile(const std::string& path) {
  // 0755: the directory (/run/k3s-mirror-agent) also holds the status file others may read.
  if (auto made = makeDirs(parentOf(path), 0755); !made) {
    return made.error();
  }
  Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
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
  std::error_code ec;
  std::filesystem::directory_iterator it(path, ec);
  if (ec == std::errc::no_such_file_or_directory) {
    return std::optional<std::vector<std::string>>{};
  }
  if (ec) {
    return configError("list " + path + ": " + ec.message());
  }
  std::vector<std::string> names;
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (it->symlink_status(ec).type() == std::filesystem::file_type::directory) {
      names.push_back(it->path().filename().string());
    }
  }
  if (ec) {
    return configError("list " + path + ": " + ec.message());
  }
  std::sort(names.begin(), names.end());
  return std::optional<std::vector<std::string>>{std::move(names)};
}

}  // namespace k3sma
