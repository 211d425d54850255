// restore --stage: the stand-ins for the node's files and commands that let prerm work out the
// restore that postrm purge carries out (agent/stage.h). A real temporary directory is the stage;
// the node is a small in-memory fake, so a test can see that nothing on it was written.
#include "agent/stage.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <map>
#include <vector>

namespace k3sma {
namespace {

// The node's files in memory. Reads are answered from `files`; a write or a removal is recorded
// and fails the test, since staging must never change the node.
class NodeInMemory final : public Files {
 public:
  std::map<std::string, std::string> files;
  std::vector<std::string> reads;

  Result<std::optional<std::string>> read(const std::string& path) override {
    reads.push_back(path);
    auto it = files.find(path);
    return it == files.end() ? std::optional<std::string>{} : std::optional(it->second);
  }
  Status write(const std::string& path, std::string_view, mode_t) override {
    ADD_FAILURE() << "the node was written: " << path;
    return Ok{};
  }
  Status remove(const std::string& path) override {
    ADD_FAILURE() << "a file was removed from the node: " << path;
    return Ok{};
  }
  Result<FileInfo> stat(const std::string& path) override {
    return Error{"stat " + path + ": not in this fake", ErrorKind::kConfig};
  }
  Status removeDir(const std::string& path) override {
    ADD_FAILURE() << "a folder was removed from the node: " << path;
    return Ok{};
  }
  Status makeDir(const std::string& path, mode_t) override {
    ADD_FAILURE() << "a folder was made on the node: " << path;
    return Ok{};
  }
  Result<std::optional<std::vector<std::string>>> listDirs(const std::string&) override {
    return std::optional<std::vector<std::string>>{};
  }
  Result<std::optional<FileLock>> tryLock(const std::string& path) override {
    ADD_FAILURE() << "the stage locked " << path;
    return Error{"no lock in this fake", ErrorKind::kApply};
  }
};

mode_t modeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

std::optional<std::string> fileAt(const std::string& path) {
  auto read = readFile(path);
  EXPECT_TRUE(read.ok()) << path;
  return read ? read.value() : std::nullopt;
}

// Every entry under dir, relative to it: what a stage holds.
std::vector<std::string> entriesUnder(const std::string& dir) {
  std::vector<std::string> entries;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    entries.push_back(std::filesystem::relative(e.path(), dir).string());
  }
  std::sort(entries.begin(), entries.end());
  return entries;
}

class AStage : public ::testing::Test {
 protected:
  TempDir tmp_;
  std::string stage_ = tmp_.path() + "/purge";
  NodeInMemory node_;
};

TEST_F(AStage, NeverRemovesTheNodesEmptyCaFolder) {
  // restore removes the agent's CA folder once empty; staged, postrm does that (NodeInMemory
  // fails the test if the node's folder is removed).
  StagingFiles files(node_, stage_);
  EXPECT_TRUE(files.removeDir("/usr/local/share/ca-certificates/k3s-mirror-agent").ok());
  EXPECT_FALSE(std::filesystem::exists(stage_));
}

TEST_F(AStage, ReadsThroughToTheNodeAsItIs) {
  node_.files["/etc/rancher/k3s/registries.yaml"] = "mirrors: {}\n";
  StagingFiles files(node_, stage_);
  auto read = files.read("/etc/rancher/k3s/registries.yaml");
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read.value(), "mirrors: {}\n");
  auto missing = files.read("/var/lib/k3s-mirror-agent/state.json");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing.value().has_value());
  EXPECT_EQ(node_.reads, (std::vector<std::string>{"/etc/rancher/k3s/registries.yaml",
                                                   "/var/lib/k3s-mirror-agent/state.json"}));
}

TEST_F(AStage, ReadsTheStagedFileNeverInsteadOfTheNodes) {
  node_.files["/etc/rancher/k3s/registries.yaml"] = "the node's\n";
  StagingFiles files(node_, stage_);
  ASSERT_TRUE(files.write("/etc/rancher/k3s/registries.yaml", "staged\n", 0600).ok());
  EXPECT_EQ(files.read("/etc/rancher/k3s/registries.yaml").value(), "the node's\n");
}

TEST_F(AStage, WritesAFileUnderPutAtItsNodePathWithItsMode) {
  StagingFiles files(node_, stage_);
  ASSERT_TRUE(files.write("/etc/rancher/k3s/registries.yaml", "mirrors: {}\n", 0600).ok());
  ASSERT_TRUE(files.write("/usr/local/share/ca-certificates/x.crt", "pem\n", 0644).ok());
  const std::string registries = stage_ + "/put/etc/rancher/k3s/registries.yaml";
  EXPECT_EQ(fileAt(registries), "mirrors: {}\n");
  EXPECT_EQ(modeOf(registries), 0600u);
  const std::string ca = stage_ + "/put/usr/local/share/ca-certificates/x.crt";
  EXPECT_EQ(fileAt(ca), "pem\n");
  EXPECT_EQ(modeOf(ca), 0644u);
  EXPECT_FALSE(std::filesystem::exists(stage_ + "/remove"));
}

TEST_F(AStage, ListsRemovalsOneALineInTheOrderMade) {
  StagingFiles files(node_, stage_);
  ASSERT_TRUE(files.remove("/usr/local/share/ca-certificates/k3s-mirror-agent/h.crt").ok());
  ASSERT_TRUE(files.remove("/var/lib/k3s-mirror-agent/registries.yaml.orig").ok());
  ASSERT_TRUE(files.remove("/var/lib/k3s-mirror-agent/state.json").ok());
  EXPECT_EQ(fileAt(stage_ + "/remove"),
            "/usr/local/share/ca-certificates/k3s-mirror-agent/h.crt\n"
            "/var/lib/k3s-mirror-agent/registries.yaml.orig\n"
            "/var/lib/k3s-mirror-agent/state.json\n");
  EXPECT_FALSE(std::filesystem::exists(stage_ + "/put"));
}

// Under --root, apply.cpp hands the stand-ins root-prefixed paths; the stage holds node paths,
// the ones postrm puts in place on the node it runs on.
TEST_F(AStage, UnderARootStagesNodePathsWithoutTheRoot) {
  const Root root(tmp_.path() + "/root");
  node_.files[root.path("/etc/rancher/k3s/registries.yaml")] = "the node's\n";
  StagingFiles files(node_, stage_, root);
  EXPECT_EQ(files.read(root.path("/etc/rancher/k3s/registries.yaml")).value(), "the node's\n");
  ASSERT_TRUE(files.write(root.path("/etc/rancher/k3s/registries.yaml"), "back\n", 0600).ok());
  ASSERT_TRUE(files.remove(root.path("/var/lib/k3s-mirror-agent/state.json")).ok());
  EXPECT_EQ(entriesUnder(stage_),
            (std::vector<std::string>{"put", "put/etc", "put/etc/rancher", "put/etc/rancher/k3s",
                                      "put/etc/rancher/k3s/registries.yaml", "remove"}));
  EXPECT_EQ(fileAt(stage_ + "/remove"), "/var/lib/k3s-mirror-agent/state.json\n");
}

TEST_F(AStage, NotesARebuildOfTheTrustStoreInsteadOfRunningIt) {
  StagingCommands commands(stage_);
  // As restore --root runs it: with the root's directories as arguments.
  auto ran = commands.run({"update-ca-certificates", "--certsconf", "/r/etc/ca-certificates.conf"});
  ASSERT_TRUE(ran.ok()) << ran.error().message;
  EXPECT_EQ(ran.value().exit_code, 0);
  EXPECT_EQ(fileAt(stage_ + "/update-ca-certificates"), "");
  ASSERT_TRUE(commands.run({"update-ca-certificates"}).ok());  // a second rebuild is one rebuild
  EXPECT_EQ(entriesUnder(stage_), (std::vector<std::string>{"update-ca-certificates"}));
}

TEST_F(AStage, RefusesToStageAnyOtherCommandAndNotesNothing) {
  StagingCommands commands(stage_);
  auto ran = commands.run({"systemctl", "restart", "k3s.service"});
  ASSERT_FALSE(ran.ok());
  EXPECT_NE(ran.error().message.find("systemctl"), std::string::npos) << ran.error().message;
  auto nothing = commands.run({});
  ASSERT_FALSE(nothing.ok());
  EXPECT_FALSE(std::filesystem::exists(stage_));
}

TEST_F(AStage, IsPreparedEmptyWithMode0700WhereAnOldStageWas) {
  StagingFiles files(node_, stage_);
  StagingCommands commands(stage_);
  ASSERT_TRUE(files.write("/etc/rancher/k3s/registries.yaml", "old\n", 0600).ok());
  ASSERT_TRUE(files.remove("/var/lib/k3s-mirror-agent/state.json").ok());
  ASSERT_TRUE(commands.run({"update-ca-certificates"}).ok());
  ASSERT_EQ(::chmod(stage_.c_str(), 0755), 0);

  auto prepared = prepareStage(stage_);
  ASSERT_TRUE(prepared.ok()) << prepared.error().message;
  EXPECT_TRUE(entriesUnder(stage_).empty());
  EXPECT_EQ(modeOf(stage_), 0700u);
}

TEST_F(AStage, IsPreparedWithItsMissingParentsAndMode0700) {
  const std::string deep = tmp_.path() + "/var/lib/k3s-mirror-agent/purge";
  const mode_t old_umask = ::umask(0);  // 0700 whatever the umask lets through
  auto prepared = prepareStage(deep);
  ::umask(old_umask);
  ASSERT_TRUE(prepared.ok()) << prepared.error().message;
  EXPECT_TRUE(std::filesystem::is_directory(deep));
  EXPECT_TRUE(entriesUnder(deep).empty());
  EXPECT_EQ(modeOf(deep), 0700u);
}

TEST_F(AStage, ThatCannotBeMadeIsAnErrorNamingIt) {
  ASSERT_TRUE(writeFileAtomic(tmp_.path() + "/file", "x", 0600).ok());
  auto prepared = prepareStage(tmp_.path() + "/file/purge");
  ASSERT_FALSE(prepared.ok());
  EXPECT_NE(prepared.error().message.find(tmp_.path() + "/file/purge"), std::string::npos)
      << prepared.error().message;
}

TEST(AStageKilledMidway, IsPreparedAgainOverItsLeftoverTemporaryFiles) {
  TempDir dir;
  const std::string stage = dir.path() + "/purge";
  ASSERT_TRUE(prepareStage(stage).ok());
  ASSERT_TRUE(writeFileAtomic(stage + "/.remove.tmp-4242", "half", 0600).ok());
  ASSERT_TRUE(prepareStage(stage).ok());
  EXPECT_TRUE(std::filesystem::is_empty(stage));
}

TEST(AStageDirectory, IsCompleteOnlyOnceFinished) {
  TempDir dir;
  const std::string stage = dir.path() + "/purge";
  ASSERT_TRUE(prepareStage(stage).ok());
  EXPECT_FALSE(std::filesystem::exists(stage + "/complete"));
  ASSERT_TRUE(finishStage(stage).ok());
  EXPECT_TRUE(std::filesystem::exists(stage + "/complete"));
  ASSERT_TRUE(prepareStage(stage).ok());  // an earlier complete stage is replaced
  EXPECT_TRUE(std::filesystem::is_empty(stage));
}

}  // namespace
}  // namespace k3sma
