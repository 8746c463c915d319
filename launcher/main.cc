// deepnet: the command-line entry point. `deepnet <command> [flags]`; the commands, their flags
// and the usage text come from the command table (launcher/commands.h). This is the only place a
// Status becomes an exit code: 0 success, 1 the command failed, 2 a usage error (an unknown
// command or flag, or a flag of another command), 75 (kExitStoppedForRequeue) training stopped on
// SIGUSR1 / SIGTERM after saving a checkpoint.
#include <gflags/gflags.h>
#include <glog/logging.h>

#include <cstring>
#include <iostream>
#include <optional>
#include <string_view>

#include "kernels/cpu/blas_core.h"
#include "launcher/command_flags.h"
#include "launcher/command_line.h"
#include "launcher/commands.h"
#include "runtime/allocator.h"
#include "train/signals.h"

namespace deepnet {
namespace {

// `deepnet <command> --help` (anywhere after the command word) or `deepnet help <command>`.
bool WantsHelp(int argc, char** argv) {
  for (int i = 2; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") return false;
    if (arg == "--help" || arg == "-help" || arg == "-h" || arg == "--helpfull") return true;
  }
  return false;
}

// `deepnet`, `deepnet help [command]`, `deepnet --help`: the usage text; nullopt otherwise.
std::optional<int> ShowUsage(int argc, char** argv) {
  const std::string_view first = argc < 2 ? "" : argv[1];
  if (argc < 2) {
    std::cerr << UsageText();
    return 2;
  }
  if (first == "help" || first == "--help" || first == "-help" || first == "-h") {
    if (argc < 3) {
      std::cout << UsageText();
      return 0;
    }
    const Command* command = FindCommand(argv[2]);
    if (command == nullptr) {
      std::cerr << "deepnet help: unknown command \"" << argv[2] << "\"\n\n" << UsageText();
      return 2;
    }
    std::cout << CommandUsage(*command);
    return 0;
  }
  const Command* command = FindCommand(first);
  if (command != nullptr && WantsHelp(argc, argv)) {
    std::cout << CommandUsage(*command);
    return 0;
  }
  return std::nullopt;
}

int Main(int argc, char** argv) {
  if (const Status table = CheckCommandTable(); !table.ok()) {
    std::cerr << "deepnet: " << table.ToString() << "\n";
    return 1;
  }
  if (const std::optional<int> shown = ShowUsage(argc, argv)) return *shown;
  KeepHostTensorsInHeap();
  CommandLine command_line;
  command_line.command = argv[1];
  const Command* command = FindCommand(command_line.command);
  if (command == nullptr) {
    std::cerr << "deepnet: unknown command \"" << command_line.command << "\"\n\n" << UsageText();
    return 2;
  }
  // Drop the command word, check that every flag is the command's own, then take the --set flags
  // out before gflags parses the rest.
  argv[1] = argv[0];
  ++argv;
  --argc;
  if (const Status flags = CheckCommandFlags(*command, argc, argv); !flags.ok()) {
    std::cerr << "deepnet " << command_line.command << ": " << flags.message() << "\n";
    return 2;
  }
  StatusOr<std::vector<std::string>> overrides = ExtractSetFlags(&argc, argv);
  if (!overrides.ok()) {
    std::cerr << "deepnet " << command_line.command << ": " << overrides.status().message() << "\n";
    return 2;
  }
  command_line.overrides = std::move(overrides).value();
  FLAGS_logtostderr = true;
  gflags::SetUsageMessage(CommandUsage(*command));
  gflags::ParseCommandLineFlags(&argc, &argv, /*remove_flags=*/true);
  if (argc > 1) {
    std::cerr << "deepnet " << command_line.command << ": unexpected argument \"" << argv[1]
              << "\"\n";
    return 2;
  }
  google::InitGoogleLogging("deepnet");
  // Every command that computes says which BLAS core the machine runs (kernels/cpu/blas_core.h).
  if (command->computes) {
    LOG(INFO) << cpu::BlasStartupLine(cpu::CurrentBlasReport());
  }
  const Status status = command->run(command_line);
  if (IsStoppedForRequeue(status)) {  // SIGUSR1 / SIGTERM: checkpoint saved, run again to resume
    std::cerr << "deepnet " << command_line.command << ": " << status.message() << "\n";
    return kExitStoppedForRequeue;
  }
  if (!status.ok()) {
    std::cerr << "deepnet " << command_line.command << ": error: " << status.ToString() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace deepnet

int main(int argc, char** argv) {
  deepnet::cpu::ChooseBlasCoreOrReexec(argv);  // first: may run this program again, once
  return deepnet::Main(argc, argv);
}
