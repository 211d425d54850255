// registries.yaml rendering. Each golden-file test names the k3s rule it pins (common/registries.h
// lists them; README.md, "How k3s reads registries.yaml and certs.d"); the golden files are in
// tests/data/golden/.
#include "common/registries.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <set>
#include <vector>

#include "common/yaml_emit.h"
#include "tests/support/golden.h"

namespace k3sma {
namespace {

using testing::expectGolden;

constexpr const char* kCaPath =
    "/usr/local/share/ca-certificates/k3s-mirror-agent/harbor.home.lab.crt";

Config configFrom(const std::string& yaml) {
  auto parsed = parseConfig({{"config.yaml", yaml}});
  if (!parsed) {
    ADD_FAILURE() << parsed.error().message;
    return {};
  }
  return parsed.value();
}

Config threeMirrors() {
  return configFrom(R"(registry:
  url: https://harbor.home.lab
  ca_file: /etc/k3s-mirror-agent/harbor-ca.pem
mirrors:
  docker.io: dockerhub-proxy
  ghcr.io: ghcr-proxy
  quay.io: quay-proxy
)");
}

RenderedRegistries render(const Config& config, const std::string& ca_path,
                          const std::optional<std::string>& current = std::nullopt,
                          const State& previous = {}) {
  auto rendered = renderRegistries(config, ca_path, current, "registries.yaml", previous);
  if (!rendered) {
    ADD_FAILURE() << rendered.error().message;
    return {};
  }
  return rendered.value();
}

// Rule: an endpoint whose path is not empty, / or /v2 is used verbatim (containerd's
// override_path), so <cache>/v2/<project> reaches a Harbor proxy-cache project; one project
// proxies one upstream, so each upstream gets its own project.
TEST(RenderRegistries, PathModeSendsEachUpstreamToItsOwnProjectUnderV2) {
  const auto out = render(threeMirrors(), kCaPath);
  expectGolden("path_mode.yaml", out.text);
  const auto doc = YAML::Load(out.text);
  EXPECT_EQ(doc["mirrors"]["docker.io"]["endpoint"][0].as<std::string>(),
            "https://harbor.home.lab/v2/dockerhub-proxy");
  EXPECT_EQ(doc["mirrors"]["quay.io"]["endpoint"][0].as<std::string>(),
            "https://harbor.home.lab/v2/quay-proxy");
}

// Rule: rewrite is a k3s-only opt-in; the endpoint is the bare cache and the regex maps the
// repository path into the project.
TEST(RenderRegistries, RewriteModeUsesBareEndpointAndProjectPrefixRegex) {
  auto config = threeMirrors();
  config.mode = MirrorMode::kRewrite;
  const auto out = render(config, kCaPath);
  expectGolden("rewrite_mode.yaml", out.text);
  const auto doc = YAML::Load(out.text);
  EXPECT_EQ(doc["mirrors"]["docker.io"]["endpoint"][0].as<std::string>(),
            "https://harbor.home.lab");
  EXPECT_EQ(doc["mirrors"]["docker.io"]["rewrite"]["^(.*)$"].as<std::string>(),
            "dockerhub-proxy/$1");
}

// Rule: TLS and auth are looked up under configs.<endpoint host[:port]>: never the upstream
// name, never a URL with a scheme.
TEST(RenderRegistries, ConfigsAreKeyedByCacheHostAndPortNotUpstreamOrUrl) {
  auto config = configFrom(R"(registry:
  url: https://harbor.home.lab:8443/
  ca_file: /etc/k3s-mirror-agent/harbor-ca.pem
mirrors:
  docker.io: dockerhub-proxy
)");
  const auto out = render(config, caInstallPath(config.registry));
  expectGolden("configs_host_port.yaml", out.text);
  const auto doc = YAML::Load(out.text);
  ASSERT_EQ(doc["configs"].size(), 1u);
  EXPECT_TRUE(doc["configs"]["harbor.home.lab:8443"]);
  EXPECT_FALSE(doc["configs"]["docker.io"]);
  EXPECT_FALSE(doc["configs"]["https://harbor.home.lab:8443"]);
  EXPECT_EQ(doc["configs"]["harbor.home.lab:8443"]["tls"]["ca_file"].as<std::string>(),
            "/usr/local/share/ca-certificates/k3s-mirror-agent/harbor.home.lab_8443.crt");
}

// Rule: configs.<host>.auth holds username and password; written only when configured.
TEST(RenderRegistries, AuthIsWrittenOnlyWhenConfigured) {
  auto config = threeMirrors();
  EXPECT_FALSE(YAML::Load(render(config, kCaPath).text)["configs"]["harbor.home.lab"]["auth"]);
  config.registry.auth = RegistryAuth{"robot$k3s", "/etc/k3s-mirror-agent/pw", "s3cret"};
  const auto out = render(config, kCaPath);
  expectGolden("auth.yaml", out.text);
  const auto auth = YAML::Load(out.text)["configs"]["harbor.home.lab"]["auth"];
  EXPECT_EQ(auth["username"].as<std::string>(), "robot$k3s");
  EXPECT_EQ(auth["password"].as<std::string>(), "s3cret");
}

// Rule: tls.insecure_skip_verify is written only when asked, as a YAML boolean.
TEST(RenderRegistries, InsecureSkipVerifyOnlyWhenAskedAndAsBoolean) {
  auto config = configFrom(R"(registry:
  url: https://harbor.home.lab
  insecure_skip_verify: true
mirrors:
  docker.io: dockerhub-proxy
)");
  const auto out = render(config, "");
  expectGolden("insecure.yaml", out.text);
  const auto tls = YAML::Load(out.text)["configs"]["harbor.home.lab"]["tls"];
  EXPECT_EQ(tls["insecure_skip_verify"].Tag(), "?");  // plain scalar: a bool, not "true"
  EXPECT_TRUE(tls["insecure_skip_verify"].as<bool>());
  EXPECT_FALSE(tls["ca_file"]);
  EXPECT_EQ(render(threeMirrors(), kCaPath).text.find("insecure_skip_verify"), std::string::npos);
}

// Rule: a publicly trusted http(s) cache without CA, auth or skip needs no configs entry.
TEST(RenderRegistries, NoConfigsEntryWhenNothingToSay) {
  auto config = configFrom("registry: {url: http://cache.lan:5000}\nmirrors: {docker.io: hub}\n");
  const auto out = render(config, "");
  expectGolden("plain_http.yaml", out.text);
  EXPECT_FALSE(YAML::Load(out.text)["configs"]);
}

// Rule: k3s ignores unknown keys silently, so the agent must only ever write keys of the schema.
TEST(RenderRegistries, WritesOnlyKeysOfTheK3sSchema) {
  auto config = threeMirrors();
  config.registry.auth = RegistryAuth{"u", "/p", "pw"};
  config.registry.insecure_skip_verify = true;
  config.mode = MirrorMode::kRewrite;  // every key the agent can write, at once
  const auto out = render(config, kCaPath);
  expectGolden("every_key.yaml", out.text);
  const auto doc = YAML::Load(out.text);
  const std::set<std::string> mirror_keys{"endpoint", "rewrite"};
  const std::set<std::string> config_keys{"auth", "tls"};
  const std::set<std::string> auth_keys{"username", "password", "auth", "identity_token"};
  const std::set<std::string> tls_keys{"ca_file", "cert_file", "key_file", "insecure_skip_verify"};
  for (const auto& top : doc) {
    EXPECT_TRUE(top.first.Scalar() == "mirrors" || top.first.Scalar() == "configs");
  }
  for (const auto& mirror : doc["mirrors"]) {
    for (const auto& key : mirror.second) {
      EXPECT_TRUE(mirror_keys.count(key.first.Scalar())) << key.first.Scalar();
    }
  }
  for (const auto& host : doc["configs"]) {
    for (const auto& key : host.second) {
      EXPECT_TRUE(config_keys.count(key.first.Scalar())) << key.first.Scalar();
    }
    for (const auto& key : host.second["auth"]) {
      EXPECT_TRUE(auth_keys.count(key.first.Scalar())) << key.first.Scalar();
    }
    for (const auto& key : host.second["tls"]) {
      EXPECT_TRUE(tls_keys.count(key.first.Scalar())) << key.first.Scalar();
    }
  }
}

// Rule: the default upstream endpoint stays k3s's own last fallback; the agent lists only the
// cache and never adds the upstream (nor --disable-default-registry-endpoint's effect).
TEST(RenderRegistries, EndpointListHoldsOnlyTheCache) {
  const auto out = render(threeMirrors(), kCaPath);
  expectGolden("path_mode.yaml", out.text);
  const auto doc = YAML::Load(out.text);
  for (const auto& mirror : doc["mirrors"]) {
    ASSERT_EQ(mirror.second["endpoint"].size(), 1u);
    EXPECT_EQ(mirror.second["endpoint"][0].as<std::string>().rfind("https://harbor.home.lab/", 0),
              0u);
  }
}

// Rule: containerd loads the system bundle once per process; tls.ca_file pointing at the
// installed CA, as the node sees it, is the reliable path.
TEST(RenderRegistries, CaFileIsTheInstalledPathAsTheNodeSeesIt) {
  const auto out = render(threeMirrors(), kCaPath);
  expectGolden("path_mode.yaml", out.text);
  const auto doc = YAML::Load(out.text);
  EXPECT_EQ(doc["configs"]["harbor.home.lab"]["tls"]["ca_file"].as<std::string>(), kCaPath);
}

// Entries the agent does not manage are kept; an upstream the config names replaces
// the file's entry for it.
TEST(RenderRegistries, KeepsUnmanagedEntriesAndReplacesNamedUpstreams) {
  const std::string current = R"(# the node's own file
mirrors:
  docker.io:
    endpoint:
      - "https://old-mirror.example"
  registry.internal:5000:
    endpoint:
      - "http://registry.internal:5000"
configs:
  registry.internal:5000:
    tls:
      insecure_skip_verify: true
)";
  const auto out = render(threeMirrors(), kCaPath, current);
  expectGolden("merge_existing.yaml", out.text);
  const auto doc = YAML::Load(out.text);
  EXPECT_EQ(doc["mirrors"]["registry.internal:5000"]["endpoint"][0].as<std::string>(),
            "http://registry.internal:5000");
  EXPECT_TRUE(doc["configs"]["registry.internal:5000"]["tls"]["insecure_skip_verify"].as<bool>());
  EXPECT_EQ(doc["mirrors"]["docker.io"]["endpoint"][0].as<std::string>(),
            "https://harbor.home.lab/v2/dockerhub-proxy");
  EXPECT_EQ(out.mirrors, (std::vector<std::string>{"docker.io", "ghcr.io", "quay.io"}));
  EXPECT_EQ(out.configs, (std::vector<std::string>{"harbor.home.lab"}));
}

// A mirror removed from the config is removed from registries.yaml (the state says
// the agent wrote it); one it never wrote is left alone.
TEST(RenderRegistries, DropsEntriesItManagedBeforeAndNoLongerWants) {
  const auto before = render(threeMirrors(), kCaPath);
  std::string current = before.text + "";
  auto config = threeMirrors();
  config.mirrors.erase("quay.io");
  State previous;
  previous.mirrors = before.mirrors;
  previous.configs = before.configs;
  const auto out = render(config, kCaPath, current, previous);
  EXPECT_FALSE(YAML::Load(out.text)["mirrors"]["quay.io"]);
  EXPECT_TRUE(YAML::Load(out.text)["mirrors"]["ghcr.io"]);
}

TEST(RenderRegistries, StartsWithHeaderSayingTheFileIsManaged) {
  const auto out = render(threeMirrors(), kCaPath);
  EXPECT_EQ(out.text.rfind("# Managed by k3s-mirror-agent", 0), 0u);
}

TEST(RenderRegistries, IsDeterministicWhateverTheInputOrder) {
  const auto a = render(threeMirrors(), kCaPath);
  auto reordered = configFrom(R"(mirrors:
  quay.io: quay-proxy
  docker.io: dockerhub-proxy
  ghcr.io: ghcr-proxy
registry:
  ca_file: /etc/k3s-mirror-agent/harbor-ca.pem
  url: https://harbor.home.lab
)");
  EXPECT_EQ(a.text, render(reordered, kCaPath).text);
  // Rendering its own output again changes nothing: apply is idempotent.
  State previous{"", Original::kAbsent, a.mirrors, a.configs, {}, {}};
  EXPECT_EQ(a.text, render(threeMirrors(), kCaPath, a.text, previous).text);
}

TEST(RenderRegistries, RejectsAnExistingFileThatIsNotYamlNamingIt) {
  auto rendered = renderRegistries(threeMirrors(), kCaPath, std::string("mirrors: [\n"),
                                   "/etc/rancher/k3s/registries.yaml", {});
  ASSERT_FALSE(rendered.ok());
  EXPECT_NE(rendered.error().message.find("/etc/rancher/k3s/registries.yaml:"), std::string::npos)
      << rendered.error().message;
}

TEST(RemoveManagedEntries, LeavesOnlyWhatTheNodeHadAndNothingWhenEmpty) {
  const std::string current = "mirrors:\n  registry.internal:\n    endpoint: [\"http://r\"]\n";
  const auto out = render(threeMirrors(), kCaPath, current);
  State previous{"", Original::kAbsent, out.mirrors, out.configs, {}, {}};
  auto stripped = removeManagedEntries(out.text, "registries.yaml", previous);
  ASSERT_TRUE(stripped.ok());
  ASSERT_TRUE(stripped.value().has_value());
  const auto doc = YAML::Load(*stripped.value());
  EXPECT_TRUE(doc["mirrors"]["registry.internal"]);
  EXPECT_FALSE(doc["mirrors"]["docker.io"]);
  EXPECT_FALSE(doc["configs"]);

  const auto only_ours = render(threeMirrors(), kCaPath);
  State ours{"", Original::kAbsent, only_ours.mirrors, only_ours.configs, {}, {}};
  auto nothing = removeManagedEntries(only_ours.text, "registries.yaml", ours);
  ASSERT_TRUE(nothing.ok());
  EXPECT_FALSE(nothing.value().has_value());
}

TEST(CaInstallPath, UsesOnlySafeCharactersFromTheCacheHost) {
  auto config =
      configFrom("registry: {url: \"https://[fd00::1]:8443\"}\nmirrors: {docker.io: a}\n");
  EXPECT_EQ(caInstallPath(config.registry),
            "/usr/local/share/ca-certificates/k3s-mirror-agent/_fd00__1__8443.crt");
}

TEST(MaskSecrets, HidesPasswordValuesWhereverTheyAreNotWhatTheyContain) {
  const std::string text =
      "configs:\n  h:\n    auth:\n      password: \"o\"\n      username: \"u\"\n"
      "x: docker.io\n";
  const auto masked = maskSecrets(text);
  // A one-letter password must not mangle other text (docker.io keeps its o's).
  EXPECT_NE(masked.find("x: docker.io"), std::string::npos) << masked;
  EXPECT_NE(masked.find("password: \"********\""), std::string::npos) << masked;
  EXPECT_NE(masked.find("username: \"u\""), std::string::npos) << masked;
}

TEST(MaskSecrets, HidesBlockScalarsContinuationLinesAndExplicitKeys) {
  const std::string text =
      "configs:\n"
      "  a:\n    auth:\n      password: |\n        s3cret-block\n      username: ua\n"
      "  b:\n    auth:\n      password: first\n        s3cret-cont\n      username: ub\n"
      "  c:\n    auth:\n      ? password\n      : s3cret-key\n      username: uc\n"
      "  d:\n    auth: {password: s3cret-flow, username: ud}\n"
      "  e:\n    auth:\n      auth: s3cret-auth\n      identity_token: >\n        s3cret-tok\n";
  const auto masked = maskSecrets(text);
  EXPECT_EQ(masked.find("s3cret"), std::string::npos) << masked;
  for (const char* user : {"ua", "ub", "uc", "ud"}) {
    EXPECT_NE(masked.find(std::string("username: ") + user), std::string::npos) << masked;
  }
}

// Found by fuzz_mask: a secret that is the last value of the file runs to the end of the text,
// over a comment; the comment line was once turned into '"********", ', which is not YAML.
TEST(MaskSecrets, KeepsTheTextYamlWhenTheLastSecretRunsOverAComment) {
  const std::string text = "configs:\n  h:\n    auth:\n      password:e s3cret\n# \"s3cret k";
  const auto masked = maskSecrets(text);
  EXPECT_EQ(masked.find("s3cret"), std::string::npos) << masked;
  EXPECT_EQ(masked.find("not shown"), std::string::npos) << masked;
  EXPECT_EQ(maskSecrets(masked), masked);
}

TEST(MaskSecrets, HidesAnEndpointUrlWithCredentials) {
  const auto masked = maskSecrets(
      "mirrors:\n  m.io:\n    endpoint:\n      - \"https://u:s3cret@m.io/v2\"\n"
      "      - https://plain.io\n");
  EXPECT_EQ(masked.find("s3cret"), std::string::npos) << masked;
  EXPECT_NE(masked.find("https://plain.io"), std::string::npos) << masked;
}

// The userinfo is what sits between "://" and the end of the authority: an '@' in the path or
// query is not a credential, and any '@' before the path is (the fuzzer found "harbo@@@r.lab").
TEST(HasUserinfo, LooksOnlyAtTheAuthority) {
  EXPECT_TRUE(hasUserinfo("https://u:p@m.io/v2"));
  EXPECT_TRUE(hasUserinfo("https://harbo@@@r.lab"));
  EXPECT_TRUE(hasUserinfo("https://@m.io"));
  EXPECT_FALSE(hasUserinfo("https://m.io/v2/@project"));
  EXPECT_FALSE(hasUserinfo("https://m.io?who=a@b"));
  EXPECT_FALSE(hasUserinfo("https://m.io#a@b"));
  EXPECT_FALSE(hasUserinfo("user@m.io"));
}

// An empty password hides nothing. It used to add a "********" after the last line (an empty
// value's position is the next token's: the end of the text), which masked differently twice.
TEST(MaskSecrets, LeavesEmptySecretsAsTheyAre) {
  for (const std::string& text :
       {std::string("configs:\n  h:\n    auth:\n      username: u\n      password: # none\n"),
        std::string("configs:\n  h:\n    auth:\n      password: ~\n      auth:\n  g: {}\n")}) {
    EXPECT_EQ(maskSecrets(text), text);
  }
}

// An empty list item after a secret is structure. yaml-cpp places an empty node at the token
// after it, so the secret's range ran over the item's '-': the list lost an item, and masking the
// result again changed it once more (found by fuzzing).
TEST(MaskSecrets, KeepsAnEmptyListItemAfterASecret) {
  EXPECT_EQ(maskSecrets("- password: s3cret\n-\n"), "- password: \"********\"\n-\n");
  const std::string text = "- password: s3cret\n    more-s3cret\n-   # empty\n- x\n";
  const std::string masked = maskSecrets(text);
  EXPECT_EQ(masked, "- password: \"********\"\n\n-   # empty\n- x\n");
  EXPECT_EQ(maskSecrets(masked), masked);
}

TEST(MaskSecrets, EndsANestedSecretWhereItsValueEnds) {
  const auto masked =
      maskSecrets("a:\n  password:\n    password: s3cret\n    x: s3cret\nb: shown\n");
  EXPECT_EQ(masked.find("s3cret"), std::string::npos) << masked;
  EXPECT_NE(masked.find("b: shown"), std::string::npos) << masked;
}

// A node's keys and nesting, its scalars' values left out ("s"), nulls kept ("~").
std::string shape(const YAML::Node& node) {
  std::string out;
  if (node.IsMap()) {
    out += "{";
    for (const auto& item : node) {
      out += item.first.Scalar() + ":" + shape(item.second) + ",";
    }
    out += "}";
  } else if (node.IsSequence()) {
    out += "[";
    for (const auto& item : node) {
      out += shape(item) + ",";
    }
    out += "]";
  } else {
    out += node.IsNull() ? "~" : "s";
  }
  return out;
}

// The masked text is still the same YAML (same keys, same nesting), so masking it again
// changes nothing.
TEST(MaskSecrets, KeepsTheStructureOfFlowCollectionsAndIsIdempotent) {
  for (const std::string text : {
           "configs: {my.lan: {auth: {username: u, password: flow-s3cret}}}\n",
           "configs: {a: {auth: {password: \"s3cret, }\", username: u}}, b: 1}\nc: 2\n",
           "x: [{password: 's3cret ''q'' ]'}, {auth: s3cret-tok}]\n",
           "x: {password: s3cret\n  s3cret-more, y: 1}\n",
           "x: {password: s3cret # s3cret-comment\n  , y: 1}\n",
           "x: {password: , y: 1}\n",
       }) {
    const auto masked = maskSecrets(text);
    EXPECT_EQ(masked.find("s3cret"), std::string::npos) << masked;
    EXPECT_EQ(maskSecrets(masked), masked) << text;
    EXPECT_EQ(shape(YAML::Load(masked)), shape(YAML::Load(text))) << masked;
    EXPECT_EQ(std::count(masked.begin(), masked.end(), '\n'),
              std::count(text.begin(), text.end(), '\n'))
        << masked;
  }
  EXPECT_EQ(maskSecrets("configs: {h: {auth: {password: p4ss}}}\n"),
            "configs: {h: {auth: {password: \"********\"}}}\n");
}

// A secret that is a collection becomes one masked scalar: the structure around it stays.
TEST(MaskSecrets, MasksACollectionValueAsOneScalar) {
  const std::string text = "x: {password: [s3cret, {a: \"s3cret]\"}], y: 1}\n";
  const auto masked = maskSecrets(text);
  EXPECT_EQ(masked, "x: {password: \"********\", y: 1}\n");
  EXPECT_EQ(maskSecrets(masked), masked);
}

TEST(MaskSecrets, ShowsNothingOfTextThatIsNotYaml) {
  const auto masked = maskSecrets("configs: {h: {auth: {password: s3cret\n");
  EXPECT_EQ(masked.find("s3cret"), std::string::npos) << masked;
}

TEST(CheckPlainYaml, RefusesWhatCannotBeReEmittedWithTheSameMeaningAndNamesTheLine) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"a: 1\nx: &a [*a]\n", "f:2: anchors"},
      {"a: 1\nb: *x\n", "f:2:"},
      {"base: {a: 1}\nm:\n  <<: {b: 2}\n", "f:3: merge keys"},
      {"x: !!binary aGk=\n", "f:1: tags"},
      {"a: 1\na: 2\n", "f:2: the key \"a\" appears twice"},
      {"? [a]\n: 1\n", "f:1: a mapping or list as a key"},
      {"a: 1\n---\nb: 2\n", "more than one YAML document"},
      {"a: \"\\0\"\n", "f:1: a value holds a control character"},
      {"a: 1\nb: \xff\n", "f:2: byte 0xff"},
      {std::string("a: 1\nb: x\0y\n", 12), "f:2: byte 0x00 is NUL"},
      {"a: \x1b[31m\n", "f:1: byte 0x1b"},
  };
  for (const auto& [text, expected] : cases) {
    auto checked = checkPlainYaml(text, "f");
    ASSERT_FALSE(checked) << text;
    EXPECT_NE(checked.error().message.find(expected), std::string::npos) << checked.error().message;
  }
}

TEST(CheckPlainYaml, RefusesNullKeysWhichWouldComeBackAsEmptyStrings) {
  for (const auto& [text, line] :
       std::vector<std::pair<std::string, std::string>>{{"a: 1\n~: x\n", "f:2:"},
                                                        {"a: 1\nb: 2\n: x\n", "f:3:"},
                                                        {"m: {a: 1, ~: 2}\n", "f:1:"}}) {
    auto checked = checkPlainYaml(text, "f");
    ASSERT_FALSE(checked) << text;
    EXPECT_NE(checked.error().message.find(line + " a null key"), std::string::npos)
        << checked.error().message;
  }
  // A quoted empty key is the string "", not null: it comes back as written.
  EXPECT_TRUE(checkPlainYaml("\"\": x\n", "f"));
}

TEST(CheckPlainYaml, RefusesALoneCarriageReturnButNotCrlf) {
  auto checked = checkPlainYaml("a: 1\nnote: k3s\rb: 2\n", "f");
  ASSERT_FALSE(checked);
  EXPECT_NE(checked.error().message.find("f:2: a carriage return"), std::string::npos)
      << checked.error().message;
  EXPECT_FALSE(checkPlainYaml("a: 1\r", "f"));
  EXPECT_TRUE(checkPlainYaml("a: 1\r\nb: 2\r\n", "f"));
}

TEST(RenderRegistries, RefusesANullKeyInTheNodesFileNamingTheLine) {
  auto config = configFrom("registry: {url: \"https://h\"}\nmirrors: {docker.io: a}\n");
  auto r = renderRegistries(config, "", std::string("mirrors: {}\n~: x\n"), "/r.yaml", State{});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kConfig);
  EXPECT_NE(r.error().message.find("/r.yaml:2: a null key"), std::string::npos)
      << r.error().message;
}

TEST(CheckPlainYaml, BoundsNestingDepth) {
  std::string deep(kMaxYamlDepth + 1, '[');
  deep += std::string(kMaxYamlDepth + 1, ']');
  auto checked = checkPlainYaml(deep, "f");
  ASSERT_FALSE(checked);
  EXPECT_NE(checked.error().message.find("nested deeper than"), std::string::npos);
  std::string ok(kMaxYamlDepth, '[');
  ok += std::string(kMaxYamlDepth, ']');
  EXPECT_TRUE(checkPlainYaml(ok, "f"));
}

TEST(CheckPlainYaml, AcceptsWhatK3sFilesUse) {
  EXPECT_TRUE(
      checkPlainYaml("\xef\xbb\xbfmirrors:\n  docker.io:\n    endpoint: [\"https://h\"]\n"
                     "configs:\n  h:\n    auth: {username: u, password: 'p'}\n"
                     "    tls: {insecure_skip_verify: true}\n# caf\xc3\xa9\n",
                     "f"));
}

TEST(RenderRegistries, RefusesAnAliasCycleInTheNodesFile) {
  auto config = configFrom("registry: {url: \"https://h\"}\nmirrors: {docker.io: a}\n");
  auto r = renderRegistries(config, "", std::string("x: &a [*a]\n"), "/r.yaml", State{});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("/r.yaml:1: anchors"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace k3sma
