// Shared flags, --set extraction and config loading for the commands.
#include "launcher/command_line.h"

#include <cstring>

#include "configs/config.h"
#include "kernels/backends.h"

DEFINE_string(config, "", kHelpInCommandTable);
DEFINE_string(data_dir, "", kHelpInCommandTable);
DEFINE_string(checkpoint_dir, "", kHelpInCommandTable);
DEFINE_bool(resume, false, kHelpInCommandTable);
DEFINE_bool(restart, false, kHelpInCommandTable);
DEFINE_string(checkpoint, "", kHelpInCommandTable);
DEFINE_string(out, "", kHelpInCommandTable);
DEFINE_string(device, "cpu", kHelpInCommandTable);

namespace deepnet {

StatusOr<std::vector<std::string>> ExtractSetFlags(int* argc, char** argv) {
  std::vector<std::string> values;
  int kept = 1;
  for (int i = 1; i < *argc; ++i) {
    const char* arg = argv[i];
    if (std::strcmp(arg, "--") == 0) {  // gflags stops here too: keep the rest as is
      while (i < *argc) argv[kept++] = argv[i++];
      break;
    }
    const char* name = arg[0] == '-' && arg[1] == '-' ? arg + 2 : arg[0] == '-' ? arg + 1 : nullptr;
    if (name != nullptr && std::strncmp(name, "set=", 4) == 0) {
      values.emplace_back(name + 4);
    } else if (name != nullptr && std::strcmp(name, "set") == 0) {
      if (i + 1 >= *argc)
        return InvalidArgument("--set needs a value, e.g. --set train.max_steps=5");
      values.emplace_back(argv[++i]);
    } else {
      argv[kept++] = argv[i];
    }
  }
  *argc = kept;
  for (const std::string& value : values) {
    if (value.find_first_not_of(" \t\r\n") == std::string::npos) {
      return InvalidArgument("--set needs a value, e.g. --set train.max_steps=5 (got an empty one)");
    }
  }
  return values;
}

StatusOr<const Backend*> DeviceFromFlag() {
  StatusOr<BackendKind> kind = ParseBackendKind(FLAGS_device);
  if (!kind.ok()) return kind.status().WithContext("--device");
  return OpenBackend(*kind, /*local_rank=*/0);
}

StatusOr<config::RunConfig> LoadRunConfig(const CommandLine& command_line, bool require_file) {
  std::vector<std::string> overrides = command_line.overrides;
  if (!FLAGS_data_dir.empty()) overrides.push_back("data.data_dir=" + FLAGS_data_dir);
  if (!FLAGS_checkpoint_dir.empty()) overrides.push_back("checkpoint.dir=" + FLAGS_checkpoint_dir);
  if (FLAGS_resume) overrides.push_back("checkpoint.resume=true");
  if (FLAGS_restart) overrides.push_back("checkpoint.restart=true");
  if (FLAGS_config.empty()) {
    if (require_file)
      return InvalidArgument("--config is required (e.g. --config configs/demo.pbtxt)");
    return config::LoadConfigFromText("", "(defaults)", overrides);
  }
  return config::LoadConfig(FLAGS_config, overrides);
}

}  // namespace deepnet
