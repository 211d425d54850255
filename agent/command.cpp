#include "agent/command.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>

#include "common/fs.h"

extern char** environ;

namespace k3sma {
namespace {

// posix_spawn's file actions and attributes need destroying on every path out.
struct SpawnActions {
  posix_spawn_file_actions_t actions{};
  SpawnActions() { ::posix_spawn_file_actions_init(&actions); }
  ~SpawnActions() { ::posix_spawn_file_actions_destroy(&actions); }
  SpawnActions(const SpawnActions&) = delete;
  SpawnActions& operator=(const SpawnActions&) = delete;
};

// The daemon blocks SIGTERM and SIGHUP to receive them through sd-event; a child would inherit
// that mask and ignore systemd's SIGTERM. Children start with no signal blocked, and default
// dispositions for the signals the daemon handles.
struct SpawnAttributes {
  posix_spawnattr_t attr{};
  SpawnAttributes() {
    ::posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    ::posix_spawnattr_setsigmask(&attr, &none);
    sigset_t handled;
    sigemptyset(&handled);
    for (int sig : {SIGTERM, SIGHUP, SIGINT}) {
      sigaddset(&handled, sig);
    }
    ::posix_spawnattr_setsigdefault(&attr, &handled);
    ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  }
  ~SpawnAttributes() { ::posix_spawnattr_destroy(&attr); }
  SpawnAttributes(const SpawnAttributes&) = delete;
  SpawnAttributes& operator=(const SpawnAttributes&) = delete;
};

}  // namespace

Result<CommandResult> RealCommandRunner::run(const std::vector<std::string>& argv) {
  const std::string name = argv.empty() ? "(nothing)" : argv.front();
  auto fail = [&](const std::string& what, int err) {
    return Error{"run " + name + ": " + what + ": " + errnoText(err), ErrorKind::kApply};
  };
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return fail("pipe", errno);
  }
  Fd read_end(pipe_fds[0]);
  Fd write_end(pipe_fds[1]);

  SpawnActions spawn;
  int rc = ::posix_spawn_file_actions_adddup2(&spawn.actions, write_end.get(), STDOUT_FILENO);
  if (rc == 0) {
    rc = ::posix_spawn_file_actions_adddup2(&spawn.actions, write_end.get(), STDERR_FILENO);
  }
  if (rc == 0) {
    rc = ::posix_spawn_file_actions_addopen(&spawn.actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  }
  if (rc != 0) {
    return fail("prepare", rc);
  }
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));  // NOLINT: exec takes char*, never writes
  }
  args.push_back(nullptr);
  SpawnAttributes attributes;
  pid_t pid = 0;
  rc = ::posix_spawnp(&pid, args[0], &spawn.actions, &attributes.attr, args.data(), environ);
  if (rc != 0) {
    return fail("start", rc);
  }
  write_end = Fd();  // only the child holds the write end now, so read() sees EOF when it exits

  CommandResult result;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(read_end.get(), buf, sizeof buf);
    if (n > 0) {
      result.output.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      return fail("wait", errno);
    }
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

}  // namespace k3sma
