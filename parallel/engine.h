// PipelineEngine: runs one rank's schedule (parallel/schedule.h) with real tensors.
//
// Letters: p stages, v local chunks, m micro-batches of one flush; B, S, T, C the micro-batch's
// sentences, source length, target length and d_model.
//
// The engine holds this rank's model chunks (local chunk c = placement.ModelChunk(stage, c)) and
// executes the Action list with one exhaustive switch:
// - Forward runs the chunk's units in order and keeps, per (chunk, micro-batch), what backward
//   needs: every unit's SavedActivations (recompute NONE / SELECTIVE), or with FULL only the input
//   Stream of every `recompute_every`-th unit; Backward then re-runs each segment's forward before
//   backpropagating through it (bit-identical: forward is deterministic, dropout is Philox).
// - Backward walks the units in reverse; BackwardInput / BackwardWeight split it for zero-bubble
//   schedules (the unit's deferred weight work is kept until the W action).
// - Sends and receives carry the Stream's enc (B, S, C) and dec (B, T, C) tensors; which of the
//   two cross a stage boundary follows from the architecture and the boundary (engine_layout.h).
//   The actions of one group are posted together between GroupStart/GroupEnd, where the schedule
//   puts them, and completed only when needed: a receive just before the pass that consumes it,
//   the sends before ReduceGradients (and at the end of the flush). So a pass never waits for a
//   transfer it does not use: with real pass costs differing from those a schedule was built for,
//   a receive posted early no longer holds up the passes before its consumer. Received Streams
//   are kept by (kind, micro-batch, chunk) until that pass.
//   Between two model chunks of this rank (ZB-V's turn) the output is handed over in place, as
//   if received, without communication.
//   Receive buffers come from a pool (transfer_buffers.h) and return to it when no pass
//   references them any more, so steady-state steps receive without allocating. Tensors on a
//   device the transport cannot read travel through host staging (device_transfers.h); computed
//   activations live as long as a pass references them. All are charged to kActivations, so the
//   allocator's activation peak is the stage's true peak.
// - ReduceGradients: tied embedding gradients exchanged between the first and last stage (both
//   set grad_embedding + grad_output, in that order), then the data-parallel all-reduce of every
//   gradient (tolerance-equal to one process, not bitwise: MPI chooses the summation order).
// - OptimizerStep: the optimizer with the global gradient norm of engine_reduce.h (bit-identical
//   to one process).
// Gradients of every parameter accumulate over micro-batches in ascending order (the schedules
// guarantee it), so a pipeline without data parallelism reproduces the single-process step bit
// for bit.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/backend.h"
#include "model/unit.h"
#include "parallel/chunk_placement.h"
#include "parallel/device_transfers.h"
#include "parallel/engine_layout.h"
#include "parallel/engine_reduce.h"
#include "parallel/schedule.h"
#include "parallel/trace.h"
#include "runtime/communicator.h"
#include "runtime/status.h"
#include "train/optimizer.h"

namespace deepnet {

// A contiguous range of units this rank runs.
struct EngineChunk {
  int model_chunk = 0;       // k = placement.ModelChunk(stage, c)
  std::vector<Unit*> units;  // model order
};

struct EngineOptions {
  int stage = 0;
  ChunkPlacement placement;  // of the schedule the engine runs
  int recompute_every = 1;   // with Recompute::kFull
};

struct FlushResult {
  double loss_sum = 0.0;  // last stage only; 0 elsewhere
  int64_t loss_tokens = 0;
  bool stepped = false;  // the schedule ran OptimizerStep
  OptimizerStepStats optimizer;
};

class PipelineEngine {
 public:
  // `chunks` in local order (ascending model chunk); `pipeline` is this replica's pipeline group
  // (rank = stage). Everything passed by reference must outlive the engine.
  PipelineEngine(const EngineOptions& options, std::vector<EngineChunk> chunks, StreamLayout layout,
                 Communicator& pipeline, Optimizer& optimizer, GradientReducer& reducer);

  // Runs this rank's actions of one flush. micro_batches[j] is the schedule's micro-batch j; the
  // same on every stage of the replica. `lr` is used by OptimizerStep.
  StatusOr<FlushResult> Run(const std::vector<Action>& actions,
                            std::span<const MicroBatch> micro_batches, const StepContext& ctx,
                            double lr);

  // Records every executed action (a send/recv group as one event) into `trace`, timed by
  // `clock`, as process `rank`; null stops recording. Both must outlive the recording.
  void set_trace(TraceWriter* trace, const TraceClock* clock, int rank) {
    trace_ = trace;
    clock_ = clock;
    trace_rank_ = rank;
  }

  // Forward only through the whole pipeline for one micro-batch (evaluation, dropout per ctx):
  // activations travel stage to stage with blocking sends; the last stage returns the loss.
  StatusOr<Stream> ForwardOnly(const MicroBatch& mb, const StepContext& ctx);

  const TransferBuffers& receive_buffers() const { return receive_buffers_; }
  // Null until the first Run or ForwardOnly (they bring the backend).
  const DeviceTransfers* transfers() const { return transfers_.get(); }

 private:
  // What backward needs of one (chunk, micro-batch).
  struct Held {
    std::vector<std::unique_ptr<SavedActivations>> saved;  // per unit
    std::vector<Stream> checkpoints;  // FULL: input of units 0, k, 2k, ... of the chunk
    std::vector<std::unique_ptr<DeferredWeightGrads>> deferred;  // per unit, B until W
  };
  using Key = std::tuple<ActionKind, int, int>;  // (kind, micro-batch, local chunk)

  Status Execute(const Action& action);
  Status Forward(const Action& action);
  Status Backward(const Action& action, bool split);
  Status BackwardWeight(const Action& action);
  // Rebuilds the SavedActivations of units [begin, end) from the checkpoint at `begin`.
  void Replay(const EngineChunk& chunk, const MicroBatch& mb, Held& held, int begin, int end);
  Status RunGroup(std::span<const Action> group);
  DeviceTransfers& Transfers(const Backend& backend);
  // The received Stream for `action`'s pass, completing its receive first if still in flight.
  StatusOr<Stream> TakeReceived(ActionKind kind, const Action& action);
  Status CompleteSends();
  // Between units: lets transfers still in flight move (Communicator::Progress).
  void KeepTransfersMoving() {
    if (transfers_ != nullptr && (!sending_.empty() || !receiving_.empty())) transfers_->Progress();
  }
  const MicroBatch& MicroBatchAt(int index) const { return micro_batches_[index]; }

  // Unit index at the boundary a transfer crosses, and the tag of one of its tensors.
  int BoundaryUnit(const Action& action) const;
  int Tag(const Action& action, int tensor) const;
  bool IsFirstModelChunk(const EngineChunk& c) const { return c.model_chunk == 0; }
  bool IsLastModelChunk(const EngineChunk& c) const {
    return c.model_chunk == options_.placement.num_chunks() - 1;
  }
  // Where the output of a pass of `chunk` goes: the outbox for a send, or straight to the
  // received Streams when the neighbouring chunk (k+1 for activations, k−1 for gradients) is here.
  void Deliver(ActionKind send_kind, const Action& action, Stream stream);
  // "stage 1, actions 7..8 (send-act 3 -> 2, recv-grad 0 <- 2)": where an error happened.
  std::string Where(int index, std::span<const Action> actions) const;
  void Record(std::span<const Action> actions, double start_us);

  EngineOptions options_;
  std::vector<EngineChunk> chunks_;
  StreamLayout layout_;
  Communicator& pipeline_;
  Optimizer& optimizer_;
  GradientReducer& reducer_;

  // Per flush.
  std::span<const MicroBatch> micro_batches_;
  StepContext ctx_;
  double lr_ = 0.0;
  FlushResult result_;
  std::map<std::pair<int, int>, Held> held_;  // (local chunk, micro-batch)
  std::map<Key, Stream> outbox_;              // computed, waiting for their send
  std::map<Key, Stream> received_;            // received, waiting for their pass
  // Posted and not yet completed: receives by key (with the action, for errors and the trace),
  // and sends (their Streams kept alive until the transport is done with them).
  struct InFlight {
    Action action;
    Stream stream;
    std::vector<Request> requests;
  };
  std::map<Key, InFlight> receiving_;
  std::vector<InFlight> sending_;

  TransferBuffers receive_buffers_;             // across flushes
  std::unique_ptr<DeviceTransfers> transfers_;  // over pipeline_, on the steps' backend
  TraceWriter* trace_ = nullptr;
  double pass_start_us_ = 0.0;  // of the pass running, after the receive it waited for
  const TraceClock* clock_ = nullptr;
  int trace_rank_ = 0;
};

}  // namespace deepnet
