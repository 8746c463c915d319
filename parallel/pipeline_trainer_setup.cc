// PipelineTrainer set-up: config checks, the partition, this rank's units, the engine, the data.
#include <algorithm>

#include "configs/stage_units.h"
#include "parallel/cost_model.h"
#include "parallel/cost_model_config.h"
#include "parallel/pipeline_trainer.h"
#include "parallel/schedule_file.h"
#include "parallel/validate.h"
#include "train/micro_batch.h"

namespace deepnet {
namespace {

CostModelOptions::Recompute CostRecompute(const config::ParallelConfig& parallel) {
  switch (parallel.recompute()) {
    case config::ParallelConfig::SELECTIVE:
      return CostModelOptions::Recompute::kSelective;
    case config::ParallelConfig::FULL:
      return CostModelOptions::Recompute::kFull;
    default:
      return CostModelOptions::Recompute::kNone;
  }
}

// What the engine supports; the schedule must exist for (p, m, v).
Status CheckPipelineConfig(const config::RunConfig& config, ScheduleKind kind) {
  const config::ParallelConfig& parallel = config.parallel();
  if (parallel.virtual_chunks() > 1 && kind != ScheduleKind::kInterleaved1F1B) {
    return InvalidArgument("parallel.virtual_chunks > 1 needs schedule INTERLEAVED_1F1B");
  }
  if (parallel.recompute_every() < 1) {
    return InvalidArgument("parallel.recompute_every must be >= 1");
  }
  return CheckScheduleOptions(kind, ScheduleOptionsOf(parallel));
}

}  // namespace

StatusOr<ScheduleKind> ScheduleKindOf(const config::ParallelConfig& parallel) {
  return ParseScheduleKind(config::ParallelConfig::Schedule_Name(parallel.schedule()));
}

ScheduleOptions ScheduleOptionsOf(const config::ParallelConfig& parallel) {
  ScheduleOptions options;
  options.stages = parallel.pipeline_stages();
  options.micro_batches = parallel.micro_batches();
  options.virtual_chunks = std::max(1, parallel.virtual_chunks());
  options.pass_costs = PassCostsOf(parallel);
  return options;
}

PassCosts PassCostsOf(const config::ParallelConfig& parallel) {
  PassCosts costs;
  if (parallel.recompute() == config::ParallelConfig::FULL) {
    costs.backward_input += costs.forward;
  }
  return costs;
}

StatusOr<ConfiguredSchedule> ScheduleOfConfig(const config::ParallelConfig& parallel,
                                              bool optimizer_step) {
  ConfiguredSchedule schedule;
  if (parallel.schedule_file().empty()) {
    ASSIGN_OR_RETURN(const ScheduleKind kind, ScheduleKindOf(parallel));
    ScheduleOptions options = ScheduleOptionsOf(parallel);
    options.optimizer_step = optimizer_step;
    ASSIGN_OR_RETURN(schedule.placement, PlacementOf(kind, options));
    ASSIGN_OR_RETURN(schedule.ranks, BuildAllSchedules(kind, options));
    return schedule;
  }
  const std::string where = "parallel.schedule_file \"" + parallel.schedule_file() + "\"";
  StatusOr<FileSchedule> file = ReadScheduleFile(parallel.schedule_file());
  if (!file.ok()) return file.status().WithContext(where);
  if (file->placement.ranks() != parallel.pipeline_stages() ||
      file->micro_batches != parallel.micro_batches()) {
    return InvalidArgument(where + ": " + std::to_string(file->placement.ranks()) + " ranks and " +
                           std::to_string(file->micro_batches) +
                           " micro-batches; the config has parallel.pipeline_stages " +
                           std::to_string(parallel.pipeline_stages()) +
                           " and parallel.micro_batches " +
                           std::to_string(parallel.micro_batches()));
  }
  schedule.placement = file->placement;
  schedule.ranks = optimizer_step ? std::move(file->ranks) : WithoutOptimizerStep(file->ranks);
  return schedule;
}

StatusOr<PartitionPlan> PlanPartition(const config::RunConfig& config) {
  const config::ParallelConfig& parallel = config.parallel();
  const config::DataConfig& data = config.data();
  CostModelOptions costs;
  costs.source_len = std::max(1, data.max_source_length());
  costs.target_len = std::max(1, data.max_target_length());
  costs.batch =
      std::max<int64_t>(1, data.max_tokens_per_batch() / (costs.source_len + costs.target_len));
  costs.dtype_bytes = 4;
  costs.recompute = CostRecompute(parallel);
  const std::vector<UnitCost> units = EstimateUnitCosts(ModelShapeOf(config.model()), costs);
  const size_t expected = DescribeUnits(config.model()).size();
  if (units.size() != expected) {
    return Internal("the cost model lists " + std::to_string(units.size()) +
                    " units, the model has " + std::to_string(expected));
  }
  ASSIGN_OR_RETURN(const ScheduleKind kind, ScheduleKindOf(parallel));
  PartitionOptions options;
  options.stages = parallel.pipeline_stages();
  options.virtual_chunks = std::max(1, parallel.virtual_chunks());
  options.micro_batches = parallel.micro_batches();
  options.schedule = kind;
  options.pass_costs = PassCostsOf(parallel);
  options.memory_limit_bytes = parallel.stage_memory_limit_mb() * (int64_t{1} << 20);
  if (!parallel.stage_units().empty()) {
    ASSIGN_OR_RETURN(options.segment_units, ParseStageUnits(parallel.stage_units()));
  }
  ASSIGN_OR_RETURN(const ConfiguredSchedule schedule, ScheduleOfConfig(parallel, true));
  const ChunkPlacement& placement = schedule.placement;
  if (static_cast<int64_t>(units.size()) < placement.num_chunks()) {
    return InvalidArgument("the model has " + std::to_string(units.size()) + " units, fewer than " +
                           std::to_string(placement.num_chunks()) + " pipeline chunks (" +
                           std::string(ScheduleKindName(kind)) + " on " +
                           std::to_string(options.stages) + " stages)");
  }
  if (!parallel.schedule_file().empty()) {
    // The file's placement and activations held decide the split.
    StatusOr<PartitionPlan> plan =
        PartitionChunks(units, placement, PeakActivationsPerChunk(schedule.ranks, placement),
                        options.memory_limit_bytes);
    if (!plan.ok()) return plan.status().WithContext("partitioning for parallel.schedule_file");
    return plan;
  }
  StatusOr<PartitionPlan> plan = PartitionUnits(units, options);
  if (!plan.ok()) {
    return plan.status().WithContext(
        options.segment_units.empty() ? "partitioning the model"
                                      : "parallel.stage_units \"" + parallel.stage_units() + "\"");
  }
  return plan;
}

Status PipelineTrainer::OpenData() {
  ASSIGN_OR_RETURN(data_, OpenTrainingData(config_));
  return OkStatus();
}

// This rank's model chunks, its optimizer and learning-rate schedule.
Status PipelineTrainer::BuildStage() {
  ASSIGN_OR_RETURN(const ScheduleKind kind, ScheduleKindOf(config_.parallel()));
  RETURN_IF_ERROR(CheckPipelineConfig(config_, kind));
  ASSIGN_OR_RETURN(partition_, PlanPartition(config_));
  std::vector<StagePlan> mine;
  for (const StagePlan& segment : partition_.stages) {
    if (segment.rank == grid_->stage()) mine.push_back(segment);
  }
  std::sort(mine.begin(), mine.end(),
            [](const StagePlan& a, const StagePlan& b) { return a.chunk < b.chunk; });
  for (const StagePlan& segment : mine) {
    ModelBuildOptions options;
    options.seed = config_.train().seed();
    options.dtype = DType::kF32;
    options.compute_dtype = ComputeDTypeOf(config_.parallel());
    options.backend = backend_;
    options.first_unit = segment.first_unit;
    options.end_unit = segment.end_unit;
    options.pad_id = data_.train_shard->special_ids().pad;
    ASSIGN_OR_RETURN(std::unique_ptr<Model> chunk, Model::Build(config_.model(), options));
    chunks_.push_back(std::move(chunk));
  }
  ASSIGN_OR_RETURN(ParameterUpdate update, CreateParameterUpdate(config_, Units(), *backend_));
  optimizer_ = std::move(update.optimizer);
  schedule_.emplace(update.schedule);
  return BuildEngine();
}

// The schedules of both flush kinds (checked across all ranks) and the engine that runs them.
Status PipelineTrainer::BuildEngine() {
  const config::ParallelConfig& parallel = config_.parallel();
  ChunkPlacement placement;
  for (const bool step : {true, false}) {
    if (!step && config_.train().accumulation_steps() <= 1) continue;
    ASSIGN_OR_RETURN(const ConfiguredSchedule schedule, ScheduleOfConfig(parallel, step));
    placement = schedule.placement;
    ValidateOptions check;
    check.micro_batches = parallel.micro_batches();
    check.placement = placement;
    check.optimizer_step = step;
    RETURN_IF_ERROR(ValidateSchedules(schedule.ranks, check)
                        .WithContext(parallel.schedule_file().empty()
                                         ? "generated schedule"
                                         : "parallel.schedule_file " + parallel.schedule_file()));
    (step ? step_actions_ : flush_actions_) = schedule.ranks[grid_->stage()];
  }

  std::vector<int> unit_stage(DescribeUnits(config_.model()).size(), -1);
  for (const StagePlan& segment : partition_.stages) {
    for (int u = segment.first_unit; u < segment.end_unit; ++u) unit_stage[u] = segment.rank;
  }
  reducer_ = std::make_unique<GradientReducer>(
      grid_->pipeline(), grid_->data(), unit_stage, Units(), config_.model().tied_embeddings(),
      *backend_, &grid_->device_pipeline(), &grid_->device_data());
  std::vector<EngineChunk> chunks;
  for (size_t c = 0; c < chunks_.size(); ++c) {
    EngineChunk chunk;
    chunk.model_chunk = placement.ModelChunk(grid_->stage(), static_cast<int>(c));
    for (auto& unit : chunks_[c]->units()) chunk.units.push_back(unit.get());
    chunks.push_back(std::move(chunk));
  }
  EngineOptions engine;
  engine.stage = grid_->stage();
  engine.placement = placement;
  engine.recompute_every = parallel.recompute_every();
  engine_ = std::make_unique<PipelineEngine>(
      engine, std::move(chunks),
      StreamLayout::FromConfig(config_.model(), ComputeDTypeOf(config_.parallel())),
      grid_->device_pipeline(), *optimizer_, *reducer_);
  return OkStatus();
}

std::vector<Unit*> PipelineTrainer::Units() const {
  std::vector<Unit*> units;
  for (const auto& chunk : chunks_) {
    for (auto& unit : chunk->units()) units.push_back(unit.get());
  }
  return units;
}

StepContext PipelineTrainer::Context(bool training) const {
  return RunStepContext(config_, data_, *backend_, step_, training);
}

}  // namespace deepnet
