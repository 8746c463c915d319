// Checkpoints: everything a run needs to continue bit for bit, written so that a crash never
// leaves a checkpoint that looks complete but is not.
//
// Layout under the checkpoint root:
//   step-0000100/params.safetensors     every parameter, keyed by CheckpointKey, in its dtype
//   step-0000100/optimizer.safetensors  Adam moments "m/<key>" and "v/<key>"; metadata "step"
//   step-0000100/state.json             step, seed, data position, vocabulary, config text
//   latest                              "step-0000100": the newest complete checkpoint
// A pipeline writes one pair per stage instead (params-stage-1.safetensors,
// optimizer-stage-1.safetensors, ...), then one state.json; the loaders read either layout, so any
// partition (or one process) can restore any checkpoint.
// Each file is replaced atomically, and `latest` is written last, so it only ever names a
// checkpoint whose files are all on disk. Older step directories beyond keep_last are pruned
// after `latest` moves on.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "model/unit.h"
#include "runtime/atomic_file.h"
#include "runtime/status.h"
#include "text/batcher.h"
#include "text/tokenizer.h"
#include "train/optimizer.h"

namespace deepnet {

inline constexpr char kLatestFileName[] = "latest";
inline constexpr char kParamsFileName[] = "params.safetensors";
inline constexpr char kOptimizerFileName[] = "optimizer.safetensors";
inline constexpr char kStateFileName[] = "state.json";

// What is not a tensor.
struct TrainingState {
  int64_t step = 0;  // optimizer updates done
  uint64_t seed = 0;
  BatchPosition data_position;  // the next training batch
  int32_t vocab_size = 0;
  SpecialIds special_ids;
  std::string config_text;  // the resolved RunConfig (config::ConfigToText)
};

// A parameter's name in params.safetensors: its export name, or for a tied copy
// "tied/<unit name>/<export name>" (a copy is saved too, so a pipeline stage holding only the copy
// can restore it).
std::string CheckpointKey(const Unit& unit, const Parameter& parameter);

// "step-0000100".
std::string CheckpointDirName(int64_t step);

// Writes step-NNNNNNN/ under `root` and then `latest`; prunes to `keep_last` (0 = keep all).
Status SaveCheckpoint(const std::string& root, const TrainingState& state,
                      const std::vector<Unit*>& units, Optimizer& optimizer, const Backend& backend,
                      int keep_last, FileSystem& fs = LocalFileSystem());

// Pipeline checkpoints, in two parts. Every stage writes its units' parameters and moments into
// step-NNNNNNN/ under `root` as "params-stage-<stage>.safetensors" and
// "optimizer-stage-<stage>.safetensors"; once all stages are done, one rank commits (state.json,
// then `latest`, then pruning).
std::string StageFileName(const std::string& base_name, int stage);  // "params-stage-2.safetensors"
Status SaveStageFiles(const std::string& root, int64_t step, int stage,
                      const std::vector<Unit*>& units, Optimizer& optimizer, const Backend& backend,
                      FileSystem& fs = LocalFileSystem());
Status CommitCheckpoint(const std::string& root, const TrainingState& state, int keep_last,
                        FileSystem& fs = LocalFileSystem());

// The directory `root/latest` names; NotFound when there is no checkpoint yet.
StatusOr<std::string> FindLatestCheckpoint(const std::string& root);

// `path` itself when it holds a state file, else the checkpoint its `latest` names.
StatusOr<std::string> ResolveCheckpointDir(const std::string& path);

StatusOr<TrainingState> ReadTrainingState(const std::string& checkpoint_dir);

// Restores the parameters of `units` (every one must be present with its shape and dtype), from
// params.safetensors or, when the checkpoint has none, from its per-stage files.
Status LoadParameters(const std::string& checkpoint_dir, const std::vector<Unit*>& units,
                      const Backend& backend);
// Restores the moments and the update count of `optimizer`.
Status LoadOptimizerState(const std::string& checkpoint_dir, Optimizer& optimizer,
                          const Backend& backend);

// Removes step directories of `root` older than the newest `keep_last`, never the one `latest`
// names.
Status PruneCheckpoints(const std::string& root, int keep_last);

// Removes what a crash or a full disk left in `root`: temporary files (`*.tmp.*`, e.g. of
// `latest`) and step directories without a state.json (never committed), except the one of
// `step`, about to be written. Run before a save, so a retry after a full disk has that room.
Status RemoveStaleCheckpointFiles(const std::string& root, int64_t step);

}  // namespace deepnet
