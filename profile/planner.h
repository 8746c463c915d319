// Planner: from measured unit costs, pick the schedule, micro-batch count and pipeline split with
// the shortest predicted step under a per-rank memory limit (`deepnet plan`).
//
// Letters: p ranks (pipeline stages), m micro-batches per step, v model chunks per rank, S model
// chunks in all (p, p·v, or 2p for ZB-V), n units.
//
// The search, for every schedule × m (each m with the costs measured at its own micro-batch
// shape) × v (for schedules that take chunks):
// 1. seed splits: the partitioner's min-max split (with and without the memory limit), the
//    embedding alone in the first chunk, the output alone in the last chunk, and both;
// 2. from each seed, move one chunk boundary at a time by ±1, ±2, ±4, … units while the simulated
//    step gets shorter (steepest descent), so first and last chunks may end up uneven;
// 3. every split is simulated (prediction.h's ChunkCosts and the schedule simulator); a split whose
//    fullest rank (static bytes + held activations, as the partitioner counts them) is over the
//    limit is excluded.
// 4. each combination's best split is simulated again at every sampled step of the data
//    (PlanCosts::step_costs) and its predicted step is the mean over them (data_step_s).
// Choices are ranked by data_step_s, then the step at the mean micro-batch (both to the
// nanosecond), then lower peak memory, then the
// schedule's place in the list, fewer micro-batches, fewer chunks per rank, and the split's unit
// counts (lexicographic): equal inputs always give the same order.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "parallel/partitioner.h"
#include "parallel/schedule.h"
#include "parallel/simulator.h"
#include "profile/unit_profiler.h"
#include "runtime/status.h"

namespace deepnet {

// The measured costs of one micro-batch count (micro-batch shape = global batch / m).
struct PlanCosts {
  int micro_batches = 1;
  ProfiledCosts costs;
  double send_s = 0.0;  // one boundary message at this micro-batch shape
  // `costs` scaled to sampled steps of the data (prediction.h's ScaledToStep); empty = predict
  // at the mean micro-batch only.
  std::vector<ProfiledCosts> step_costs;
};

struct PlannerOptions {
  int ranks = 1;                                // p
  int64_t memory_limit_bytes = 0;               // per rank; 0 = no limit
  std::vector<ScheduleKind> schedules;          // in preference order; empty = AllScheduleKinds()
  std::vector<int> virtual_chunks = {2, 3, 4};  // v tried for schedules that take chunks
  int cores = 0;               // shared compute slots (prediction.h); 0 = one per rank
  PassCosts pass_costs;        // the schedules are built with these (PassCostsOf of the config)
  int max_refine_rounds = 64;  // boundary moves per seed at most
  // Called after each (schedule, m, v): a line such as "[3/24] zb-h1 m=4: 3.01 s (41 splits)".
  std::function<void(const std::string&)> progress;
};

struct PlanChoice {
  ScheduleKind kind = ScheduleKind::kOneFOneB;
  int virtual_chunks = 1;
  int micro_batches = 1;
  std::vector<int> segment_units;  // units per model chunk, model order (parallel.stage_units)
  std::string seed;                // where the split came from: "min-max", "embedding alone", ...
  PartitionPlan plan;
  Simulation simulation;
  double step_s = 0.0;  // simulated at the mean micro-batch
  double bubble = 0.0;
  // The mean simulated step over PlanCosts::step_costs (step_s without them): steps whose shapes
  // load the ranks unevenly wait longer than the mean shape shows.
  double data_step_s = 0.0;
  std::vector<int64_t> rank_bytes;  // per rank: its chunks' static bytes + held activations
  int64_t peak_rank_bytes = 0;
};

struct PlanSearch {
  std::vector<PlanChoice> choices;  // the best split of each (schedule, m, v) that fits, best first
  std::vector<std::string> skipped;  // combinations without a schedule, with the reason
  int combinations = 0;              // (schedule, m, v) tried
  int splits_simulated = 0;
};

// The search above. ResourceExhausted when no split of any combination fits the memory limit: the
// message names the leanest candidate found and how far over the limit it is. InvalidArgument for
// bad options (no costs, p < 1).
StatusOr<PlanSearch> SearchPlans(const std::vector<PlanCosts>& candidates,
                                 const PlannerOptions& options);

// Whether `a` ranks before `b` (the order above).
bool RanksBefore(const PlanChoice& a, const PlanChoice& b, const std::vector<ScheduleKind>& order);

// The top `top` choices as a table: rank, schedule, v, m, tokens per micro-batch, split, predicted
// step, bubble, peak memory per rank. `tokens_per_step` = the fixed global batch in tokens.
std::string FormatPlanTable(const PlanSearch& search, int top, int64_t tokens_per_step);

// The chosen settings as a text-format RunConfig fragment for `--set`, one line:
// parallel { pipeline_stages: 2 schedule: ZERO_BUBBLE_H1 micro_batches: 4 virtual_chunks: 1
// stage_units: "2,500,500" } data { max_tokens_per_batch: 256 }
std::string PlanConfigFragment(const PlanChoice& choice, int ranks, int64_t tokens_per_step);

// The parallel.schedule enum name of `kind` (e.g. "ZERO_BUBBLE_H1").
std::string ConfigScheduleName(ScheduleKind kind);

}  // namespace deepnet
