// Pipeline units: the model as a flat sequence of independently runnable pieces.
//
// A DeepNet is a list of units — token embedding (+ positions), each encoder layer, each decoder
// layer, (Pre-LN: each stack's final LayerNorm), output projection + loss — and a pipeline stage
// is a contiguous range of them. A unit has its own parameters, forward, backward and a record of
// the activations its backward needs for one micro-batch.
//
// Letters: B batch (sentences in the micro-batch), S source length, T target length, C d_model,
// V vocab.
//
// Invariants:
// - Forward reads and replaces tensors of a Stream, never writing into the tensors it read (so a
//   copy of the input Stream is enough to re-run it); Backward does the reverse on the gradient
//   Stream. Activation gradients overwrite, except grad.enc inside the decoder, which every
//   decoder layer *accumulates* into in place (each one attends to the encoder output): a decoder
//   layer that finds grad.enc empty (rank 0, as after the output unit) first sets it to zeros of
//   io.enc's shape. The output unit leaves grad.enc empty in an encoder-decoder model.
// - Parameter gradients accumulate (+=) over micro-batches; the trainer zeroes them per step.
// - Everything random comes from Philox streams keyed by (seed, step, micro-batch, unit index,
//   site), so recomputing a unit, or running it on another rank, reproduces it bit for bit.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "runtime/status.h"
#include "runtime/tensor.h"

namespace deepnet {

// One named parameter tensor and its gradient, views into the unit's two flat buffers.
struct Parameter {
  // Export name (docs/design.md#export-format), e.g. "encoder.layers.3.fc1.weight".
  std::string name;
  Tensor value;      // what the ops read: the weights themselves, or their 16-bit compute copy
  Tensor grad;       // in the model's (master) dtype
  // Mixed precision: the fp32 master weights the optimizer updates and checkpoints hold; `value`
  // is their rounded copy. Empty when `value` is itself the master.
  Tensor master;
  // Tied copies (the output projection's copy of the shared embedding) are kept equal by giving
  // them the same summed gradient and the same update; only the primary copy counts in the norm
  // and is exported.
  bool tied_copy = false;

  // The trained weights: the master copy when there is one.
  const Tensor& weights() const { return master.defined() ? master : value; }
  // After the weights change (an update, a checkpoint load): refresh the compute copy.
  void SyncComputeCopy(const Backend& backend) const {
    if (master.defined()) backend.Convert(value, master);
  }
};

// The tensors that cross unit and stage boundaries for one micro-batch.
struct Stream {
  Tensor enc;  // (B, S, C) encoder states; once the encoder is done, its output (read by decoders)
  Tensor dec;  // (B, T, C) decoder states
  // Set by the loss unit: Σ token losses (with label smoothing) and the non-pad target tokens.
  double loss_sum = 0.0;
  int64_t loss_tokens = 0;
};

// One micro-batch of token ids (host or device tensors). Unused fields stay empty (e.g. an
// encoder-only model has no target_input).
struct MicroBatch {
  Tensor source;        // (B, S) i32, pad-filled
  Tensor source_mask;   // (B, S) u8, 1 = padding
  Tensor target_input;  // (B, T) i32: <s> + pieces
  Tensor target_mask;   // (B, T) u8, 1 = padding
  Tensor target;        // (B, T) i32: pieces + </s>, pad where absent (ignored by the loss)
  int64_t num_target_tokens = 0;
  int index = 0;  // micro-batch number within the step (for the RNG)
};

enum class Recompute { kNone, kSelective, kFull };

struct StepContext {
  const Backend* backend = nullptr;
  uint64_t seed = 0;
  int64_t step = 0;
  bool training = true;  // dropout on
  Recompute recompute = Recompute::kNone;
  // d(loss)/d(Σ token losses): 1 / non-pad target tokens of the whole global batch, so
  // micro-batch gradients add up to the gradient of the mean.
  double loss_scale = 1.0;
  double label_smoothing = 0.0;
  int pad_id = 0;
};

// What a unit's backward needs from its forward, for one micro-batch. Units subclass it.
class SavedActivations {
 public:
  virtual ~SavedActivations() = default;
  // Bytes held (for the memory report and the partitioner's cost model).
  virtual int64_t bytes() const = 0;
};

// Weight-gradient work held back by a split backward (zero-bubble schedules). It keeps references
// to the tensors it was given (the gradient Stream's tensors included): callers must not overwrite
// them until BackwardWeight has run.
class DeferredWeightGrads {
 public:
  virtual ~DeferredWeightGrads() = default;
};

class Unit {
 public:
  virtual ~Unit() = default;

  const std::string& name() const { return name_; }
  int index() const { return index_; }  // position in the whole model's unit sequence
  std::vector<Parameter>& parameters() { return parameters_; }
  const std::vector<Parameter>& parameters() const { return parameters_; }
  // The unit's two flat buffers (1-D, kParameters and kGradients); every Parameter's value and
  // grad is a view into them, in declaration order, packed. Empty (numel 0) for a unit without
  // parameters.
  const Tensor& flat_values() const { return flat_values_; }
  const Tensor& flat_grads() const { return flat_grads_; }
  // Mixed precision: the flat fp32 master weights behind flat_values (empty otherwise).
  const Tensor& flat_master() const { return flat_master_; }

  // Transforms `io` for `mb`, and returns what Backward needs (respecting ctx.recompute).
  virtual std::unique_ptr<SavedActivations> Forward(const StepContext& ctx, const MicroBatch& mb,
                                                    Stream& io) = 0;

  // Turns the gradient w.r.t. this unit's outputs (`grad`) into the gradient w.r.t. its inputs
  // and accumulates parameter gradients. The loss unit starts from an empty `grad`.
  virtual void Backward(const StepContext& ctx, const MicroBatch& mb, const SavedActivations& saved,
                        Stream& grad) = 0;

  // Split backward for zero-bubble schedules: BackwardInput does Backward's work except the
  // parameter gradients, which it returns; BackwardWeight then accumulates them. Together they
  // produce results bit-identical to Backward.
  virtual std::unique_ptr<DeferredWeightGrads> BackwardInput(const StepContext& ctx,
                                                             const MicroBatch& mb,
                                                             const SavedActivations& saved,
                                                             Stream& grad) = 0;
  virtual void BackwardWeight(const StepContext& ctx, DeferredWeightGrads& deferred) = 0;

 protected:
  Unit(std::string name, int index) : name_(std::move(name)), index_(index) {}

  std::string name_;
  int index_;
  std::vector<Parameter> parameters_;
  Tensor flat_values_;
  Tensor flat_grads_;
  Tensor flat_master_;
};

}  // namespace deepnet
