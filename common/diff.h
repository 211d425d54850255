#pragma once
// A unified diff of two texts, as `diff -u` prints it, for `k3s-mirror-agent diff`. Pure; the
// line matching is Debian's dtl (libdtl-dev) rather than a hand-written LCS.

#include <optional>
#include <string>

namespace k3sma {

// Empty when the texts are equal. A missing side (nullopt) is labelled /dev/null.
std::string unifiedDiff(const std::optional<std::string>& before,
                        const std::optional<std::string>& after, const std::string& path);

}  // namespace k3sma
