// `deepnet schedule --stages p --micro-batches m --schedule kind [--chunks v] [--costs F,B,W] |
// --from FILE, [--trace FILE] [--svg FILE] [--save FILE] [--iterations N]`: the schedule (built
// in, or read from a schedule file, parallel/schedule_file.h), validated, and its timeline under
// the pass costs (default F = B = W = 1; ZB-H2 and ZB-V are built for them) as text; optionally as
// a Chrome trace (one time unit = 1 ms), an SVG picture, and saved as a schedule file. With
// --iterations N > 1 also N steps back to back under optimizer post-validation (simulator.h), and
// the trace and picture show those N steps.
#include <filesystem>
#include <iostream>

#include "configs/stage_units.h"
#include "launcher/command_line.h"
#include "parallel/schedule.h"
#include "parallel/schedule_file.h"
#include "parallel/simulator.h"
#include "parallel/timeline.h"
#include "parallel/trace.h"
#include "profile/timeline_svg.h"
#include "runtime/atomic_file.h"

DEFINE_int32(stages, 0, kHelpInCommandTable);
DEFINE_int32(micro_batches, 0, kHelpInCommandTable);
DEFINE_string(schedule, "1f1b", kHelpInCommandTable);
DEFINE_int32(chunks, 0, kHelpInCommandTable);
DEFINE_string(trace, "", kHelpInCommandTable);
DEFINE_string(svg, "", kHelpInCommandTable);
DEFINE_string(from, "", kHelpInCommandTable);
DEFINE_string(save, "", kHelpInCommandTable);
DEFINE_string(costs, "1,1,1", kHelpInCommandTable);
DEFINE_int32(iterations, 1, kHelpInCommandTable);

namespace deepnet {
namespace {

Status WriteOutput(const std::string& path, std::string_view contents) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) RETURN_IF_ERROR(LocalFileSystem().CreateDirectories(parent.string()));
  RETURN_IF_ERROR(ReplaceFileAtomically(path, contents));
  std::cout << "wrote " << path << "\n";
  return OkStatus();
}

// --costs "F,B,W": whole time units per pass.
StatusOr<PassCosts> CostsOfFlag() {
  StatusOr<std::vector<int>> costs = ParseStageUnits(FLAGS_costs);  // positive integers, commas
  if (!costs.ok() || costs->size() != 3) {
    return InvalidArgument("--costs \"" + FLAGS_costs +
                           "\": expected F,B,W in whole time units, e.g. 1,2,1");
  }
  return PassCosts{.forward = (*costs)[0], .backward_input = (*costs)[1], .weight = (*costs)[2]};
}

// The schedule of --from, or the built-in one of --schedule: title, every rank's actions, where
// the chunks live.
struct ShownSchedule {
  std::string title;
  std::vector<std::vector<Action>> ranks;
  ChunkPlacement placement;
  int micro_batches = 0;
};

StatusOr<ShownSchedule> ScheduleToShow(const PassCosts& costs) {
  if (!FLAGS_from.empty()) {
    ASSIGN_OR_RETURN(FileSchedule file, ReadScheduleFile(FLAGS_from));
    const int p = file.placement.ranks();
    return ShownSchedule{.title = FLAGS_from + ": " + std::to_string(p) + " stages, " +
                                  std::to_string(file.micro_batches) + " micro-batches",
                         .ranks = std::move(file.ranks),
                         .placement = file.placement,
                         .micro_batches = file.micro_batches};
  }
  ASSIGN_OR_RETURN(const ScheduleKind kind, ParseScheduleKind(FLAGS_schedule));
  ScheduleOptions options;
  options.stages = FLAGS_stages > 0 ? FLAGS_stages : 4;
  options.micro_batches = FLAGS_micro_batches > 0 ? FLAGS_micro_batches : 8;
  options.pass_costs = costs;
  if (InfoOf(kind).takes_virtual_chunks) {
    options.virtual_chunks = FLAGS_chunks > 0 ? FLAGS_chunks : 2;
  } else if (FLAGS_chunks > 1) {
    return InvalidArgument("--chunks > 1 needs --schedule interleaved");
  }
  ShownSchedule shown;
  shown.title = std::string(ScheduleKindName(kind)) + ": " + std::to_string(options.stages) +
                " stages, " + std::to_string(options.micro_batches) + " micro-batches" +
                (options.virtual_chunks > 1
                     ? ", " + std::to_string(options.virtual_chunks) + " chunks per rank"
                     : "");
  ASSIGN_OR_RETURN(shown.ranks, BuildAllSchedules(kind, options));
  ASSIGN_OR_RETURN(shown.placement, PlacementOf(kind, options));
  shown.micro_batches = options.micro_batches;
  return shown;
}

}  // namespace

Status RunScheduleCommand(const CommandLine&) {
  if (FLAGS_iterations < 1) {
    return InvalidArgument("--iterations " + std::to_string(FLAGS_iterations) +
                           ": expected a step count >= 1");
  }
  ASSIGN_OR_RETURN(const PassCosts costs, CostsOfFlag());
  const SimulationCosts simulation_costs = SimulationCostsOf(costs);
  const std::string costs_title = "F = " + std::to_string(costs.forward) +
                                  ", B = " + std::to_string(costs.backward_input) +
                                  ", W = " + std::to_string(costs.weight);
  ASSIGN_OR_RETURN(ShownSchedule shown, ScheduleToShow(costs));
  shown.title += " (" + costs_title + ")";
  ASSIGN_OR_RETURN(const std::string plan,
                   RenderGivenPlan(shown.title, shown.ranks, shown.placement, shown.micro_batches,
                                   /*optimizer_step=*/true, simulation_costs));
  std::cout << plan;
  // One step is the plan above, with its synchronising collective; more overlap.
  ASSIGN_OR_RETURN(const IterationsSimulation iterations,
                   SimulateIterations(
                       shown.ranks, simulation_costs, shown.placement,
                       {.iterations = FLAGS_iterations, .post_validation = FLAGS_iterations > 1}));
  if (FLAGS_iterations > 1) {
    std::cout << "\n"
              << FLAGS_iterations
              << " steps with optimizer post-validation (each rank starts its next step when its "
                 "optimizer step ends; predicted only: the trainer synchronises every step)\n"
              << RenderIterationsSummary(iterations);
  }
  if (!FLAGS_save.empty()) {
    RETURN_IF_ERROR(WriteOutput(FLAGS_save, FormatScheduleFile(shown.ranks, shown.placement)));
  }
  if (FLAGS_trace.empty() && FLAGS_svg.empty()) return OkStatus();

  const Simulation& simulation = iterations.simulation;
  if (!FLAGS_trace.empty()) {
    SimulationTraceOptions trace_options;
    trace_options.us_per_second = 1e3;  // one time unit shows as 1 ms
    RETURN_IF_ERROR(WriteOutput(FLAGS_trace, SimulationTrace(simulation, trace_options).ToJson()));
  }
  if (!FLAGS_svg.empty()) {
    SvgTimelineOptions svg_options;
    svg_options.title = shown.title;
    if (FLAGS_iterations > 1) {
      svg_options.title += ", " + std::to_string(FLAGS_iterations) + " steps, post-validation";
    }
    svg_options.unit_costs = true;
    RETURN_IF_ERROR(WriteOutput(FLAGS_svg, RenderTimelineSvg(simulation, svg_options)));
  }
  return OkStatus();
}

}  // namespace deepnet
