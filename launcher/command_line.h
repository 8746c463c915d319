// The pieces of the `deepnet` command line that several commands share.
//
// Flags are gflags (--config, --data_dir, --checkpoint_dir, --resume, --restart, --checkpoint,
// --out, --device here; the others in the cmd_<name>.cc of the command that owns them), except
// --set: gflags keeps only the last value of a repeated flag, so main() takes every `--set X` /
// `--set=X` out of argv itself, in order, before gflags sees the rest. Which command takes which
// flag, and the help of each, is the command table's (launcher/commands.h).
#pragma once

#include <gflags/gflags.h>

#include <string>
#include <vector>

#include "configs/deepnet.pb.h"
#include "kernels/backend.h"
#include "runtime/status.h"

// The description of every DEFINE_* of launcher/: the help text lives in the command table.
inline constexpr char kHelpInCommandTable[] = "see `deepnet help` (launcher/commands.cc)";

DECLARE_string(config);
DECLARE_string(data_dir);
DECLARE_string(checkpoint_dir);
DECLARE_bool(resume);
DECLARE_string(checkpoint);
DECLARE_string(out);
DECLARE_string(device);

namespace deepnet {

struct CommandLine {
  std::string command;                 // "train", "export", ...
  std::vector<std::string> overrides;  // every --set, in order
};

// Removes `--set X`, `--set=X` (also with one dash) from argv, returning the values in order.
// InvalidArgument for a --set without a value.
StatusOr<std::vector<std::string>> ExtractSetFlags(int* argc, char** argv);

// The config of --config (or the defaults alone when --config is empty and `require_file` is
// false), then every --set, then --data_dir, --checkpoint_dir and --resume; validated.
StatusOr<config::RunConfig> LoadRunConfig(const CommandLine& command_line, bool require_file);

// The backend of --device (cpu, cuda, strict) for the commands that load a checkpoint (translate,
// score, eval, export); opened on local rank 0. InvalidArgument for an unknown name, Unavailable
// when the device cannot be used (a CPU-only build, no GPU).
StatusOr<const Backend*> DeviceFromFlag();

// One function per command (launcher/cmd_*.cc).
Status RunConfigCommand(const CommandLine& command_line);
Status RunPrepareCommand(const CommandLine& command_line);
Status RunTrainCommand(const CommandLine& command_line);
Status RunExportCommand(const CommandLine& command_line);
Status RunTranslateCommand(const CommandLine& command_line);
Status RunScoreCommand(const CommandLine& command_line);
Status RunEvalCommand(const CommandLine& command_line);
Status RunScheduleCommand(const CommandLine& command_line);
Status RunProfileCommand(const CommandLine& command_line);
Status RunPlanCommand(const CommandLine& command_line);

}  // namespace deepnet
