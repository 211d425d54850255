// k3s-mirror-agent: wires the real files, command runner, clock and systemd connection to the
// command line.
#include "agent/cli.h"

int main(int argc, char** argv) {
  k3sma::RealFiles files;
  k3sma::RealCommandRunner commands;
  k3sma::RealClock clock;
  k3sma::Deps deps{
      .files = files,
      .commands = commands,
      .clock = clock,
      .connect_systemd = [] { return k3sma::connectSystemd(); },
  };
  return k3sma::runCli(argc, argv, deps);
}
