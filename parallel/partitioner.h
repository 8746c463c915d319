// Pipeline partitioner: splits the model's n units into contiguous segments (one per model chunk
// of the schedule's ChunkPlacement: p stages, p·v for interleaved, 2p for ZB-V) so that the
// slowest segment is as fast as possible while every segment fits its memory (docs/design.md#partitioner).
//
// Segment j takes units [first, end), at least one, and needs
//   time   = Σ (forward + backward + recompute)
//   memory = Σ (params + grads + optimizer) + held_j · Σ activation_bytes
// where held_j is the peak number of micro-batches whose activations it keeps under the schedule
// (1F1B: min(p−r, m); GPipe: m; ZB-H1: min(p, m); interleaved: per chunk, from its schedule).
//
// Exact: bisection on the bottleneck time with an O(segments · n) feasibility sweep (the set of
// unit positions reachable after j segments; any sub-range of a segment that fits also fits),
// then snapped to the smallest achievable bottleneck, which is always a sum of a unit range.
// A 1,000-unit model splits into 16 stages in milliseconds.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "parallel/cost_model.h"
#include "parallel/schedule.h"
#include "runtime/status.h"

namespace deepnet {

struct SegmentBudget {
  int activations_held = 1;        // micro-batches of activations kept at peak
  int64_t memory_limit_bytes = 0;  // 0 = no limit
};

struct StagePlan {
  int rank = 0;
  int chunk = 0;  // local chunk on the rank (ChunkPlacement::LocalOf of the model chunk)
  int first_unit = 0;
  int end_unit = 0;  // one past the last unit
  double time_s = 0.0;
  int64_t memory_bytes = 0;
  int activations_held = 0;
  double share_of_slowest = 0.0;  // time_s / bottleneck_s
};

struct PartitionPlan {
  std::vector<StagePlan> stages;  // in model order
  double bottleneck_s = 0.0;      // the slowest segment's time
};

// Splits `units` into budgets.size() segments, one budget each (model order). When no split fits
// the memory limits, kResourceExhausted says how much memory the best split would need.
StatusOr<PartitionPlan> PartitionSegments(const std::vector<UnitCost>& units,
                                          const std::vector<SegmentBudget>& budgets);

// The least achievable memory of the fullest segment, over all splits (limits ignored).
StatusOr<int64_t> MinimumPeakMemory(const std::vector<UnitCost>& units,
                                    const std::vector<int>& activations_held);

struct PartitionOptions {
  int stages = 1;
  int virtual_chunks = 1;
  int micro_batches = 1;
  ScheduleKind schedule = ScheduleKind::kOneFOneB;
  PassCosts pass_costs;  // what the schedule is built with (ZB-H2/ZB-V orders depend on it)
  // Per rank; 0 = no limit. With v > 1 chunks per rank each chunk gets an equal share (limit / v),
  // a sufficient condition that keeps the split exact per chunk.
  int64_t memory_limit_bytes = 0;
  // Units per segment in model order (parallel.stage_units, `deepnet plan`): when set, the split
  // is taken as given, not searched, and the memory limit applies to each rank's total.
  std::vector<int> segment_units;
};

// Partition for a schedule: budgets from the schedule's peak activations per model chunk, ranks
// and local chunks from its placement.
StatusOr<PartitionPlan> PartitionUnits(const std::vector<UnitCost>& units,
                                       const PartitionOptions& options);
// The same for a given placement and peak activations per model chunk (a schedule from a file,
// or one already built); `segment_units`, when not empty, is the split to take as given.
StatusOr<PartitionPlan> PartitionChunks(const std::vector<UnitCost>& units,
                                        const ChunkPlacement& placement,
                                        const std::vector<int>& held,
                                        int64_t memory_limit_bytes,
                                        const std::vector<int>& segment_units = {});

// One line per segment: rank, chunk, [first, end), first..last unit names, time, memory,
// activations held, % of the slowest.
std::string FormatPartition(const PartitionPlan& plan, const std::vector<UnitCost>& units);

}  // namespace deepnet
