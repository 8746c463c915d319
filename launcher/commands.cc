// The command table (commands.h). Flag help is written here, once per meaning; a flag's default
// comes from its gflags definition.
#include "launcher/commands.h"

#include <initializer_list>

namespace deepnet {
namespace {

// Flags of the commands that load a run config.
const FlagDoc kConfig{"config", "FILE",
                      "the run config (text-format RunConfig), merged over the built-in defaults"};
const FlagDoc kSet{"set", "OVERRIDE",
                   "repeatable, applied in order after --config: `train.max_steps=5` or a "
                   "text-format fragment `model { d_model: 128 }`"};
const FlagDoc kDataDir{"data_dir", "DIR",
                       "overrides data.data_dir (the tokenizer and token shards)"};
const FlagDoc kCheckpointDir{"checkpoint_dir", "DIR", "overrides checkpoint.dir"};
const FlagDoc kResume{"resume", "",
                      "continue from the newest checkpoint in checkpoint.dir, if any"};
const FlagDoc kRestart{"restart", "",
                       "start from step 0 although checkpoint.dir holds checkpoints (they are "
                       "replaced)"};

// Flags of the commands that load a checkpoint.
const FlagDoc kCheckpoint{"checkpoint", "DIR",
                          "a step directory, or a checkpoint root (follows `latest`)"};
const FlagDoc kDevice{"device", "NAME",
                      "where the model runs: cpu, cuda (GPU 0 of the node) or strict (the CPU-run "
                      "test device whose memory the host cannot read)"};
const FlagDoc kTokenizerDir{"data_dir", "DIR",
                            "where the run's tokenizer spm.model is (default: data.data_dir of "
                            "the run)"};

// Decoding (translate, eval).
const FlagDoc kBeam{"beam", "N", "beam size (1 = greedy)"};
const FlagDoc kMaxLenA{"max_len_a", "X",
                       "a hypothesis has at most max_len_a * source tokens + max_len_b tokens"};
const FlagDoc kMaxLenB{"max_len_b", "N", "see --max_len_a"};
const FlagDoc kLenpen{"lenpen", "X", "hypothesis score = log p / length^lenpen"};
const FlagDoc kNoRepeatNgram{"no_repeat_ngram", "N",
                             "a hypothesis never repeats an n-gram of target pieces, as fairseq's "
                             "--no-repeat-ngram-size (0 = off)"};
const FlagDoc kDecodeBatch{"batch", "N", "sentences decoded together (0 = 32)"};

// TSV columns (score, eval).
const FlagDoc kSourceColumn{"source_column", "N",
                            "1-based TSV column of the source (0 = data.source_column of the run)"};
const FlagDoc kTargetColumn{"target_column", "N",
                            "1-based TSV column of the target (0 = data.target_column of the run)"};

// Pipeline shape (schedule, profile).
const FlagDoc kChunks{"chunks", "V",
                      "model chunks per rank of the interleaved schedule (0 = 2, or "
                      "parallel.virtual_chunks)"};

// Unit timing and send costs (profile, plan).
const FlagDoc kReps{"reps", "N", "timed repetitions per unit kind"};
const FlagDoc kWarmup{"warmup", "N", "untimed repetitions first"};
const FlagDoc kBandwidth{"bandwidth_gbps", "X", "stage-to-stage bandwidth (GB/s) for send costs"};
const FlagDoc kLatency{"latency_us", "X", "per-message latency (us) for send costs"};

// Flag groups that several commands take together.
const std::vector<FlagDoc> kRunConfigFlags = {kConfig, kSet, kDataDir};
const std::vector<FlagDoc> kCheckpointFlags = {kCheckpoint, kTokenizerDir, kDevice};
const std::vector<FlagDoc> kDecodingFlags = {kBeam,   kMaxLenA,       kMaxLenB,
                                             kLenpen, kNoRepeatNgram, kDecodeBatch};

// The groups and single flags in order, as one list.
std::vector<FlagDoc> Flags(std::initializer_list<std::vector<FlagDoc>> parts) {
  std::vector<FlagDoc> flags;
  for (const std::vector<FlagDoc>& part : parts) {
    flags.insert(flags.end(), part.begin(), part.end());
  }
  return flags;
}

const std::vector<Command>& Table() {
  static const std::vector<Command>* const table = new std::vector<Command>{
      {"prepare", "train the tokenizer and write token shards into data.data_dir", kRunConfigFlags,
       /*computes=*/false, RunPrepareCommand},
      {"train", "train on one process, or under mpirun as a pipeline (--resume continues a run)",
       Flags({kRunConfigFlags, {kCheckpointDir, kResume, kRestart}}),
       /*computes=*/true, RunTrainCommand},
      {"export",
       "write a checkpoint's model as safetensors (PyTorch Linear layout)",
       {kCheckpoint, {"out", "FILE", "the safetensors file to write"}, kDevice},
       /*computes=*/false,
       RunExportCommand},
      {"config", "print the merged, validated config (the defaults alone without --config)",
       Flags({kRunConfigFlags, {kCheckpointDir, kResume, kRestart}}),
       /*computes=*/false, RunConfigCommand},
      {"translate", "translate one sentence per line to stdout, in order",
       Flags({kCheckpointFlags,
              {{"input", "FILE", "source sentences, one per line (- = stdin)"}},
              kDecodingFlags}),
       /*computes=*/true, RunTranslateCommand},
      {"score", "per-pair cross-entropy as JSON lines, then the token-weighted mean",
       Flags({kCheckpointFlags,
              {{"input", "FILE", "the pairs to score: a file of tab-separated source and target",
                /*show_default=*/false},
               kSourceColumn,
               kTargetColumn}}),
       /*computes=*/true, RunScoreCommand},
      {"eval",
       "validation loss and BLEU (sacreBLEU 13a) of the validation set, sample translations",
       Flags({kCheckpointFlags,
              {{"valid", "FILE", "the validation TSV (default: data.valid_tsv of the run)"},
               kSourceColumn,
               kTargetColumn,
               {"limit", "N", "use only the first N validation pairs (0 = all)"},
               {"samples", "K", "print K sample translations spread over the set"}},
              kDecodingFlags}),
       /*computes=*/true, RunEvalCommand},
      {"schedule",
       "print a pipeline schedule's timeline under pass costs (default F = B = W = 1)",
       {{"stages", "P", "pipeline stages (0 = 4)"},
        {"micro_batches", "M", "micro-batches per step (0 = 8)"},
        {"schedule", "KIND", "gpipe, 1f1b, interleaved, zb-h1, zb-h2 or zb-v"},
        kChunks,
        {"costs", "F,B,W",
         "time units of a forward, B and W pass per chunk; zb-h2 and zb-v are built for them "
         "(training uses 1,2,1 under parallel.recompute FULL, else 1,1,1)"},
        {"from", "FILE", "show a schedule file instead (parallel/schedule_file.h)"},
        {"trace", "FILE", "also write the timeline as Chrome trace JSON (1 time unit = 1 ms)"},
        {"svg", "FILE", "also write the timeline as an SVG picture"},
        {"save", "FILE", "also write the schedule as a schedule file"},
        {"iterations", "N",
         "also simulate N steps back to back with optimizer post-validation (no synchronising "
         "collective between steps): per-step end times, steady-state period and bubble; "
         "--trace/--svg then show the N steps"}},
       /*computes=*/false,
       RunScheduleCommand},
      {"profile",
       "time each unit kind, split the model into stages, predict the step time per schedule",
       Flags({kRunConfigFlags,
              {{"stages", "P", "pipeline stages (0 = parallel.pipeline_stages)"},
               {"micro_batches", "M", "micro-batches per step (0 = parallel.micro_batches)"},
               kChunks,
               kReps,
               kWarmup,
               {"batch", "B", "sentences per micro-batch (0 = the mean of the batcher's)"},
               {"src_len", "S",
                "source length (0 = the mean padded length of the batcher's batches)"},
               {"tgt_len", "T",
                "target length (0 = the mean padded length of the batcher's batches)"},
               kBandwidth,
               kLatency,
               {"cores", "N",
                "cores all ranks share, for CPU ranks that oversubscribe one node (e.g. 2 for "
                "mpirun -np "
                "4 on 2 cores); 0 = every rank has its own core or GPU"},
               {"out", "DIR",
                "where profile.json, predictions.json and predicted_<schedule>.{json,svg} go "
                "(default "
                "runs/profile)"}}}),
       /*computes=*/true, RunProfileCommand},
      {"plan",
       "choose schedule, micro-batches and pipeline split under a memory limit; print --set",
       Flags(
           {kRunConfigFlags,
            {{"ranks", "P", "pipeline ranks to plan for"},
             {"memory_per_rank", "BYTES",
              "memory one rank may use (0 = parallel.stage_memory_limit_mb; 0 there = no limit)"},
             {"micro_batch_counts", "LIST",
              "micro-batch counts to try, e.g. 1,2,4,8 (default: powers of two and the configured "
              "count; the global batch stays data.max_tokens_per_batch x parallel.micro_batches)"},
             {"schedules", "LIST", "schedules to try, e.g. 1f1b,zb-h1 (default: every one)"},
             {"top", "N", "choices to print"},
             kReps,
             kWarmup,
             kBandwidth,
             kLatency,
             {"cores", "N", "cores all ranks share (0 = every rank has its own core or GPU)"},
             {"out", "FILE", "also write the chosen --set fragment to FILE"}}}),
       /*computes=*/true, RunPlanCommand},
  };
  return *table;
}

}  // namespace

const std::vector<Command>& Commands() { return Table(); }

const Command* FindCommand(std::string_view name) {
  for (const Command& command : Commands()) {
    if (command.name == name) return &command;
  }
  return nullptr;
}

const std::vector<FlagDoc>& LoggingFlags() {
  static const std::vector<FlagDoc>* const flags = new std::vector<FlagDoc>{
      {"logtostderr", "", "log to stderr (on by default; --logtostderr=false writes log files)"},
      {"log_dir", "DIR", "where log files go when not logging to stderr"},
      {"minloglevel", "N", "drop log messages below this level (0 INFO, 1 WARNING, 2 ERROR)"},
      {"v", "N", "verbose logging up to this level"},
      {"vmodule", "LIST", "verbose levels per file, e.g. engine=2"},
  };
  return *flags;
}

}  // namespace deepnet
