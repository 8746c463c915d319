// Text rendering of a simulated schedule: one row per rank, one column per time unit.
//
//   rank 0 | F0 F1 F2 F3 B0 -- F4 B1 -- ...
//
// F forward, B backward (the B pass under zb-h1), W weight pass, "F3.1" micro-batch 3 on local
// chunk 1, "--" the action goes on, "." idle. This is what `deepnet schedule` prints.
#pragma once

#include <string>
#include <vector>

#include "parallel/schedule.h"
#include "parallel/simulator.h"
#include "runtime/status.h"

namespace deepnet {

struct TimelineOptions {
  double time_unit_s = 0.0;  // seconds per column; 0 = the shortest compute action
  int max_columns = 240;     // longer timelines are cut, with "..." at the end
};

std::string RenderTimeline(const Simulation& simulation, const TimelineOptions& options = {});
// Per rank busy / idle / peak activations, then makespan and bubble.
std::string RenderSummary(const Simulation& simulation);
// Consecutive steps (SimulateIterations): when each ends, then the steady-state period and bubble.
std::string RenderIterationsSummary(const IterationsSimulation& iterations);

// Builds every rank's schedule, validates it, simulates it and renders title, timeline and
// summary: the whole output of `deepnet schedule --stages p --micro-batches m --schedule kind`.
StatusOr<std::string> RenderSchedulePlan(ScheduleKind kind, const ScheduleOptions& options,
                                         const SimulationCosts& costs = {},
                                         const TimelineOptions& timeline = {});
// The same for given lists (a schedule read from a file): validated, simulated, rendered under
// `title`.
StatusOr<std::string> RenderGivenPlan(const std::string& title,
                                      const std::vector<std::vector<Action>>& ranks,
                                      const ChunkPlacement& placement, int micro_batches,
                                      bool optimizer_step, const SimulationCosts& costs = {},
                                      const TimelineOptions& timeline = {});

}  // namespace deepnet
