// The journal that makes an interrupted apply or restore recoverable (common/journal.h), and the
// lock's promise that a holder that died never blocks the next run.
#include "common/journal.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "common/fs.h"

namespace k3sma {
namespace {

TEST(Journal, RoundTripsAnyBytesAbsentFilesModesAndCommands) {
  Journal j;
  j.operation = "apply";
  j.files = {{"/etc/rancher/k3s/registries.yaml", FileRole::kRegistries,
              std::string("pass\xff\x00word\n", 11), 0644},
             {"/usr/local/share/ca-certificates/k3s-mirror-agent/h.crt", FileRole::kCa,
              std::nullopt, 0644},
             {"/var/lib/k3s-mirror-agent/registries.yaml.orig", FileRole::kBackup, "", 0600}};
  j.commands = {kRebuildTrustStore};
  auto parsed = parseJournal(renderJournal(j), "journal.json");
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed.value(), j);
}

// The pid names the killed run's temporary files (writeFileAtomic's), which the undo removes;
// a journal from before it was recorded reads as pid 0 (nothing to remove).
TEST(Journal, RecordsThePidWhoseTemporaryFilesTheUndoRemoves) {
  Journal j;
  j.operation = "apply";
  j.pid = 4242;
  auto parsed = parseJournal(renderJournal(j), "journal.json");
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed.value().pid, 4242);
  auto old = parseJournal(R"({"version": 1, "operation": "apply", "files": [], "commands": []})",
                          "journal.json");
  ASSERT_TRUE(old.ok()) << old.error().message;
  EXPECT_EQ(old.value().pid, 0);
  EXPECT_EQ(atomicTempPath("/var/lib/rancher/k3s/agent/etc/containerd/certs.d/docker.io/hosts.toml",
                           4242),
            "/var/lib/rancher/k3s/agent/etc/containerd/certs.d/docker.io/.hosts.toml.tmp-4242");
  TempDir dir;
  const std::string target = dir.path() + "/hosts.toml";
  ASSERT_TRUE(writeFileAtomic(target, "x", 0644).ok());
  EXPECT_FALSE(std::filesystem::exists(atomicTempPath(target, ::getpid())));
  EXPECT_TRUE(std::filesystem::exists(target));
}

TEST(Journal, KeepsNoSecretInTheClear) {
  Journal j;
  j.operation = "apply";
  j.files = {{"/r", FileRole::kRegistries, "password: hunter2\n", 0600}};
  EXPECT_EQ(renderJournal(j).find("hunter2"), std::string::npos);
}

TEST(Journal, RecordsEveryChangeWithItsBeforeImageAndTheRebuildWhenACaChanges) {
  const Plan plan =
      makePlan({{"/ca.crt", "new", 0644, FileRole::kCa},
                {"/r", "new", 0600, FileRole::kRegistries},
                {"/s", "x", 0600, FileRole::kState}},
               {{"/ca.crt", "old"}, {"/r", std::nullopt}, {"/s", "x"}}, {{"/ca.crt", 0640}});
  const Journal j = journalFor(plan, "apply");
  ASSERT_EQ(j.files.size(), 2u);
  EXPECT_EQ(j.files[0].path, "/ca.crt");
  EXPECT_EQ(j.files[0].before, "old");
  EXPECT_EQ(j.files[0].before_mode, 0640u);
  EXPECT_EQ(j.files[1].before, std::nullopt);
  EXPECT_EQ(j.commands, std::vector<std::string>{kRebuildTrustStore});
  EXPECT_TRUE(journalFor(makePlan({{"/r", "n", 0600, FileRole::kRegistries}}, {}), "apply")
                  .commands.empty());
}

TEST(Journal, ThatIsBrokenIsAnErrorNamingTheFileAndWhatToDo) {
  for (const std::string text :
       {"", "{\"version\": 2}",
        "{\"version\":1,\"operation\":\"apply\",\"files\":[{\"path\":\"/r\","
        "\"role\":\"ca\",\"before\":\"!!\",\"mode\":420}],\"commands\":[]}"}) {
    auto parsed = parseJournal(text, "/var/lib/k3s-mirror-agent/journal.json");
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_EQ(parsed.error().kind, ErrorKind::kConfig);
    EXPECT_NE(parsed.error().message.find("read journal /var/lib/k3s-mirror-agent/journal.json"),
              std::string::npos)
        << parsed.error().message;
    EXPECT_NE(parsed.error().message.find("move it away"), std::string::npos);
  }
}

// A journal that is complete but for one number: a version, mode or pid that is no integer or
// does not fit is refused for that number, never converted (a float out of range is undefined
// behaviour in nlohmann's get<int>; a large pid wrapped to 0).
TEST(Journal, RefusesNumbersThatAreNoIntegersThatFit) {
  const auto journal = [](const std::string& version, const std::string& mode,
                          const std::string& pid) {
    return R"({"version":)" + version +
           R"(,"operation":"apply","files":[{"path":"/etc/rancher/k3s/registries.yaml",)"
           R"("role":"registries","before":null,"mode":)" +
           mode + R"(}],"commands":[],"pid":)" + pid + "}";
  };
  ASSERT_TRUE(parseJournal(journal("1", "384", "4242"), "journal.json").ok());
  const std::vector<std::pair<std::string, std::string>> cases = {
      {journal("1e300", "384", "4242"), "unsupported version"},
      {journal("1.0", "384", "4242"), "unsupported version"},
      {journal("1", "1e99", "4242"), "is not a file mode"},
      {journal("1", "-1", "4242"), "is not a file mode"},
      {journal("1", "\"384\"", "4242"), "is not a file mode"},
      {journal("1", "384", "-1"), "pid is not a process id"},
      {journal("1", "384", "1099511627776"), "pid is not a process id"},
      {journal("1", "384", "2.5"), "pid is not a process id"},
  };
  for (const auto& [text, reason] : cases) {
    auto parsed = parseJournal(text, "journal.json");
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_NE(parsed.error().message.find(reason), std::string::npos)
        << text << ": " << parsed.error().message;
  }
}

// An undo writes each before-image to its path or removes it: a journal edited to name a file
// the agent never writes for that role is refused, and nothing is written or removed.
TEST(Journal, NamingAFileTheAgentDoesNotWriteIsRefused) {
  const auto naming = [](const std::string& role, const std::string& path) {
    return R"({"version":1,"operation":"apply","files":[{"path":")" + path + R"(","role":")" +
           role + R"(","before":null,"mode":384}],"commands":[]})";
  };
  const std::string certs_d = "/var/lib/rancher/k3s/agent/etc/containerd/certs.d";
  for (const auto& [role, path] : std::vector<std::pair<std::string, std::string>>{
           {"registries", "/etc/shadow"},
           {"registries", ""},
           {"ca", "/usr/local/share/ca-certificates/k3s-mirror-agent/../../../../etc/shadow.crt"},
           {"ca", "/etc/ssl/certs/x.crt"},
           {"backup", "/etc/rancher/k3s/registries.yaml"},
           {"state", "/root/.ssh/authorized_keys"},
           {"hosts.toml", certs_d + "/../../../../../../etc/hosts.toml"},
           {"hosts.toml", certs_d + "/docker.io/../hosts.toml"},
           {"hosts.toml", certs_d + "/hosts.toml"},
           {"hosts.toml", certs_d + "/docker.io/config.toml"},
       }) {
    auto parsed = parseJournal(naming(role, path), "/var/lib/k3s-mirror-agent/journal.json");
    ASSERT_FALSE(parsed.ok()) << role << " " << path;
    EXPECT_NE(parsed.error().message.find("is not a " + role + " file the agent writes"),
              std::string::npos)
        << parsed.error().message;
  }
  for (const auto& [role, path] : std::vector<std::pair<std::string, std::string>>{
           {"registries", "/etc/rancher/rke2/registries.yaml"},
           {"hosts.toml", certs_d + "/harbor.home.lab:8443/hosts.toml"},
           {"hosts.toml", "/var/lib/rancher/rke2/agent/etc/containerd/certs.d/_default/hosts.toml"},
           {"state", "/var/lib/k3s-mirror-agent/state.json"},
       }) {
    auto parsed = parseJournal(naming(role, path), "journal.json");
    EXPECT_TRUE(parsed.ok()) << role << " " << path << ": " << parsed.error().message;
  }
}

// flock is the kernel's: a holder killed with SIGKILL (no destructor, no unlock) leaves its lock
// file behind, and the lock is free the moment the process is gone.
TEST(FileLockOfAKilledHolder, NeverBlocksTheNextRun) {
  TempDir dir;
  const std::string path = dir.path() + "/run/apply.lock";
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto held = FileLock::tryAcquire(path);
    const char ok = held.ok() && held.value() ? 'y' : 'n';
    (void)!::write(ready[1], &ok, 1);
    ::pause();  // holds it until killed
    ::_exit(0);
  }
  char ok = 0;
  ASSERT_EQ(::read(ready[0], &ok, 1), 1);
  ASSERT_EQ(ok, 'y');
  {
    auto busy = FileLock::tryAcquire(path);
    ASSERT_TRUE(busy.ok());
    EXPECT_FALSE(busy.value()) << "the lock was free while its holder lived";
  }
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_TRUE(statFile(path).ok()) << "the killed holder's lock file is still there";
  auto next = FileLock::tryAcquire(path);
  ASSERT_TRUE(next.ok());
  EXPECT_TRUE(next.value()) << "a dead holder's lock blocked the next run";
  ::close(ready[0]);
  ::close(ready[1]);
}

}  // namespace
}  // namespace k3sma
