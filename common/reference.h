#pragma once
// Image references as `docker pull` and containerd read them, for verify.images: pure, over text.
// "nginx" is "docker.io/library/nginx:latest", "docker.io/nginx:1" is "library/nginx" in the
// registry's path (Docker Hub's official images live under library/; containerd normalises the
// name before it asks a mirror, so the mirror sees .../library/nginx/manifests/1 too),
// "registry.local:5000/team/app@sha256:..." keeps its port in the host and is pinned by digest.

#include <string>

#include "common/error.h"

namespace k3sma {

struct ImageReference {
  std::string host;        // "docker.io", "ghcr.io", "registry.local:5000": a mirrors key
  std::string repository;  // "library/nginx", "team/app": the path after /v2/ upstream
  std::string tag;         // "1.36"; "latest" when neither tag nor digest is given
  std::string digest;      // "sha256:<64 hex>" when pinned; then the manifest is asked by it

  // What the manifest is asked by: the digest when there is one, else the tag.
  const std::string& manifestReference() const { return digest.empty() ? tag : digest; }
  // host/repository:tag[@digest], the normalised spelling (used as the metrics label).
  std::string canonical() const;
};

// Parses one reference. Errors say what is wrong with the text ("… is not a valid image
// reference: …"); the caller adds the file and line.
Result<ImageReference> parseImageReference(const std::string& text);

}  // namespace k3sma
