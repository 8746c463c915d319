// Schedule kinds and names, option checks, and BuildSchedule: a compute skeleton from
// schedules/*.cc with its sends and receives posted by schedules/placement.cc.
#include "parallel/schedule.h"

#include <algorithm>
#include <cctype>
#include <utility>

#include "parallel/schedules/compute_order.h"

namespace deepnet {

bool IsCompute(ActionKind kind) {
  return kind == ActionKind::kForward || kind == ActionKind::kBackward ||
         kind == ActionKind::kBackwardInput || kind == ActionKind::kBackwardWeight;
}
bool IsSend(ActionKind kind) {
  return kind == ActionKind::kSendActivation || kind == ActionKind::kSendGradient;
}
bool IsRecv(ActionKind kind) {
  return kind == ActionKind::kRecvActivation || kind == ActionKind::kRecvGradient;
}
bool ReleasesActivations(ActionKind kind) {
  return kind == ActionKind::kBackward || kind == ActionKind::kBackwardWeight;
}

std::string_view ActionKindName(ActionKind kind) {
  switch (kind) {
    case ActionKind::kForward:
      return "forward";
    case ActionKind::kBackward:
      return "backward";
    case ActionKind::kBackwardInput:
      return "backward-input";
    case ActionKind::kBackwardWeight:
      return "backward-weight";
    case ActionKind::kSendActivation:
      return "send-act";
    case ActionKind::kRecvActivation:
      return "recv-act";
    case ActionKind::kSendGradient:
      return "send-grad";
    case ActionKind::kRecvGradient:
      return "recv-grad";
    case ActionKind::kReduceGradients:
      return "reduce-grads";
    case ActionKind::kOptimizerStep:
      return "optimizer-step";
  }
  return "?";
}

std::string_view ScheduleKindName(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::kGpipe:
      return "gpipe";
    case ScheduleKind::kOneFOneB:
      return "1f1b";
    case ScheduleKind::kInterleaved1F1B:
      return "interleaved";
    case ScheduleKind::kZeroBubbleH1:
      return "zb-h1";
  }
  return "?";
}

StatusOr<ScheduleKind> ParseScheduleKind(std::string_view name) {
  std::string key;
  for (char ch : name) {
    if (ch != '-' && ch != '_') {
      key += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    }
  }
  if (key == "gpipe") return ScheduleKind::kGpipe;
  if (key == "1f1b" || key == "onefoneb") return ScheduleKind::kOneFOneB;
  if (key == "interleaved" || key == "interleaved1f1b") return ScheduleKind::kInterleaved1F1B;
  if (key == "zbh1" || key == "zerobubbleh1") return ScheduleKind::kZeroBubbleH1;
  return InvalidArgument("unknown pipeline schedule \"" + std::string(name) +
                         "\"; expected gpipe, 1f1b, interleaved or zb-h1");
}

namespace {

std::string MicroBatchName(const Action& action) {
  std::string name = std::to_string(action.micro_batch);
  if (action.chunk != 0) name += "." + std::to_string(action.chunk);
  return name;
}

}  // namespace

std::string ToString(const Action& action) {
  switch (action.kind) {
    case ActionKind::kForward:
      return "F" + MicroBatchName(action);
    case ActionKind::kBackward:
    case ActionKind::kBackwardInput:
      return "B" + MicroBatchName(action);
    case ActionKind::kBackwardWeight:
      return "W" + MicroBatchName(action);
    case ActionKind::kSendActivation:
    case ActionKind::kSendGradient:
      return std::string(ActionKindName(action.kind)) + " " + MicroBatchName(action) + " -> " +
             std::to_string(action.peer);
    case ActionKind::kRecvActivation:
    case ActionKind::kRecvGradient:
      return std::string(ActionKindName(action.kind)) + " " + MicroBatchName(action) + " <- " +
             std::to_string(action.peer);
    case ActionKind::kReduceGradients:
    case ActionKind::kOptimizerStep:
      return std::string(ActionKindName(action.kind));
  }
  return "?";
}

std::string FormatSchedule(const std::vector<Action>& actions) {
  std::string text;
  for (size_t i = 0; i < actions.size(); ++i) {
    std::string index = std::to_string(i);
    text += std::string(index.size() < 4 ? 4 - index.size() : 0, ' ') + index;
    const std::string group = actions[i].group >= 0 ? "g" + std::to_string(actions[i].group) : "";
    text += " " + group + std::string(group.size() < 5 ? 5 - group.size() : 0, ' ');
    text += ToString(actions[i]) + "\n";
  }
  return text;
}

Status CheckScheduleOptions(ScheduleKind kind, const ScheduleOptions& options) {
  const int p = options.stages;
  const int m = options.micro_batches;
  const int v = options.virtual_chunks;
  if (p < 1) return InvalidArgument("pipeline stages must be >= 1, got " + std::to_string(p));
  if (m < 1) return InvalidArgument("micro-batches must be >= 1, got " + std::to_string(m));
  if (options.rank < 0 || options.rank >= p) {
    return InvalidArgument("rank " + std::to_string(options.rank) + " is outside [0, " +
                           std::to_string(p) + ")");
  }
  if (v < 1) return InvalidArgument("virtual chunks must be >= 1, got " + std::to_string(v));
  if (v > 1 && kind != ScheduleKind::kInterleaved1F1B) {
    return InvalidArgument(std::to_string(v) +
                           " chunks per rank need the interleaved schedule, not " +
                           std::string(ScheduleKindName(kind)));
  }
  if (v > 1 && p < 2) {
    return InvalidArgument("the interleaved schedule needs at least 2 stages");
  }
  if (v > 1 && m > p && m % p != 0) {
    return InvalidArgument(
        "the interleaved schedule runs micro-batches in groups of p = " + std::to_string(p) +
        "; micro-batches (" + std::to_string(m) + ") must be a multiple of it, or at most p");
  }
  return OkStatus();
}

StatusOr<std::vector<Action>> BuildSchedule(ScheduleKind kind, const ScheduleOptions& options) {
  RETURN_IF_ERROR(CheckScheduleOptions(kind, options));
  std::vector<Action> actions;
  switch (kind) {
    case ScheduleKind::kGpipe:
      actions = schedules::PostBetweenSteps(schedules::GpipeSteps(options), options);
      break;
    case ScheduleKind::kOneFOneB:
      actions = schedules::PostBetweenSteps(schedules::OneFOneBSteps(options), options);
      break;
    case ScheduleKind::kInterleaved1F1B:
      actions = schedules::PostBetweenSteps(options.virtual_chunks == 1
                                                ? schedules::OneFOneBSteps(options)
                                                : schedules::Interleaved1F1BSteps(options),
                                            options);
      break;
    case ScheduleKind::kZeroBubbleH1: {
      // Where a rank posts depends on its neighbours' timelines: build every skeleton.
      std::vector<std::vector<schedules::Step>> ranks;
      for (int r = 0; r < options.stages; ++r) {
        ScheduleOptions rank_options = options;
        rank_options.rank = r;
        ranks.push_back(schedules::ZeroBubbleH1Steps(rank_options));
      }
      actions = std::move(schedules::PostAtProducerTime(ranks, options)[options.rank]);
      break;
    }
  }
  if (options.optimizer_step) {
    actions.push_back({.kind = ActionKind::kReduceGradients});
    actions.push_back({.kind = ActionKind::kOptimizerStep});
  }
  return actions;
}

StatusOr<std::vector<std::vector<Action>>> BuildAllSchedules(ScheduleKind kind,
                                                             ScheduleOptions options) {
  options.rank = 0;
  RETURN_IF_ERROR(CheckScheduleOptions(kind, options));
  std::vector<std::vector<Action>> ranks;
  for (int r = 0; r < options.stages; ++r) {
    options.rank = r;
    ASSIGN_OR_RETURN(std::vector<Action> actions, BuildSchedule(kind, options));
    ranks.push_back(std::move(actions));
  }
  return ranks;
}

StatusOr<std::vector<int>> PeakActivationsPerChunk(ScheduleKind kind,
                                                   const ScheduleOptions& options) {
  ASSIGN_OR_RETURN(std::vector<std::vector<Action>> ranks, BuildAllSchedules(kind, options));
  const int p = options.stages;
  std::vector<int> peak(static_cast<size_t>(p) * options.virtual_chunks, 0);
  for (int r = 0; r < p; ++r) {
    std::vector<int> held(options.virtual_chunks, 0);
    for (const Action& action : ranks[r]) {
      const size_t k = static_cast<size_t>(action.chunk) * p + r;
      if (action.kind == ActionKind::kForward) peak[k] = std::max(peak[k], ++held[action.chunk]);
      if (ReleasesActivations(action.kind)) --held[action.chunk];
    }
  }
  return peak;
}

}  // namespace deepnet
