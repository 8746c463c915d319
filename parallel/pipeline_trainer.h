// PipelineTrainer: training on a grid of R data-parallel replicas × p pipeline stages, one process
// (rank) per cell — the pipeline counterpart of train/trainer.h, and bit-identical to it when
// R = 1.
//
// Every rank reads the same data: a step takes train.accumulation_steps batches (flushes) from the
// batcher, each split into R·m micro-batches numbered within the step, and replica r runs
// micro-batches [r·m, (r+1)·m) of each flush; every rank counts the non-pad target tokens of the
// whole step for the loss scale. A flush runs this rank's schedule (parallel/schedule.h) on the
// PipelineEngine; the last flush of a step ends with ReduceGradients and OptimizerStep. One
// process with parallel.micro_batches = R·m therefore trains on the same micro-batches with the
// same dropout streams.
//
// The partition comes from the partitioner over the analytic cost model (parallel/cost_model.h)
// of the config's micro-batch shape — b = max_tokens_per_batch / (max_source_length +
// max_target_length) sentences of full length — under parallel.stage_memory_limit_mb.
//
// With logging.trace_dir, every rank records the first logging.trace_steps steps of the run as a
// Chrome trace (parallel/trace.h), <trace_dir>/rank-<world rank>.json, written once they are done.
//
// Checkpoints: replica 0 of every stage writes its units' parameters and moments into the step
// directory (params-stage-<s>.safetensors, optimizer-stage-<s>.safetensors); once all have
// written, rank 0 writes state.json and `latest`. Any partition, or one process, can resume it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "configs/deepnet.pb.h"
#include "model/model.h"
#include "parallel/engine.h"
#include "parallel/grid.h"
#include "parallel/partitioner.h"
#include "parallel/schedule.h"
#include "parallel/trace.h"
#include "runtime/atomic_file.h"
#include "runtime/communicator.h"
#include "runtime/status.h"
#include "text/batcher.h"
#include "text/shard.h"
#include "train/lr_schedule.h"
#include "train/optimizer.h"
#include "train/run_setup.h"
#include "train/trainer.h"

namespace deepnet {

// The split the pipeline trainer uses for `config` (model.vocab_size resolved): PartitionUnits
// over EstimateUnitCosts. Pure, so every rank computes the same plan.
StatusOr<PartitionPlan> PlanPartition(const config::RunConfig& config);

// parallel.schedule as a ScheduleKind.
StatusOr<ScheduleKind> ScheduleKindOf(const config::ParallelConfig& parallel);
// parallel.pipeline_stages, micro_batches and virtual_chunks as ScheduleOptions: with
// ScheduleKindOf the one mapping from a config to its schedule (trainer, profiler, planner).
ScheduleOptions ScheduleOptionsOf(const config::ParallelConfig& parallel);
// The pass costs the schedule is built with (schedule.h): F = B = W = 1, except that FULL
// recompute re-runs the forward inside each B pass, which then costs F + B = 2.
PassCosts PassCostsOf(const config::ParallelConfig& parallel);
// Every rank's actions of one flush (with the optimizer step or without, for a gradient-
// accumulation flush) and where the chunks live: parallel.schedule_file when set (its ranks and
// micro-batches must match the config), else the built-in parallel.schedule.
struct ConfiguredSchedule {
  ChunkPlacement placement;
  std::vector<std::vector<Action>> ranks;
};
StatusOr<ConfiguredSchedule> ScheduleOfConfig(const config::ParallelConfig& parallel,
                                              bool optimizer_step);

// Where a rank computes: its index among the ranks of its node (which picks its GPU) and, for
// NCCL, the same ranks as a device communicator.
struct RankDevice {
  int local_rank = 0;
  Communicator* device_world = nullptr;  // null: device tensors go over `world` (staged)
};

class PipelineTrainer final : public LoopTrainer {
 public:
  // Collective over `world` (R·p ranks, host communication; it must outlive the trainer): opens
  // the backend of parallel.backend on `device`, the shards, splits the grid, plans the partition
  // and builds this rank's units (rank 0 logs the grid with every rank's host and device), and
  // resumes from checkpoint.dir with checkpoint.resume. A rank without its device fails every
  // rank at once.
  static StatusOr<std::unique_ptr<PipelineTrainer>> Create(const config::RunConfig& config,
                                                           Communicator& world,
                                                           FileSystem& fs = LocalFileSystem(),
                                                           RankDevice device = {});
  ~PipelineTrainer() override;

  // Trains to train.max_steps like Trainer::Run (rank 0 prints the progress lines), then reports
  // every rank's peak activation memory. A stop signal on any rank (train/signals.h) stops every
  // rank after the same step, with a checkpoint, returning StoppedForRequeue.
  Status Run();

  // One optimizer step (collective). loss_sum / loss_tokens are summed over the whole grid.
  StatusOr<StepResult> TrainStep() override;
  // Mean validation loss per target token (collective; replicas share the batches).
  StatusOr<double> ValidationLoss() override;
  bool has_validation() const override { return data_.valid_shard != nullptr; }
  Status SaveCheckpoint() override;  // collective
  int64_t last_saved_step() const override { return last_saved_step_; }
  // Agreed by every rank in the last step's loss reduction.
  bool stop_requested() const override { return stop_agreed_; }
  Status StopForRequeue() override;  // collective

  int64_t step() const override { return step_; }
  const config::RunConfig& config() const { return config_; }
  const Grid& grid() const { return *grid_; }
  const PartitionPlan& partition() const { return partition_; }
  // This rank's units, in unit order.
  std::vector<Unit*> Units() const;
  Optimizer& optimizer() { return *optimizer_; }
  const PipelineEngine& engine() const { return *engine_; }
  TrainingState State() const;
  // Peak kActivations bytes of this rank's device allocator since the trainer was built.
  int64_t PeakActivationBytes() const;
  // Collective: every rank's PeakActivationBytes, one line per rank (rank 0 logs it after Run).
  StatusOr<std::string> ActivationMemoryReport();

 private:
  PipelineTrainer(const config::RunConfig& config, Communicator& world, FileSystem& fs);
  Status OpenDevice(const RankDevice& device);
  Status OpenData();
  Status BuildStage();
  Status BuildEngine();
  Status Restore(const std::string& checkpoint_dir);
  StatusOr<StepResult> RunStep();
  StepContext Context(bool training) const;
  Status MaybeResume();
  Status StartTrace();
  Status FinishTrace();  // writes the trace file once, when recording

  config::RunConfig config_;
  Communicator& world_;
  FileSystem& fs_;
  const Backend* backend_ = nullptr;
  std::unique_ptr<Grid> grid_;
  TrainingData data_;
  PartitionPlan partition_;
  std::vector<std::unique_ptr<Model>> chunks_;  // local chunks in order
  std::unique_ptr<Optimizer> optimizer_;
  std::optional<LrSchedule> schedule_;
  std::unique_ptr<GradientReducer> reducer_;
  std::unique_ptr<PipelineEngine> engine_;
  std::vector<Action> step_actions_;  // a flush ending in the optimizer step
  // A gradient-accumulation flush (train.accumulation_steps > 1).
  std::vector<Action> flush_actions_;
  int64_t step_ = 0;
  int64_t last_saved_step_ = -1;
  TraceWriter trace_;
  TraceClock trace_clock_;
  int64_t traced_steps_ = -1;  // steps recorded so far; -1 = not recording
  bool stop_agreed_ = false;   // some rank was asked to stop before the last step's end
};

// Collective over `world`: OK when `local` is OK on every rank. Otherwise every rank fails — with
// its own error, or one naming the ranks that failed — so no rank is left waiting for the others.
Status AllRanksOk(Communicator& world, const Status& local);

}  // namespace deepnet
