#pragma once
// The command line (README.md, "Command line"; man 8 k3s-mirror-agent): CLI11 -> options -> one
// call per subcommand -> text or JSON on stdout and an exit code. main() only builds the real
// Deps and calls runCli.

#include "agent/apply.h"

namespace k3sma {

// Exit codes, the contract with playbooks (the man page lists them too).
enum ExitCode : int {
  kExitOk = 0,          // done, changed or not
  kExitRolledBack = 1,  // apply failed and the previous state was restored
  kExitUsage = 2,       // usage or configuration error, nothing touched
  kExitPending = 3,     // diff / apply --dry-run found changes pending
  kExitPartial = 4,     // apply failed and the previous state could not be fully restored
  kExitProbe = 5,       // the cache (or a verify.images image) could not be reached or trusted
};

int runCli(int argc, char** argv, Deps& deps);

}  // namespace k3sma
