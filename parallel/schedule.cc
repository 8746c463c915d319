// Action names, option checks, and BuildSchedule: the kind's entry in schedule_kinds.cc gives the
// placement and the actions (a skeleton from schedules/*.cc posted by schedules/posting.cc).
#include "parallel/schedule.h"

#include <algorithm>
#include <cctype>
#include <utility>

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

std::string_view ScheduleKindName(ScheduleKind kind) { return InfoOf(kind).name; }

namespace {

// Lower case without '-' and '_': "ZERO_BUBBLE_V" and "zero-bubble-v" compare equal.
std::string NameKey(std::string_view name) {
  std::string key;
  for (char ch : name) {
    if (ch != '-' && ch != '_') {
      key += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    }
  }
  return key;
}

}  // namespace

std::string ScheduleKindNames() {
  std::string names;
  const std::vector<ScheduleKindInfo>& kinds = AllScheduleKinds();
  for (size_t i = 0; i < kinds.size(); ++i) {
    names += (i == 0 ? "" : i + 1 == kinds.size() ? " or " : ", ") + std::string(kinds[i].name);
  }
  return names;
}

StatusOr<ScheduleKind> ParseScheduleKind(std::string_view name) {
  const std::string key = NameKey(name);
  for (const ScheduleKindInfo& info : AllScheduleKinds()) {
    if (key == NameKey(info.name) || key == NameKey(info.config_name)) return info.kind;
  }
  if (key == "onefoneb") return ScheduleKind::kOneFOneB;
  if (key == "interleaved1f1b") return ScheduleKind::kInterleaved1F1B;
  return InvalidArgument("unknown pipeline schedule \"" + std::string(name) + "\"; expected " +
                         ScheduleKindNames());
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
  const ScheduleKindInfo& info = InfoOf(kind);
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
  const PassCosts& c = options.pass_costs;
  constexpr int kMaxPassCost = 64;  // keeps the list scheduler's timeline short
  for (const int cost : {c.forward, c.backward_input, c.weight}) {
    if (cost < 1 || cost > kMaxPassCost) {
      return InvalidArgument("pass costs must be whole units in [1, " +
                             std::to_string(kMaxPassCost) + "], got F " +
                             std::to_string(c.forward) + ", B " +
                             std::to_string(c.backward_input) + ", W " + std::to_string(c.weight));
    }
  }
  if (v > 1 && !info.takes_virtual_chunks) {
    return InvalidArgument(std::to_string(v) +
                           " chunks per rank need the interleaved schedule, not " +
                           std::string(info.name));
  }
  return info.check != nullptr ? info.check(options) : OkStatus();
}

StatusOr<ChunkPlacement> PlacementOf(ScheduleKind kind, const ScheduleOptions& options) {
  ScheduleOptions any_rank = options;
  any_rank.rank = 0;
  RETURN_IF_ERROR(CheckScheduleOptions(kind, any_rank));
  return InfoOf(kind).placement(options);
}

StatusOr<std::vector<Action>> BuildSchedule(ScheduleKind kind, const ScheduleOptions& options) {
  RETURN_IF_ERROR(CheckScheduleOptions(kind, options));
  ASSIGN_OR_RETURN(std::vector<std::vector<Action>> ranks, BuildAllSchedules(kind, options));
  return std::move(ranks[options.rank]);
}

StatusOr<std::vector<std::vector<Action>>> BuildAllSchedules(ScheduleKind kind,
                                                             ScheduleOptions options) {
  options.rank = 0;
  ASSIGN_OR_RETURN(const ChunkPlacement placement, PlacementOf(kind, options));
  ASSIGN_OR_RETURN(std::vector<std::vector<Action>> ranks, InfoOf(kind).build(options, placement));
  if (options.optimizer_step) {
    for (std::vector<Action>& actions : ranks) {
      actions.push_back({.kind = ActionKind::kReduceGradients});
      actions.push_back({.kind = ActionKind::kOptimizerStep});
    }
  }
  return ranks;
}

std::vector<int> PeakActivationsPerChunk(const std::vector<std::vector<Action>>& ranks,
                                         const ChunkPlacement& placement) {
  std::vector<int> peak(placement.num_chunks(), 0);
  std::vector<int> held(placement.num_chunks(), 0);
  for (int r = 0; r < static_cast<int>(ranks.size()); ++r) {
    for (const Action& action : ranks[r]) {
      if (!IsCompute(action.kind)) continue;
      const int k = placement.ModelChunk(r, action.chunk);
      if (action.kind == ActionKind::kForward) peak[k] = std::max(peak[k], ++held[k]);
      if (ReleasesActivations(action.kind)) --held[k];
    }
  }
  return peak;
}

StatusOr<std::vector<int>> PeakActivationsPerChunk(ScheduleKind kind,
                                                   const ScheduleOptions& options) {
  ASSIGN_OR_RETURN(const std::vector<std::vector<Action>> ranks, BuildAllSchedules(kind, options));
  ASSIGN_OR_RETURN(const ChunkPlacement placement, PlacementOf(kind, options));
  return PeakActivationsPerChunk(ranks, placement);
}

}  // namespace deepnet
