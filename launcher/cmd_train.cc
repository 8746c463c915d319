// `deepnet train --config X [--set ...] [--data_dir D] [--checkpoint_dir C] [--resume]`.
#include "configs/config.h"
#include "launcher/command_line.h"
#include "train/trainer.h"

namespace deepnet {

Status RunTrainCommand(const CommandLine& command_line) {
  ASSIGN_OR_RETURN(const config::RunConfig config,
                   LoadRunConfig(command_line, /*require_file=*/true));
  LOG(INFO) << "config:\n" << config::ConfigToText(config);
  ASSIGN_OR_RETURN(std::unique_ptr<Trainer> trainer, Trainer::Create(config));
  return trainer->Run();
}

}  // namespace deepnet
