// The pure "desired files" of an apply and a restore: above all, the rules that keep the node's
// own registries.yaml — backed up once, before anything else, never overwritten or dropped, and
// a file with the agent's header never taken for it.
#include "common/desired.h"

#include <gtest/gtest.h>

#include "common/registries.h"

namespace k3sma {
namespace {

constexpr const char* kReg = "/etc/rancher/k3s/registries.yaml";
constexpr const char* kOwn = "mirrors:\n  docker.io:\n    endpoint: [\"https://mine\"]\n";
const std::string kAgents = std::string(kAgentHeaderStart) + " ...\nmirrors: {}\n";

ApplyInputs inputs(std::optional<std::string> now) {
  ApplyInputs in;
  in.registries_path = kReg;
  in.registries_text = kAgents;
  in.mirrors = {"docker.io"};
  in.registries_now = std::move(now);
  return in;
}

std::vector<std::string> paths(const DesiredFiles& d) {
  std::vector<std::string> out;
  for (const auto& f : d.files) {
    out.push_back(f.path);
  }
  return out;
}

TEST(DesiredForApply, BacksUpTheNodesOwnFileFirstOfAll) {
  const auto d = desiredForApply(inputs(kOwn));
  ASSERT_FALSE(d.files.empty());
  EXPECT_EQ(d.files.front().path, kBackupPath);
  EXPECT_EQ(d.files.front().content, kOwn);
  EXPECT_EQ(d.files.front().role, FileRole::kBackup);
  EXPECT_EQ(d.next.original, Original::kBackedUp);
}

TEST(DesiredForApply, RecordsThatThereWasNoFileWhenThereWasNone) {
  const auto d = desiredForApply(inputs(std::nullopt));
  EXPECT_EQ(paths(d), (std::vector<std::string>{kReg, kStatePath}));
  EXPECT_EQ(d.next.original, Original::kAbsent);
}

TEST(DesiredForApply, NeverWritesTheBackupAgainOnceTheStateSaysItWasTaken) {
  auto in = inputs(kAgents + "# an older render\n");
  in.state.original = Original::kBackedUp;
  in.backup_exists = true;
  const auto d = desiredForApply(in);
  EXPECT_EQ(paths(d), (std::vector<std::string>{kReg, kStatePath}));
  EXPECT_EQ(d.next.original, Original::kBackedUp);
}

TEST(DesiredForApply, AdoptsTheBackupWhenTheStateWasLostAndNeverWritesOverIt) {
  auto in = inputs(kAgents + "# the agent's previous file\n");
  in.backup_exists = true;  // state.json moved away, or never written before a crash
  const auto d = desiredForApply(in);
  EXPECT_EQ(paths(d), (std::vector<std::string>{kReg, kStatePath}));
  EXPECT_EQ(d.next.original, Original::kBackedUp);
}

TEST(DesiredForApply, NeverTakesAFileWithTheAgentsHeaderForTheNodesOwn) {
  const auto d = desiredForApply(inputs(kAgents + "# the agent's previous file\n"));
  for (const auto& f : d.files) {
    EXPECT_NE(f.role, FileRole::kBackup) << "backed up the agent's own file";
  }
  EXPECT_EQ(d.next.original, Original::kAbsent);
}

TEST(DesiredForApply, RemovesTheOldCaFileWhenTheCacheHostChanged) {
  auto in = inputs(kAgents);
  in.state.original = Original::kAbsent;
  in.state.ca_files = {"/usr/local/share/ca-certificates/k3s-mirror-agent/old.crt"};
  in.ca_path = "/usr/local/share/ca-certificates/k3s-mirror-agent/new.crt";
  in.ca_pem = "pem";
  const auto d = desiredForApply(in);
  ASSERT_EQ(d.files.size(), 4u);
  EXPECT_EQ(d.files[0].path, in.state.ca_files[0]);
  EXPECT_FALSE(d.files[0].content);
  EXPECT_EQ(d.files[1].path, in.ca_path);
  EXPECT_EQ(d.next.ca_files, std::vector<std::string>{in.ca_path});
}

TEST(AgentHeader, IsWhatTheRendererWrites) {
  Config config;
  config.registry.url = "https://harbor.home.lab";
  config.registry.host = "harbor.home.lab";
  config.mirrors = {{"docker.io", "dockerhub-proxy"}};
  auto rendered = renderRegistries(config, "", std::nullopt, kReg, State{});
  ASSERT_TRUE(rendered.ok()) << rendered.error().message;
  EXPECT_TRUE(isAgentWritten(rendered.value().text)) << rendered.value().text;
  EXPECT_FALSE(isAgentWritten(kOwn));
}

RestoreInputs restoreInputs(Original original, std::optional<std::string> now,
                            std::optional<std::string> backup) {
  RestoreInputs in;
  in.registries_path = kReg;
  in.registries_now = std::move(now);
  in.backup = std::move(backup);
  in.state.registries_path = kReg;
  in.state.original = original;
  in.state.ca_files = {"/usr/local/share/ca-certificates/k3s-mirror-agent/h.crt"};
  return in;
}

TEST(DesiredForRestore, PutsTheBackupBackAndRemovesEverythingOfTheAgents) {
  const auto d = desiredForRestore(restoreInputs(Original::kBackedUp, kAgents, kOwn));
  ASSERT_TRUE(d.ok());
  const auto& files = d.value().files;
  ASSERT_EQ(files.size(), 4u);
  EXPECT_EQ(files[0].path, kReg);
  EXPECT_EQ(files[0].content, kOwn);
  for (size_t i = 1; i < files.size(); ++i) {
    EXPECT_FALSE(files[i].content) << files[i].path;
  }
}

TEST(DesiredForRestore, IsTheSameAfterTheNodesFileWasAlreadyPutBack) {
  // A restore that stopped after putting the file back and removing the backup.
  const auto d = desiredForRestore(restoreInputs(Original::kBackedUp, kOwn, std::nullopt));
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(d.value().files[0].content, kOwn);
}

TEST(DesiredForRestore, RefusesWhenTheNodesFileCannotBeKnown) {
  const auto d = desiredForRestore(restoreInputs(Original::kBackedUp, kAgents, std::nullopt));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().kind, ErrorKind::kConfig);
  EXPECT_NE(d.error().message.find("nothing was changed"), std::string::npos);
}

TEST(DesiredForRestore, StripsTheAgentsEntriesOnlyFromTheAgentsFile) {
  auto in = restoreInputs(Original::kAbsent, kAgents, std::nullopt);
  in.stripped = std::nullopt;  // nothing else was in it
  EXPECT_FALSE(desiredForRestore(in).value().files[0].content);
  auto mine = restoreInputs(Original::kAbsent, kOwn, std::nullopt);
  EXPECT_EQ(desiredForRestore(mine).value().files[0].content, kOwn);
}

TEST(BundleHolds, EveryCertificateOfTheFileNotJustOne) {
  const std::string a = "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n";
  const std::string b = "-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----\n";
  EXPECT_TRUE(bundleHolds("x\n" + a + b, a + b));
  EXPECT_TRUE(bundleHolds(b + a, a));
  EXPECT_FALSE(bundleHolds(a, a + b));
  EXPECT_FALSE(bundleHolds("", a));
  EXPECT_FALSE(bundleHolds(a, "no certificate at all"));
}

}  // namespace
}  // namespace k3sma
