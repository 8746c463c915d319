// PipelineTrainer: creation, the step, validation and the run loop (see the header).
#include "parallel/pipeline_trainer.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "configs/config.h"
#include "kernels/cpu/blas_core.h"
#include "parallel/cost_model.h"
#include "runtime/allocator.h"
#include "train/run_loop.h"
#include "train/run_steps.h"
#include "train/signals.h"

namespace deepnet {

Status AllRanksOk(Communicator& world, const Status& local) {
  const int mine = local.ok() ? 0 : 1;
  std::vector<int> failed(world.size());
  const Status gathered = world.AllGather(&mine, sizeof(int), failed.data());
  if (!local.ok()) return local;
  RETURN_IF_ERROR(gathered);
  std::string ranks;
  for (int rank = 0; rank < world.size(); ++rank) {
    if (failed[rank]) ranks += (ranks.empty() ? "" : ", ") + world.DescribeRank(rank);
  }
  if (ranks.empty()) return OkStatus();
  return Unavailable(ranks + " failed (see " +
                     (ranks.find(',') == std::string::npos ? "its" : "their") +
                     " log); stopping this rank too");
}

namespace {

// How long a step that failed on communication waits to learn which ranks are still there. The
// survivors reach that check within milliseconds of each other (the same deadline); kept short so
// that they report before Open MPI's own TCP connections to a lost node give up and end them.
constexpr double kFailureCheckSeconds = 1.0;

// "activations over NCCL" / "activations over MPI, staged through host buffers" (rank 0's view).
std::string DescribeTransport(const PipelineTrainer& trainer) {
  const config::ParallelConfig& parallel = trainer.config().parallel();
  const bool nccl = CommOf(parallel) == config::ParallelConfig::NCCL;
  const bool staged = parallel.backend() != config::ParallelConfig::CPU && !nccl;
  return std::string("tensors over ") + (nccl ? "NCCL" : "MPI") +
         (staged ? ", staged through host buffers" : "");
}

}  // namespace

PipelineTrainer::PipelineTrainer(const config::RunConfig& config, Communicator& world,
                                 FileSystem& fs)
    : config_(config), world_(world), fs_(fs) {}

PipelineTrainer::~PipelineTrainer() = default;

StatusOr<std::unique_ptr<PipelineTrainer>> PipelineTrainer::Create(const config::RunConfig& config,
                                                                   Communicator& world,
                                                                   FileSystem& fs,
                                                                   RankDevice device) {
  std::unique_ptr<PipelineTrainer> trainer(new PipelineTrainer(config, world, fs));
  if (config.parallel().comm_timeout_seconds() > 0) {
    world.set_timeout_seconds(config.parallel().comm_timeout_seconds());
  }
  ASSIGN_OR_RETURN(trainer->grid_, Grid::Create(world, GridShape::FromConfig(config.parallel()),
                                                device.device_world));
  Status built = trainer->OpenDevice(device);
  if (built.ok()) built = trainer->OpenData();
  if (built.ok()) built = trainer->BuildStage();
  RETURN_IF_ERROR(AllRanksOk(world, built));

  ASSIGN_OR_RETURN(const std::vector<std::string> places,
                   GatherRankPlaces(world, DescribeDevice(*trainer->backend_)));
  if (world.rank() == 0) {
    std::vector<std::string> names;
    for (const UnitInfo& unit : DescribeUnits(trainer->config_.model())) names.push_back(unit.name);
    const config::ParallelConfig& parallel = config.parallel();
    LOG(INFO) << "pipeline: " << config::ParallelConfig::Schedule_Name(parallel.schedule()) << ", "
              << parallel.micro_batches() << " micro-batches per flush, recompute "
              << config::ParallelConfig::Recompute_Name(parallel.recompute()) << "\n"
              << "precision " << config::ParallelConfig::Precision_Name(parallel.precision())
              << ", " << DescribeTransport(*trainer) << "\n"
              << FormatGrid(trainer->grid_->shape(), trainer->partition_, names, places);
  }
  RETURN_IF_ERROR(trainer->MaybeResume());
  if (!config.logging().trace_dir().empty()) RETURN_IF_ERROR(trainer->StartTrace());
  GetAllocator(trainer->backend_->device()).ResetPeak();
  return trainer;
}

Status PipelineTrainer::OpenDevice(const RankDevice& device) {
  ASSIGN_OR_RETURN(backend_, OpenBackend(BackendKindOf(config_.parallel()), device.local_rank));
  return OkStatus();
}

Status PipelineTrainer::StartTrace() {
  trace_.NameRank(world_.rank(), grid_->stage());
  trace_.LabelProcess(world_.rank(), cpu::BlasStartupLine(cpu::CurrentBlasReport()));
  RETURN_IF_ERROR(world_.Barrier().WithContext("starting the trace"));
  trace_clock_.Restart();  // one origin for every rank, up to the barrier's skew
  engine_->set_trace(&trace_, &trace_clock_, world_.rank());
  traced_steps_ = 0;
  return OkStatus();
}

Status PipelineTrainer::FinishTrace() {
  if (traced_steps_ < 0) return OkStatus();
  engine_->set_trace(nullptr, nullptr, 0);
  traced_steps_ = -1;
  const std::filesystem::path dir = config_.logging().trace_dir();
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  const std::string path = (dir / ("rank-" + std::to_string(world_.rank()) + ".json")).string();
  RETURN_IF_ERROR(trace_.WriteFile(path).WithContext("trace"));
  LOG_IF(INFO, world_.rank() == 0) << "wrote the trace of the first steps to " << dir.string()
                                   << "/rank-*.json (scripts/merge_traces.py merges them)";
  return OkStatus();
}

StatusOr<StepResult> PipelineTrainer::TrainStep() {
  StatusOr<StepResult> result = RunStep();
  if (result.ok()) return result;
  const Status& failed = result.status();
  // A failure of this rank's own (data, numbers, memory): return it at once, so that the caller
  // can report it and end the job; the ranks waiting on this one time out naming it.
  const bool communication =
      failed.code() == StatusCode::kDeadlineExceeded || failed.code() == StatusCode::kUnavailable;
  if (!communication || !world_.health().ok()) return failed;  // world's own timeout named them
  // A transfer that timed out names the neighbour this rank waited for, which may itself be stuck
  // behind the rank that is really gone; with two ranks the neighbour is the only candidate.
  if (world_.size() <= 2 && failed.code() == StatusCode::kDeadlineExceeded) return failed;
  // Otherwise learn who is still there: ranks that failed the same way reach this collective at
  // about the same time, and one that is gone or stopped never does, so the collective's timeout
  // names it (runtime/communicator.h). Bounded by kFailureCheckSeconds rather than the full
  // timeout, which the step has already waited once: the job must end within
  // parallel.comm_timeout_seconds and a few seconds (launcher/cmd_train.cc).
  const double timeout = world_.timeout_seconds();
  world_.set_timeout_seconds(std::min(timeout, kFailureCheckSeconds));
  const int mine = 1;
  std::vector<int> flags(world_.size());
  const Status told = world_.AllGather(&mine, sizeof(int), flags.data());
  world_.set_timeout_seconds(timeout);
  if (told.ok()) return failed;
  return Status(failed.code(), failed.message() + "\nthen, checking which ranks are still there: " +
                                   told.message());
}

StatusOr<StepResult> PipelineTrainer::RunStep() {
  ASSIGN_OR_RETURN(
      const std::vector<std::vector<MicroBatch>> flushes,
      NextStepFlushes(config_, data_,
                      grid_->shape().data_parallel * config_.parallel().micro_batches(),
                      *backend_));
  int64_t step_tokens = 0;
  for (const auto& flush : flushes) {
    for (const MicroBatch& mb : flush) step_tokens += mb.num_target_tokens;
  }
  if (step_tokens == 0) return Internal("step " + std::to_string(step_) + " has no target tokens");

  StepContext ctx = Context(/*training=*/true);
  ctx.loss_scale = optimizer_->loss_scale() / static_cast<double>(step_tokens);
  for (auto& chunk : chunks_) chunk->ZeroGrads();
  StepResult result;
  result.lr = schedule_->LearningRate(step_);
  const int m = config_.parallel().micro_batches();
  for (size_t f = 0; f < flushes.size(); ++f) {
    const bool last = f + 1 == flushes.size();
    const std::span<const MicroBatch> mine =
        std::span<const MicroBatch>(flushes[f]).subspan(grid_->replica() * m, m);
    StatusOr<FlushResult> flush =
        engine_->Run(last ? step_actions_ : flush_actions_, mine, ctx, result.lr);
    if (!flush.ok()) return flush.status().WithContext("step " + std::to_string(step_ + 1));
    result.loss_sum += flush->loss_sum;
    result.loss_tokens += flush->loss_tokens;
    if (flush->stepped) result.optimizer = flush->optimizer;
  }
  // The loss lives on the last stage of each replica; every rank gets the grid's total. A stop
  // request (train/signals.h) rides along, so that every rank stops after the same step.
  double totals[3] = {result.loss_sum, static_cast<double>(result.loss_tokens),
                      StopRequested() ? 1.0 : 0.0};
  RETURN_IF_ERROR(
      world_.AllReduceSum(totals, 3).WithContext("loss of step " + std::to_string(step_ + 1)));
  result.loss_sum = totals[0];
  result.loss_tokens = static_cast<int64_t>(totals[1]);
  stop_agreed_ = totals[2] > 0;
  ++step_;
  if (traced_steps_ >= 0 && ++traced_steps_ == config_.logging().trace_steps()) {
    RETURN_IF_ERROR(FinishTrace());
  }
  return result;
}

StatusOr<double> PipelineTrainer::ValidationLoss() {
  const StepContext ctx = Context(/*training=*/false);
  ASSIGN_OR_RETURN(
      const LossTotals mine,
      SumValidationLoss(
          config_, data_, *backend_, grid_->replica(), grid_->shape().data_parallel,
          [&](const MicroBatch& mb) -> StatusOr<Stream> { return engine_->ForwardOnly(mb, ctx); }));
  double totals[2] = {mine.loss_sum, static_cast<double>(mine.loss_tokens)};
  RETURN_IF_ERROR(world_.AllReduceSum(totals, 2).WithContext("validation loss"));
  return MeanValidationLoss(totals[0], totals[1]);
}

Status PipelineTrainer::StopForRequeue() {
  const Status stopped =
      CheckpointForRequeue(config_, step_, last_saved_step_,
                           /*leader=*/world_.rank() == 0, [this] { return SaveCheckpoint(); });
  if (!IsStoppedForRequeue(stopped)) return stopped;
  RETURN_IF_ERROR(FinishTrace());
  return stopped;
}

int64_t PipelineTrainer::PeakActivationBytes() const {
  return GetAllocator(backend_->device()).stats().peak_of(MemoryCategory::kActivations);
}

StatusOr<std::string> PipelineTrainer::ActivationMemoryReport() {
  const int64_t mine = PeakActivationBytes();
  std::vector<int64_t> peaks(world_.size());
  RETURN_IF_ERROR(world_.AllGather(&mine, sizeof(mine), peaks.data()));
  std::string report;
  for (int rank = 0; rank < world_.size(); ++rank) {
    const GridPosition at = PositionOfRank(grid_->shape(), rank);
    char line[160];
    std::snprintf(line, sizeof(line),
                  "peak activation memory: rank %d (replica %d, stage %d) %.3f MiB (%lld bytes)\n",
                  rank, at.replica, at.stage, static_cast<double>(peaks[rank]) / (1 << 20),
                  static_cast<long long>(peaks[rank]));
    report += line;
  }
  return report;
}

Status PipelineTrainer::Run() {
  const bool leader = world_.rank() == 0;
  LOG_IF(INFO, leader) << "training " << DescribeUnits(config_.model()).size() << " units on "
                       << grid_->shape().size() << " ranks, " << data_.train_shard->num_examples()
                       << " examples, steps " << step_ << " -> " << config_.train().max_steps();
  RETURN_IF_ERROR(RunTrainingLoop(config_, leader, *this));
  RETURN_IF_ERROR(FinishTrace());
  ASSIGN_OR_RETURN(const std::string report, ActivationMemoryReport());
  LOG_IF(INFO, leader) << "\n" << report;
  return OkStatus();
}

}  // namespace deepnet
