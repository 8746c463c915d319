// What every trainer builds from a RunConfig around its model: the shards and batchers it reads
// (`prepare` writes them) and the parameter update (optimizer and learning-rate schedule). The
// single-process Trainer and the pipeline trainer share it, so they read the same batches and
// update with the same rule.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "configs/deepnet.pb.h"
#include "kernels/backend.h"
#include "kernels/backends.h"
#include "model/unit.h"
#include "runtime/status.h"
#include "text/batcher.h"
#include "text/shard.h"
#include "train/checkpoint.h"
#include "train/lr_schedule.h"
#include "train/optimizer.h"

namespace deepnet {

// Where the run's files are: the shards `prepare` wrote.
std::string TrainShardPath(const config::RunConfig& config);  // <data_dir>/train.bin
std::string ValidShardPath(const config::RunConfig& config);  // <data_dir>/valid.bin

// A token shard; NotFound with a hint when `prepare` has not written it.
StatusOr<std::unique_ptr<ShardReader>> OpenShard(const std::string& path);
// The training batcher: one batch per pipeline flush of every replica together,
// data.max_tokens_per_batch × parallel.micro_batches × parallel.data_parallel tokens (a pipeline
// trainer splits it into data_parallel × micro_batches micro-batches).
BatcherOptions TrainBatcherOptions(const config::RunConfig& config);

struct TrainingData {
  std::unique_ptr<ShardReader> train_shard;
  std::optional<Batcher> batcher;                // over train_shard, TrainBatcherOptions
  std::unique_ptr<ShardReader> valid_shard;      // null without validation data
  std::vector<std::vector<int64_t>> valid_plan;  // example ids of each validation batch
};

// Opens the training shard and its batcher, and — when train.valid_every > 0, data.valid_tsv is
// set and the shard exists — the validation shard, planned in order into batches of at most
// data.max_tokens_per_batch tokens. Resolves model.vocab_size in `config` (0 = the shard's);
// InvalidArgument when it is smaller than the shard's vocabulary.
StatusOr<TrainingData> OpenTrainingData(config::RunConfig& config);

struct ParameterUpdate {
  std::unique_ptr<Optimizer> optimizer;
  LrSchedule schedule;
};

// parallel.backend as a BackendKind (CPU when unset).
BackendKind BackendKindOf(const config::ParallelConfig& parallel);
// parallel.comm resolved (MPI or NCCL): AUTO is NCCL for the CUDA backend, MPI otherwise.
config::ParallelConfig::Comm CommOf(const config::ParallelConfig& parallel);
// parallel.precision: the dtype of activations and compute weights (f32, bf16, f16) over fp32
// master weights, and the loss scaler (dynamic for FP16; disabled otherwise).
DType ComputeDTypeOf(const config::ParallelConfig& parallel);
LossScalerOptions LossScalerOptionsOf(const config::ParallelConfig& parallel);

// The optimizer over `units` (which must outlive it) and the learning-rate schedule:
// config.optimizer, config.lr_schedule peaking at optimizer.lr over train.max_steps, the loss
// scaler of parallel.precision.
StatusOr<ParameterUpdate> CreateParameterUpdate(const config::RunConfig& config,
                                                std::vector<Unit*> units, const Backend& backend);

// Restores a checkpoint written by either trainer into `units`, `optimizer` and `batcher`, after
// checking that it was trained with the same model config and seed; returns its step.
// FailedPrecondition names what differs; DataLoss when the optimizer state disagrees with it.
StatusOr<int64_t> RestoreCheckpoint(const std::string& checkpoint_dir,
                                    const config::RunConfig& config,
                                    const std::vector<Unit*>& units, Optimizer& optimizer,
                                    const Backend& backend, Batcher& batcher);

// The checkpoint a run starts from: with checkpoint.resume, the newest in checkpoint.dir, or
// nullopt when there is none yet (or no checkpoint.dir); without it, nullopt when the directory
// holds no checkpoint or checkpoint.restart says to replace them, and FailedPrecondition (naming
// --resume and --restart) otherwise, so that a forgotten --resume never throws work away. The
// leader logs what it decided.
StatusOr<std::optional<std::string>> CheckpointToResume(const config::RunConfig& config,
                                                        bool leader);

// parallel.recompute as the model's Recompute.
Recompute RecomputeOf(const config::ParallelConfig& parallel);

// The context of training step `step` (training = false: validation, dropout off) of a run
// reading `data`; loss_scale is left to the step, which knows its tokens.
StepContext RunStepContext(const config::RunConfig& config, const TrainingData& data,
                           const Backend& backend, int64_t step, bool training);

// What a checkpoint at `step` records besides the tensors.
TrainingState RunTrainingState(const config::RunConfig& config, const TrainingData& data,
                               int64_t step);

}  // namespace deepnet
