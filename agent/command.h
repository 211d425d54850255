#pragma once
// Running a program (update-ca-certificates) and collecting what it printed. Behind an
// interface so unit tests of apply can make it fail; the real one is a fork/exec with a pipe.

#include <string>
#include <vector>

#include "common/error.h"

namespace k3sma {

struct CommandResult {
  int exit_code = 0;   // 128 + signal when killed by a signal
  std::string output;  // stdout and stderr together, as a person would have seen them
};

class CommandRunner {
 public:
  virtual ~CommandRunner() = default;
  // An error only when the program could not be started; a non-zero exit is a result.
  virtual Result<CommandResult> run(const std::vector<std::string>& argv) = 0;
};

class RealCommandRunner final : public CommandRunner {
 public:
  Result<CommandResult> run(const std::vector<std::string>& argv) override;
};

}  // namespace k3sma
