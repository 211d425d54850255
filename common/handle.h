#pragma once
// Owning C handles: std::unique_ptr<T, FreeWith<&free_fn>> frees a handle from OpenSSL,
// libsystemd or libc with its own function, from the line that creates it, so no early return
// can leak one. unique_ptr never calls the deleter on nullptr.

#include <memory>

namespace k3sma {

template <auto kFreeFn>
struct FreeWith {
  template <class T>
  void operator()(T* handle) const noexcept {
    kFreeFn(handle);
  }
};

template <class T, auto kFreeFn>
using Owned = std::unique_ptr<T, FreeWith<kFreeFn>>;

}  // namespace k3sma
