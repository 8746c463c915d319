// `deepnet schedule --stages p --micro-batches m --schedule kind [--chunks v] [--trace FILE]
// [--svg FILE]`: the schedule's timeline under unit costs (F = B = W = 1) as text, and optionally
// as a Chrome trace (one time unit = 1 ms) and an SVG picture.
#include <filesystem>
#include <iostream>

#include "launcher/command_line.h"
#include "parallel/schedule.h"
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

namespace deepnet {
namespace {

Status WriteOutput(const std::string& path, std::string_view contents) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) RETURN_IF_ERROR(LocalFileSystem().CreateDirectories(parent.string()));
  RETURN_IF_ERROR(ReplaceFileAtomically(path, contents));
  std::cout << "wrote " << path << "\n";
  return OkStatus();
}

}  // namespace

Status RunScheduleCommand(const CommandLine&) {
  ASSIGN_OR_RETURN(const ScheduleKind kind, ParseScheduleKind(FLAGS_schedule));
  ScheduleOptions options;
  options.stages = FLAGS_stages > 0 ? FLAGS_stages : 4;
  options.micro_batches = FLAGS_micro_batches > 0 ? FLAGS_micro_batches : 8;
  if (kind == ScheduleKind::kInterleaved1F1B) {
    options.virtual_chunks = FLAGS_chunks > 0 ? FLAGS_chunks : 2;
  } else if (FLAGS_chunks > 1) {
    return InvalidArgument("--chunks > 1 needs --schedule interleaved");
  }
  ASSIGN_OR_RETURN(const std::string plan, RenderSchedulePlan(kind, options));
  std::cout << plan;
  if (FLAGS_trace.empty() && FLAGS_svg.empty()) return OkStatus();

  ASSIGN_OR_RETURN(const std::vector<std::vector<Action>> ranks, BuildAllSchedules(kind, options));
  ASSIGN_OR_RETURN(const Simulation simulation, Simulate(ranks, SimulationCosts{}));
  if (!FLAGS_trace.empty()) {
    SimulationTraceOptions trace_options;
    trace_options.us_per_second = 1e3;  // one time unit shows as 1 ms
    RETURN_IF_ERROR(WriteOutput(FLAGS_trace, SimulationTrace(simulation, trace_options).ToJson()));
  }
  if (!FLAGS_svg.empty()) {
    SvgTimelineOptions svg_options;
    svg_options.title = std::string(ScheduleKindName(kind)) + ": " +
                        std::to_string(options.stages) + " stages, " +
                        std::to_string(options.micro_batches) + " micro-batches" +
                        (options.virtual_chunks > 1
                             ? ", " + std::to_string(options.virtual_chunks) + " chunks per rank"
                             : "") +
                        " (F = B = W = 1)";
    svg_options.unit_costs = true;
    RETURN_IF_ERROR(WriteOutput(FLAGS_svg, RenderTimelineSvg(simulation, svg_options)));
  }
  return OkStatus();
}

}  // namespace deepnet
