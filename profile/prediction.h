// Step-time prediction from profiled unit costs: partition the model for each schedule, simulate
// the schedule with the stages' measured times, report step time and bubble.
//
// Letters: p stages (ranks), m micro-batches per step, v model chunks per rank (interleaved),
// model chunk k = c·p + r (schedule.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "configs/deepnet.pb.h"
#include "parallel/partitioner.h"
#include "parallel/schedule.h"
#include "parallel/simulator.h"
#include "profile/micro_batch_shape.h"
#include "profile/unit_profiler.h"
#include "runtime/status.h"

namespace deepnet {

struct PredictionOptions {
  int stages = 1;                  // p
  int micro_batches = 1;           // m
  int interleaved_chunks = 2;      // v for the interleaved schedule (others use 1)
  int64_t memory_limit_bytes = 0;  // per rank; 0 = no limit
  double send_s = 0.0;             // one activation or gradient message between stages
  int cores = 0;         // compute slots all ranks share (CPU ranks on one node); 0 = one per rank
  PassCosts pass_costs;  // the schedules are built with these (PassCostsOf of the run's config)
};

struct SchedulePrediction {
  ScheduleKind kind = ScheduleKind::kOneFOneB;
  int virtual_chunks = 1;
  Status status;  // not OK: no prediction (invalid options, or no split fits the memory)
  PartitionPlan plan;
  Simulation simulation;
  int64_t peak_stage_bytes = 0;  // the fullest rank (all its chunks)
};

// Bytes of one activation message at a stage boundary: the stream's (B, S, C) encoder and
// (B, T, C) decoder states at fp32 (both travel in an encoder-decoder model).
int64_t BoundaryMessageBytes(const config::ModelConfig& model, const ProfileShape& shape);

// Per model chunk: forward = Σ forward; fused backward = Σ (backward + recompute);
// B = Σ (backward_input + recompute), W = Σ backward_weight; per rank, optimizer = Σ optimizer
// over its chunks. The gradient-norm all-reduce (a few doubles) is taken as free.
SimulationCosts ChunkCosts(const PartitionPlan& plan, const ProfiledCosts& costs, double send_s);

// Partition for `kind` under the memory limit, then simulate its schedule.
SchedulePrediction PredictSchedule(const ProfiledCosts& costs, ScheduleKind kind,
                                   const PredictionOptions& options);
// GPipe, 1F1B, interleaved (when valid for p, m, v), ZB-H1.
std::vector<SchedulePrediction> PredictAllSchedules(const ProfiledCosts& costs,
                                                    const PredictionOptions& options);

// One line per schedule: step time, bubble, bottleneck (slowest stage or chunk, forward + backward
// + recompute per micro-batch), fullest rank, speed-up over one rank
// running all m micro-batches.
std::string FormatPredictions(const std::vector<SchedulePrediction>& predictions,
                              const ProfiledCosts& costs, int micro_batches);

// `costs` measured at `measured` (rows may be fractional: ProfileCostsAtMeanRows), scaled unit by
// unit to the shape of `step`: every pass time × the unit's analytic forward FLOPs at the step
// over those at `measured` (parallel/cost_model.h: linear in rows, with the attention terms in
// length²), so a step of long sources weighs on the encoder and one of long targets on the
// decoder. Bytes and optimizer times are per step, not per shape, and stay as they are.
ProfiledCosts ScaledToStep(const ProfiledCosts& costs, const config::ModelConfig& model,
                           const StepShape& measured, const StepShape& step);

// predictions.json: per schedule the step time, bubble and stage split (or the reason for none).
std::string PredictionsToJson(const std::vector<SchedulePrediction>& predictions,
                              const std::vector<UnitCost>& units);

// File stem of a schedule's outputs: "gpipe", "1f1b", "interleaved", "zb-h1".
std::string ScheduleFileStem(ScheduleKind kind);

}  // namespace deepnet
