// The apply transaction on a temporary directory used as --root, with a Files wrapper that can
// fail a write on purpose (a full disk) and a command runner that records what would run.
// The real update-ca-certificates runs in the black-box tests.
#include "agent/apply.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <functional>
#include <map>

#include "common/registries.h"
#include "tests/support/certs.h"

namespace k3sma {
namespace {

using namespace std::chrono_literals;

// Real files, except that a write whose path matches fail_write fails like a full disk.
class DiskWithFaults final : public Files {
 public:
  std::function<bool(const std::string& path, int nth_write_to_path)> fail_write;
  std::vector<std::string> writes;
  std::vector<std::string> removes;

  Result<std::optional<std::string>> read(const std::string& path) override {
    return real_.read(path);
  }
  Status write(const std::string& path, std::string_view content, mode_t mode) override {
    const int nth = ++writes_to_[path];
    if (fail_write && fail_write(path, nth)) {
      return Error{"write " + path + ": No space left on device", ErrorKind::kApply};
    }
    writes.push_back(path);
    return real_.write(path, content, mode);
  }
  Status remove(const std::string& path) override {
    removes.push_back(path);
    return real_.remove(path);
  }

 private:
  RealFiles real_;
  std::map<std::string, int> writes_to_;
};

class RecordingCommands final : public CommandRunner {
 public:
  std::vector<std::vector<std::string>> runs;
  int failures_left = 0;  // the next this many runs exit 1 with `output`
  std::string output;
  Result<CommandResult> run(const std::vector<std::string>& argv) override {
    runs.push_back(argv);
    if (failures_left > 0) {
      --failures_left;
      return CommandResult{1, output};
    }
    return CommandResult{0, ""};
  }
};

const auto kNow = std::chrono::system_clock::time_point(std::chrono::hours(24 * 365 * 56));

class ApplyOnScratchRoot : public ::testing::Test {
 protected:
  void SetUp() override {
    // update-ca-certificates under --root needs the root's trust store directory.
    ASSERT_TRUE(makeDirs(root_.path("/etc/ssl/certs"), 0755).ok());
    ca_ = testing::makeCert(caSpec("Home Lab CA", kNow + 24h * 365));
    writeNodeFile("/etc/k3s-mirror-agent/harbor-ca.pem", ca_.cert_pem);
    writeConfig(kConfig);
  }

  static testing::CertSpec caSpec(const std::string& name,
                                  std::chrono::system_clock::time_point not_after) {
    testing::CertSpec spec;
    spec.common_name = name;
    spec.is_ca = true;
    spec.not_before = kNow - 24h;
    spec.not_after = not_after;
    return spec;
  }

  void writeNodeFile(const std::string& node_path, const std::string& content) {
    ASSERT_TRUE(writeFileAtomic(root_.path(node_path), content, 0600).ok());
  }
  void writeConfig(const std::string& text) { writeNodeFile(kDefaultConfigPath, text); }

  std::optional<std::string> nodeFile(const std::string& node_path) {
    return readFile(root_.path(node_path)).value();
  }

  // Every file under the root with its content: equal maps mean nothing changed.
  std::map<std::string, std::string> everything() {
    std::map<std::string, std::string> files;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir_.path())) {
      if (entry.is_regular_file()) {
        files[entry.path().string()] = *readFile(entry.path().string()).value();
      }
    }
    return files;
  }

  // With --root no unit is restarted, so systemd must never be asked.
  Deps deps() {
    return Deps{disk_, commands_, kNow, clock_,
                [](const Heartbeat&) -> Result<std::unique_ptr<Systemd>> {
                  ADD_FAILURE() << "systemd was contacted under --root";
                  return Error{"no systemd in this test", ErrorKind::kApply};
                }};
  }
  Report runApply(bool dry_run = false) {
    auto d = deps();
    return apply(options(dry_run), d);
  }
  Report runRestore() {
    auto d = deps();
    return restore(options(false), d);
  }
  ApplyOptions options(bool dry_run) {
    ApplyOptions o;
    o.root = root_;
    o.config_path = root_.path(kDefaultConfigPath);
    o.dry_run = dry_run;
    return o;
  }

  static std::vector<std::string> verbs(const Report& r) {
    std::vector<std::string> out;
    for (const auto& a : r.actions) {
      out.push_back(a.verb + " " + a.target);
    }
    return out;
  }

  static constexpr const char* kConfig = R"(registry:
  url: https://harbor.home.lab
  ca_file: /etc/k3s-mirror-agent/harbor-ca.pem
mirrors:
  docker.io: dockerhub-proxy
  ghcr.io: ghcr-proxy
)";
  static constexpr const char* kCaNodePath =
      "/usr/local/share/ca-certificates/k3s-mirror-agent/harbor.home.lab.crt";
  static constexpr const char* kRegistries = "/etc/rancher/k3s/registries.yaml";

  TempDir dir_;
  Root root_{dir_.path()};
  testing::TestCert ca_;
  DiskWithFaults disk_;
  RecordingCommands commands_;
  RealClock clock_;
};

TEST_F(ApplyOnScratchRoot, FirstApplyInstallsCaRebuildsTrustStoreThenWritesRegistriesAndState) {
  const auto report = runApply();
  ASSERT_FALSE(report.error) << report.error->message;
  EXPECT_TRUE(report.changed);
  EXPECT_TRUE(report.restart_needed);
  EXPECT_EQ(verbs(report),
            (std::vector<std::string>{
                std::string("write ") + kCaNodePath, "run update-ca-certificates",
                std::string("write ") + kRegistries, std::string("write ") + kStatePath}));
  ASSERT_EQ(commands_.runs.size(), 1u);
  EXPECT_EQ(commands_.runs[0], updateCaCommand(root_));
  EXPECT_EQ(commands_.runs[0][2], dir_.path() + "/etc/ca-certificates.conf");
  EXPECT_EQ(nodeFile(kCaNodePath), ca_.cert_pem);
  EXPECT_NE(nodeFile(kRegistries)->find("https://harbor.home.lab/v2/ghcr-proxy"),
            std::string::npos);
}

TEST_F(ApplyOnScratchRoot, SecondApplyWritesNothingAndRunsNothing) {
  ASSERT_FALSE(runApply().error);
  disk_.writes.clear();
  commands_.runs.clear();
  const auto report = runApply();
  ASSERT_FALSE(report.error);
  EXPECT_FALSE(report.changed);
  EXPECT_FALSE(report.restart_needed);
  EXPECT_TRUE(report.actions.empty());
  EXPECT_TRUE(disk_.writes.empty());
  EXPECT_TRUE(commands_.runs.empty());
}

TEST_F(ApplyOnScratchRoot, ARegistriesFileMadeReadableByOthersGetsItsModeBackWithoutARestart) {
  ASSERT_FALSE(runApply().error);
  ASSERT_EQ(::chmod(root_.path(kRegistries).c_str(), 0644), 0);
  commands_.runs.clear();
  const auto report = runApply();
  ASSERT_FALSE(report.error);
  EXPECT_TRUE(report.changed);
  EXPECT_FALSE(report.restart_needed);
  EXPECT_TRUE(commands_.runs.empty());
  EXPECT_EQ(statFile(root_.path(kRegistries)).value().mode, 0600u);
}

TEST_F(ApplyOnScratchRoot, AnInvalidConfigWritesNothingAndIsAConfigError) {
  writeConfig("registry:\n  url: harbor.home.lab\nmirrors: {docker.io: p}\n");
  const auto before = everything();
  const auto report = runApply();
  ASSERT_TRUE(report.error);
  EXPECT_EQ(report.error->kind, ErrorKind::kConfig);
  EXPECT_NE(report.error->message.find("config.yaml:2: registry.url"), std::string::npos)
      << report.error->message;
  EXPECT_TRUE(disk_.writes.empty());
  EXPECT_TRUE(commands_.runs.empty());
  EXPECT_EQ(everything(), before);
}

TEST_F(ApplyOnScratchRoot, AFailingUpdateCaCertificatesPutsEveryFileBack) {
  const auto before = everything();
  commands_.failures_left = 1;
  commands_.output = "cannot write bundle\n";
  const auto report = runApply();
  ASSERT_TRUE(report.error);
  EXPECT_EQ(report.error->kind, ErrorKind::kApply);
  EXPECT_TRUE(report.rolled_back);
  EXPECT_FALSE(report.changed);
  EXPECT_NE(
      report.error->message.find("update-ca-certificates: exit status 1: cannot write bundle"),
      std::string::npos)
      << report.error->message;
  auto after = everything();
  after.erase(root_.path(kLockPath));
  EXPECT_EQ(after, before);
  EXPECT_EQ(commands_.runs.size(), 2u);  // once forward, once to rebuild the store after undoing
}

TEST_F(ApplyOnScratchRoot, ATrustStoreThatCannotBeRebuiltAfterUndoIsPartial) {
  commands_.failures_left = 2;  // forward, and again after the CA file was taken back out
  commands_.output = "read-only file system\n";
  const auto report = runApply();
  ASSERT_TRUE(report.error);
  EXPECT_EQ(report.error->kind, ErrorKind::kPartial);
  EXPECT_NE(report.error->message.find("the system trust store"), std::string::npos)
      << report.error->message;
  EXPECT_FALSE(nodeFile(kCaNodePath));  // the file itself did go back
}

TEST_F(ApplyOnScratchRoot, AFullDiskWhileWritingTheStatePutsTheNodesOwnFileBack) {
  writeNodeFile(kRegistries, "mirrors:\n  docker.io:\n    endpoint: [\"https://old\"]\n");
  const auto before = everything();
  disk_.fail_write = [&](const std::string& path, int) { return path == root_.path(kStatePath); };
  const auto report = runApply();
  ASSERT_TRUE(report.error);
  EXPECT_EQ(report.error->kind, ErrorKind::kApply);
  EXPECT_NE(report.error->message.find("No space left on device"), std::string::npos);
  EXPECT_NE(report.error->message.find("put back"), std::string::npos);
  auto after = everything();
  after.erase(root_.path(kLockPath));
  EXPECT_EQ(after, before);  // registries.yaml as it was, no backup, no CA, no state
}

TEST_F(ApplyOnScratchRoot, AnUndoThatFailsTooIsPartialAndNamesWhatIsLeft) {
  writeNodeFile(kRegistries, "mirrors: {}\n");
  // The state write fails, and so does putting registries.yaml back (its second write).
  disk_.fail_write = [&](const std::string& path, int nth) {
    return path == root_.path(kStatePath) || (path == root_.path(kRegistries) && nth == 2);
  };
  const auto report = runApply();
  ASSERT_TRUE(report.error);
  EXPECT_EQ(report.error->kind, ErrorKind::kPartial);
  EXPECT_NE(report.error->message.find(std::string("could NOT be put back and need a look: ") +
                                       kRegistries),
            std::string::npos)
      << report.error->message;
}

TEST_F(ApplyOnScratchRoot, DryRunListsWhatWouldChangeAndWritesNothing) {
  const auto report = runApply(true);
  ASSERT_FALSE(report.error);
  EXPECT_TRUE(report.changed);
  EXPECT_TRUE(report.dry_run);
  EXPECT_EQ(report.actions.size(), 4u);
  EXPECT_TRUE(disk_.writes.empty());
  EXPECT_TRUE(commands_.runs.empty());
  EXPECT_FALSE(nodeFile(kRegistries));
}

TEST_F(ApplyOnScratchRoot, AMirrorChangeAloneDoesNotRebuildTheTrustStore) {
  ASSERT_FALSE(runApply().error);
  commands_.runs.clear();
  writeConfig(std::string(kConfig) + "  quay.io: quay-proxy\n");
  const auto report = runApply();
  ASSERT_FALSE(report.error);
  EXPECT_TRUE(report.restart_needed);
  EXPECT_TRUE(commands_.runs.empty());
  EXPECT_NE(nodeFile(kRegistries)->find("quay.io"), std::string::npos);
}

TEST_F(ApplyOnScratchRoot, ACaChangeAloneRebuildsTheTrustStoreAndNeedsARestart) {
  ASSERT_FALSE(runApply().error);
  commands_.runs.clear();
  const auto other = testing::makeCert(caSpec("Rotated CA", kNow + 24h * 700));
  writeNodeFile("/etc/k3s-mirror-agent/harbor-ca.pem", other.cert_pem);
  const auto report = runApply();
  ASSERT_FALSE(report.error);
  EXPECT_TRUE(report.restart_needed);
  EXPECT_EQ(commands_.runs.size(), 1u);
  EXPECT_EQ(nodeFile(kCaNodePath), other.cert_pem);
}

TEST_F(ApplyOnScratchRoot, ANewCacheHostRemovesTheOldCaFile) {
  ASSERT_FALSE(runApply().error);
  std::string moved = kConfig;
  moved.replace(moved.find("harbor.home.lab"), 15, "cache.home.lab:8443");
  writeConfig(moved);
  const auto report = runApply();
  ASSERT_FALSE(report.error) << report.error->message;
  EXPECT_FALSE(nodeFile(kCaNodePath));
  EXPECT_TRUE(
      nodeFile("/usr/local/share/ca-certificates/k3s-mirror-agent/cache.home.lab_8443.crt"));
  EXPECT_EQ(nodeFile(kRegistries)->find("harbor.home.lab"), std::string::npos);
}

TEST_F(ApplyOnScratchRoot, ACaExpiringSoonIsAWarningNotAnError) {
  writeNodeFile("/etc/k3s-mirror-agent/harbor-ca.pem",
                testing::makeCert(caSpec("Short CA", kNow + 24h * 10)).cert_pem);
  const auto report = runApply();
  ASSERT_FALSE(report.error);
  ASSERT_EQ(report.warnings.size(), 1u);
  EXPECT_NE(report.warnings[0].find("expires"), std::string::npos) << report.warnings[0];
}

TEST_F(ApplyOnScratchRoot, ARootWithoutATrustStoreIsRefusedBeforeAnythingIsWritten) {
  std::filesystem::remove_all(root_.path("/etc/ssl"));
  const auto before = everything();
  const auto report = runApply();
  ASSERT_TRUE(report.error);
  EXPECT_EQ(report.error->kind, ErrorKind::kConfig);
  EXPECT_NE(report.error->message.find("/etc/ssl/certs does not exist"), std::string::npos)
      << report.error->message;
  EXPECT_EQ(everything(), before);
}

TEST_F(ApplyOnScratchRoot, SwitchingDistributionIsRefusedUntilRestore) {
  ASSERT_FALSE(runApply().error);
  writeConfig(std::string(kConfig) + "k3s:\n  distribution: rke2\n");
  const auto before = everything();
  const auto report = runApply();
  ASSERT_TRUE(report.error);
  EXPECT_EQ(report.error->kind, ErrorKind::kConfig);
  EXPECT_NE(report.error->message.find("run k3s-mirror-agent restore first"), std::string::npos)
      << report.error->message;
  EXPECT_EQ(everything(), before);
}

TEST_F(ApplyOnScratchRoot, RestoreOnANodeNeverTouchedCreatesNothing) {
  const auto before = everything();
  const auto report = runRestore();
  ASSERT_FALSE(report.error);
  EXPECT_FALSE(report.changed);
  EXPECT_EQ(everything(), before);
  EXPECT_FALSE(std::filesystem::exists(root_.path(kStateDir)));
}

TEST_F(ApplyOnScratchRoot, RestorePutsBackTheNodesOwnFileAndRemovesTheCa) {
  const std::string own = "# mine\nmirrors:\n  docker.io:\n    endpoint: [\"https://old\"]\n";
  writeNodeFile(kRegistries, own);
  ASSERT_FALSE(runApply().error);
  EXPECT_EQ(nodeFile(kBackupPath), own);
  commands_.runs.clear();
  const auto report = runRestore();
  ASSERT_FALSE(report.error) << report.error->message;
  EXPECT_TRUE(report.changed);
  EXPECT_EQ(nodeFile(kRegistries), own);
  EXPECT_FALSE(nodeFile(kCaNodePath));
  EXPECT_FALSE(nodeFile(kStatePath));
  EXPECT_FALSE(nodeFile(kBackupPath));
  EXPECT_EQ(commands_.runs.size(), 1u);
}

}  // namespace
}  // namespace k3sma
