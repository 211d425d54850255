// Fuzzes the parsers of the agent's JSON files that it acts on: the state (state.json) and the
// journal (journal.json), both over the same input.
//
// Properties, beyond "no crash":
// - parsing is deterministic, and an error names the file;
// - an accepted state renders and parses back to the same state, and renders to the same bytes
//   again (a run that changes nothing writes nothing);
// - the paths an accepted state holds are only the agent's own: registries.yaml of k3s or RKE2,
//   CA files directly inside the agent's CA folder (a path with ".." or another folder would let
//   a hand-edited state delete a file anywhere);
// - a journal the same: an error names the file; an accepted one renders and parses back to
//   itself, and names only files in the folders the agent writes, without "." or ".." (its undo
//   writes each before-image to its path).
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/config.h"
#include "common/journal.h"
#include "common/registries.h"
#include "common/state.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

// The journal's properties (see the top).
void checkJournal(const std::string& text) {
  using namespace k3sma;
  const std::string source = "/var/lib/k3s-mirror-agent/journal.json";
  const auto parsed = parseJournal(text, source);
  if (!parsed.ok()) {
    K3SMA_REQUIRE(parsed.error().message.find(source) != std::string::npos,
                  "the journal's error does not name the file: " + parsed.error().message);
    return;
  }
  const auto back = parseJournal(renderJournal(parsed.value()), source);
  K3SMA_REQUIRE(back.ok() && back.value() == parsed.value(),
                "the journal does not survive render and parse");
  for (const auto& file : parsed.value().files) {
    const std::string& p = file.path;
    const bool in_own_folder =
        p.starts_with("/etc/rancher/") || p.starts_with(std::string(kCaDir) + "/") ||
        p.starts_with("/var/lib/k3s-mirror-agent/") || p.starts_with("/var/lib/rancher/");
    K3SMA_REQUIRE(in_own_folder && p.find("/../") == std::string::npos &&
                      p.find("/./") == std::string::npos && !p.ends_with("/..") &&
                      p.find('\0') == std::string::npos,
                  "the journal names a file outside the agent's folders: " + p);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace k3sma;
  const std::string source = "/var/lib/k3s-mirror-agent/state.json";
  const std::string text(reinterpret_cast<const char*>(data), size);
  checkJournal(text);
  const auto parsed = parseState(text, source);
  const auto again = parseState(text, source);
  K3SMA_REQUIRE(parsed.ok() == again.ok(), "parseState is not deterministic");
  if (!parsed.ok()) {
    K3SMA_REQUIRE(parsed.error().message == again.error().message,
                  "parseState's error is not deterministic");
    K3SMA_REQUIRE(parsed.error().message.find(source) != std::string::npos,
                  "the error does not name the file: " + parsed.error().message);
    return 0;
  }
  const State& state = parsed.value();
  K3SMA_REQUIRE(state == again.value(), "parseState is not deterministic");

  const std::string rendered = renderState(state);
  K3SMA_REQUIRE(rendered == renderState(state), "renderState is not deterministic");
  const auto back = parseState(rendered, source);
  K3SMA_REQUIRE(back.ok(), "the rendered state does not parse: " +
                               (back.ok() ? std::string() : back.error().message));
  K3SMA_REQUIRE(back.value() == state, "the state does not survive render and parse");
  K3SMA_REQUIRE(renderState(back.value()) == rendered, "render(parse(render)) differs");

  K3SMA_REQUIRE(state.registries_path.empty() ||
                    state.registries_path == registriesPath(Distribution::kK3s) ||
                    state.registries_path == registriesPath(Distribution::kRke2),
                "the state's registries path is not the agent's: " + state.registries_path);
  const std::string ca_dir = std::string(kCaDir) + "/";
  for (const auto& path : state.ca_files) {
    const bool inside = path.rfind(ca_dir, 0) == 0;
    const std::string name = inside ? path.substr(ca_dir.size()) : std::string();
    K3SMA_REQUIRE(inside && !name.empty() && name.find('/') == std::string::npos && name != "." &&
                      name != "..",
                  "the state's CA file is not one of the agent's: " + path);
  }
  return 0;
}
