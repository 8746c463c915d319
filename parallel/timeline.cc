// Text rendering of simulated schedules.
#include "parallel/timeline.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <vector>

#include "parallel/validate.h"

namespace deepnet {
namespace {

std::string FormatNumber(double value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.4g", value);
  return text;
}

std::string Pad(const std::string& text, size_t width) {
  return text + std::string(width > text.size() ? width - text.size() : 0, ' ');
}

double ShortestCompute(const Simulation& simulation) {
  double shortest = std::numeric_limits<double>::infinity();
  for (const RankTimeline& rank : simulation.ranks) {
    for (const TimedAction& t : rank.actions) {
      if (IsCompute(t.action.kind) && t.end_s > t.start_s) {
        shortest = std::min(shortest, t.end_s - t.start_s);
      }
    }
  }
  return std::isfinite(shortest) ? shortest : 1.0;
}

// Whether the lists hold both fused backwards and W passes (a B/W-split schedule that fused some).
bool MixesFusedAndSplit(const std::vector<std::vector<Action>>& ranks) {
  bool fused = false, split = false;
  for (const std::vector<Action>& actions : ranks) {
    for (const Action& a : actions) {
      fused |= a.kind == ActionKind::kBackward;
      split |= a.kind == ActionKind::kBackwardWeight;
    }
  }
  return fused && split;
}

}  // namespace

std::string RenderTimeline(const Simulation& simulation, const TimelineOptions& options) {
  const double unit = options.time_unit_s > 0 ? options.time_unit_s : ShortestCompute(simulation);
  const int total = static_cast<int>(std::ceil(simulation.makespan_s / unit - 1e-9));
  const int columns = std::clamp(total, 0, options.max_columns);
  // cells[r][col]: a label where an action starts, "-" where it goes on, "" when idle.
  std::vector<std::vector<std::string>> cells(simulation.ranks.size(),
                                              std::vector<std::string>(columns));
  size_t width = 1;
  for (size_t r = 0; r < simulation.ranks.size(); ++r) {
    for (const TimedAction& t : simulation.ranks[r].actions) {
      if (!IsCompute(t.action.kind) || t.end_s <= t.start_s) continue;
      const int first = static_cast<int>(std::lround(t.start_s / unit));
      const int end = std::max(first + 1, static_cast<int>(std::lround(t.end_s / unit)));
      const std::string label = ToString(t.action);
      width = std::max(width, label.size());
      for (int col = first; col < std::min(end, columns); ++col) {
        cells[r][col] = col == first ? label : "-";
      }
    }
  }
  std::string text;
  for (size_t r = 0; r < cells.size(); ++r) {
    text += Pad("rank " + std::to_string(r), 8) + "|";
    for (const std::string& cell : cells[r]) {
      const std::string shown = cell.empty() ? "." : cell == "-" ? std::string(width, '-') : cell;
      text += " " + Pad(shown, width);
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    text += columns < total ? " ...\n" : "\n";
  }
  return text;
}

std::string RenderSummary(const Simulation& simulation) {
  std::string text;
  for (size_t r = 0; r < simulation.ranks.size(); ++r) {
    const RankTimeline& rank = simulation.ranks[r];
    const double share =
        simulation.makespan_s > 0 ? 100.0 * rank.idle_s / simulation.makespan_s : 0;
    text += Pad("rank " + std::to_string(r), 8) + "busy " + FormatNumber(rank.busy_s) + "  idle " +
            FormatNumber(rank.idle_s) + " (" + FormatNumber(share) + "%)  peak activations " +
            std::to_string(rank.peak_activations) + "\n";
  }
  text += "makespan " + FormatNumber(simulation.makespan_s) + "  bubble " +
          FormatNumber(100.0 * simulation.bubble_fraction) + "% (idle / total)\n";
  return text;
}

std::string RenderIterationsSummary(const IterationsSimulation& iterations) {
  std::string text = "step ends";
  for (double end : iterations.iteration_end_s) text += " " + FormatNumber(end);
  text += "\nsteady state: period " + FormatNumber(iterations.period_s) + "  bubble " +
          FormatNumber(100.0 * iterations.bubble_fraction) + "% (idle / total)\n";
  return text;
}

StatusOr<std::string> RenderSchedulePlan(ScheduleKind kind, const ScheduleOptions& options,
                                         const SimulationCosts& costs,
                                         const TimelineOptions& timeline) {
  ASSIGN_OR_RETURN(std::vector<std::vector<Action>> ranks, BuildAllSchedules(kind, options));
  ASSIGN_OR_RETURN(ChunkPlacement placement, PlacementOf(kind, options));
  std::string title = std::string(ScheduleKindName(kind)) + ": " + std::to_string(options.stages) +
                      " stages, " + std::to_string(options.micro_batches) + " micro-batches";
  if (options.virtual_chunks > 1) {
    title += ", " + std::to_string(options.virtual_chunks) + " chunks per rank";
  }
  return RenderGivenPlan(title, ranks, placement, options.micro_batches, options.optimizer_step,
                         costs, timeline);
}

StatusOr<std::string> RenderGivenPlan(const std::string& title,
                                      const std::vector<std::vector<Action>>& ranks,
                                      const ChunkPlacement& placement, int micro_batches,
                                      bool optimizer_step, const SimulationCosts& costs,
                                      const TimelineOptions& timeline) {
  RETURN_IF_ERROR(ValidateSchedules(
      ranks,
      {.micro_batches = micro_batches, .placement = placement, .optimizer_step = optimizer_step}));
  ASSIGN_OR_RETURN(Simulation simulation, Simulate(ranks, costs, placement));
  std::string text = title;
  if (placement != ChunkPlacement::Looped(placement.ranks(), placement.max_chunks_per_rank())) {
    text += "; chunks placed " + placement.Describe();
  }
  text += "\n" + RenderTimeline(simulation, timeline) + RenderSummary(simulation);
  if (MixesFusedAndSplit(ranks)) {
    text += "a B spanning B + W is a fused backward: a W that ran right after its own B\n";
  }
  return text;
}

}  // namespace deepnet
