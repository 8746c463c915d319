// What the command table (commands.h) makes of a command line: the usage text and the check that
// a command gets only its own flags.
#pragma once

#include <string>

#include "launcher/commands.h"
#include "runtime/status.h"

namespace deepnet {

// `deepnet help`: every command with its summary, then each command's flags, then the logging
// flags. launcher/README.md holds this text (tests/launch keeps the two the same).
std::string UsageText();

// `deepnet <command> --help`: the command's summary and flags.
std::string CommandUsage(const Command& command);

// InvalidArgument for an argument of argv[1..argc) that is not a flag of `command` (or a logging
// flag), naming the commands it belongs to; for a flag without its value; and for an argument
// that is not a flag. Everything after `--` is left alone.
Status CheckCommandFlags(const Command& command, int argc, char** argv);

// Internal when an entry of the table names a flag that no gflags definition has.
Status CheckCommandTable();

}  // namespace deepnet
