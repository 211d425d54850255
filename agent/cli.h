#pragma once
// The command line (SPEC.md "Command line"): CLI11 -> options -> one call per subcommand ->
// text or JSON on stdout and an exit code. main() only builds the real Deps and calls runCli.

#include "agent/apply.h"

namespace k3sma {

// Exit codes, SPEC.md.
enum ExitCode : int {
  kExitOk = 0,
  kExitRolledBack = 1,
  kExitUsage = 2,
  kExitPending = 3,
  kExitPartial = 4,
  kExitProbe = 5,
};

int runCli(int argc, char** argv, Deps& deps);

}  // namespace k3sma
