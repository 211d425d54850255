#include "common/desired.h"

#include <algorithm>

namespace k3sma {

bool isAgentWritten(std::string_view text) { return text.starts_with(kAgentHeaderStart); }

bool bundleHolds(std::string_view bundle, std::string_view pem) {
  constexpr std::string_view kBegin = "-----BEGIN CERTIFICATE-----";
  constexpr std::string_view kEnd = "-----END CERTIFICATE-----";
  bool any = false;
  for (auto begin = pem.find(kBegin); begin != std::string_view::npos;
       begin = pem.find(kBegin, begin + 1)) {
    const auto end = pem.find(kEnd, begin);
    if (end == std::string_view::npos) {
      return false;
    }
    if (bundle.find(pem.substr(begin, end + kEnd.size() - begin)) == std::string_view::npos) {
      return false;
    }
    any = true;
  }
  return any;
}

DesiredFiles desiredForApply(const ApplyInputs& in) {
  DesiredFiles out;
  State& next = out.next;
  next = in.state;
  next.registries_path = in.registries_path;
  next.mirrors = in.mirrors;
  next.configs = in.configs;
  next.ca_files = in.ca_path.empty() ? std::vector<std::string>{} : std::vector{in.ca_path};

  const bool writes_registries = in.registries_now != in.registries_text;
  if (next.original == Original::kUnknown) {
    if (in.backup_exists) {
      // The state was lost (a crash before it was written, or a person moved a broken one
      // away) but the node's own file was kept: adopt that backup, never write over it.
      next.original = Original::kBackedUp;
    } else if (in.registries_now && isAgentWritten(*in.registries_now)) {
      // The agent's own file with no backup and no state: the node's file, if it ever had one,
      // cannot be known any more. Restore will remove the agent's entries.
      next.original = Original::kAbsent;
    } else if (writes_registries) {
      if (in.registries_now) {
        next.original = Original::kBackedUp;
        // First, before anything else is written: the node's own file, for restore.
        out.files.push_back({kBackupPath, in.registries_now, 0600, FileRole::kBackup});
      } else {
        next.original = Original::kAbsent;
      }
    }
  }
  for (const auto& old : in.state.ca_files) {
    if (old != in.ca_path) {
      out.files.push_back({old, std::nullopt, 0644, FileRole::kCa});  // the cache host changed
    }
  }
  if (in.ca_pem) {
    out.files.push_back({in.ca_path, in.ca_pem, 0644, FileRole::kCa});
  }
  out.files.push_back({in.registries_path, in.registries_text, 0600, FileRole::kRegistries});
  out.files.push_back({kStatePath, renderState(next), 0600, FileRole::kState});
  return out;
}

Result<DesiredFiles> desiredForRestore(const RestoreInputs& in) {
  DesiredFiles out;
  std::optional<std::string> wanted;
  if (in.state.original == Original::kBackedUp) {
    if (in.backup) {
      wanted = in.backup;
    } else if (in.registries_now && !isAgentWritten(*in.registries_now)) {
      wanted = in.registries_now;  // put back already, by a restore that did not finish
    } else {
      return configError("restore: the state says the node's own registries.yaml was kept at " +
                         std::string(kBackupPath) +
                         ", but it is not there and registries.yaml is the agent's; nothing "
                         "was changed");
    }
  } else if (in.registries_now && isAgentWritten(*in.registries_now)) {
    wanted = in.stripped;
  } else {
    // Not the agent's file (a person replaced it, or a restore put it back already): it is
    // the node's own now, and stays as it is.
    wanted = in.registries_now;
  }
  out.files.push_back({in.registries_path, wanted, 0600, FileRole::kRegistries});
  for (const auto& ca : in.state.ca_files) {
    out.files.push_back({ca, std::nullopt, 0644, FileRole::kCa});
  }
  out.files.push_back({kBackupPath, std::nullopt, 0600, FileRole::kBackup});
  out.files.push_back({kStatePath, std::nullopt, 0600, FileRole::kState});
  return out;
}

void addHostsToml(DesiredFiles& desired, const std::string& certs_d,
                  const std::vector<HostsToml>& files, const std::vector<std::string>& stale) {
  std::vector<DesiredFile> hosts;
  hosts.reserve(files.size() + stale.size());
  for (const auto& file : files) {
    hosts.push_back(
        {certs_d + "/" + file.dir + "/hosts.toml", file.content, 0644, FileRole::kHostsToml});
  }
  for (const auto& dir : stale) {
    hosts.push_back(
        {certs_d + "/" + dir + "/hosts.toml", std::nullopt, 0644, FileRole::kHostsToml});
  }
  // Before the state, which is last: the state says what was done once all of it is.
  auto state = std::find_if(desired.files.begin(), desired.files.end(),
                            [](const DesiredFile& f) { return f.role == FileRole::kState; });
  desired.files.insert(state, hosts.begin(), hosts.end());
}

}  // namespace k3sma
