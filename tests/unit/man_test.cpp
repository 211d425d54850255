// The config man page, packaging/man/k3s-mirror-agent.yaml.5, against the parser: every key the
// parser accepts has its own .TP item tagged \fBsection.key\fR, and every such tag is a key the
// parser accepts. A key added to common/config.cpp without a man page entry fails here.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/config.h"

namespace k3sma {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

std::string readPage() {
  std::ifstream in(K3SMA_CONFIG_MAN_PAGE);
  EXPECT_TRUE(in.good()) << "cannot read " << K3SMA_CONFIG_MAN_PAGE;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// A tag that names a config key: lower-case words joined by dots, as knownConfigKeys() spells
// them. File paths (/etc/...) and the like are other tags.
bool looksLikeKey(const std::string& s) {
  if (s.empty() || s.front() == '.' || s.back() == '.' || s.find("..") != std::string::npos) {
    return false;
  }
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.')) {
      return false;
    }
  }
  return s.front() >= 'a' && s.front() <= 'z';
}

// The tag line of every .TP item, as the key it names: "\fBregistry.url\fR" and
// ".B registry.url" both give "registry.url"; tags that are not a single bold key are skipped.
std::vector<std::string> keyTags(const std::string& page) {
  std::vector<std::string> tags;
  std::istringstream lines(page);
  std::string line;
  bool after_tp = false;
  while (std::getline(lines, line)) {
    if (after_tp) {
      after_tp = false;
      std::string tag;
      if (line.rfind("\\fB", 0) == 0 && line.size() > 6 &&
          line.compare(line.size() - 3, 3, "\\fR") == 0) {
        tag = line.substr(3, line.size() - 6);
      } else if (line.rfind(".B ", 0) == 0) {
        tag = line.substr(3);
      }
      if (looksLikeKey(tag)) {
        tags.push_back(tag);
      }
    }
    if (line == ".TP" || line.rfind(".TP ", 0) == 0) {
      after_tp = true;
    }
  }
  return tags;
}

TEST(KnownConfigKeys, ListsTheKeysOfEverySectionByTheirDottedNames) {
  const auto keys = knownConfigKeys();
  EXPECT_THAT(keys, Contains("registry.url"));
  EXPECT_THAT(keys, Contains("registry.auth.password_file"));
  EXPECT_THAT(keys, Contains("mirrors"));
  EXPECT_THAT(keys, Contains("mode"));
  EXPECT_THAT(keys, Contains("k3s.restart_timeout"));
  EXPECT_THAT(keys, Contains("daemon.debounce"));
  // Sections are not keys; their keys are.
  EXPECT_THAT(keys, Not(Contains("registry")));
  EXPECT_THAT(keys, Not(Contains("registry.auth")));
  EXPECT_THAT(keys, Not(Contains("daemon")));
  EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()).size(), keys.size());
}

// "a.b.c" -> "a:\n  b:\n    c: x\n": a file that sets that one key.
std::string settingOnly(const std::string& key) {
  std::string text;
  std::string indent;
  size_t start = 0;
  for (size_t dot = key.find('.'); dot != std::string::npos; dot = key.find('.', start)) {
    text += indent + key.substr(start, dot - start) + ":\n";
    indent += "  ";
    start = dot + 1;
  }
  return text + indent + key.substr(start) + ": x\n";
}

std::string parseErrorOf(const std::string& text) {
  auto parsed = parseConfig({{"config.yaml", text}});
  return parsed ? "" : parsed.error().message;
}

TEST(KnownConfigKeys, AreEachAcceptedByTheParser) {
  // The check below can tell: a key the parser does not have is refused as unknown.
  ASSERT_THAT(parseErrorOf(settingOnly("registry.auth.nope")), HasSubstr("unknown key"));
  // Each listed key is known where it is listed ("x" may be a bad value for it; that is
  // another error).
  for (const auto& key : knownConfigKeys()) {
    EXPECT_THAT(parseErrorOf(settingOnly(key)), Not(HasSubstr("unknown key"))) << key;
  }
}

TEST(ConfigManPage, DocumentsEveryKeyTheParserAccepts) {
  const auto tags = keyTags(readPage());
  const std::set<std::string> documented(tags.begin(), tags.end());
  std::vector<std::string> undocumented;
  for (const auto& key : knownConfigKeys()) {
    if (documented.count(key) == 0) {
      undocumented.push_back(key);
    }
  }
  EXPECT_THAT(undocumented, IsEmpty())
      << "add a .TP item tagged \\fBsection.key\\fR for each to " << K3SMA_CONFIG_MAN_PAGE;
}

TEST(ConfigManPage, DocumentsNoKeyTheParserRefuses) {
  const auto keys = knownConfigKeys();
  const std::set<std::string> known(keys.begin(), keys.end());
  std::vector<std::string> unknown;
  for (const auto& tag : keyTags(readPage())) {
    if (known.count(tag) == 0) {
      unknown.push_back(tag);
    }
  }
  EXPECT_THAT(unknown, IsEmpty()) << "documented in " << K3SMA_CONFIG_MAN_PAGE
                                  << " but not accepted by the parser";
}

TEST(ConfigManPage, DocumentsEachKeyOnce) {
  const auto tags = keyTags(readPage());
  std::multiset<std::string> counted(tags.begin(), tags.end());
  for (const auto& tag : std::set<std::string>(tags.begin(), tags.end())) {
    EXPECT_EQ(counted.count(tag), 1u) << tag << " has more than one .TP item";
  }
}

}  // namespace
}  // namespace k3sma
