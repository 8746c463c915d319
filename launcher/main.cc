// deepnet: the command-line entry point. `deepnet <command> [flags]`; each command lives in
// launcher/cmd_<command>.cc. This is the only place a Status becomes an exit code:
// 0 success, 1 the command failed, 2 a usage error, 75 (kExitStoppedForRequeue) training stopped
// on SIGUSR1 / SIGTERM after saving a checkpoint.
#include <gflags/gflags.h>
#include <glog/logging.h>

#include <cstring>
#include <iostream>
#include <string_view>

#include "kernels/cpu/blas_core.h"
#include "launcher/command_line.h"
#include "runtime/allocator.h"
#include "train/signals.h"

namespace deepnet {
namespace {

constexpr char kUsage[] = R"(usage: deepnet <command> [flags]

commands:
  prepare  --config X         train the tokenizer and write token shards into data.data_dir
  train    --config X         train (checkpoints in checkpoint.dir; --resume continues)
  export   --checkpoint DIR --out FILE
                              write a checkpoint's model as safetensors
  config   [--config X]       print the merged, validated config
  translate --checkpoint DIR [--input FILE|-] [--beam 4] [--max_len_a 1.2] [--max_len_b 10]
           [--no_repeat_ngram N] [--batch 32]
                              translate one sentence per line (stdin by default) to stdout
  score    --checkpoint DIR --input PAIRS.tsv [--source_column N --target_column N]
                              per-pair cross-entropy as JSON lines, then the token-weighted mean
  eval     --checkpoint DIR [--valid FILE] [--beam 4] [--no_repeat_ngram N] [--limit N]
           [--samples K]      validation loss and BLEU (sacreBLEU 13a) of the validation set
  schedule --stages P --micro-batches M --schedule KIND [--chunks V] [--trace F] [--svg F]
                              print a schedule's timeline (gpipe, 1f1b, interleaved, zb-h1)
  profile  --config X [--stages P] [--micro-batches M] [--reps N] [--warmup N] [--cores N]
           [--out DIR]        measure each unit kind, split into stages, predict step time per
                              schedule; writes DIR/profile.json and predicted_<schedule>.{json,svg}

flags:
  --config FILE         run config (text-format RunConfig), merged over the built-in defaults
  --set OVERRIDE        repeatable, applied in order: `train.max_steps=5` or a text-format
                        fragment `model { d_model: 128 }`
  --data_dir DIR        overrides data.data_dir
  --checkpoint_dir DIR  overrides checkpoint.dir
  --resume              continue from the newest checkpoint in checkpoint.dir, if any
  --checkpoint DIR      export: a step directory or a checkpoint root (follows `latest`)
  --out FILE            export: output file
  --checkpoint DIR      translate, score, eval: also a root or a step directory; the tokenizer is
                        <data.data_dir>/spm.model of the run (--data_dir overrides)
  --lenpen X            translate, eval: hypothesis score = log p / length^X (default 1)
  --no_repeat_ngram N   translate, eval: a hypothesis never repeats an n-gram of target pieces
                        (as fairseq's --no-repeat-ngram-size; default 0 = off)
Logs go to stderr (glog; --logtostderr=false writes log files instead).
)";

using CommandFn = Status (*)(const CommandLine&);

CommandFn FindCommand(std::string_view name) {
  if (name == "prepare") return RunPrepareCommand;
  if (name == "train") return RunTrainCommand;
  if (name == "export") return RunExportCommand;
  if (name == "config") return RunConfigCommand;
  if (name == "translate") return RunTranslateCommand;
  if (name == "score") return RunScoreCommand;
  if (name == "eval") return RunEvalCommand;
  if (name == "schedule") return RunScheduleCommand;
  if (name == "profile") return RunProfileCommand;
  return nullptr;
}

bool WantsHelp(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "help" || arg == "--help" || arg == "-help" || arg == "-h") return true;
  }
  return false;
}

int Main(int argc, char** argv) {
  if (argc < 2 || WantsHelp(argc, argv)) {
    std::cerr << kUsage;
    return argc < 2 ? 2 : 0;
  }
  KeepHostTensorsInHeap();
  CommandLine command_line;
  command_line.command = argv[1];
  const CommandFn command = FindCommand(command_line.command);
  if (command == nullptr) {
    std::cerr << "deepnet: unknown command \"" << command_line.command << "\"\n\n" << kUsage;
    return 2;
  }
  // Drop the command word, then take the --set flags out before gflags parses the rest.
  argv[1] = argv[0];
  ++argv;
  --argc;
  StatusOr<std::vector<std::string>> overrides = ExtractSetFlags(&argc, argv);
  if (!overrides.ok()) {
    std::cerr << "deepnet " << command_line.command << ": " << overrides.status().message() << "\n";
    return 2;
  }
  command_line.overrides = std::move(overrides).value();
  FLAGS_logtostderr = true;
  gflags::SetUsageMessage(kUsage);
  gflags::ParseCommandLineFlags(&argc, &argv, /*remove_flags=*/true);
  if (argc > 1) {
    std::cerr << "deepnet " << command_line.command << ": unexpected argument \"" << argv[1]
              << "\"\n";
    return 2;
  }
  google::InitGoogleLogging("deepnet");
  // Every command that computes says which BLAS core the machine runs (kernels/cpu/blas_core.h).
  const std::string_view name = command_line.command;
  if (name == "train" || name == "profile" || name == "translate" || name == "score" ||
      name == "eval") {
    LOG(INFO) << cpu::BlasStartupLine(cpu::CurrentBlasReport());
  }
  const Status status = command(command_line);
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
