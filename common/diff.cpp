#include "common/diff.h"

#include <sstream>
#include <vector>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <dtl/dtl.hpp>
#pragma GCC diagnostic pop

namespace k3sma {
namespace {

std::vector<std::string> splitLines(const std::optional<std::string>& text) {
  std::vector<std::string> lines;
  if (!text) {
    return lines;
  }
  std::string::size_type start = 0;
  while (start < text->size()) {
    auto end = text->find('\n', start);
    if (end == std::string::npos) {
      lines.push_back(text->substr(start));
      break;
    }
    lines.push_back(text->substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

}  // namespace

std::string unifiedDiff(const std::optional<std::string>& before,
                        const std::optional<std::string>& after, const std::string& path) {
  if (before == after) {
    return {};
  }
  const auto a = splitLines(before);
  const auto b = splitLines(after);
  dtl::Diff<std::string, std::vector<std::string>> diff(a, b);
  diff.compose();
  diff.composeUnifiedHunks();
  std::ostringstream out;
  out << "--- " << (before ? "a" + path : "/dev/null") << "\n";
  out << "+++ " << (after ? "b" + path : "/dev/null") << "\n";
  diff.printUnifiedFormat(out);
  return out.str();
}

}  // namespace k3sma
