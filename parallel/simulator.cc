// Schedule simulator: advances each rank as far as it can, repeatedly, until all finish or none
// can move (deadlock). Post times are fixed once posted, so the result does not depend on the
// order in which ranks are visited.
#include "parallel/simulator.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <tuple>

namespace deepnet {

SimulationCosts SimulationCostsOf(const PassCosts& costs) {
  SimulationCosts simulation;
  simulation.forward_s = {static_cast<double>(costs.forward)};
  simulation.backward_input_s = {static_cast<double>(costs.backward_input)};
  simulation.backward_weight_s = {static_cast<double>(costs.weight)};
  return simulation;
}
namespace {

// (is gradient, micro-batch, edge k between model chunks k and k+1, source rank, dest rank).
using TransferKey = std::tuple<bool, int, int, int, int>;

bool TalksDownstream(ActionKind kind) {  // to model chunk k+1
  return kind == ActionKind::kSendActivation || kind == ActionKind::kRecvGradient;
}

TransferKey KeyOf(const Action& a, int rank, const ChunkPlacement& placement) {
  const int k = placement.ModelChunk(rank, a.chunk);
  const bool gradient = a.kind == ActionKind::kSendGradient || a.kind == ActionKind::kRecvGradient;
  const bool send = IsSend(a.kind);
  return {gradient, a.micro_batch, TalksDownstream(a.kind) ? k : k - 1, send ? rank : a.peer,
          send ? a.peer : rank};
}

// The action the peer must post to complete `a` (for deadlock reports).
Action CounterpartOf(const Action& a, int rank, const ChunkPlacement& placement) {
  const int k = placement.ModelChunk(rank, a.chunk);
  const int peer_chunk = TalksDownstream(a.kind) ? k + 1 : k - 1;
  ActionKind kind = ActionKind::kRecvActivation;
  switch (a.kind) {
    case ActionKind::kSendActivation:
      kind = ActionKind::kRecvActivation;
      break;
    case ActionKind::kRecvActivation:
      kind = ActionKind::kSendActivation;
      break;
    case ActionKind::kSendGradient:
      kind = ActionKind::kRecvGradient;
      break;
    default:
      kind = ActionKind::kSendGradient;
      break;
  }
  return Action{.kind = kind,
                .micro_batch = a.micro_batch,
                .chunk = placement.LocalOf(std::clamp(peer_chunk, 0, placement.num_chunks() - 1)),
                .peer = rank};
}

class Simulator {
 public:
  Simulator(const std::vector<std::vector<Action>>& ranks, const SimulationCosts& costs,
            const ChunkPlacement& placement)
      : ranks_(ranks),
        costs_(costs),
        placement_(placement),
        p_(static_cast<int>(ranks.size())),
        state_(p_),
        reduce_posted_(p_) {
    result_.ranks.resize(p_);
  }

  // Post-validation: ReduceGradients takes reduce_s on the rank alone (SimulateIterations).
  void DoNotSynchroniseReduce() { synchronised_reduce_ = false; }

  Status CheckInputs() const;
  StatusOr<Simulation> Run();
  StatusOr<Simulation> RunOnSharedCores();

 private:
  struct RankState {
    size_t pc = 0;
    double time = 0.0;
    bool posted = false;      // the ReduceGradients at pc has been posted
    int reduces = 0;          // ReduceGradients completed
    bool drained = false;     // past the list, its transfers completed
    std::vector<int> groups;  // ids into groups_, in post order
    size_t head = 0;          // groups[head] is the first not completed (one link, in order)
  };
  // A posted group of transfers. It starts when posted and the rank's previous group has
  // completed; a transfer completes when its group and the peer's group holding the counterpart
  // have both started (plus the latency), the group when all its transfers have.
  static constexpr double kUnknown = -1.0;
  struct Group {
    int rank = 0;
    size_t first = 0, end = 0;  // its actions in the rank's list
    size_t record = 0;          // its first TimedAction in the rank's timeline
    double posted = 0.0;
    double start = kUnknown;
    double done = kUnknown;
  };

  double Cost(const std::vector<double>& table, int k) const {
    return table.size() == 1 ? table[0] : table[k];
  }
  double Duration(const Action& a, int rank) const;
  bool Advance(int rank);
  bool AdvanceReduce(int rank);
  bool PostGroup(int rank);
  // Completes every group whose transfers can complete, in each rank's post order.
  void CompleteGroups();
  bool TryComplete(Group& group);
  // When the receive that pass `a` consumes has landed (0 if it consumes none); kUnknown while
  // that is not decided yet.
  double InputReady(int rank, const Action& a) const;
  // Waits, as ReduceGradients and the end of the list do (the engine completes its sends there),
  // for every transfer the rank posted; false while their end is not decided yet.
  bool WaitForTransfers(int rank);
  void Record(int rank, const Action& a, double start, double end) {
    result_.ranks[rank].actions.push_back({a, start, end});
  }
  std::string DescribeDeadlock() const;
  StatusOr<Simulation> Finish();

  const std::vector<std::vector<Action>>& ranks_;
  const SimulationCosts& costs_;
  const ChunkPlacement& placement_;
  int p_;
  std::vector<RankState> state_;
  std::vector<Group> groups_;
  std::map<TransferKey, int> send_group_;  // the group that posted it
  std::map<TransferKey, int> recv_group_;
  std::vector<std::vector<double>> reduce_posted_;  // [rank][ordinal] post time
  bool synchronised_reduce_ = true;
  Simulation result_;
};

Status Simulator::CheckInputs() const {
  if (placement_.ranks() != p_) {
    return InvalidArgument("the placement spans " + std::to_string(placement_.ranks()) +
                           " ranks, the schedule " + std::to_string(p_));
  }
  for (int r = 0; r < p_; ++r) {
    for (const Action& a : ranks_[r]) {
      const bool bad_chunk =
          !(a.kind == ActionKind::kReduceGradients || a.kind == ActionKind::kOptimizerStep) &&
          (a.chunk < 0 || a.chunk >= placement_.chunks_on(r));
      if (bad_chunk || (IsCommunication(a.kind) && (a.peer < 0 || a.peer >= p_))) {
        return InvalidArgument("rank " + std::to_string(r) + ": " + ToString(a) +
                               " has a bad chunk or peer");
      }
    }
  }
  const size_t model_chunks = placement_.num_chunks();
  for (const auto* table : {&costs_.forward_s, &costs_.backward_input_s, &costs_.backward_weight_s,
                            &costs_.backward_s}) {
    if (table == &costs_.backward_s && table->empty()) continue;
    if (table->size() != 1 && table->size() < model_chunks) {
      return InvalidArgument("a cost table holds " + std::to_string(table->size()) +
                             " entries; need 1 or one per model chunk (" +
                             std::to_string(model_chunks) + ")");
    }
  }
  if (costs_.optimizer_s.size() > 1 && costs_.optimizer_s.size() < static_cast<size_t>(p_)) {
    return InvalidArgument("optimizer_s holds " + std::to_string(costs_.optimizer_s.size()) +
                           " entries; need 0, 1 or one per rank (" + std::to_string(p_) + ")");
  }
  return OkStatus();
}

double Simulator::Duration(const Action& a, int rank) const {
  const int k = IsCompute(a.kind) ? placement_.ModelChunk(rank, a.chunk) : 0;
  switch (a.kind) {
    case ActionKind::kForward:
      return Cost(costs_.forward_s, k);
    case ActionKind::kBackward:
      if (!costs_.backward_s.empty()) return Cost(costs_.backward_s, k);
      return Cost(costs_.backward_input_s, k) + Cost(costs_.backward_weight_s, k);
    case ActionKind::kBackwardInput:
      return Cost(costs_.backward_input_s, k);
    case ActionKind::kBackwardWeight:
      return Cost(costs_.backward_weight_s, k);
    case ActionKind::kOptimizerStep:
      return costs_.optimizer_s.empty() ? 0.0 : Cost(costs_.optimizer_s, rank);
    default:
      return 0.0;
  }
}

bool Simulator::AdvanceReduce(int rank) {
  RankState& s = state_[rank];
  if (!synchronised_reduce_) {
    if (!WaitForTransfers(rank)) return false;
    Record(rank, ranks_[rank][s.pc], s.time, s.time + costs_.reduce_s);
    s.time += costs_.reduce_s;
    ++s.pc;
    return true;
  }
  bool progress = false;
  if (!s.posted) {
    if (!WaitForTransfers(rank)) return false;
    reduce_posted_[rank].push_back(s.time);
    s.posted = progress = true;
  }
  double start = 0.0;
  for (const auto& posts : reduce_posted_) {
    if (static_cast<int>(posts.size()) <= s.reduces) return progress;
    start = std::max(start, posts[s.reduces]);
  }
  const double end = start + costs_.reduce_s;
  Record(rank, ranks_[rank][s.pc], s.time, end);
  s.time = end;
  s.posted = false;
  ++s.reduces;
  ++s.pc;
  return true;
}

bool Simulator::PostGroup(int rank) {
  RankState& s = state_[rank];
  const std::vector<Action>& list = ranks_[rank];
  const int group = list[s.pc].group;
  size_t end = s.pc + 1;
  while (group >= 0 && end < list.size() && IsCommunication(list[end].kind) &&
         list[end].group == group) {
    ++end;
  }
  const int id = static_cast<int>(groups_.size());
  groups_.push_back({.rank = rank,
                     .first = s.pc,
                     .end = end,
                     .record = result_.ranks[rank].actions.size(),
                     .posted = s.time});
  for (size_t i = s.pc; i < end; ++i) {
    auto& posted = IsSend(list[i].kind) ? send_group_ : recv_group_;
    posted.emplace(KeyOf(list[i], rank, placement_), id);
    Record(rank, list[i], s.time, s.time);  // end_s set when the group completes
  }
  s.groups.push_back(id);
  s.pc = end;
  CompleteGroups();
  return true;
}

bool Simulator::TryComplete(Group& group) {
  const std::vector<Action>& list = ranks_[group.rank];
  double done = group.start;
  for (size_t i = group.first; i < group.end; ++i) {
    const auto& other = IsSend(list[i].kind) ? recv_group_ : send_group_;
    const auto it = other.find(KeyOf(list[i], group.rank, placement_));
    if (it == other.end()) return false;
    const Group& peer = groups_[it->second];
    if (peer.start == kUnknown) return false;
    done = std::max(done, std::max(group.start, peer.start) + costs_.send_latency_s);
  }
  group.done = done;
  std::vector<TimedAction>& timeline = result_.ranks[group.rank].actions;
  for (size_t i = 0; i < group.end - group.first; ++i) timeline[group.record + i].end_s = done;
  return true;
}

void Simulator::CompleteGroups() {
  for (bool moved = true; moved;) {
    moved = false;
    for (RankState& s : state_) {
      while (s.head < s.groups.size()) {
        Group& group = groups_[s.groups[s.head]];
        if (group.start == kUnknown) {
          group.start = s.head == 0 ? group.posted
                                    : std::max(group.posted, groups_[s.groups[s.head - 1]].done);
          moved = true;
        }
        if (!TryComplete(group)) break;
        ++s.head;
        moved = true;
      }
    }
  }
}

double Simulator::InputReady(int rank, const Action& a) const {
  const int k = placement_.ModelChunk(rank, a.chunk);
  Action receive{.micro_batch = a.micro_batch, .chunk = a.chunk};
  if (a.kind == ActionKind::kForward) {
    if (k == 0 || placement_.LocalEdge(k - 1)) return 0.0;
    receive.kind = ActionKind::kRecvActivation;
    receive.peer = placement_.RankOf(k - 1);
  } else if (a.kind == ActionKind::kBackward || a.kind == ActionKind::kBackwardInput) {
    if (k == placement_.num_chunks() - 1 || placement_.LocalEdge(k)) return 0.0;
    receive.kind = ActionKind::kRecvGradient;
    receive.peer = placement_.RankOf(k + 1);
  } else {
    return 0.0;
  }
  const auto it = recv_group_.find(KeyOf(receive, rank, placement_));
  if (it == recv_group_.end()) return 0.0;  // not received at all: the validator's concern
  return groups_[it->second].done;
}

bool Simulator::WaitForTransfers(int rank) {
  RankState& s = state_[rank];
  if (s.head < s.groups.size()) return false;
  if (!s.groups.empty()) s.time = std::max(s.time, groups_[s.groups.back()].done);
  return true;
}

bool Simulator::Advance(int rank) {
  RankState& s = state_[rank];
  if (s.pc >= ranks_[rank].size()) {
    if (s.drained || !WaitForTransfers(rank)) return false;
    s.drained = true;
    return true;
  }
  const Action& a = ranks_[rank][s.pc];
  if (a.kind == ActionKind::kReduceGradients) return AdvanceReduce(rank);
  if (IsCommunication(a.kind)) return PostGroup(rank);
  const double ready = InputReady(rank, a);
  if (ready == kUnknown) return false;
  s.time = std::max(s.time, ready);
  const double duration = Duration(a, rank);
  Record(rank, a, s.time, s.time + duration);
  s.time += duration;
  result_.ranks[rank].busy_s += duration;
  ++s.pc;
  return true;
}

std::string Simulator::DescribeDeadlock() const {
  std::string text = "deadlock:";
  for (int r = 0; r < p_; ++r) {
    const RankState& s = state_[r];
    const std::vector<Action>& list = ranks_[r];
    if (s.pc >= list.size() && s.drained) continue;
    text += " rank " + std::to_string(r);
    if (s.pc < list.size() && list[s.pc].kind == ActionKind::kReduceGradients && s.posted) {
      text += " at action " + std::to_string(s.pc) + " waits in reduce-grads for ranks";
      for (int q = 0; q < p_; ++q) {
        if (static_cast<int>(reduce_posted_[q].size()) <= s.reduces)
          text += " " + std::to_string(q);
      }
      text += ";";
      continue;
    }
    if (s.head >= s.groups.size()) {  // cannot happen: a rank only waits for transfers
      text += " at action " + std::to_string(s.pc) + ";";
      continue;
    }
    // The rank waits for its first transfers that have not completed.
    const Group& group = groups_[s.groups[s.head]];
    text += " at action " + std::to_string(group.first) + " waits for";
    for (size_t i = group.first; i < group.end; ++i) {
      const auto& other = IsSend(list[i].kind) ? recv_group_ : send_group_;
      const auto it = other.find(KeyOf(list[i], r, placement_));
      if (it == other.end()) {
        text += " rank " + std::to_string(list[i].peer) + " to post " +
                ToString(CounterpartOf(list[i], r, placement_)) + " (for its " + ToString(list[i]) +
                ")";
      } else if (groups_[it->second].start == kUnknown) {
        text += " rank " + std::to_string(list[i].peer) +
                " to complete the transfers it posted before " +
                ToString(CounterpartOf(list[i], r, placement_)) + " (for its " + ToString(list[i]) +
                ")";
      }
    }
    text += ";";
  }
  text.pop_back();
  return text;
}

StatusOr<Simulation> Simulator::Run() {
  bool progress = true;
  while (progress) {
    progress = false;
    for (int r = 0; r < p_; ++r) {
      while (Advance(r)) progress = true;
    }
  }
  return Finish();
}

// One global clock `now`. Ranks that are not computing move as far as they can at `now`
// (communication as in Advance; a pass starts with its full cost as remaining work). Then time
// jumps to the next event, the first pass to finish at the shared speed or the first transfer to
// land, and the computing ranks' remaining work shrinks by the time elapsed times that speed.
StatusOr<Simulation> Simulator::RunOnSharedCores() {
  constexpr double kNone = -1.0;
  std::vector<double> remaining(p_, kNone);  // work left in the running pass; kNone: no pass
  std::vector<double> started(p_, 0.0);
  double now = 0.0;
  for (;;) {
    for (bool moved = true; moved;) {
      moved = false;
      for (int r = 0; r < p_; ++r) {
        RankState& s = state_[r];
        if (remaining[r] != kNone || s.drained || s.time > now) continue;
        if (!s.posted) s.time = now;
        if (s.pc >= ranks_[r].size()) {
          moved |= Advance(r);  // drains: its last transfers complete
          continue;
        }
        const Action& a = ranks_[r][s.pc];
        if (IsCommunication(a.kind) || a.kind == ActionKind::kReduceGradients) {
          moved |= Advance(r);
          continue;
        }
        const double ready = InputReady(r, a);
        if (ready == kUnknown) continue;
        if (ready > now) {
          s.time = ready;  // its input lands then
          continue;
        }
        remaining[r] = Duration(a, r);
        started[r] = now;
        moved = true;
      }
    }
    int computing = 0;
    for (int r = 0; r < p_; ++r) computing += remaining[r] != kNone;
    const double speed =
        computing > costs_.cores ? static_cast<double>(costs_.cores) / computing : 1.0;
    double next = std::numeric_limits<double>::infinity();
    for (int r = 0; r < p_; ++r) {
      if (remaining[r] != kNone) {
        next = std::min(next, now + remaining[r] / speed);
      } else if (!state_[r].drained && state_[r].time > now) {
        next = std::min(next, state_[r].time);  // a transfer lands then
      }
    }
    if (std::isinf(next)) break;  // all done, or deadlocked
    for (int r = 0; r < p_; ++r) {
      if (remaining[r] == kNone) continue;
      RankState& s = state_[r];
      if (now + remaining[r] / speed <= next) {  // this pass ends now
        Record(r, ranks_[r][s.pc], started[r], next);
        result_.ranks[r].busy_s += next - started[r];
        s.time = next;
        ++s.pc;
        remaining[r] = kNone;
      } else {
        remaining[r] -= (next - now) * speed;
      }
    }
    now = next;
  }
  return Finish();
}

StatusOr<Simulation> Simulator::Finish() {
  for (int r = 0; r < p_; ++r) {
    if (!state_[r].drained) return FailedPrecondition(DescribeDeadlock());
  }
  for (int r = 0; r < p_; ++r) result_.makespan_s = std::max(result_.makespan_s, state_[r].time);
  double idle = 0.0;
  for (int r = 0; r < p_; ++r) {
    RankTimeline& rank = result_.ranks[r];
    rank.idle_s = result_.makespan_s - rank.busy_s;
    idle += rank.idle_s;
    int held = 0;
    for (const Action& a : ranks_[r]) {
      if (a.kind == ActionKind::kForward)
        rank.peak_activations = std::max(rank.peak_activations, ++held);
      if (ReleasesActivations(a.kind)) --held;
    }
  }
  if (result_.makespan_s > 0) result_.bubble_fraction = idle / (p_ * result_.makespan_s);
  return std::move(result_);
}

}  // namespace

StatusOr<Simulation> Simulate(const std::vector<std::vector<Action>>& ranks,
                              const SimulationCosts& costs) {
  int chunks_per_rank = 1;
  for (const std::vector<Action>& actions : ranks) {
    for (const Action& a : actions) chunks_per_rank = std::max(chunks_per_rank, a.chunk + 1);
  }
  return Simulate(ranks, costs,
                  ChunkPlacement::Looped(static_cast<int>(ranks.size()), chunks_per_rank));
}

namespace {

StatusOr<Simulation> RunSimulator(Simulator& simulator, const SimulationCosts& costs) {
  RETURN_IF_ERROR(simulator.CheckInputs());
  if (costs.cores < 0) return InvalidArgument("cores must be >= 0 (0: one per rank)");
  if (costs.cores > 0) return simulator.RunOnSharedCores();
  return simulator.Run();
}

// `iterations` copies of each rank's list, one after the other; copy i renumbers micro-batch j
// as i·m + j and shifts the group ids past the previous copy's, so transfers pair up only within
// one step and groups never merge across steps.
std::vector<std::vector<Action>> RepeatSteps(const std::vector<std::vector<Action>>& ranks,
                                             int micro_batches, int iterations) {
  std::vector<std::vector<Action>> repeated(ranks.size());
  for (size_t r = 0; r < ranks.size(); ++r) {
    int groups = 0;
    for (const Action& a : ranks[r]) groups = std::max(groups, a.group + 1);
    for (int i = 0; i < iterations; ++i) {
      for (Action a : ranks[r]) {
        if (a.micro_batch >= 0) a.micro_batch += i * micro_batches;
        if (a.group >= 0) a.group += i * groups;
        repeated[r].push_back(a);
      }
    }
  }
  return repeated;
}

}  // namespace

StatusOr<Simulation> Simulate(const std::vector<std::vector<Action>>& ranks,
                              const SimulationCosts& costs, const ChunkPlacement& placement) {
  if (ranks.empty()) return InvalidArgument("no ranks to simulate");
  Simulator simulator(ranks, costs, placement);
  return RunSimulator(simulator, costs);
}

StatusOr<IterationsSimulation> SimulateIterations(const std::vector<std::vector<Action>>& ranks,
                                                  const SimulationCosts& costs,
                                                  const ChunkPlacement& placement,
                                                  const IterationOptions& options) {
  if (ranks.empty()) return InvalidArgument("no ranks to simulate");
  if (options.iterations < 1) {
    return InvalidArgument("iterations must be >= 1, got " + std::to_string(options.iterations));
  }
  IterationsSimulation result;
  for (const std::vector<Action>& actions : ranks) {
    for (const Action& a : actions) {
      result.micro_batches = std::max(result.micro_batches, a.micro_batch + 1);
    }
  }
  const int n = options.iterations;
  const std::vector<std::vector<Action>> repeated = RepeatSteps(ranks, result.micro_batches, n);
  Simulator simulator(repeated, costs, placement);
  if (options.post_validation) simulator.DoNotSynchroniseReduce();
  ASSIGN_OR_RETURN(result.simulation, RunSimulator(simulator, costs));

  // The timeline keeps list order, so step i of rank r is its actions [i·len, (i+1)·len).
  result.iteration_end_s.assign(n, 0.0);
  double busy_per_step = 0.0;  // averaged over ranks
  const int p = static_cast<int>(ranks.size());
  for (int r = 0; r < p; ++r) {
    const RankTimeline& rank = result.simulation.ranks[r];
    const size_t length = ranks[r].size();
    for (int i = 0; i < n && length > 0; ++i) {
      result.iteration_end_s[i] =
          std::max(result.iteration_end_s[i], rank.actions[(i + 1) * length - 1].end_s);
    }
    busy_per_step += rank.busy_s / n / p;
  }
  if (n == 1) {
    result.period_s = result.simulation.makespan_s;
  } else {
    const int spacings = std::max(1, n / 2);
    result.period_s =
        (result.iteration_end_s[n - 1] - result.iteration_end_s[n - 1 - spacings]) / spacings;
  }
  if (result.period_s > 0) result.bubble_fraction = 1.0 - busy_per_step / result.period_s;
  return result;
}

}  // namespace deepnet
