#include "common/log.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/systemd_sink.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "version.h"

namespace k3sma {
namespace {

// systemd sets JOURNAL_STREAM=<dev>:<inode> when it connects stderr to the journal; it is only
// true if stderr is still that stream (a child may inherit the variable with stderr redirected).
bool stderrIsJournal() {
  const char* env = std::getenv("JOURNAL_STREAM");
  if (env == nullptr) {
    return false;
  }
  struct stat st {};
  if (::fstat(STDERR_FILENO, &st) != 0) {
    return false;
  }
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) == env;
}

}  // namespace

void setupLogging(Verbosity verbosity) {
  std::shared_ptr<spdlog::logger> logger;
  if (stderrIsJournal()) {
    auto sink = std::make_shared<spdlog::sinks::systemd_sink_st>(kProgramName, false);
    logger = std::make_shared<spdlog::logger>(kProgramName, sink);
    logger->set_pattern("%v");
  } else {
    auto sink = std::make_shared<spdlog::sinks::stderr_sink_st>();
    logger = std::make_shared<spdlog::logger>(kProgramName, sink);
    logger->set_pattern("%n: %l: %v");
  }
  switch (verbosity) {
    case Verbosity::kQuiet:
      logger->set_level(spdlog::level::err);
      break;
    case Verbosity::kNormal:
      logger->set_level(spdlog::level::info);
      break;
    case Verbosity::kDebug:
      logger->set_level(spdlog::level::debug);
      break;
  }
  spdlog::set_default_logger(logger);
}

}  // namespace k3sma
