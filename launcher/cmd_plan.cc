// `deepnet plan --config X --ranks P [--memory_per_rank BYTES] [--micro_batch_counts 1,2,4,8]
// [--schedules 1f1b,zb-h1] [--top N] [--out FILE]`: measures the model's units at the micro-batch
// shape of each candidate micro-batch count (the global batch, data.max_tokens_per_batch ×
// parallel.micro_batches, stays as configured), searches schedule × micro-batches × split under
// the memory limit (profile/planner.h), prints the best choices and the chosen settings as a
// `--set` fragment, and writes that fragment to --out.
//
// Letters: p ranks, m micro-batches per flush, G tokens per flush (per data-parallel replica).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "configs/config.h"
#include "configs/stage_units.h"
#include "kernels/backends.h"
#include "launcher/command_line.h"
#include "parallel/pipeline_trainer.h"
#include "profile/micro_batch_shape.h"
#include "profile/planner.h"
#include "profile/prediction.h"
#include "profile/unit_profiler.h"
#include "runtime/atomic_file.h"
#include "train/run_setup.h"
#include "train/trainer.h"

DEFINE_int32(ranks, 0, kHelpInCommandTable);
DEFINE_int64(memory_per_rank, 0, kHelpInCommandTable);
DEFINE_string(micro_batch_counts, "", kHelpInCommandTable);
DEFINE_string(schedules, "", kHelpInCommandTable);
DEFINE_int32(top, 8, kHelpInCommandTable);
DECLARE_int32(reps);
DECLARE_int32(warmup);
DECLARE_int32(cores);
DECLARE_double(bandwidth_gbps);
DECLARE_double(latency_us);

namespace deepnet {
namespace {

StatusOr<std::vector<int>> ParseList(const std::string& text, const std::string& flag) {
  StatusOr<std::vector<int>> counts = ParseStageUnits(text);  // positive integers, commas
  if (!counts.ok())
    return InvalidArgument("--" + flag + " \"" + text + "\": expected e.g. 1,2,4,8");
  return counts;
}

StatusOr<std::vector<ScheduleKind>> ParseSchedules(const std::string& text) {
  std::vector<ScheduleKind> kinds;
  std::stringstream items(text);
  for (std::string item; std::getline(items, item, ',');) {
    StatusOr<ScheduleKind> kind = ParseScheduleKind(item);
    if (!kind.ok()) return kind.status().WithContext("--schedules");
    kinds.push_back(*kind);
  }
  return kinds;
}

// The micro-batch counts to try: --micro_batch_counts, or powers of two up to G and the
// configured count; the loader's checks and the data's fewest rows drop the impossible ones.
StatusOr<std::vector<int>> MicroBatchCounts(int configured, int64_t tokens_per_step) {
  std::vector<int> counts;
  if (!FLAGS_micro_batch_counts.empty()) {
    ASSIGN_OR_RETURN(counts, ParseList(FLAGS_micro_batch_counts, "micro_batch_counts"));
  } else {
    for (int m = 1; m <= tokens_per_step && m <= 64; m *= 2) counts.push_back(m);
    counts.push_back(configured);
  }
  std::sort(counts.begin(), counts.end());
  counts.erase(std::unique(counts.begin(), counts.end()), counts.end());
  return counts;
}

// The run's settings for m micro-batches on p ranks at the same global batch, or why there are
// none. The loader validates them as it will validate the final fragment.
std::string CandidateFragment(int ranks, int m, int64_t tokens_per_step) {
  return "parallel { pipeline_stages: " + std::to_string(ranks) +
         " micro_batches: " + std::to_string(m) + " stage_units: \"\" } data { " +
         "max_tokens_per_batch: " + std::to_string(tokens_per_step / m) + " }";
}

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

Status RunPlanCommand(const CommandLine& command_line) {
  if (FLAGS_ranks < 1) return InvalidArgument("--ranks P (>= 1) is required: the pipeline ranks");
  if (FLAGS_memory_per_rank < 0) return InvalidArgument("--memory_per_rank must be >= 0");
  if (FLAGS_cores < 0) return InvalidArgument("--cores must be >= 0 (0: a core or GPU per rank)");
  if (FLAGS_top < 1) return InvalidArgument("--top must be >= 1");
  ASSIGN_OR_RETURN(const config::RunConfig config,
                   LoadRunConfig(command_line, /*require_file=*/true));
  const int64_t tokens_per_step =
      int64_t{config.data().max_tokens_per_batch()} * config.parallel().micro_batches();
  const int64_t limit = FLAGS_memory_per_rank > 0
                            ? FLAGS_memory_per_rank
                            : config.parallel().stage_memory_limit_mb() * (int64_t{1} << 20);
  PlannerOptions planner;
  planner.ranks = FLAGS_ranks;
  planner.memory_limit_bytes = limit;
  planner.cores = FLAGS_cores;
  planner.pass_costs = PassCostsOf(config.parallel());
  if (!FLAGS_schedules.empty()) {
    ASSIGN_OR_RETURN(planner.schedules, ParseSchedules(FLAGS_schedules));
  }
  planner.progress = [](const std::string& line) { std::cerr << "plan: " << line << "\n"; };
  ASSIGN_OR_RETURN(const std::vector<int> counts,
                   MicroBatchCounts(config.parallel().micro_batches(), tokens_per_step));
  ASSIGN_OR_RETURN(const Backend* backend, OpenBackend(BackendKindOf(config.parallel())));

  std::cout << "plan: " << FLAGS_config << " on " << FLAGS_ranks << " ranks, " << tokens_per_step
            << " tokens per flush (data.max_tokens_per_batch x parallel.micro_batches, kept), "
            << "memory limit " << (limit > 0 ? FormatMiB(limit) + " per rank" : std::string("none"))
            << ", " << DescribeDevice(*backend) << "\n";
  std::vector<PlanCosts> candidates;
  for (const int m : counts) {
    CommandLine with_m = command_line;
    with_m.overrides.push_back(CandidateFragment(FLAGS_ranks, m, tokens_per_step));
    StatusOr<config::RunConfig> run = LoadRunConfig(with_m, /*require_file=*/true);
    if (tokens_per_step % m != 0) {
      std::cout << "  m=" << m << ": skipped, " << tokens_per_step
                << " tokens per flush do not split evenly\n";
      continue;
    }
    if (!run.ok()) {
      // The loader names the override ("--set #3:1:74: "); the field and reason are what count.
      std::string why = run.status().message();
      why = why.substr(0, why.find('\n'));
      if (why.rfind("--set #", 0) == 0 && why.find(": ") != std::string::npos) {
        why = why.substr(why.find(": ") + 2);
      }
      std::cout << "  m=" << m << ": skipped, " << why << "\n";
      continue;
    }
    const MicroBatchShape shape = MeanMicroBatchShape(*run);
    if (shape.fewest_rows > 0 && shape.fewest_rows < m) {
      std::cout << "  m=" << m << ": skipped, a batch of the data has only " << shape.fewest_rows
                << " rows\n";
      continue;
    }
    config::ModelConfig model = run->model();
    if (model.vocab_size() == 0) model.set_vocab_size(run->data().spm_vocab_size());
    UnitProfileOptions options;
    options.warmup = FLAGS_warmup;
    options.repetitions = FLAGS_reps;
    options.recompute = RecomputeOf(run->parallel());
    options.seed = run->train().seed();
    options.optimizer = OptimizerOptions::FromConfig(*run);
    options.scaler = LossScalerOptionsOf(run->parallel());
    options.backend = backend;
    options.compute_dtype = ComputeDTypeOf(run->parallel());
    const auto start = std::chrono::steady_clock::now();
    ModelProfile profile;
    PlanCosts costs;
    costs.micro_batches = m;
    ASSIGN_OR_RETURN(costs.costs, ProfileCostsAtMeanRows(model, shape.shape, shape.mean_rows,
                                                         options, &profile));
    const double message_bytes = static_cast<double>(BoundaryMessageBytes(model, shape.shape));
    costs.send_s = FLAGS_latency_us * 1e-6 + message_bytes / (FLAGS_bandwidth_gbps * 1e9);
    const StepShape measured{
        .rows = shape.mean_rows > 0 ? shape.mean_rows : static_cast<double>(shape.shape.batch),
        .source_len = shape.shape.source_len,
        .target_len = shape.shape.target_len};
    for (const StepShape& step : shape.sampled_steps) {
      costs.step_costs.push_back(ScaledToStep(costs.costs, model, measured, step));
    }
    char line[160];
    std::snprintf(
        line, sizeof(line),
        "  m=%d: micro-batch B=%.2f S=%lld T=%lld (work-weighted mean), measured in %.1f s\n", m,
        measured.rows, static_cast<long long>(measured.source_len),
        static_cast<long long>(measured.target_len), Seconds(start));
    std::cout << line << std::flush;
    candidates.push_back(std::move(costs));
  }
  if (candidates.empty()) {
    return InvalidArgument("no micro-batch count can run this config on " +
                           std::to_string(FLAGS_ranks) + " ranks (see the lines above)");
  }

  ASSIGN_OR_RETURN(const PlanSearch search, SearchPlans(candidates, planner));
  std::cout << "\n"
            << search.combinations << " combinations, " << search.splits_simulated
            << " splits simulated; best first:\n"
            << FormatPlanTable(search, FLAGS_top, tokens_per_step);
  const PlanChoice& best = search.choices.front();
  const PlanCosts* best_costs = nullptr;
  for (const PlanCosts& c : candidates) {
    if (c.micro_batches == best.micro_batches) best_costs = &c;
  }
  std::cout << "\nchosen: " << ScheduleKindName(best.kind) << ", " << best.micro_batches
            << " micro-batches, split from " << best.seed << ":\n"
            << FormatPartition(best.plan, best_costs->costs.units);
  // Busy time is what a rank's CPU time per step should come to (waits sleep): a check of the
  // costs that holds on a loaded machine, where wall-clock steps measure CPU shares.
  std::cout << "predicted per step: " << FormatPassTime(best.data_step_s);
  if (!best_costs->step_costs.empty()) {
    std::cout << " (mean over " << best_costs->step_costs.size() << " steps of the data; "
              << FormatPassTime(best.step_s) << " at the mean micro-batch)";
  }
  std::cout << "; busy per rank at the mean micro-batch:";
  for (const RankTimeline& rank : best.simulation.ranks) {
    std::cout << " " << FormatPassTime(rank.busy_s);
  }
  std::cout << "\n";

  const std::string fragment = PlanConfigFragment(best, FLAGS_ranks, tokens_per_step);
  CommandLine check = command_line;
  check.overrides.push_back(fragment);
  StatusOr<config::RunConfig> accepted = LoadRunConfig(check, /*require_file=*/true);
  if (!accepted.ok()) return accepted.status().WithContext("the chosen settings do not load");
  std::cout << "\nrun it with:\n  --set '" << fragment << "'\n";
  if (!FLAGS_out.empty()) {
    RETURN_IF_ERROR(ReplaceFileAtomically(FLAGS_out, fragment + "\n"));
    std::cout << "wrote " << FLAGS_out << " (use: --set \"$(cat " << FLAGS_out << ")\")\n";
  }
  return OkStatus();
}

}  // namespace deepnet
