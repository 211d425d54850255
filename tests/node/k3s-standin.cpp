// A STAND-IN FOR K3S, for the booted-node tests only (k3s itself cannot be installed here).
// At its start it does what k3s's agent does before it is ready (k3s pkg/agent/containerd):
//   - reads registries.yaml once; refuses to become ready when it cannot use the file: it
//     exits with an error, and the unit's Restart=always starts it again, so with
//     TimeoutStartSec=0 it stays "activating". "Cannot use" is YAML that does not parse, or a
//     file the model refuses (it refuses what it cannot reproduce byte for byte, where k3s may
//     do something else silently; the agent never writes such a file);
//   - cleans <data-dir>/agent/etc/containerd/certs.d as k3s >= v1.31.1 does: it removes the
//     directories it is about to write and every directory whose hosts.toml starts with k3s's
//     header line; any other directory survives;
//   - writes certs.d/<key>/hosts.toml with the agent's model of k3s's template
//     (common/certs_d.h): the same bytes k3s writes, in the layout and default-endpoint setting
//     the unit's environment selects (below); directories 0700, files 0644, as k3s;
//   - with K3S_STANDIN_CONTAINERD=1 and Debian's containerd installed: writes
//     <data-dir>/agent/etc/containerd/config.toml (CRI registry config_path = that certs.d,
//     registry.configs."<host>".auth = the credentials of registries.yaml, snapshotter native:
//     overlayfs is refused inside a container), runs containerd as its child on k3s's paths
//     (socket /run/k3s/containerd/containerd.sock, state /run/k3s/containerd, root
//     <data-dir>/agent/containerd), and waits until containerd answers;
//   - then tells systemd READY=1 and idles; SIGTERM stops containerd, then the stand-in.
// Without K3S_STANDIN_CONTAINERD the light scenarios stay fast: no containerd is started.
//
// Environment (the units read /etc/k3s-standin/env as an EnvironmentFile):
//   K3S_STANDIN_LAYOUT=1.29|1.32             hosts.toml bytes of k3s v1.29.4..v1.32.1 or
//                                            v1.32.2+ (default 1.32)
//   K3S_STANDIN_NO_DEFAULT_ENDPOINT=1        as k3s --disable-default-registry-endpoint
//   K3S_STANDIN_CONTAINERD=1                 run containerd (fails when it is not installed)
// Each start is appended to /var/log/k3s-standin/starts so tests can count restarts.
// Test hook: when /etc/k3s-standin/refuse exists and its first line occurs in registries.yaml,
// the file counts as unusable — the way to make a valid file "break" k3s in a test.
//
// Usage: k3s-standin server|agent [REGISTRIES [DATA-DIR]]
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/certs_d.h"

namespace fs = std::filesystem;

namespace {

// k3s's containerd paths (k3s pkg/daemons/config: the agent's Containerd.Address/State/Root).
constexpr const char* kContainerdState = "/run/k3s/containerd";
constexpr const char* kContainerdSocket = "/run/k3s/containerd/containerd.sock";
constexpr const char* kContainerd = "/usr/bin/containerd";
constexpr const char* kCtr = "/usr/bin/ctr";

std::string slurp(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

int refuse(const std::string& why) {
  std::cerr << "k3s-standin: fatal: failed to load registries.yaml: " << why << std::endl;
  return 1;
}

bool envIs(const char* name, const char* value) {
  const char* set = std::getenv(name);
  return set != nullptr && std::strcmp(set, value) == 0;
}

// The first line of FILE, or "" when it cannot be read.
std::string firstLine(const fs::path& file) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  return line;
}

// k3s >= v1.31.1 (pkg/agent/containerd: cleanupCertsD): before writing, remove the directories
// it regenerates and those whose hosts.toml it wrote earlier (first line is its header); a
// directory somebody else put there (without the header) survives.
void cleanCertsD(const fs::path& certs_d, const std::set<std::string>& regenerated,
                 const std::string& header) {
  std::error_code ec;
  if (!fs::is_directory(certs_d, ec)) {
    return;
  }
  for (const auto& entry : fs::directory_iterator(certs_d, ec)) {
    const std::string name = entry.path().filename().string();
    if (regenerated.count(name) != 0 || firstLine(entry.path() / "hosts.toml") == header) {
      fs::remove_all(entry.path(), ec);
    }
  }
}

// Writes FILE with MODE; false (and a message) when it could not.
bool writeFile(const fs::path& file, const std::string& content, fs::perms mode) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  if (!out) {
    std::cerr << "k3s-standin: write " << file << ": " << std::strerror(errno) << std::endl;
    return false;
  }
  std::error_code ec;
  fs::permissions(file, mode, ec);
  return !ec;
}

// A TOML basic string: quotes and backslashes escaped, control characters as \uXXXX.
std::string tomlString(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      // \u00XX by hand: the arm64 stand-in links only the standard library, yaml-cpp and
      // libsystemd (build-standin-arm64.sh), so no fmt.
      constexpr std::string_view kHex = "0123456789abcdef";
      const auto byte = static_cast<unsigned char>(c);
      out += "\\u00";
      out += kHex[byte >> 4U];
      out += kHex[byte & 0xfU];
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// containerd's config as k3s's version-2 template writes the parts that matter here: paths,
// the CRI registry's config_path, and each configs.<host>.auth (containerd reads credentials
// only at start; they never go to hosts.toml).
std::string containerdConfig(const YAML::Node& doc, const fs::path& data_dir,
                             const fs::path& certs_d) {
  std::ostringstream toml;
  toml << "# File generated by k3s-standin (a stand-in for k3s). DO NOT EDIT.\n"
       << "version = 2\n"
       << "root = " << tomlString((data_dir / "agent/containerd").string()) << "\n"
       << "state = " << tomlString(kContainerdState) << "\n\n"
       << "[grpc]\n  address = " << tomlString(kContainerdSocket) << "\n\n"
       << "[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  snapshotter = \"native\"\n\n"
       << "[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = "
       << tomlString(certs_d.string()) << "\n";
  if (doc.IsMap() && doc["configs"] && doc["configs"].IsMap()) {
    for (const auto& config : doc["configs"]) {
      const YAML::Node auth = config.second.IsMap() ? config.second["auth"] : YAML::Node();
      if (!auth || !auth.IsMap()) {
        continue;
      }
      toml << "\n[plugins.\"io.containerd.grpc.v1.cri\".registry.configs."
           << tomlString(config.first.as<std::string>()) << ".auth]\n";
      for (const char* key : {"username", "password", "auth", "identity_token"}) {
        if (auth[key] && auth[key].IsScalar()) {
          toml << "  " << key << " = " << tomlString(auth[key].as<std::string>()) << "\n";
        }
      }
    }
  }
  return toml.str();
}

// Runs ARGS[0] with the signal mask MASK (the stand-in blocks SIGTERM/SIGCHLD for itself).
// k3s runs containerd with Pdeathsig SIGKILL, so a k3s that dies takes containerd with it; the
// stand-in does the same for every child.
pid_t spawn(const std::vector<std::string>& args, const sigset_t& mask) {
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (const auto& arg : args) {
    argv.push_back(const_cast<char*>(arg.c_str()));
  }
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    sigprocmask(SIG_SETMASK, &mask, nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// `ctr version` succeeds once containerd serves its API on the socket.
bool containerdAnswers(const sigset_t& mask) {
  const pid_t pid =
      spawn({kCtr, "--address", kContainerdSocket, "--timeout", "2s", "version"}, mask);
  int status = 0;
  return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
         WEXITSTATUS(status) == 0;
}

volatile sig_atomic_t g_stop = 0;

}  // namespace

int main(int argc, char** argv) {
  const std::string role = argc > 1 ? argv[1] : "server";
  const fs::path registries =
      argc > 2 ? fs::path(argv[2]) : fs::path(k3sma::kK3sFacts.registries_path);
  const fs::path data_dir = argc > 3 ? fs::path(argv[3]) : fs::path(k3sma::kK3sFacts.data_dir);

  fs::create_directories("/var/log/k3s-standin");
  std::ofstream("/var/log/k3s-standin/starts", std::ios::app)
      << role << " " << ::time(nullptr) << "\n";
  std::string text;
  YAML::Node doc;
  if (fs::exists(registries)) {
    text = slurp(registries);
    try {
      doc = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      return refuse(e.what());
    }
    if (fs::exists("/etc/k3s-standin/refuse")) {
      const std::string marker = firstLine("/etc/k3s-standin/refuse");
      if (!marker.empty() && text.find(marker) != std::string::npos) {
        return refuse("test hook: the file contains \"" + marker + "\"");
      }
    }
  }

  k3sma::CertsDOptions options;
  options.layout =
      envIs("K3S_STANDIN_LAYOUT", "1.29") ? k3sma::K3sLayout::kV1_29 : k3sma::K3sLayout::kV1_32;
  options.disable_default_endpoint = envIs("K3S_STANDIN_NO_DEFAULT_ENDPOINT", "1");
  const auto files = k3sma::renderCertsD(text, registries.string(), options);
  if (!files.ok()) {
    return refuse(files.error().message);
  }

  const fs::path certs_d = data_dir / "agent/etc/containerd/certs.d";
  std::set<std::string> regenerated;
  for (const auto& file : files.value()) {
    regenerated.insert(file.dir);
  }
  cleanCertsD(certs_d, regenerated, options.header);
  fs::create_directories(certs_d);
  for (const auto& file : files.value()) {
    const fs::path dir = certs_d / file.dir;
    fs::create_directories(dir);
    fs::permissions(dir, fs::perms::owner_all);
    if (!writeFile(dir / "hosts.toml", file.content,
                   fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                       fs::perms::others_read)) {
      return 1;
    }
  }

  // SIGTERM (systemd stops the unit) and SIGCHLD (containerd died) are blocked except inside
  // sigsuspend, so neither can arrive between a check and the wait.
  sigset_t wake;
  sigset_t during_wait;
  sigemptyset(&wake);
  sigaddset(&wake, SIGTERM);
  sigaddset(&wake, SIGCHLD);
  sigprocmask(SIG_BLOCK, &wake, &during_wait);
  if (std::signal(SIGTERM, [](int) { g_stop = 1; }) == SIG_ERR ||
      std::signal(SIGCHLD, [](int) {}) == SIG_ERR) {
    std::cerr << "k3s-standin: fatal: signal: " << std::strerror(errno) << std::endl;
    return 1;
  }
  pid_t containerd = -1;
  if (envIs("K3S_STANDIN_CONTAINERD", "1")) {
    if (!fs::exists(kContainerd) || !fs::exists(kCtr)) {
      std::cerr << "k3s-standin: fatal: K3S_STANDIN_CONTAINERD=1 but " << kContainerd << " or "
                << kCtr << " is not installed (a node built with: build-rootfs.sh amd64 containerd)"
                << std::endl;
      return 1;
    }
    const fs::path config = data_dir / "agent/etc/containerd/config.toml";
    if (!writeFile(config, containerdConfig(doc, data_dir, certs_d),
                   fs::perms::owner_read | fs::perms::owner_write)) {
      return 1;
    }
    fs::create_directories(kContainerdState);
    containerd = spawn({kContainerd, "--config", config.string()}, during_wait);
    if (containerd < 0) {
      std::cerr << "k3s-standin: fatal: start " << kContainerd << ": " << std::strerror(errno)
                << std::endl;
      return 1;
    }
    // k3s waits for containerd's API before it goes on; so does the stand-in, for 60 s at most.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!containerdAnswers(during_wait)) {
      int status = 0;
      if (waitpid(containerd, &status, WNOHANG) == containerd) {
        std::cerr << "k3s-standin: fatal: containerd exited before it answered" << std::endl;
        return 1;
      }
      sigset_t pending;
      sigpending(&pending);
      if (sigismember(&pending, SIGTERM) != 0 || std::chrono::steady_clock::now() > deadline) {
        kill(containerd, SIGKILL);
        waitpid(containerd, &status, 0);
        std::cerr << "k3s-standin: fatal: containerd did not answer on " << kContainerdSocket
                  << std::endl;
        return 1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  sd_notify(0, containerd > 0 ? "READY=1\nSTATUS=stand-in k3s running, containerd up"
                              : "READY=1\nSTATUS=stand-in k3s running");
  while (g_stop == 0) {
    int status = 0;
    if (containerd > 0 && waitpid(containerd, &status, WNOHANG) == containerd) {
      // k3s exits when its containerd dies; systemd's Restart=always starts both again.
      std::cerr << "k3s-standin: fatal: containerd exited" << std::endl;
      return 1;
    }
    sigsuspend(&during_wait);
  }
  if (containerd > 0) {
    kill(containerd, SIGTERM);
    int status = 0;
    waitpid(containerd, &status, 0);
  }
  return 0;
}
