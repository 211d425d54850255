#include "common/log.h"

#include <fmt/format.h>
#include <spdlog/sinks/sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/systemd_sink.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

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

Utf8Char utf8At(std::string_view text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char c = byte(i);
  if (c < 0x80) {
    return {1, c};
  }
  size_t len = 0;
  char32_t cp = 0;
  if ((c & 0xe0) == 0xc0) {
    len = 2;
    cp = c & 0x1fu;
  } else if ((c & 0xf0) == 0xe0) {
    len = 3;
    cp = c & 0x0fu;
  } else if ((c & 0xf8) == 0xf0) {
    len = 4;
    cp = c & 0x07u;
  } else {
    return {};
  }
  if (i + len > text.size()) {
    return {};
  }
  for (size_t k = 1; k < len; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80) {
      return {};
    }
    cp = (cp << 6) | (byte(i + k) & 0x3fu);
  }
  constexpr char32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMinForLength[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
    return {};
  }
  return {len, cp};
}

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const auto ch = utf8At(text, i);
    // C0 and C1 controls and DEL are terminal escapes, and a newline would forge a log line.
    const bool control = ch.code_point < 0x20 || (ch.code_point >= 0x7f && ch.code_point <= 0x9f);
    if (ch.length > 0 && !control) {
      out.append(text.substr(i, ch.length));
      i += ch.length;
      continue;
    }
    const auto c = static_cast<unsigned char>(text[i]);
    if (ch.length == 1 && c == '\n') {
      out += "\\n";
    } else if (ch.length == 1 && c == '\t') {
      out += "\\t";
    } else if (ch.length == 1 && c == '\r') {
      out += "\\r";
    } else {
      // A control as one escape per byte; an invalid sequence byte by byte.
      const size_t n = ch.length > 0 ? ch.length : 1;
      for (size_t k = 0; k < n; ++k) {
        fmt::format_to(std::back_inserter(out), "\\x{:02x}",
                       static_cast<unsigned>(static_cast<unsigned char>(text[i + k])));
      }
      i += n;
      continue;
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
