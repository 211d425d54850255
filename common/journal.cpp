#include "common/journal.h"

#include <openssl/evp.h>

#include <nlohmann/json.hpp>

#include "common/distribution.h"
#include "common/json.h"
#include "common/state.h"

namespace k3sma {
namespace {

constexpr int kJournalVersion = 1;

const char* roleName(FileRole role) {
  switch (role) {
    case FileRole::kBackup:
      return "backup";
    case FileRole::kCa:
      return "ca";
    case FileRole::kRegistries:
      return "registries";
    case FileRole::kHostsToml:
      return "hosts.toml";
    case FileRole::kState:
      break;
  }
  return "state";
}

std::optional<FileRole> roleNamed(const std::string& name) {
  for (FileRole role : {FileRole::kBackup, FileRole::kCa, FileRole::kRegistries,
                        FileRole::kHostsToml, FileRole::kState}) {
    if (name == roleName(role)) {
      return role;
    }
  }
  return std::nullopt;
}

// containerd's certs.d/<host>/hosts.toml of k3s or RKE2, <host> one directory name.
bool isOwnHostsToml(const std::string& p) {
  constexpr std::string_view kFile = "/hosts.toml";
  for (const Distribution d : {Distribution::kK3s, Distribution::kRke2}) {
    const std::string dir = certsDPath(d) + "/";
    if (p.size() <= dir.size() + kFile.size() || p.rfind(dir, 0) != 0 || !p.ends_with(kFile)) {
      continue;
    }
    const std::string host = p.substr(dir.size(), p.size() - dir.size() - kFile.size());
    if (host != "." && host != ".." && host.find('/') == std::string::npos &&
        host.find('\0') == std::string::npos) {
      return true;
    }
  }
  return false;
}

// Recover writes each file's before-image to its path, or removes it: only a path a run of the
// agent records for the file's role is accepted, as for the state (isOwnCaFile, state.h).
bool isOwnPath(FileRole role, const std::string& p) {
  switch (role) {
    case FileRole::kBackup:
      return p == kBackupPath;
    case FileRole::kCa:
      return isOwnCaFile(p);
    case FileRole::kRegistries:
      return !p.empty() && isOwnRegistriesPath(p);
    case FileRole::kHostsToml:
      return isOwnHostsToml(p);
    case FileRole::kState:
      break;
  }
  return p == kStatePath;
}

// OpenSSL's base64 (EVP_EncodeBlock): no line breaks, '=' padding.
std::string base64(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::optional<std::string> unbase64(const std::string& text) {
  if (text.size() % 4 != 0) {
    return std::nullopt;
  }
  std::string out(text.size() / 4 * 3 + 1, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) {
    return std::nullopt;
  }
  // EVP_DecodeBlock counts the padding as zero bytes.
  size_t size = static_cast<size_t>(n);
  for (auto it = text.rbegin(); it != text.rend() && *it == '=' && size > 0; ++it) {
    --size;
  }
  out.resize(size);
  return out;
}

}  // namespace

Journal journalFor(const Plan& plan, const std::string& operation) {
  Journal journal;
  journal.operation = operation;
  bool ca = false;
  for (const auto& change : plan.changes) {
    journal.files.push_back({change.path, change.role, change.before, change.before_mode});
    ca = ca || change.role == FileRole::kCa;
  }
  if (ca || plan.update_ca_certificates) {
    journal.commands.emplace_back(kRebuildTrustStore);
  }
  return journal;
}

std::string renderJournal(const Journal& journal) {
  nlohmann::ordered_json j;
  j["version"] = kJournalVersion;
  j["operation"] = journal.operation;
  j["files"] = nlohmann::ordered_json::array();
  for (const auto& file : journal.files) {
    nlohmann::ordered_json f;
    f["path"] = file.path;
    f["role"] = roleName(file.role);
    f["before"] = file.before ? nlohmann::ordered_json(base64(*file.before)) : nullptr;
    f["mode"] = file.before_mode;
    j["files"].push_back(std::move(f));
  }
  j["commands"] = journal.commands;
  if (journal.pid > 0) {
    j["pid"] = journal.pid;
  }
  return j.dump(2) + "\n";
}

Result<Journal> parseJournal(const std::string& text, const std::string& source) {
  const std::string fix =
      "; the interrupted change cannot be undone automatically: check the files it names, then "
      "move it away";
  try {
    const auto j = nlohmann::json::parse(text);
    if (!j.is_object() || jsonIntegerAt<int>(j, "version") != kJournalVersion) {
      return configError("read journal " + source + ": unsupported version" + fix);
    }
    Journal journal;
    journal.operation = j.at("operation").get<std::string>();
    for (const auto& f : j.at("files")) {
      JournalFile file;
      file.path = f.at("path").get<std::string>();
      const auto role = roleNamed(f.at("role").get<std::string>());
      if (!role) {
        return configError("read journal " + source + ": unknown role for " + file.path + fix);
      }
      file.role = *role;
      if (!isOwnPath(file.role, file.path)) {
        return configError("read journal " + source + ": \"" + file.path + "\" is not a " +
                           roleName(file.role) + " file the agent writes" + fix);
      }
      if (!f.at("before").is_null()) {
        file.before = unbase64(f.at("before").get<std::string>());
        if (!file.before) {
          return configError("read journal " + source + ": the before-image of " + file.path +
                             " is not base64" + fix);
        }
      }
      const auto mode = jsonInteger<mode_t>(f.at("mode"));
      if (!mode) {
        return configError("read journal " + source + ": the mode of " + file.path +
                           " is not a file mode" + fix);
      }
      file.before_mode = *mode & 07777;
      journal.files.push_back(std::move(file));
    }
    journal.commands = j.at("commands").get<std::vector<std::string>>();
    // Absent in a journal of an agent before it: 0, no run's temp files to look for.
    journal.pid = j.contains("pid") ? jsonInteger<pid_t>(j.at("pid")).value_or(-1) : 0;
    if (journal.pid < 0) {
      return configError("read journal " + source + ": pid is not a process id" + fix);
    }
    return journal;
  } catch (const nlohmann::json::exception& e) {
    return configError("read journal " + source + ": " + e.what() + fix);
  }
}

}  // namespace k3sma
