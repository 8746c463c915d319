// PipelineEngine: the action switch, the passes, and the grouped sends and receives.
#include "parallel/engine.h"

#include <utility>

namespace deepnet {
namespace {

// Tags of one pipeline transfer: bit 0 the tensor (enc 0, dec 1), bit 1 the direction
// (activation 0, gradient 1), bits 2..7 the boundary's lower model chunk, bits 8..13 the
// micro-batch. Messages of one (peer, tag) also match in post order, so the wrap-around of the
// chunk and micro-batch fields is harmless. Below 16384; the tied-gradient swap uses 30000 and
// evaluation 20000 and up.
constexpr int kTensorBits = 1;
constexpr int kChunkField = 64;
constexpr int kMicroBatchField = 64;
constexpr int kEvaluationTagBase = 20000;

bool IsActivation(ActionKind kind) {
  return kind == ActionKind::kSendActivation || kind == ActionKind::kRecvActivation;
}

}  // namespace

PipelineEngine::PipelineEngine(const EngineOptions& options, std::vector<EngineChunk> chunks,
                               StreamLayout layout, Communicator& pipeline, Optimizer& optimizer,
                               GradientReducer& reducer)
    : options_(options),
      chunks_(std::move(chunks)),
      layout_(layout),
      pipeline_(pipeline),
      optimizer_(optimizer),
      reducer_(reducer) {
  CHECK_GE(options_.recompute_every, 1);
}

std::string PipelineEngine::Where(int index, std::span<const Action> actions) const {
  std::string where = "stage " + std::to_string(options_.stage) + ", action";
  where += actions.size() == 1
               ? " " + std::to_string(index)
               : "s " + std::to_string(index) + ".." + std::to_string(index + actions.size() - 1);
  for (size_t i = 0; i < actions.size(); ++i) {
    where += (i == 0 ? " (" : ", ") + ToString(actions[i]);
  }
  return where + ")";
}

void PipelineEngine::Record(std::span<const Action> actions, double start_us) {
  if (trace_ == nullptr) return;
  TraceEvent event =
      ActionEvent(actions.front(), trace_rank_, start_us, clock_->NowUs() - start_us);
  for (size_t i = 1; i < actions.size(); ++i) event.name += " + " + ToString(actions[i]);
  trace_->Add(std::move(event));
}

StatusOr<FlushResult> PipelineEngine::Run(const std::vector<Action>& actions,
                                          std::span<const MicroBatch> micro_batches,
                                          const StepContext& ctx, double lr) {
  micro_batches_ = micro_batches;
  ctx_ = ctx;
  lr_ = lr;
  result_ = FlushResult();
  held_.clear();
  outbox_.clear();
  received_.clear();
  receiving_.clear();
  sending_.clear();
  for (size_t i = 0; i < actions.size();) {
    const Action& action = actions[i];
    if (action.micro_batch >= static_cast<int>(micro_batches.size()) ||
        action.chunk >= static_cast<int>(chunks_.size())) {
      return InvalidArgument(Where(static_cast<int>(i), {&action, 1}) + ": the schedule names " +
                             "micro-batch or chunk beyond the " +
                             std::to_string(micro_batches.size()) + " micro-batches and " +
                             std::to_string(chunks_.size()) + " chunks given");
    }
    const double start_us = trace_ != nullptr ? clock_->NowUs() : 0.0;
    if (IsCommunication(action.kind)) {
      size_t end = i + 1;
      while (end < actions.size() && IsCommunication(actions[end].kind) &&
             actions[end].group == action.group) {
        ++end;
      }
      const std::span<const Action> group(actions.data() + i, end - i);
      RETURN_IF_ERROR(RunGroup(group).WithContext(Where(static_cast<int>(i), group)));
      Record(group, start_us);
      i = end;
      continue;
    }
    pass_start_us_ = start_us;
    RETURN_IF_ERROR(Execute(action).WithContext(Where(static_cast<int>(i), {&action, 1})));
    Record({&action, 1}, pass_start_us_);
    ++i;
  }
  RETURN_IF_ERROR(CompleteSends().WithContext("stage " + std::to_string(options_.stage)));
  if (!held_.empty() || !outbox_.empty() || !received_.empty() || !receiving_.empty()) {
    return Internal("stage " + std::to_string(options_.stage) + ": the schedule ended with " +
                    std::to_string(held_.size()) + " activations, " +
                    std::to_string(outbox_.size()) + " unsent and " +
                    std::to_string(received_.size() + receiving_.size()) + " unused transfers");
  }
  return result_;
}

Status PipelineEngine::Execute(const Action& action) {
  switch (action.kind) {
    case ActionKind::kForward:
      return Forward(action);
    case ActionKind::kBackward:
      return Backward(action, /*split=*/false);
    case ActionKind::kBackwardInput:
      return Backward(action, /*split=*/true);
    case ActionKind::kBackwardWeight:
      return BackwardWeight(action);
    case ActionKind::kSendActivation:
    case ActionKind::kRecvActivation:
    case ActionKind::kSendGradient:
    case ActionKind::kRecvGradient:
      return RunGroup(std::span<const Action>(&action, 1));
    case ActionKind::kReduceGradients:
      RETURN_IF_ERROR(CompleteSends());
      return reducer_.ReduceGradients();
    case ActionKind::kOptimizerStep: {
      ASSIGN_OR_RETURN(result_.optimizer, optimizer_.Step(lr_, reducer_));
      result_.stepped = true;
      return OkStatus();
    }
  }
  return Internal("unknown action kind");
}

StatusOr<Stream> PipelineEngine::TakeReceived(ActionKind kind, const Action& action) {
  const Key key{kind, action.micro_batch, action.chunk};
  if (const auto posted = receiving_.find(key); posted != receiving_.end()) {
    InFlight in = std::move(posted->second);
    receiving_.erase(posted);
    const double start_us = trace_ != nullptr ? clock_->NowUs() : 0.0;
    RETURN_IF_ERROR(Transfers(*ctx_.backend).WaitAll(in.requests).WithContext(ToString(in.action)));
    if (trace_ != nullptr) {  // the wait as its own event; the pass starts after it
      pass_start_us_ = clock_->NowUs();
      TraceEvent event = ActionEvent(in.action, trace_rank_, start_us, pass_start_us_ - start_us);
      event.name = "wait " + event.name;
      trace_->Add(std::move(event));
    }
    received_[key] = std::move(in.stream);
  }
  const auto it = received_.find(key);
  if (it == received_.end()) {
    return Internal("nothing was received for it (" + std::string(ActionKindName(kind)) + ")");
  }
  Stream stream = std::move(it->second);
  received_.erase(it);
  return stream;
}

Status PipelineEngine::Forward(const Action& action) {
  const EngineChunk& chunk = chunks_[action.chunk];
  const MicroBatch& mb = MicroBatchAt(action.micro_batch);
  Stream io;
  if (!IsFirstModelChunk(chunk)) {
    ASSIGN_OR_RETURN(io, TakeReceived(ActionKind::kRecvActivation, action));
  }
  const auto [it, fresh] = held_.try_emplace({action.chunk, action.micro_batch});
  if (!fresh) return Internal("a second forward of the same micro-batch");
  Held& held = it->second;
  const bool full = ctx_.recompute == Recompute::kFull;
  const int n = static_cast<int>(chunk.units.size());
  held.saved.resize(n);
  for (int i = 0; i < n; ++i) {
    if (full && i % options_.recompute_every == 0) held.checkpoints.push_back(io);
    std::unique_ptr<SavedActivations> saved = chunk.units[i]->Forward(ctx_, mb, io);
    if (!full) held.saved[i] = std::move(saved);
    KeepTransfersMoving();
  }
  if (IsLastModelChunk(chunk)) {
    result_.loss_sum += io.loss_sum;
    result_.loss_tokens += io.loss_tokens;
  } else {
    Deliver(ActionKind::kSendActivation, action, std::move(io));
  }
  return OkStatus();
}

void PipelineEngine::Deliver(ActionKind send_kind, const Action& action, Stream stream) {
  const ChunkPlacement& placement = options_.placement;
  const int k = chunks_[action.chunk].model_chunk;
  const bool activation = send_kind == ActionKind::kSendActivation;
  if (activation ? placement.LocalEdge(k) : placement.LocalEdge(k - 1)) {
    const int to = placement.LocalOf(activation ? k + 1 : k - 1);
    received_[{activation ? ActionKind::kRecvActivation : ActionKind::kRecvGradient,
               action.micro_batch, to}] = std::move(stream);
    return;
  }
  outbox_[{send_kind, action.micro_batch, action.chunk}] = std::move(stream);
}

void PipelineEngine::Replay(const EngineChunk& chunk, const MicroBatch& mb, Held& held, int begin,
                            int end) {
  Stream& checkpoint = held.checkpoints[begin / options_.recompute_every];
  Stream io = checkpoint;
  checkpoint = Stream();
  for (int i = begin; i < end; ++i) held.saved[i] = chunk.units[i]->Forward(ctx_, mb, io);
}

Status PipelineEngine::Backward(const Action& action, bool split) {
  const EngineChunk& chunk = chunks_[action.chunk];
  const MicroBatch& mb = MicroBatchAt(action.micro_batch);
  const auto it = held_.find({action.chunk, action.micro_batch});
  if (it == held_.end() || !it->second.deferred.empty()) {
    return Internal("backward without its forward (or twice)");
  }
  Stream grad;
  if (!IsLastModelChunk(chunk)) {
    ASSIGN_OR_RETURN(grad, TakeReceived(ActionKind::kRecvGradient, action));
  }
  Held& held = it->second;
  const bool full = ctx_.recompute == Recompute::kFull;
  const int n = static_cast<int>(chunk.units.size());
  if (split) held.deferred.resize(n);
  // Segments from the top: with FULL, each is re-run from its checkpoint first.
  for (int end = n; end > 0;) {
    const int begin = full ? (end - 1) / options_.recompute_every * options_.recompute_every : 0;
    if (full) Replay(chunk, mb, held, begin, end);
    for (int i = end; i-- > begin;) {
      Unit& unit = *chunk.units[i];
      if (split) {
        held.deferred[i] = unit.BackwardInput(ctx_, mb, *held.saved[i], grad);
      } else {
        unit.Backward(ctx_, mb, *held.saved[i], grad);
      }
      held.saved[i].reset();
      KeepTransfersMoving();
    }
    end = begin;
  }
  if (!IsFirstModelChunk(chunk)) Deliver(ActionKind::kSendGradient, action, std::move(grad));
  if (!split) held_.erase(it);
  return OkStatus();
}

Status PipelineEngine::BackwardWeight(const Action& action) {
  const EngineChunk& chunk = chunks_[action.chunk];
  const auto it = held_.find({action.chunk, action.micro_batch});
  if (it == held_.end() || it->second.deferred.empty()) {
    return Internal("weight pass without its input pass");
  }
  std::vector<std::unique_ptr<DeferredWeightGrads>>& deferred = it->second.deferred;
  for (size_t i = deferred.size(); i-- > 0;) {
    chunk.units[i]->BackwardWeight(ctx_, *deferred[i]);
    deferred[i].reset();
    KeepTransfersMoving();
  }
  held_.erase(it);
  return OkStatus();
}

int PipelineEngine::BoundaryUnit(const Action& action) const {
  const EngineChunk& chunk = chunks_[action.chunk];
  const int first = chunk.units.front()->index();
  const int end = chunk.units.back()->index() + 1;
  switch (action.kind) {
    case ActionKind::kRecvActivation:
    case ActionKind::kSendGradient:
      return first;  // the boundary below this chunk
    default:
      return end;  // above it: send-act, recv-grad
  }
}

int PipelineEngine::Tag(const Action& action, int tensor) const {
  const int lower_chunk =
      chunks_[action.chunk].model_chunk -
      (action.kind == ActionKind::kRecvActivation || action.kind == ActionKind::kSendGradient ? 1
                                                                                              : 0);
  const int direction = IsActivation(action.kind) ? 0 : 1;
  return tensor + (direction << kTensorBits) + 4 * (lower_chunk % kChunkField) +
         4 * kChunkField * (action.micro_batch % kMicroBatchField);
}

DeviceTransfers& PipelineEngine::Transfers(const Backend& backend) {
  if (transfers_ == nullptr) transfers_ = std::make_unique<DeviceTransfers>(pipeline_, backend);
  return *transfers_;
}

Status PipelineEngine::CompleteSends() {
  if (sending_.empty()) return OkStatus();
  std::vector<Request> requests;
  for (const InFlight& out : sending_) {
    requests.insert(requests.end(), out.requests.begin(), out.requests.end());
  }
  const Status done = Transfers(*ctx_.backend).WaitAll(requests);
  sending_.clear();
  return done;
}

Status PipelineEngine::RunGroup(std::span<const Action> group) {
  DeviceTransfers& transfers = Transfers(*ctx_.backend);
  std::vector<InFlight> outgoing, incoming;
  Status posted = OkStatus();
  transfers.GroupStart();
  for (const Action& action : group) {
    const MicroBatch& mb = MicroBatchAt(action.micro_batch);
    const int boundary = BoundaryUnit(action);
    const BoundaryTensors tensors =
        IsActivation(action.kind) ? layout_.Activation(boundary) : layout_.Gradient(boundary);
    std::vector<Tensor> crossing;
    if (IsSend(action.kind)) {
      const auto it = outbox_.find({action.kind, action.micro_batch, action.chunk});
      if (it == outbox_.end()) {
        posted = Internal("sending what was never computed: " + ToString(action));
        break;
      }
      outgoing.push_back({action, std::move(it->second), {}});
      outbox_.erase(it);
      StatusOr<std::vector<Tensor>> checked = layout_.Crossing(outgoing.back().stream, tensors, mb);
      if (!checked.ok()) {
        posted = checked.status().WithContext(ToString(action));
        break;
      }
      crossing = std::move(checked).value();
    } else {
      incoming.push_back(
          {action, layout_.Allocate(tensors, mb, *ctx_.backend, &receive_buffers_), {}});
      crossing = *layout_.Crossing(incoming.back().stream, tensors, mb);
    }
    InFlight& in_flight = IsSend(action.kind) ? outgoing.back() : incoming.back();
    for (size_t t = 0; t < crossing.size() && posted.ok(); ++t) {
      const int tensor = crossing.size() == 2 ? static_cast<int>(t) : (tensors.enc ? 0 : 1);
      StatusOr<Request> request =
          IsSend(action.kind) ? transfers.Isend(crossing[t], action.peer, Tag(action, tensor))
                              : transfers.Irecv(crossing[t], action.peer, Tag(action, tensor));
      if (request.ok()) {
        in_flight.requests.push_back(*request);
      } else {
        posted = request.status();
      }
    }
    if (!posted.ok()) break;
  }
  const Status ended = transfers.GroupEnd();
  RETURN_IF_ERROR(posted);
  RETURN_IF_ERROR(ended);
  for (InFlight& out : outgoing) sending_.push_back(std::move(out));
  for (InFlight& in : incoming) {
    const Action& a = in.action;
    receiving_[{a.kind, a.micro_batch, a.chunk}] = std::move(in);
  }
  return OkStatus();
}

StatusOr<Stream> PipelineEngine::ForwardOnly(const MicroBatch& mb, const StepContext& ctx) {
  const ChunkPlacement& placement = options_.placement;
  DeviceTransfers& transfers = Transfers(*ctx.backend);
  Stream io;  // carries over between two chunks of this rank
  for (const EngineChunk& chunk : chunks_) {
    const int k = chunk.model_chunk;
    if (k > 0 && !placement.LocalEdge(k - 1)) {
      const int first = chunk.units.front()->index();
      io = layout_.Allocate(layout_.Activation(first), mb, *ctx.backend);
      const StatusOr<std::vector<Tensor>> tensors =
          layout_.Crossing(io, layout_.Activation(first), mb);
      for (size_t t = 0; t < tensors->size(); ++t) {
        const int tag = kEvaluationTagBase + 2 * ((k - 1) % kChunkField) + static_cast<int>(t);
        RETURN_IF_ERROR(transfers.Recv((*tensors)[t], placement.RankOf(k - 1), tag)
                            .WithContext("evaluation, stage " + std::to_string(options_.stage)));
      }
    }
    for (Unit* unit : chunk.units) unit->Forward(ctx, mb, io);
    if (k == placement.num_chunks() - 1) return io;
    if (placement.LocalEdge(k)) continue;
    const int end = chunk.units.back()->index() + 1;
    ASSIGN_OR_RETURN(const std::vector<Tensor> tensors,
                     layout_.Crossing(io, layout_.Activation(end), mb));
    for (size_t t = 0; t < tensors.size(); ++t) {
      const int tag = kEvaluationTagBase + 2 * (k % kChunkField) + static_cast<int>(t);
      RETURN_IF_ERROR(transfers.Send(tensors[t], placement.RankOf(k + 1), tag)
                          .WithContext("evaluation, stage " + std::to_string(options_.stage)));
    }
  }
  return Stream();  // not the last stage: the loss is elsewhere
}

}  // namespace deepnet
