// The command table of `deepnet`: every command with its one-line summary, the flags it takes
// (with their help) and the function that runs it. main.cc dispatches through it, and the usage
// text (`deepnet help`, `deepnet <command> --help`) and the flag check are generated from it, so
// a command takes exactly the flags its entry lists.
//
// Adding a command: write launcher/cmd_<name>.cc with `Status Run<Name>Command(const
// CommandLine&)` and its gflags DEFINEs, add the file to launcher/CMakeLists.txt, and add one entry
// to the table in commands.cc (launcher/README.md says more).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "launcher/command_line.h"
#include "runtime/status.h"

namespace deepnet {

struct FlagDoc {
  std::string_view name;   // the gflags name, without dashes ("set" is main.cc's own)
  std::string_view value;  // what the value is, e.g. "FILE", "N"; empty for a boolean flag
  std::string_view help;   // one sentence
  // Append the default of the flag's definition to the help (unless it is empty, 0 or false).
  bool show_default = true;
};

struct Command {
  std::string_view name;
  std::string_view summary;  // one line
  std::vector<FlagDoc> flags;
  // Runs the model (training, inference, profiling): such a command reports the machine at start.
  bool computes = false;
  Status (*run)(const CommandLine&) = nullptr;
};

// Every command, in the order the usage text lists them.
const std::vector<Command>& Commands();

// The command called `name`, or nullptr.
const Command* FindCommand(std::string_view name);

// The flags of glog every command accepts (--logtostderr, --v, ...).
const std::vector<FlagDoc>& LoggingFlags();

}  // namespace deepnet
