#include "agent/stage.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace k3sma {

namespace {

// The node is never touched, so a failure to stage is a failed restore that changed nothing.
Error stageError(std::string message) { return {std::move(message), ErrorKind::kApply}; }

// The list of staged removals, read back, plus one more line. Rewritten whole (atomically)
// rather than appended to, so a crash never leaves half a line.
Status appendLine(const std::string& path, const std::string& line) {
  auto current = readFile(path);
  if (!current) {
    return current.error();
  }
  return writeFileAtomic(path, current.value().value_or("") + line + "\n", 0600);
}

// The node path of a path restore hands over: root.path(node path), so the root comes off.
std::string nodePath(const Root& root, const std::string& path) {
  const std::string& prefix = root.dir();
  if (path.compare(0, prefix.size(), prefix) != 0) {
    std::abort();  // apply.cpp prefixes every path with the root: anything else is a bug
  }
  return path.substr(prefix.size());
}

}  // namespace

Status prepareStage(const std::string& dir) {
  // It empties DIR: refuse anything that is not a stage, so `--stage /etc` deletes nothing.
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    // A hidden ".name.tmp-PID" is what a stage killed midway leaves of an atomic write.
    const bool leftover = name.starts_with(".") && name.find(".tmp-") != std::string::npos;
    if (name != "put" && name != "remove" && name != "update-ca-certificates" &&
        name != "complete" && !leftover) {
      return Error{"restore --stage " + dir + ": it holds " + name +
                       ", so it is not a stage; name a new or empty directory",
                   ErrorKind::kConfig};
    }
  }
  if (ec && ec != std::errc::no_such_file_or_directory) {
    return stageError("read the stage " + dir + ": " + ec.message());
  }
  ec.clear();
  std::filesystem::remove_all(dir, ec);
  if (ec) {
    return stageError("empty the stage " + dir + ": " + ec.message());
  }
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return stageError("create the stage " + dir + ": " + ec.message());
  }
  std::filesystem::permissions(dir, std::filesystem::perms::owner_all, ec);
  if (ec) {
    return stageError("chmod 0700 " + dir + ": " + ec.message());
  }
  return Ok{};
}

Status finishStage(const std::string& dir) { return writeFileAtomic(dir + "/complete", "", 0600); }

Result<std::optional<std::string>> StagingFiles::read(const std::string& path) {
  return node_.read(path);
}

Status StagingFiles::write(const std::string& path, std::string_view content, mode_t mode) {
  return writeFileAtomic(dir_ + "/put" + nodePath(root_, path), content, mode);
}

Status StagingFiles::remove(const std::string& path) {
  return appendLine(dir_ + "/remove", nodePath(root_, path));
}

Result<CommandResult> StagingCommands::run(const std::vector<std::string>& argv) {
  if (argv.empty() || argv.front() != "update-ca-certificates") {
    return stageError("restore --stage cannot stage running " +
                      (argv.empty() ? std::string("nothing") : argv.front()));
  }
  if (auto noted = writeFileAtomic(dir_ + "/update-ca-certificates", "", 0600); !noted) {
    return noted.error();
  }
  return CommandResult{0, ""};
}

}  // namespace k3sma
