#include "common/log.h"

#include <spdlog/sinks/sink.h>
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

// Escapes every message before the real sink sees it (printable()), so a file name or a
// quoted line with an escape sequence, a newline or an invalid byte cannot forge log lines or
// drive the terminal.
class EscapingSink final : public spdlog::sinks::sink {
 public:
  explicit EscapingSink(spdlog::sink_ptr inner) : inner_(std::move(inner)) {}
  void log(const spdlog::details::log_msg& msg) override {
    const std::string text = printable(std::string_view(msg.payload.data(), msg.payload.size()));
    spdlog::details::log_msg escaped = msg;
    escaped.payload = text;
    inner_->log(escaped);
  }
  void flush() override { inner_->flush(); }
  void set_pattern(const std::string& pattern) override { inner_->set_pattern(pattern); }
  void set_formatter(std::unique_ptr<spdlog::formatter> formatter) override {
    inner_->set_formatter(std::move(formatter));
  }

 private:
  spdlog::sink_ptr inner_;
};

}  // namespace

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = byte(i);
    size_t len = 0;
    if (c >= 0x20 && c < 0x7f) {
      len = 1;
    } else if (c >= 0xc2 && c <= 0xf4) {
      // A well-formed UTF-8 sequence (RFC 3629: no overlong form, no surrogate) passes whole.
      len = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
      const unsigned char lo = (c == 0xe0) ? 0xa0 : (c == 0xf0) ? 0x90 : 0x80;
      const unsigned char hi = (c == 0xed) ? 0x9f : (c == 0xf4) ? 0x8f : 0xbf;
      if (i + len > text.size() || byte(i + 1) < lo || byte(i + 1) > hi) {
        len = 0;
      }
      for (size_t k = 2; len != 0 && k < len; ++k) {
        if ((byte(i + k) & 0xc0) != 0x80) {
          len = 0;
        }
      }
      // C1 controls (U+0080..U+009F) are terminal escapes too.
      if (len == 2 && c == 0xc2 && byte(i + 1) < 0xa0) {
        len = 0;
      }
    }
    if (len > 0) {
      out.append(text.substr(i, len));
      i += len;
      continue;
    }
    switch (c) {
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "\\x%02x", c);
        out += hex;
      }
    }
    ++i;
  }
  return out;
}

void setupLogging(Verbosity verbosity) {
  std::shared_ptr<spdlog::logger> logger;
  if (stderrIsJournal()) {
    auto sink = std::make_shared<EscapingSink>(
        std::make_shared<spdlog::sinks::systemd_sink_st>(kProgramName, false));
    logger = std::make_shared<spdlog::logger>(kProgramName, sink);
    logger->set_pattern("%v");
  } else {
    auto sink = std::make_shared<EscapingSink>(std::make_shared<spdlog::sinks::stderr_sink_st>());
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
