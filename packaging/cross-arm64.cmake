# CMake toolchain for building the arm64 package on an amd64 machine (tests/node/README.md):
# Debian's aarch64 cross compiler, and the arm64 libraries and headers from a sysroot made of
# Debian 12's arm64 packages (packaging/arm64-sysroot.sh), named by the K3SMA_SYSROOT variable
# or environment variable. The arm64 -dev packages cannot be installed beside the amd64 ones
# (libyaml-cpp-dev conflicts with itself across architectures), hence the sysroot.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

if(NOT K3SMA_SYSROOT)
  set(K3SMA_SYSROOT "$ENV{K3SMA_SYSROOT}")
endif()
if(NOT K3SMA_SYSROOT OR NOT EXISTS "${K3SMA_SYSROOT}/usr/include")
  message(FATAL_ERROR "K3SMA_SYSROOT must name an arm64 sysroot (packaging/arm64-sysroot.sh)")
endif()
# Passed on to try_compile projects, which read the toolchain again.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES K3SMA_SYSROOT)

set(CMAKE_SYSROOT "${K3SMA_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH "${K3SMA_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${K3SMA_SYSROOT}")
set(ENV{PKG_CONFIG_LIBDIR}
    "${K3SMA_SYSROOT}/usr/lib/aarch64-linux-gnu/pkgconfig:${K3SMA_SYSROOT}/usr/share/pkgconfig")
# The libraries' own dependencies (libsystemd needs liblzma, libzstd...) are found at link time
# inside the sysroot, not on this machine.
set(CMAKE_EXE_LINKER_FLAGS_INIT
    "-Wl,-rpath-link,${K3SMA_SYSROOT}/usr/lib/aarch64-linux-gnu -Wl,-rpath-link,${K3SMA_SYSROOT}/lib/aarch64-linux-gnu")
# ctest can run arm64 programs through qemu (tests/node/enable-qemu.sh registers it).
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64-static -L "${K3SMA_SYSROOT}")
