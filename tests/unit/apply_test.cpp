// The apply transaction on a temporary directory, with a Files wrapper that can fail a write on
// purpose (a full disk) and a command runner that records what would run. The root apply is
// given is a path that does not exist (/k3sma-seam-PID); only the Files wrapper maps it to the
// temporary directory, so any file operation that went around the Files seam would miss the
// node (or create that path, which every test checks it did not). The real
// update-ca-certificates runs in the black-box tests.
#include "agent/apply.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>

#include "common/desired.h"
#include "common/journal.h"
#include "common/registries.h"
#include "common/reload.h"
#include "tests/support/certs.h"
#include "tests/support/fake_clock.h"

namespace k3sma {
namespace {

using namespace std::chrono_literals;

// Thrown by DiskWithFaults at the write or removal chosen to be the last: the run stops there
// as a killed process would, with no undo (only destructors run, as the kernel drops a dead
// process's lock).
struct Killed {};

// Real files under `real_dir`, reached only through the virtual root `virtual_dir`; a write
// whose (virtual) path matches fail_write fails like a full disk.
class DiskWithFaults final : public Files {
 public:
  DiskWithFaults(std::string virtual_dir, std::string real_dir)
      : virtual_(std::move(virtual_dir)), real_dir_(std::move(real_dir)) {}
  std::function<bool(const std::string& path, int nth_write_to_path)> fail_write;
  std::vector<std::string> writes;
  std::vector<std::string> removes;
  int kill_at = 0;  // > 0: the kill_at-th write or removal from now on throws Killed instead
  int changes = 0;  // writes and removals so far

  Result<std::optional<std::string>> read(const std::string& path) override {
    return real_.read(real(path));
  }
  Status write(const std::string& path, std::string_view content, mode_t mode) override {
    killPoint();
    const int nth = ++writes_to_[path];
    if (fail_write && fail_write(path, nth)) {
      return Error{"write " + path + ": No space left on device", ErrorKind::kApply};
    }
    writes.push_back(path);
    return real_.write(real(path), content, mode);
  }
  Status remove(const std::string& path) override {
    killPoint();
    removes.push_back(path);
    return real_.remove(real(path));
  }
  Result<FileInfo> stat(const std::string& path) override { return real_.stat(real(path)); }
  Status removeDir(const std::string& path) override { return real_.removeDir(real(path)); }
  Status makeDir(const std::string& path, mode_t mode) override {
    killPoint();
    return real_.makeDir(real(path), mode);
  }
  Result<std::optional<std::vector<std::string>>> listDirs(const std::string& path) override {
    return real_.listDirs(real(path));
  }
  Result<std::optional<FileLock>> tryLock(const std::string& path) override {
    return real_.tryLock(real(path));
  }

 private:
  void killPoint() {
    if (++changes == kill_at) {
      kill_at = 0;
      throw Killed{};
    }
  }
  std::string real(const std::string& path) {
    if (path.compare(0, virtual_.size() + 1, virtual_ + "/") != 0) {
      ADD_FAILURE() << "a path outside the root reached Files: " << path;
      return path;
    }
    return real_dir_ + path.substr(virtual_.size());
  }
  std::string virtual_;
  std::string real_dir_;
  RealFiles real_;
  std::map<std::string, int> writes_to_;
};

// Records what would run. A successful update-ca-certificates is played the way the real one
// ends, for what apply looks at: the bundle becomes the agent's CA files, concatenated (the
// black-box tests run the real one).
class RecordingCommands final : public CommandRunner {
 public:
  explicit RecordingCommands(std::string real_root) : real_root_(std::move(real_root)) {}
  std::vector<std::vector<std::string>> runs;
  int failures_left = 0;  // the next this many runs exit 1 with `output`
  std::string output;
  bool failure_writes_bundle = false;  // a failing run left half a bundle behind
  Result<CommandResult> run(const std::vector<std::string>& argv) override {
    runs.push_back(argv);
    if (failures_left > 0) {
      --failures_left;
      if (failure_writes_bundle) {
        EXPECT_TRUE(writeFileAtomic(real_root_ + kTrustBundlePath, "half\n", 0644).ok());
      }
      return CommandResult{1, output};
    }
    writeBundle();
    return CommandResult{0, ""};
  }

 private:
  void writeBundle() {
    std::string bundle;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(real_root_ + kCaDir, ec)) {
      bundle += *readFile(e.path().string()).value();
    }
    EXPECT_TRUE(writeFileAtomic(real_root_ + kTrustBundlePath, bundle, 0644).ok());
  }

  std::string real_root_;
};

const auto kNow = std::chrono::system_clock::time_point(std::chrono::hours(24 * 365 * 56));

// k3s.service, loaded and active; each restart job ends with the next of `jobs` ("done" when
// they run out), "refused" being systemd refusing to queue it at all.
class FakeSystemd final : public Systemd {
 public:
  std::vector<std::string> jobs;
  std::vector<std::string> restarted;
  Result<UnitState> unitState(const std::string& unit) override {
    if (unit != "k3s.service") {
      return UnitState{"not-found", "inactive", "dead", ""};
    }
    return UnitState{"loaded", "active", "running", "success"};
  }
  Result<RestartJob> tryRestart(const std::string& unit,
                                std::chrono::steady_clock::time_point) override {
    const std::string result = jobs.empty() ? "done" : jobs.front();
    if (!jobs.empty()) {
      jobs.erase(jobs.begin());
    }
    if (result == "refused") {
      return Error{"restart " + unit + ": Access denied", ErrorKind::kApply};
    }
    restarted.push_back(unit);
    return RestartJob{result, ""};
  }
};

class ApplyOnScratchRoot : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(std::filesystem::exists(root_.dir()));
    // update-ca-certificates under --root needs the root's trust store directory.
    ASSERT_TRUE(makeDirs(real("/etc/ssl/certs"), 0755).ok());
    // The bundle as update-ca-certificates (the fake) builds it from no CA of ours.
    writeNodeFile(kTrustBundlePath, "");
    if (ca_.cert_pem.empty()) {  // one per test: the crash tests lay the node out again
      ca_ = testing::makeCert(caSpec("Home Lab CA", kNow + 24h * 365));
    }
    writeNodeFile("/etc/k3s-mirror-agent/harbor-ca.pem", ca_.cert_pem);
    writeConfig(kConfig);
  }
  void TearDown() override {
    EXPECT_FALSE(std::filesystem::exists(root_.dir())) << "a file operation went around Files";
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

  // Where a node path really is.
  std::string real(const std::string& node_path) const { return dir_.path() + node_path; }

  void writeNodeFile(const std::string& node_path, const std::string& content) {
    ASSERT_TRUE(writeFileAtomic(real(node_path), content, 0600).ok());
  }
  void writeConfig(const std::string& text) { writeNodeFile(kDefaultConfigPath, text); }

  std::optional<std::string> nodeFile(const std::string& node_path) {
    return readFile(real(node_path)).value();
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

  // With --root no unit is restarted, so systemd must never be asked — unless a test drives
  // the restart branches (restart_under_root) over systemd_.
  Deps deps() {
    return Deps{
        .files = disk_,
        .commands = commands_,
        .clock = clock_,
        .connect_systemd = [this]() -> Result<std::unique_ptr<Systemd>> {
          if (!restart_under_root_) {
            ADD_FAILURE() << "systemd was contacted under --root";
            return Error{"no systemd in this test", ErrorKind::kApply};
          }
          return std::unique_ptr<Systemd>(new ForwardingSystemd(systemd_));
        },
    };
  }
  // Hands apply a Systemd it may own, backed by the test's.
  class ForwardingSystemd final : public Systemd {
   public:
    explicit ForwardingSystemd(FakeSystemd& inner) : inner_(inner) {}
    Result<UnitState> unitState(const std::string& unit) override { return inner_.unitState(unit); }
    Result<RestartJob> tryRestart(const std::string& unit,
                                  std::chrono::steady_clock::time_point deadline) override {
      return inner_.tryRestart(unit, deadline);
    }

   private:
    FakeSystemd& inner_;
  };
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
    o.config_path = real(kDefaultConfigPath);
    o.dry_run = dry_run;
    o.restart_under_root = restart_under_root_;
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
  Root root_{"/k3sma-seam-" + std::to_string(::getpid())};
  testing::TestCert ca_;
  DiskWithFaults disk_{root_.dir(), dir_.path()};
  RecordingCommands commands_{dir_.path()};
  testing::FakeClock clock_{kNow};
  FakeSystemd systemd_;
  bool restart_under_root_ = false;
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
  EXPECT_EQ(commands_.runs[0][2], root_.dir() + "/etc/ca-certificates.conf");
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
  ASSERT_EQ(::chmod(real(kRegistries).c_str(), 0644), 0);
  commands_.runs.clear();
  const auto report = runApply();
  ASSERT_FALSE(report.error);
  EXPECT_TRUE(report.changed);
  EXPECT_FALSE(report.restart_needed);
  EXPECT_TRUE(commands_.runs.empty());
  EXPECT_EQ(statFile(real(kRegistries)).value().mode, 0600u);
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
  after.erase(real(kLockPath));
  EXPECT_EQ(after, before);
  EXPECT_EQ(commands_.runs.size(), 2u);  // once forward, once to rebuild the store after undoing
}

TEST_F(ApplyOnScratchRoot, ATrustStoreThatCannotBeRebuiltAfterUndoIsPartial) {
  commands_.failures_left = 2;  // forward, and again after the CA file was taken back out
  commands_.failure_writes_bundle = true;  // the first got as far as trusting the new CA
  commands_.output = "read-only file system\n";
  const auto report = runApply();
  ASSERT_TRUE(report.error);
  EXPECT_EQ(report.error->kind, ErrorKind::kPartial);
  EXPECT_NE(report.error->message.find("the system trust store"), std::string::npos)
      << report.error->message;
  EXPECT_FALSE(nodeFile(kCaNodePath));  // the file itself did go back
}

TEST_F(ApplyOnScratchRoot, ARebuildThatFailsTwiceWithoutTouchingTheBundleIsNotPartial) {
  writeNodeFile(kTrustBundlePath, "the distribution's bundle\n");
  commands_.failures_left = 2;  // it fails before writing anything, both times
  commands_.output = "read-only file system\n";
  const auto report = runApply();
  ASSERT_TRUE(report.error);
  EXPECT_EQ(report.error->kind, ErrorKind::kApply) << report.error->message;
  EXPECT_NE(report.error->message.find("nothing changed"), std::string::npos)
      << report.error->message;
  EXPECT_EQ(nodeFile(kTrustBundlePath), "the distribution's bundle\n");
  EXPECT_FALSE(nodeFile(kCaNodePath));
  EXPECT_FALSE(nodeFile(kJournalPath));
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
  after.erase(real(kLockPath));
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
  std::filesystem::remove_all(real("/etc/ssl"));
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
  EXPECT_FALSE(std::filesystem::exists(real(kStateDir)));
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

// --- the restart decision and its branches, over the fake systemd ----------------------------

TEST(WhyNoRestart, IsOneRuleForRootNoRestartAndRestartNever) {
  ApplyOptions o;
  K3sSettings k3s;
  EXPECT_FALSE(whyNoRestart(o, k3s));
  o.no_restart = true;
  EXPECT_EQ(whyNoRestart(o, k3s), "--no-restart was given");
  o.no_restart = false;
  k3s.restart = RestartPolicy::kNever;
  EXPECT_EQ(whyNoRestart(o, k3s), "k3s.restart is never");
  k3s.restart = RestartPolicy::kOnChange;
  o.root = Root("/srv/node");
  EXPECT_EQ(whyNoRestart(o, k3s), "--root was given");
}

TEST_F(ApplyOnScratchRoot, AChangeRestartsK3sOnceAndDropsTheJournalWhenItIsHealthy) {
  restart_under_root_ = true;
  const auto report = runApply();
  ASSERT_FALSE(report.error) << report.error->message;
  EXPECT_EQ(report.restarted, "k3s.service");
  EXPECT_EQ(systemd_.restarted, std::vector<std::string>{"k3s.service"});
  EXPECT_EQ(verbs(report).back(), "restart k3s.service");
  EXPECT_FALSE(nodeFile(kJournalPath));
  EXPECT_TRUE(nodeFile(kRegistries));
}

TEST_F(ApplyOnScratchRoot, ARestartThatFailsPutsTheFilesBackAndRestartsK3sOnThem) {
  restart_under_root_ = true;
  writeNodeFile(kRegistries, "mirrors: {}\n");
  const auto before = everything();
  systemd_.jobs = {"failed", "done"};
  const auto report = runApply();
  ASSERT_TRUE(report.error);
  EXPECT_EQ(report.error->kind, ErrorKind::kApply) << report.error->message;
  EXPECT_TRUE(report.rolled_back);
  EXPECT_FALSE(report.changed);
  EXPECT_NE(report.error->message.find("k3s.service is active again on them"), std::string::npos)
      << report.error->message;
  EXPECT_EQ(systemd_.restarted.size(), 2u);
  auto after = everything();
  after.erase(real(kLockPath));
  EXPECT_EQ(after, before);
}

TEST_F(ApplyOnScratchRoot, ARollbackWhoseRestartFailsTooIsPartial) {
  restart_under_root_ = true;
  systemd_.jobs = {"failed", "failed"};
  const auto report = runApply();
  ASSERT_TRUE(report.error);
  EXPECT_EQ(report.error->kind, ErrorKind::kPartial);
  EXPECT_NE(report.error->message.find("rollback incomplete: the previous files are in place; "
                                       "k3s.service did not come back either"),
            std::string::npos)
      << report.error->message;
  EXPECT_FALSE(nodeFile(kRegistries));  // the files are back: there was none
  EXPECT_FALSE(nodeFile(kJournalPath));
}

TEST_F(ApplyOnScratchRoot, ARestartSystemdRefusesLeavesK3sAloneAndPutsTheFilesBack) {
  restart_under_root_ = true;
  systemd_.jobs = {"refused"};
  const auto report = runApply();
  ASSERT_TRUE(report.error);
  EXPECT_EQ(report.error->kind, ErrorKind::kApply);
  EXPECT_NE(report.error->message.find("Access denied; the previous files were put back and "
                                       "k3s.service was not restarted"),
            std::string::npos)
      << report.error->message;
  EXPECT_TRUE(systemd_.restarted.empty());
  EXPECT_FALSE(nodeFile(kRegistries));
  EXPECT_FALSE(nodeFile(kCaNodePath));
}

TEST_F(ApplyOnScratchRoot, ANoRestartRunNeverAsksSystemd) {
  restart_under_root_ = true;
  auto o = options(false);
  o.no_restart = true;
  auto d = deps();
  const auto report = apply(o, d);
  ASSERT_FALSE(report.error);
  EXPECT_TRUE(systemd_.restarted.empty());
  EXPECT_NE(report.notes.at(0).find("--no-restart was given"), std::string::npos);
}

// RKE2's units are rke2-server.service and rke2-agent.service (common/distribution.h): the note
// for a node without either names those, not "rke2.service", which does not exist.
TEST_F(ApplyOnScratchRoot, AnRke2NodeWithoutItsUnitsNamesTheUnitsItLookedFor) {
  restart_under_root_ = true;
  writeConfig(std::string(kConfig) + "k3s:\n  distribution: rke2\n");
  const auto report = runApply();
  ASSERT_FALSE(report.error) << report.error->message;
  EXPECT_TRUE(systemd_.restarted.empty());
  EXPECT_TRUE(nodeFile("/etc/rancher/rke2/registries.yaml"));
  const std::string note =
      "no rke2-server.service or rke2-agent.service is installed yet: rke2 will read these files "
      "when it first starts";
  EXPECT_EQ(std::count(report.notes.begin(), report.notes.end(), note), 1)
      << ::testing::PrintToString(report.notes);
}

// --- crashes: the run stops at a write, the next one converges --------------------------------

class CrashOnScratchRoot : public ApplyOnScratchRoot {
 protected:
  static constexpr const char* kOwn =
      "# the node's own\nmirrors:\n  docker.io:\n    endpoint: "
      "[\"https://mirror.gcr.io\"]\n";

  // Runs `op` with the kill at the nth file change; false when it finished before that.
  template <class Op>
  bool killedAt(int nth, Op op) {
    disk_.changes = 0;
    disk_.kill_at = nth;
    try {
      op();
    } catch (const Killed&) {
      return true;
    }
    disk_.kill_at = 0;
    return false;
  }

  // What a user checks after the next apply: done, nothing pending, the CA trusted, the
  // node's own file kept for restore, no journal; and restore gives that file back.
  void expectConverged(const std::string& ca_pem) {
    const auto again = runApply(true);
    ASSERT_FALSE(again.error) << again.error->message;
    EXPECT_FALSE(again.changed) << "still pending: " << ::testing::PrintToString(verbs(again));
    EXPECT_EQ(nodeFile(kCaNodePath), ca_pem);
    EXPECT_TRUE(bundleHolds(nodeFile(kTrustBundlePath).value_or(""), ca_pem));
    EXPECT_EQ(nodeFile(kBackupPath), kOwn);
    EXPECT_FALSE(nodeFile(kJournalPath));
    const auto restored = runRestore();
    ASSERT_FALSE(restored.error) << restored.error->message;
    EXPECT_EQ(nodeFile(kRegistries), kOwn);
    EXPECT_FALSE(nodeFile(kCaNodePath));
    EXPECT_FALSE(nodeFile(kStatePath));
    EXPECT_FALSE(nodeFile(kBackupPath));
  }

  void reset() {
    std::filesystem::remove_all(dir_.path());
    std::filesystem::create_directory(dir_.path());
    SetUp();
    writeNodeFile(kRegistries, kOwn);
  }
};

TEST_F(CrashOnScratchRoot, AFirstApplyKilledAtAnyWriteConvergesOnTheNextApply) {
  int kills = 0;
  for (int nth = 1;; ++nth) {
    reset();
    if (!killedAt(nth, [&] { runApply(); })) {
      break;
    }
    ++kills;
    const auto next = runApply();
    ASSERT_FALSE(next.error) << "killed at change " << nth << ": " << next.error->message;
    expectConverged(ca_.cert_pem);
  }
  EXPECT_EQ(kills, 6);  // journal, backup, CA, registries.yaml, state, the journal's removal
}

TEST_F(CrashOnScratchRoot, ACaRotationKilledAtAnyWriteConvergesOnTheNextApply) {
  const auto rotated = testing::makeCert(caSpec("Rotated CA", kNow + 24h * 700));
  int kills = 0;
  for (int nth = 1;; ++nth) {
    reset();
    ASSERT_FALSE(runApply().error);
    writeNodeFile("/etc/k3s-mirror-agent/harbor-ca.pem", rotated.cert_pem);
    if (!killedAt(nth, [&] { runApply(); })) {
      break;
    }
    ++kills;
    ASSERT_FALSE(runApply().error) << "killed at change " << nth;
    expectConverged(rotated.cert_pem);
    EXPECT_FALSE(bundleHolds(nodeFile(kTrustBundlePath).value_or(""), ca_.cert_pem));
  }
  EXPECT_EQ(kills, 3);  // journal, CA (registries.yaml and state stay), the journal's removal
}

// The restart-free apply (common/reload.h): a node whose k3s wrote certs.d from the
// registries.yaml on disk (config.toml points containerd there) takes a mirror change and a
// mirror removal hot; a kill at any write of it is undone by the next apply, which then goes
// hot again and ends with exactly the model's files.
TEST_F(CrashOnScratchRoot, AHotApplyKilledAtAnyWriteConvergesOnTheNextApply) {
  const std::string certs_d = "/var/lib/rancher/k3s/agent/etc/containerd/certs.d";
  auto k3s_started = [&] {
    writeNodeFile(
        "/var/lib/rancher/k3s/agent/etc/containerd/config.toml",
        "[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"" + certs_d + "\"\n");
    auto files = renderCertsD(nodeFile(kRegistries).value_or(""), "registries.yaml", {});
    ASSERT_TRUE(files.ok());
    for (const auto& f : files.value()) {
      writeNodeFile(certs_d + "/" + f.dir + "/hosts.toml", f.content);
    }
  };
  const std::string changed = R"(registry:
  url: https://harbor.home.lab
  ca_file: /etc/k3s-mirror-agent/harbor-ca.pem
mirrors:
  ghcr.io: ghcr-mirror
)";
  int kills = 0;
  for (int nth = 1;; ++nth) {
    reset();
    writeConfig(kConfig);
    ASSERT_FALSE(runApply().error);
    k3s_started();
    ASSERT_TRUE(nodeFile(certs_d + "/docker.io/hosts.toml"));
    writeConfig(changed);
    if (!killedAt(nth, [&] { runApply(); })) {
      break;
    }
    ++kills;
    const auto next = runApply();
    ASSERT_FALSE(next.error) << "killed at change " << nth << ": " << next.error->message;
    EXPECT_EQ(next.reload, "hot") << "killed at change " << nth;
    EXPECT_FALSE(next.restart_needed);
    EXPECT_FALSE(nodeFile(kJournalPath));
    EXPECT_FALSE(std::filesystem::exists(real(certs_d + "/docker.io"))) << "killed at " << nth;
    auto want = renderCertsD(nodeFile(kRegistries).value_or(""), "registries.yaml", {});
    ASSERT_TRUE(want.ok());
    ASSERT_EQ(want.value().size(), 2u);  // ghcr.io and harbor.home.lab (its CA)
    for (const auto& f : want.value()) {
      EXPECT_EQ(nodeFile(certs_d + "/" + f.dir + "/hosts.toml"), f.content) << f.dir;
      const auto perms = [&](const std::string& node_path) {
        return static_cast<unsigned>(std::filesystem::status(real(node_path)).permissions());
      };
      EXPECT_EQ(perms(certs_d + "/" + f.dir + "/hosts.toml"), 0644u) << f.dir;
    }
    EXPECT_NE(nodeFile(certs_d + "/ghcr.io/hosts.toml")->find("/v2/ghcr-mirror"),
              std::string::npos);
    EXPECT_FALSE(runApply().changed) << "killed at change " << nth;
  }
  // journal, registries.yaml, ghcr.io's folder and file, docker.io's file, state, the
  // journal's removal
  EXPECT_GE(kills, 6);
}

// A run killed between writing a file's temporary copy and renaming it leaves
// ".NAME.tmp-PID" beside it; the undo of its journal removes that copy (certs.d must hold only
// what k3s writes), and leaves another process's alone.
TEST_F(CrashOnScratchRoot, TheUndoRemovesTheKilledRunsTemporaryFiles) {
  const std::string hosts =
      "/var/lib/rancher/k3s/agent/etc/containerd/certs.d/docker.io/hosts.toml";
  Journal j;
  j.operation = "apply";
  j.pid = 999999;
  j.files = {{kRegistries, FileRole::kRegistries, std::string(kOwn), 0600},
             {hosts, FileRole::kHostsToml, std::nullopt, 0644}};
  writeNodeFile(kJournalPath, renderJournal(j));
  writeNodeFile(atomicTempPath(kRegistries, j.pid), "half");
  writeNodeFile(atomicTempPath(hosts, j.pid), "half");
  writeNodeFile(atomicTempPath(hosts, 4242), "someone else's");
  writeConfig(kConfig);
  const auto report = runApply();
  ASSERT_FALSE(report.error) << report.error->message;
  EXPECT_FALSE(nodeFile(atomicTempPath(kRegistries, j.pid)));
  EXPECT_FALSE(nodeFile(atomicTempPath(hosts, j.pid)));
  EXPECT_EQ(nodeFile(atomicTempPath(hosts, 4242)), "someone else's");
  EXPECT_FALSE(nodeFile(kJournalPath));
}

// restore after a restart-free apply: certs.d holds the agent's hosts.toml files, which k3s
// would replace only at its next start. When the safety check holds for the restored (the
// node's own) registries.yaml, restore writes what k3s makes of it, hot; otherwise it says why
// and that k3s needs a restart.
TEST_F(CrashOnScratchRoot, RestoreAfterAHotApplyWritesTheModelOfTheRestoredFileHot) {
  const std::string certs_d = "/var/lib/rancher/k3s/agent/etc/containerd/certs.d";
  for (const bool safe : {true, false}) {
    reset();
    writeConfig(kConfig);
    ASSERT_FALSE(runApply().error);
    writeNodeFile(
        "/var/lib/rancher/k3s/agent/etc/containerd/config.toml",
        "[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"" + certs_d + "\"\n");
    auto started = renderCertsD(nodeFile(kRegistries).value_or(""), "registries.yaml", {});
    ASSERT_TRUE(started.ok());
    for (const auto& f : started.value()) {
      writeNodeFile(certs_d + "/" + f.dir + "/hosts.toml", f.content);
    }
    writeConfig(std::string(kConfig) + "  quay.io: quay-proxy\n");
    const auto hot = runApply();
    ASSERT_FALSE(hot.error) << hot.error->message;
    ASSERT_EQ(hot.reload, "hot");
    if (!safe) {  // a hand edit: the check fails
      writeNodeFile(certs_d + "/harbor.home.lab/hosts.toml", "# hand-written\n");
    }
    const auto restored = runRestore();
    ASSERT_FALSE(restored.error) << restored.error->message;
    EXPECT_EQ(nodeFile(kRegistries), kOwn);
    auto want = renderCertsD(kOwn, "registries.yaml", {});
    ASSERT_TRUE(want.ok());
    if (safe) {
      EXPECT_EQ(restored.reload, "hot");
      EXPECT_FALSE(restored.restart_needed);
      for (const auto& f : want.value()) {
        EXPECT_EQ(nodeFile(certs_d + "/" + f.dir + "/hosts.toml"), f.content) << f.dir;
      }
      // The cache's own directory (its CA, which restore removed) is not k3s's output any more.
      EXPECT_FALSE(std::filesystem::exists(real(certs_d + "/harbor.home.lab")));
    } else {
      EXPECT_FALSE(restored.reload);
      EXPECT_TRUE(restored.restart_needed);
      EXPECT_TRUE(std::any_of(restored.notes.begin(), restored.notes.end(), [](const auto& n) {
        return n.find("not reloaded without a restart") != std::string::npos;
      }));
      EXPECT_EQ(nodeFile(certs_d + "/harbor.home.lab/hosts.toml"), "# hand-written\n");
    }
    EXPECT_FALSE(nodeFile(kJournalPath));
    EXPECT_FALSE(nodeFile(kStatePath));
  }
}

// After a hot apply nothing restarts to tell whether the new endpoints work, so verify.images
// is resolved through them once the files are written (tests/blackbox has the real registry).
class HotVerifyOnScratchRoot : public ApplyOnScratchRoot {
 protected:
  static constexpr const char* kCertsD = "/var/lib/rancher/k3s/agent/etc/containerd/certs.d";
  // preflight none: the only resolution is the one after the hot write.
  static constexpr const char* kVerify =
      "verify:\n  images: [ghcr.io/org/app:1]\n  preflight: none\n";
  static constexpr const char* kImageError =
      "resolve ghcr.io/org/app:1 at https://harbor.home.lab/v2/ghcr-mirror/org/app/manifests/1: "
      "HTTP 404 MANIFEST_UNKNOWN (manifest unknown)";

  // The node after a first apply and k3s's start: certs.d written by k3s from registries.yaml.
  void SetUp() override {
    ApplyOnScratchRoot::SetUp();
    writeConfig(std::string(kConfig) + kVerify);
    const auto first = runApply();
    ASSERT_FALSE(first.error) << first.error->message;
    writeNodeFile(
        "/var/lib/rancher/k3s/agent/etc/containerd/config.toml",
        std::string("[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"") +
            kCertsD + "\"\n");
    auto files = renderCertsD(nodeFile(kRegistries).value_or(""), "registries.yaml", {});
    ASSERT_TRUE(files.ok());
    for (const auto& f : files.value()) {
      writeNodeFile(std::string(kCertsD) + "/" + f.dir + "/hosts.toml", f.content);
    }
    // The change: a new project for ghcr.io and a rotated CA (its file's bytes: hot too).
    writeConfig(
        "registry:\n  url: https://harbor.home.lab\n"
        "  ca_file: /etc/k3s-mirror-agent/harbor-ca.pem\n"
        "mirrors:\n  docker.io: dockerhub-proxy\n  ghcr.io: ghcr-mirror\n" +
        std::string(kVerify));
    writeNodeFile("/etc/k3s-mirror-agent/harbor-ca.pem",
                  testing::makeCert(caSpec("Rotated CA", kNow + 24h * 700)).cert_pem);
    commands_.runs.clear();
  }

  // Applies with a resolver that answers `up` for every image and records, per call, whether
  // the new registries.yaml was on disk then.
  Report applyResolving(bool up) {
    auto d = deps();
    d.resolve_images = [this, up](const Config& config, const std::string&) {
      written_when_asked_.push_back(nodeFile(kRegistries).value_or("").find("/v2/ghcr-mirror") !=
                                    std::string::npos);
      std::vector<ImageResult> results;
      for (const auto& image : config.verify.images) {
        (void)image;
        ImageResult r;
        r.image = "ghcr.io/org/app:1";
        r.url = "https://harbor.home.lab/v2/ghcr-mirror/org/app/manifests/1";
        r.up = up;
        r.http_status = up ? 200 : 404;
        r.error = up ? "" : kImageError;
        results.push_back(r);
      }
      return results;
    };
    return apply(options(false), d);
  }

  std::vector<bool> written_when_asked_;
};

TEST_F(HotVerifyOnScratchRoot, AnImageThatDoesNotResolveAfterAHotWritePutsEveryFileBack) {
  const auto before = everything();  // certs.d, the trust bundle, registries.yaml, state …
  const auto report = applyResolving(false);
  ASSERT_TRUE(report.error);
  EXPECT_EQ(report.error->kind, ErrorKind::kApply);  // exit 1
  EXPECT_NE(report.error->message.find(kImageError), std::string::npos) << report.error->message;
  EXPECT_NE(report.error->message.find("the previous files were put back"), std::string::npos);
  EXPECT_TRUE(report.rolled_back);
  EXPECT_FALSE(report.changed);
  EXPECT_FALSE(report.reload);
  EXPECT_TRUE(report.actions.empty());
  EXPECT_EQ(written_when_asked_, std::vector<bool>{true});  // once, after the write
  EXPECT_EQ(everything(), before);                          // byte for byte, certs.d included
  EXPECT_FALSE(nodeFile(kJournalPath));
  // The trust store rebuilt on the new CA, then again on the old one.
  EXPECT_EQ(commands_.runs.size(), 2u);
}

TEST_F(HotVerifyOnScratchRoot, ImagesThatResolveAfterAHotWriteKeepTheChange) {
  const auto report = applyResolving(true);
  ASSERT_FALSE(report.error) << report.error->message;
  EXPECT_EQ(report.reload, "hot");
  EXPECT_FALSE(report.rolled_back);
  EXPECT_TRUE(report.changed);
  EXPECT_EQ(written_when_asked_, std::vector<bool>{true});
  EXPECT_NE(nodeFile(std::string(kCertsD) + "/ghcr.io/hosts.toml")->find("/v2/ghcr-mirror"),
            std::string::npos);
  EXPECT_FALSE(nodeFile(kJournalPath));
  EXPECT_EQ(commands_.runs.size(), 1u);
}

// A restarted k3s is judged by its unit coming back; the images are not asked again after it.
TEST_F(HotVerifyOnScratchRoot, ARestartIsNotFollowedByTheImageCheck) {
  std::filesystem::remove_all(real(kCertsD));  // k3s did not write certs.d: no hot reload
  restart_under_root_ = true;
  const auto report = applyResolving(false);
  ASSERT_FALSE(report.error) << report.error->message;
  EXPECT_EQ(report.reload, "restart");
  EXPECT_EQ(report.restarted, "k3s.service");
  EXPECT_FALSE(report.rolled_back);
  EXPECT_TRUE(written_when_asked_.empty());
}

TEST_F(CrashOnScratchRoot, ARestoreKilledAtAnyWriteIsFinishedByTheNextRestore) {
  int kills = 0;
  for (int nth = 1;; ++nth) {
    reset();
    ASSERT_FALSE(runApply().error);
    if (!killedAt(nth, [&] { runRestore(); })) {
      break;
    }
    ++kills;
    const auto next = runRestore();
    ASSERT_FALSE(next.error) << "killed at change " << nth << ": " << next.error->message;
    EXPECT_EQ(nodeFile(kRegistries), kOwn) << "killed at change " << nth;
    EXPECT_FALSE(nodeFile(kCaNodePath));
    EXPECT_FALSE(nodeFile(kStatePath));
    EXPECT_FALSE(nodeFile(kBackupPath));
    EXPECT_FALSE(nodeFile(kJournalPath));
    EXPECT_FALSE(bundleHolds(nodeFile(kTrustBundlePath).value_or(""), ca_.cert_pem));
  }
  EXPECT_EQ(kills, 6);  // journal, registries.yaml, CA, backup, state, the journal's removal
}

TEST_F(CrashOnScratchRoot, ALostStateNeverCostsTheNodesOwnFile) {
  reset();
  ASSERT_FALSE(runApply().error);
  // A person follows the advice for a broken state: moves it away. Then the config changes.
  std::filesystem::remove(real(kStatePath));
  writeConfig(std::string(kConfig) + "  quay.io: quay-proxy\n");
  ASSERT_FALSE(runApply().error);
  EXPECT_EQ(nodeFile(kBackupPath), kOwn);
  ASSERT_FALSE(runRestore().error);
  EXPECT_EQ(nodeFile(kRegistries), kOwn);
}

TEST_F(CrashOnScratchRoot, ARestoreRunTwiceAfterItPutTheFileBackFinishesTheJob) {
  reset();
  ASSERT_FALSE(runApply().error);
  // What an older restore killed between the backup and the state left: the node's file is
  // back, the backup gone, the state still there.
  writeNodeFile(kRegistries, kOwn);
  std::filesystem::remove(real(kBackupPath));
  const auto report = runRestore();
  ASSERT_FALSE(report.error) << report.error->message;
  EXPECT_EQ(nodeFile(kRegistries), kOwn);
  EXPECT_FALSE(nodeFile(kStatePath));
  EXPECT_FALSE(nodeFile(kCaNodePath));
}

TEST_F(CrashOnScratchRoot, ACaFileWrittenButNeverTrustedIsTrustedByTheNextApply) {
  reset();
  ASSERT_FALSE(runApply().error);
  writeNodeFile(kTrustBundlePath, "");  // as if update-ca-certificates never ran
  commands_.runs.clear();
  const auto pending = runApply(true);
  EXPECT_TRUE(pending.changed);
  EXPECT_EQ(verbs(pending), std::vector<std::string>{"run update-ca-certificates"});
  const auto report = runApply();
  ASSERT_FALSE(report.error);
  EXPECT_TRUE(report.restart_needed);
  EXPECT_EQ(commands_.runs.size(), 1u);
  EXPECT_TRUE(bundleHolds(*nodeFile(kTrustBundlePath), ca_.cert_pem));
}

TEST_F(ApplyOnScratchRoot, ARestoreThatWaitedForAnotherFindsNothingLeftAndWritesNothing) {
  ASSERT_FALSE(runApply().error);
  ASSERT_FALSE(runRestore().error);
  // The second of two restores started together read the state before the first finished:
  // only what it finds under the lock counts.
  disk_.writes.clear();
  const auto report = runRestore();
  ASSERT_FALSE(report.error);
  EXPECT_FALSE(report.changed);
  EXPECT_TRUE(disk_.writes.empty());
  EXPECT_FALSE(nodeFile(kRegistries));
}

TEST_F(ApplyOnScratchRoot, ABrokenJournalStopsApplyAndRestoreNamingItAndChangesNothing) {
  writeNodeFile(kJournalPath, "{\"version\": 1, \"operation\": \"apply\"");
  const auto before = everything();
  for (const auto& report : {runApply(), runRestore()}) {
    ASSERT_TRUE(report.error);
    EXPECT_EQ(report.error->kind, ErrorKind::kConfig);
    EXPECT_NE(report.error->message.find("read journal " + root_.path(kJournalPath)),
              std::string::npos)
        << report.error->message;
  }
  auto after = everything();
  after.erase(real(kLockPath));
  EXPECT_EQ(after, before);
}

TEST_F(ApplyOnScratchRoot, ADryRunSaysAnInterruptedRunIsPendingAndLeavesItAlone) {
  const std::string journal =
      renderJournal({"apply", {{kRegistries, FileRole::kRegistries, std::nullopt, 0600}}, {}});
  writeNodeFile(kJournalPath, journal);
  const auto report = runApply(true);
  ASSERT_FALSE(report.error);
  ASSERT_FALSE(report.notes.empty());
  EXPECT_NE(report.notes[0].find("an interrupted run is recorded"), std::string::npos);
  EXPECT_EQ(nodeFile(kJournalPath), journal);
  EXPECT_TRUE(disk_.writes.empty());
}

TEST_F(ApplyOnScratchRoot, AnUndoThatCannotPutAFileBackKeepsTheJournalAndIsPartial) {
  const std::string journal = renderJournal(
      {"apply", {{kRegistries, FileRole::kRegistries, std::string("mirrors: {}\n"), 0600}}, {}});
  writeNodeFile(kJournalPath, journal);
  disk_.fail_write = [&](const std::string& path, int) { return path == root_.path(kRegistries); };
  const auto report = runApply();
  ASSERT_TRUE(report.error);
  EXPECT_EQ(report.error->kind, ErrorKind::kPartial);
  EXPECT_NE(report.error->message.find("the journal is kept"), std::string::npos)
      << report.error->message;
  EXPECT_EQ(nodeFile(kJournalPath), journal);
  disk_.fail_write = nullptr;
  const auto next = runApply();
  ASSERT_FALSE(next.error) << next.error->message;
  EXPECT_EQ(nodeFile(kBackupPath), "mirrors: {}\n");  // put back first, then backed up
  EXPECT_FALSE(nodeFile(kJournalPath));
}

}  // namespace
}  // namespace k3sma
