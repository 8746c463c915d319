// The data and parameter update every trainer builds from its config (see the header).
#include "train/run_setup.h"

#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <filesystem>

#include "configs/config.h"
#include "train/checkpoint.h"

namespace deepnet {
namespace {

// The validation shard in order (no shuffle), in batches of data.max_tokens_per_batch tokens.
StatusOr<std::vector<std::vector<int64_t>>> PlanValidation(const ShardReader& shard,
                                                           const config::RunConfig& config) {
  BatcherOptions options;
  options.max_tokens = config.data().max_tokens_per_batch();
  options.shuffle = false;
  return PlanEpoch(shard.source_lengths(), shard.target_lengths(), options, 0);
}

}  // namespace

std::string TrainShardPath(const config::RunConfig& config) {
  return (std::filesystem::path(config.data().data_dir()) / "train.bin").string();
}

std::string ValidShardPath(const config::RunConfig& config) {
  return (std::filesystem::path(config.data().data_dir()) / "valid.bin").string();
}

StatusOr<std::unique_ptr<ShardReader>> OpenShard(const std::string& path) {
  if (!std::filesystem::exists(path)) {
    return NotFound(path + " does not exist; run `deepnet prepare --config <same config>` first");
  }
  ASSIGN_OR_RETURN(ShardReader shard, ShardReader::Open(path));
  return std::make_unique<ShardReader>(std::move(shard));
}

BatcherOptions TrainBatcherOptions(const config::RunConfig& config) {
  BatcherOptions options;
  // One batch is one pipeline flush: parallel.micro_batches micro-batches of max_tokens each, for
  // every data-parallel replica.
  options.max_tokens = int64_t{config.data().max_tokens_per_batch()} *
                       config.parallel().micro_batches() *
                       std::max(1, config.parallel().data_parallel());
  options.shuffle = config.data().shuffle_buffer() > 0;
  options.sort_window = config.data().shuffle_buffer();
  options.seed = config.train().seed();
  return options;
}

StatusOr<TrainingData> OpenTrainingData(config::RunConfig& config) {
  TrainingData data;
  ASSIGN_OR_RETURN(data.train_shard, OpenShard(TrainShardPath(config)));
  const int32_t shard_vocab = data.train_shard->vocab_size();
  config::ModelConfig& model = *config.mutable_model();
  if (model.vocab_size() == 0) model.set_vocab_size(shard_vocab);
  if (model.vocab_size() < shard_vocab) {
    return InvalidArgument("model.vocab_size " + std::to_string(model.vocab_size()) +
                           " is smaller than the vocabulary of " + data.train_shard->path() + " (" +
                           std::to_string(shard_vocab) + ")");
  }
  ASSIGN_OR_RETURN(Batcher batcher,
                   Batcher::Create(data.train_shard.get(), TrainBatcherOptions(config)));
  data.batcher.emplace(std::move(batcher));

  const bool wants_valid = config.train().valid_every() > 0 && !config.data().valid_tsv().empty();
  if (!wants_valid || !std::filesystem::exists(ValidShardPath(config))) return data;
  ASSIGN_OR_RETURN(data.valid_shard, OpenShard(ValidShardPath(config)));
  ASSIGN_OR_RETURN(data.valid_plan, PlanValidation(*data.valid_shard, config));
  return data;
}

BackendKind BackendKindOf(const config::ParallelConfig& parallel) {
  switch (parallel.backend()) {
    case config::ParallelConfig::CUDA:
      return BackendKind::kCuda;
    case config::ParallelConfig::STRICT:
      return BackendKind::kStrict;
    default:
      return BackendKind::kCpu;
  }
}

config::ParallelConfig::Comm CommOf(const config::ParallelConfig& parallel) {
  if (parallel.comm() == config::ParallelConfig::MPI ||
      parallel.comm() == config::ParallelConfig::NCCL) {
    return parallel.comm();
  }
  return parallel.backend() == config::ParallelConfig::CUDA ? config::ParallelConfig::NCCL
                                                            : config::ParallelConfig::MPI;
}

DType ComputeDTypeOf(const config::ParallelConfig& parallel) {
  switch (parallel.precision()) {
    case config::ParallelConfig::BF16:
      return DType::kBF16;
    case config::ParallelConfig::FP16:
      return DType::kF16;
    default:
      return DType::kF32;
  }
}

LossScalerOptions LossScalerOptionsOf(const config::ParallelConfig& parallel) {
  LossScalerOptions options;
  options.enabled = parallel.precision() == config::ParallelConfig::FP16;
  return options;
}

StatusOr<ParameterUpdate> CreateParameterUpdate(const config::RunConfig& config,
                                                std::vector<Unit*> units, const Backend& backend) {
  ASSIGN_OR_RETURN(std::unique_ptr<Optimizer> optimizer,
                   Optimizer::Create(std::move(units), OptimizerOptions::FromConfig(config),
                                     backend, LossScalerOptionsOf(config.parallel())));
  ASSIGN_OR_RETURN(LrSchedule schedule,
                   LrSchedule::Create(config.lr_schedule(), config.optimizer().lr(),
                                      config.train().max_steps()));
  return ParameterUpdate{std::move(optimizer), schedule};
}

StatusOr<std::optional<std::string>> CheckpointToResume(const config::RunConfig& config,
                                                        bool leader) {
  const std::string& root = config.checkpoint().dir();
  const bool resume = config.checkpoint().resume();
  if (root.empty()) {
    LOG_IF(WARNING, leader && resume) << "checkpoint.dir is empty: nothing to resume";
    return std::optional<std::string>();
  }
  StatusOr<std::string> latest = FindLatestCheckpoint(root);
  if (latest.ok() && resume) return std::optional<std::string>(*latest);
  if (latest.ok() && !config.checkpoint().restart()) {
    return FailedPrecondition(root + " already holds checkpoints (latest " + *latest +
                              "): pass --resume to continue from it, or --restart to start from "
                              "step 0 and replace them");
  }
  if (latest.ok()) {
    LOG_IF(WARNING, leader) << root << " holds checkpoints (latest " << *latest
                            << "); --restart: this run starts from step 0 and replaces them";
    return std::optional<std::string>();
  }
  if (latest.status().code() != StatusCode::kNotFound) return latest.status();
  LOG_IF(INFO, leader && resume) << "no checkpoint in " << root << " yet; starting from step 0";
  return std::optional<std::string>();
}

Recompute RecomputeOf(const config::ParallelConfig& parallel) {
  switch (parallel.recompute()) {
    case config::ParallelConfig::SELECTIVE:
      return Recompute::kSelective;
    case config::ParallelConfig::FULL:
      return Recompute::kFull;
    default:
      return Recompute::kNone;
  }
}

StatusOr<int64_t> RestoreCheckpoint(const std::string& checkpoint_dir,
                                    const config::RunConfig& config,
                                    const std::vector<Unit*>& units, Optimizer& optimizer,
                                    const Backend& backend, Batcher& batcher) {
  ASSIGN_OR_RETURN(TrainingState state, ReadTrainingState(checkpoint_dir));
  ASSIGN_OR_RETURN(
      config::RunConfig saved,
      config::LoadConfigFromText(state.config_text, checkpoint_dir + "/state.json", {}));
  if (!google::protobuf::util::MessageDifferencer::Equals(saved.model(), config.model())) {
    return FailedPrecondition(checkpoint_dir + " was trained with another model config:\n" +
                              saved.model().ShortDebugString() + "\nnow:\n" +
                              config.model().ShortDebugString());
  }
  if (state.seed != config.train().seed()) {
    return FailedPrecondition(checkpoint_dir + " was trained with train.seed " +
                              std::to_string(state.seed) + ", the config says " +
                              std::to_string(config.train().seed()));
  }
  RETURN_IF_ERROR(LoadParameters(checkpoint_dir, units, backend));
  RETURN_IF_ERROR(LoadOptimizerState(checkpoint_dir, optimizer, backend));
  if (optimizer.step() + optimizer.skipped_steps() != state.step) {
    return DataLoss(checkpoint_dir + ": optimizer updates " + std::to_string(optimizer.step()) +
                    " + skipped steps " + std::to_string(optimizer.skipped_steps()) +
                    " differ from the state's step " + std::to_string(state.step));
  }
  RETURN_IF_ERROR(batcher.Seek(state.data_position));
  return state.step;
}

StepContext RunStepContext(const config::RunConfig& config, const TrainingData& data,
                           const Backend& backend, int64_t step, bool training) {
  StepContext ctx;
  ctx.backend = &backend;
  ctx.seed = config.train().seed();
  ctx.step = step;
  ctx.training = training;
  ctx.recompute = RecomputeOf(config.parallel());
  // What the step's loss gradient is multiplied by (fp16 loss scaling); the step sets the rest.
  ctx.loss_scale = 1.0;
  ctx.label_smoothing = config.train().label_smoothing();
  ctx.pad_id = data.train_shard->special_ids().pad;
  return ctx;
}

TrainingState RunTrainingState(const config::RunConfig& config, const TrainingData& data,
                               int64_t step) {
  TrainingState state;
  state.step = step;
  state.seed = config.train().seed();
  state.data_position = data.batcher->position();
  state.vocab_size = data.train_shard->vocab_size();
  state.special_ids = data.train_shard->special_ids();
  state.config_text = config::ConfigToText(config);
  return state;
}

}  // namespace deepnet
