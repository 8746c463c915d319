// Communication posting: which sends and receives a compute action implies, and where in a
// rank's list they are posted.
#include <algorithm>
#include <tuple>
#include <utility>

#include "parallel/schedules/compute_order.h"
#include "parallel/simulator.h"

namespace deepnet::schedules {
namespace {

bool IsBackwardPass(ActionKind kind) {
  return kind == ActionKind::kBackward || kind == ActionKind::kBackwardInput;
}

// The receive a compute action waits for, if any, appended to `out`. None when the neighbouring
// chunk is on this rank (local hand-off).
void AppendRecv(const Action& compute, const ChunkPlacement& placement, int rank,
                std::vector<Action>& out) {
  const int k = placement.ModelChunk(rank, compute.chunk);
  if (compute.kind == ActionKind::kForward && k > 0 && !placement.LocalEdge(k - 1)) {
    out.push_back(
        {ActionKind::kRecvActivation, compute.micro_batch, compute.chunk, placement.RankOf(k - 1)});
  }
  if (IsBackwardPass(compute.kind) && k < placement.num_chunks() - 1 && !placement.LocalEdge(k)) {
    out.push_back(
        {ActionKind::kRecvGradient, compute.micro_batch, compute.chunk, placement.RankOf(k + 1)});
  }
}

// The send of a compute action's result, if any, appended to `out`.
void AppendSend(const Action& compute, const ChunkPlacement& placement, int rank,
                std::vector<Action>& out) {
  const int k = placement.ModelChunk(rank, compute.chunk);
  if (compute.kind == ActionKind::kForward && k < placement.num_chunks() - 1 &&
      !placement.LocalEdge(k)) {
    out.push_back(
        {ActionKind::kSendActivation, compute.micro_batch, compute.chunk, placement.RankOf(k + 1)});
  }
  if (IsBackwardPass(compute.kind) && k > 0 && !placement.LocalEdge(k - 1)) {
    out.push_back(
        {ActionKind::kSendGradient, compute.micro_batch, compute.chunk, placement.RankOf(k - 1)});
  }
}

// The receive on the peer that matches `send`, posted by rank `rank`.
Action MatchingRecv(const Action& send, int rank, const ChunkPlacement& placement) {
  const int k = placement.ModelChunk(rank, send.chunk);
  if (send.kind == ActionKind::kSendActivation) {
    return {ActionKind::kRecvActivation, send.micro_batch, placement.LocalOf(k + 1), rank};
  }
  return {ActionKind::kRecvGradient, send.micro_batch, placement.LocalOf(k - 1), rank};
}

double PassCost(ActionKind kind, const PassCosts& costs) {
  switch (kind) {
    case ActionKind::kForward:
      return costs.forward;
    case ActionKind::kBackward:
      return costs.backward_input + costs.weight;
    case ActionKind::kBackwardInput:
      return costs.backward_input;
    default:
      return costs.weight;
  }
}

}  // namespace

StatusOr<std::vector<std::vector<double>>> PassCostEndTimes(
    const std::vector<std::vector<Action>>& ranks, const ScheduleOptions& o,
    const ChunkPlacement& placement) {
  const int p = o.stages;
  const int chunks = placement.num_chunks();
  // [direction][model chunk][micro-batch]: when the forward / backward output was produced.
  std::vector<std::vector<std::vector<double>>> produced(
      2, std::vector<std::vector<double>>(chunks, std::vector<double>(o.micro_batches, -1.0)));
  std::vector<std::vector<double>> ends(p);
  std::vector<double> free_at(p, 0.0);
  bool progress = true;
  while (progress) {
    progress = false;
    for (int r = 0; r < p; ++r) {
      while (ends[r].size() < ranks[r].size()) {
        const Action& a = ranks[r][ends[r].size()];
        const int k = placement.ModelChunk(r, a.chunk);
        double ready = 0.0;
        if (a.kind == ActionKind::kForward && k > 0) ready = produced[0][k - 1][a.micro_batch];
        if (IsBackwardPass(a.kind) && k < chunks - 1) ready = produced[1][k + 1][a.micro_batch];
        if (ready < 0) break;
        free_at[r] = std::max(free_at[r], ready) + PassCost(a.kind, o.pass_costs);
        ends[r].push_back(free_at[r]);
        if (a.kind == ActionKind::kForward) produced[0][k][a.micro_batch] = free_at[r];
        if (IsBackwardPass(a.kind)) produced[1][k][a.micro_batch] = free_at[r];
        progress = true;
      }
    }
  }
  for (int r = 0; r < p; ++r) {
    if (ends[r].size() < ranks[r].size()) {
      return FailedPrecondition("rank " + std::to_string(r) + " can never run its action " +
                                std::to_string(ends[r].size()) + " (" +
                                ToString(ranks[r][ends[r].size()]) +
                                "): its input is never produced before it");
    }
  }
  return ends;
}

std::vector<std::vector<Step>> EveryRank(std::vector<Step> (*steps)(const ScheduleOptions&),
                                         const ScheduleOptions& options) {
  std::vector<std::vector<Step>> ranks;
  for (int r = 0; r < options.stages; ++r) {
    ScheduleOptions rank_options = options;
    rank_options.rank = r;
    ranks.push_back(steps(rank_options));
  }
  return ranks;
}

std::vector<std::vector<Action>> PostBetweenSteps(const std::vector<std::vector<Step>>& ranks,
                                                  const ScheduleOptions&,
                                                  const ChunkPlacement& placement) {
  std::vector<std::vector<Action>> all;
  for (int rank = 0; rank < static_cast<int>(ranks.size()); ++rank) {
    std::vector<Action> actions;
    std::vector<Action> sends;  // of the previous step, not yet posted
    int next_group = 0;
    auto post = [&](std::vector<Action> group) {
      if (group.empty()) return;
      for (Action& action : group) action.group = next_group;
      ++next_group;
      actions.insert(actions.end(), group.begin(), group.end());
    };
    for (const Step& step : ranks[rank]) {
      std::vector<Action> group = std::move(sends);
      for (const Action& compute : step) AppendRecv(compute, placement, rank, group);
      post(std::move(group));
      sends.clear();
      for (const Action& compute : step) {
        actions.push_back(compute);
        AppendSend(compute, placement, rank, sends);
      }
    }
    post(std::move(sends));
    all.push_back(std::move(actions));
  }
  return all;
}

StatusOr<std::vector<std::vector<Action>>> PostAtProducerTime(
    const std::vector<std::vector<Step>>& ranks, const ScheduleOptions& options,
    const ChunkPlacement& placement) {
  const int p = options.stages;
  std::vector<std::vector<Action>> computes(p);
  for (int r = 0; r < p; ++r) {
    for (const Step& step : ranks[r])
      computes[r].insert(computes[r].end(), step.begin(), step.end());
  }
  ASSIGN_OR_RETURN(const std::vector<std::vector<double>> ends,
                   PassCostEndTimes(computes, options, placement));
  // Per rank: (gap = computes finished before it, time, posting order, action).
  std::vector<std::vector<std::tuple<int, double, int, Action>>> posts(p);
  auto gap_at = [&](int rank, double time) {
    return static_cast<int>(std::upper_bound(ends[rank].begin(), ends[rank].end(), time) -
                            ends[rank].begin());
  };
  for (int r = 0; r < p; ++r) {
    for (size_t i = 0; i < computes[r].size(); ++i) {
      std::vector<Action> sends;
      AppendSend(computes[r][i], placement, r, sends);
      for (const Action& send : sends) {
        const double time = ends[r][i];
        posts[r].emplace_back(static_cast<int>(i) + 1, time, posts[r].size(), send);
        posts[send.peer].emplace_back(gap_at(send.peer, time), time, posts[send.peer].size(),
                                      MatchingRecv(send, r, placement));
      }
    }
  }
  std::vector<std::vector<Action>> actions(p);
  for (int r = 0; r < p; ++r) {
    std::sort(posts[r].begin(), posts[r].end(), [](const auto& a, const auto& b) {
      return std::tie(std::get<0>(a), std::get<1>(a), std::get<2>(a)) <
             std::tie(std::get<0>(b), std::get<1>(b), std::get<2>(b));
    });
    int group = -1;
    size_t next = 0;
    for (size_t gap = 0; gap <= computes[r].size(); ++gap) {
      for (; next < posts[r].size() && std::get<0>(posts[r][next]) == static_cast<int>(gap);
           ++next) {
        const bool same_moment = next > 0 &&
                                 std::get<0>(posts[r][next - 1]) == static_cast<int>(gap) &&
                                 std::get<1>(posts[r][next - 1]) == std::get<1>(posts[r][next]);
        if (!same_moment) ++group;
        Action action = std::get<3>(posts[r][next]);
        action.group = group;
        actions[r].push_back(action);
      }
      if (gap < computes[r].size()) actions[r].push_back(computes[r][gap]);
    }
  }
  return actions;
}

double PostedStepEnd(const std::vector<std::vector<Step>>& ranks, const ScheduleOptions& options,
                     const ChunkPlacement& placement) {
  StatusOr<std::vector<std::vector<Action>>> posted = PostAtProducerTime(ranks, options, placement);
  if (!posted.ok()) return -1.0;
  StatusOr<Simulation> simulation =
      Simulate(*posted, SimulationCostsOf(options.pass_costs), placement);
  return simulation.ok() ? simulation->makespan_s : -1.0;
}

namespace {
constexpr double kTimingSlack = 1e-9;  // simulated times are sums of pass costs
}  // namespace

bool PostedTiming::NoWorseThan(const PostedTiming& other) const {
  if (step_end < other.step_end - kTimingSlack) return true;
  return NotLongerThan(other);
}

bool PostedTiming::NotLongerThan(const PostedTiming& other) const {
  return step_end <= other.step_end + kTimingSlack && period <= other.period + kTimingSlack;
}

std::optional<PostedTiming> PostedTimingOf(const std::vector<std::vector<Step>>& ranks,
                                           const ScheduleOptions& options,
                                           const ChunkPlacement& placement) {
  // Overlapped steps simulated: enough for the period to settle.
  constexpr int kStepsSimulated = 6;
  StatusOr<std::vector<std::vector<Action>>> posted = PostAtProducerTime(ranks, options, placement);
  if (!posted.ok()) return std::nullopt;
  StatusOr<IterationsSimulation> steps =
      SimulateIterations(*posted, SimulationCostsOf(options.pass_costs), placement,
                         {.iterations = kStepsSimulated, .post_validation = true});
  if (!steps.ok()) return std::nullopt;
  return PostedTiming{.step_end = steps->iteration_end_s.front(), .period = steps->period_s};
}

}  // namespace deepnet::schedules
