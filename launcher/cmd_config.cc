// `deepnet config [--config X] [--set ...]`: prints the merged, validated config as text format.
#include <iostream>

#include "configs/config.h"
#include "launcher/command_line.h"

namespace deepnet {

Status RunConfigCommand(const CommandLine& command_line) {
  ASSIGN_OR_RETURN(const config::RunConfig config,
                   LoadRunConfig(command_line, /*require_file=*/false));
  std::cout << config::ConfigToText(config);
  std::cout.flush();
  if (!std::cout) return Internal("cannot write to stdout");
  return OkStatus();
}

}  // namespace deepnet
