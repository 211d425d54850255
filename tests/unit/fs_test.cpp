#include "common/fs.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <cerrno>
#include <filesystem>

namespace k3sma {
namespace {

mode_t modeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

TEST(ReadFile, RefusesAFifoAtOnceInsteadOfWaitingForAWriter) {
  TempDir dir;
  const std::string path = dir.path() + "/fifo";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  auto read = readFile(path);  // blocked for ever in open() before
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.error().message, "read " + path + ": a FIFO, not a regular file");
}

TEST(ReadFile, RefusesADirectoryAndADevice) {
  TempDir dir;
  EXPECT_NE(readFile(dir.path()).error().message.find("a directory"), std::string::npos);
  EXPECT_NE(readFile("/dev/zero").error().message.find("a device"), std::string::npos);
}

TEST(ReadFile, RefusesAFileOverItsLimitBeforeReadingIt) {
  TempDir dir;
  const std::string path = dir.path() + "/big";
  ASSERT_TRUE(writeFileAtomic(path, std::string(2000, 'x'), 0600).ok());
  auto read = readFile(path, 1999);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.error().message, "read " + path + ": larger than 1999 bytes");
  EXPECT_TRUE(readFile(path, 2000).ok());
}

// Confinement is process-wide; each test that sets it puts the system root back.
struct Confined {
  explicit Confined(const Root& root) { EXPECT_TRUE(confineTo(root).ok()); }
  ~Confined() { EXPECT_TRUE(confineTo(Root()).ok()); }
  Confined(const Confined&) = delete;
  Confined& operator=(const Confined&) = delete;
};

TEST(ConfineTo, ResolvesAbsoluteSymlinksAndDotDotInsideTheRoot) {
  TempDir outside;
  TempDir root;
  ASSERT_TRUE(writeFileAtomic(outside.path() + "/secret", "outside", 0600).ok());
  ASSERT_TRUE(writeFileAtomic(root.path() + outside.path() + "/secret", "inside", 0600).ok());
  ASSERT_EQ(::symlink((outside.path() + "/secret").c_str(), (root.path() + "/abs").c_str()), 0);
  Confined confined{Root(root.path())};
  // The absolute symlink means the same path inside the root, as it would after chroot.
  EXPECT_EQ(readFile(root.path() + "/abs").value(), "inside");
  EXPECT_EQ(readFile(root.path() + "/../../../../.." + outside.path() + "/secret").value(),
            "inside");
  // A path outside the root (a --config elsewhere) opens as given.
  EXPECT_EQ(readFile(outside.path() + "/secret").value(), "outside");
}

TEST(ConfineTo, WritesAndRemovesThroughADirectorySymlinkOnlyInsideTheRoot) {
  TempDir outside;
  TempDir root;
  ASSERT_EQ(::symlink(outside.path().c_str(), (root.path() + "/etc").c_str()), 0);
  ASSERT_TRUE(writeFileAtomic(outside.path() + "/victim", "keep", 0600).ok());
  Confined confined{Root(root.path())};
  EXPECT_FALSE(writeFileAtomic(root.path() + "/etc/new", "x", 0600).ok());  // dangling inside
  EXPECT_TRUE(removeFile(root.path() + "/etc/victim").ok());  // nothing there inside the root
  EXPECT_FALSE(std::filesystem::exists(outside.path() + "/new"));
  EXPECT_EQ(readFile(outside.path() + "/victim").value(), "keep");
  EXPECT_FALSE(statFile(root.path() + "/etc/victim").ok());
}

TEST(WriteFileAtomic, WritesContentWithExactModeEvenUnderAStrictUmask) {
  TempDir dir;
  const mode_t old_umask = ::umask(077);
  const std::string path = dir.path() + "/etc/ssl/ca.crt";
  ASSERT_TRUE(writeFileAtomic(path, "pem\n", 0644).ok());
  ::umask(old_umask);
  EXPECT_EQ(readFile(path).value(), "pem\n");
  EXPECT_EQ(modeOf(path), 0644u);
  EXPECT_EQ(modeOf(dir.path() + "/etc/ssl"), 0755u);
}

TEST(WriteFileAtomic, ReplacesTheFileWithANewInodeAndLeavesNoTemporaryBehind) {
  TempDir dir;
  const std::string path = dir.path() + "/f";
  ASSERT_TRUE(writeFileAtomic(path, "one", 0600).ok());
  struct stat before {};
  ASSERT_EQ(::stat(path.c_str(), &before), 0);
  ASSERT_TRUE(writeFileAtomic(path, "two", 0600).ok());
  struct stat after {};
  ASSERT_EQ(::stat(path.c_str(), &after), 0);
  EXPECT_NE(before.st_ino, after.st_ino);  // renamed into place, not rewritten in place
  EXPECT_EQ(readFile(path).value(), "two");
  int entries = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) {
    ++entries;
  }
  EXPECT_EQ(entries, 1);
}

TEST(WriteFileAtomic, FailsWithAMessageNamingThePathWhenTheDirectoryCannotBeMade) {
  TempDir dir;
  ASSERT_TRUE(writeFileAtomic(dir.path() + "/file", "x", 0600).ok());
  auto written = writeFileAtomic(dir.path() + "/file/below", "x", 0600);
  ASSERT_FALSE(written.ok());
  EXPECT_NE(written.error().message.find(dir.path() + "/file"), std::string::npos);
}

TEST(ReadFile, TellsAMissingFileFromAnError) {
  TempDir dir;
  auto missing = readFile(dir.path() + "/nope");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing.value().has_value());
  auto directory = readFile(dir.path());
  EXPECT_FALSE(directory.ok());
}

TEST(ReadFile, RefusesFilesOverTheLimit) {
  TempDir dir;
  ASSERT_TRUE(writeFileAtomic(dir.path() + "/big", std::string(100, 'x'), 0600).ok());
  auto read = readFile(dir.path() + "/big", 10);
  ASSERT_FALSE(read.ok());
  EXPECT_NE(read.error().message.find("larger than 10 bytes"), std::string::npos);
}

TEST(RemoveFile, RemovesAndIgnoresAMissingFile) {
  TempDir dir;
  ASSERT_TRUE(writeFileAtomic(dir.path() + "/f", "x", 0600).ok());
  EXPECT_TRUE(removeFile(dir.path() + "/f").ok());
  EXPECT_FALSE(readFile(dir.path() + "/f").value().has_value());
  EXPECT_TRUE(removeFile(dir.path() + "/f").ok());
}

TEST(Root, PrefixesNodePathsAndIsTransparentWithoutADirectory) {
  EXPECT_EQ(Root().path("/etc/x"), "/etc/x");
  EXPECT_EQ(Root("/").path("/etc/x"), "/etc/x");
  EXPECT_EQ(Root("/tmp/r/").path("/etc/x"), "/tmp/r/etc/x");
  EXPECT_TRUE(Root("/").isSystem());
}

TEST(FileLock, CreatesItsFileOnlyReadableByRootAndReleasesIt) {
  TempDir dir;
  const std::string path = dir.path() + "/state/apply.lock";
  {
    auto lock = FileLock::acquire(path);
    ASSERT_TRUE(lock.ok()) << lock.error().message;
    EXPECT_EQ(modeOf(path), 0600u);
    EXPECT_EQ(modeOf(dir.path() + "/state"), 0755u);
  }
  EXPECT_TRUE(FileLock::acquire(path).ok());  // released with the first
}

TEST(FileLock, ExcludesASecondHolderWhileHeld) {
  TempDir dir;
  const std::string path = dir.path() + "/apply.lock";
  auto lock = FileLock::acquire(path);
  ASSERT_TRUE(lock.ok());
  // Another open file description, as another process would have: it must not get the lock.
  Fd other(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  ASSERT_TRUE(other.valid());
  EXPECT_NE(::flock(other.get(), LOCK_EX | LOCK_NB), 0);
  EXPECT_EQ(errno, EWOULDBLOCK);
}

TEST(TempDir, RemovesEverythingInItOnDestruction) {
  std::string path;
  {
    TempDir dir;
    path = dir.path();
    ASSERT_TRUE(writeFileAtomic(path + "/a/b/c", "x", 0600).ok());
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

// certs.d is listed through the same confined directory fd as config.d: directories only,
// sorted, a symlink to a directory not counted (with --root it could lead out of the root).
TEST(ListSubdirs, ListsDirectoriesOnlyAndNotSymlinksToThem) {
  TempDir dir;
  std::filesystem::create_directory(dir.path() + "/b.io");
  std::filesystem::create_directory(dir.path() + "/a.io");
  ASSERT_TRUE(writeFileAtomic(dir.path() + "/file", "x", 0644).ok());
  std::filesystem::create_directory_symlink("/etc", dir.path() + "/link");
  auto listed = listSubdirs(dir.path());
  ASSERT_TRUE(listed.ok()) << listed.error().message;
  ASSERT_TRUE(listed.value().has_value());
  EXPECT_EQ(*listed.value(), (std::vector<std::string>{"a.io", "b.io"}));
  auto missing = listSubdirs(dir.path() + "/none");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing.value().has_value());
}

}  // namespace
}  // namespace k3sma
