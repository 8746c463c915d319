// Adam / AdamW over the parameters of a list of units, with global gradient-norm clipping.
//
// The step, in order:
//   1. each unit's Σ grad² over its primary parameters (tied copies skipped: they hold the same
//      summed gradient as their primary), one reduction over the unit's flat gradient buffer;
//   2. a GradNormReducer adds the per-unit partial sums in unit order. One process sums its own;
//      a pipeline gathers every stage's partials and adds them in the same unit order, so the norm
//      — and the whole update — is bit-identical for any partition;
//   3. clip scale = min(1, clip_norm / (norm + 1e-6)) (PyTorch clip_grad_norm_);
//   4. every parameter, tied copies included, gets the same Adam(W) update from its own moments,
//      so tied copies stay equal bit for bit.
// Mixed precision: parameters with a master copy (Parameter::master) are updated there, in fp32,
// and the 16-bit compute copy is refreshed after the update. Under fp16 loss scaling (a LossScaler
// owned here) gradients carry the factor loss_scale(): the norm and the update divide it out.
// A step whose gradients are not finite (an fp16 overflow, or a diverging run in any precision)
// is skipped and counted instead of updating anything; the run loop decides when to give up.
// ADAM adds weight_decay·param to the (clipped) gradient (L2, as torch.optim.Adam); ADAMW decays
// the weights directly (decoupled). The moments m, v are charged to kOptimizerState.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "configs/deepnet.pb.h"
#include "kernels/backend.h"
#include "model/unit.h"
#include "runtime/status.h"
#include "train/loss_scaler.h"

namespace deepnet {

struct UnitGradSquares {
  int unit_index = 0;
  double sum_of_squares = 0.0;
};

// Turns this process's per-unit partial sums into the global Σ grad² of the whole model.
class GradNormReducer {
 public:
  virtual ~GradNormReducer() = default;
  // `local` is in increasing unit order. The result must add every unit's partial in unit order.
  virtual StatusOr<double> GlobalSumOfSquares(const std::vector<UnitGradSquares>& local) = 0;
};

// A single process holding every unit.
class LocalGradNormReducer final : public GradNormReducer {
 public:
  StatusOr<double> GlobalSumOfSquares(const std::vector<UnitGradSquares>& local) override;
};

struct OptimizerOptions {
  config::OptimizerConfig::Type type = config::OptimizerConfig::ADAM;
  double beta1 = 0.9;
  double beta2 = 0.98;
  double eps = 1e-8;
  double weight_decay = 0.0;
  double clip_norm = 0.0;  // 0 = no clipping

  static OptimizerOptions FromConfig(const config::RunConfig& config);
};

struct OptimizerStepStats {
  double grad_norm = 0.0;   // before clipping, loss scale divided out
  double clip_scale = 1.0;  // factor applied to the gradients
  double loss_scale = 1.0;  // the factor the step's gradients carried
  bool skipped = false;     // the gradients were not finite: nothing was updated
  double next_loss_scale = 1.0;   // the scale of the next step (backed off after a skip)
  int64_t skipped_steps = 0;      // skipped steps so far, this one included
};

// One parameter's Adam moments, for checkpoints.
struct ParameterState {
  const Unit* unit = nullptr;
  Parameter* parameter = nullptr;
  Tensor m;  // first moment, like the parameter's weights()
  Tensor v;  // second moment
};

class Optimizer {
 public:
  // Allocates zeroed moments for every parameter of `units` (which must outlive the optimizer).
  // `scaler` enabled: fp16 dynamic loss scaling; disabled (the default): scale 1, and a
  // non-finite gradient norm fails the step.
  static StatusOr<std::unique_ptr<Optimizer>> Create(
      std::vector<Unit*> units, const OptimizerOptions& options, const Backend& backend,
      const LossScalerOptions& scaler = {.enabled = false});

  // Σ grad² of each unit's primary parameters (step 1 above).
  std::vector<UnitGradSquares> LocalGradSquares() const;

  // Clips and updates every parameter with learning rate `lr`, then advances step(). A non-finite
  // gradient norm updates nothing (stats.skipped; under loss scaling the scale backs off).
  StatusOr<OptimizerStepStats> Step(double lr, GradNormReducer& reducer);

  // OK when every parameter and moment is finite; else FailedPrecondition naming the first that
  // is not (checked before a checkpoint is written: poisoned state is never saved).
  Status CheckFinite() const;

  // Updates done so far (Adam's bias correction uses step() + 1 for the next one).
  int64_t step() const { return step_; }
  void set_step(int64_t step) { step_ = step; }
  // What the loss must be multiplied by before backward (1 without loss scaling).
  double loss_scale() const { return scaler_.scale(); }
  // Training steps skipped for overflow: step() + skipped_steps() steps were taken.
  int64_t skipped_steps() const { return scaler_.state().skipped_steps; }
  LossScaler& loss_scaler() { return scaler_; }
  std::vector<ParameterState>& states() { return states_; }
  const OptimizerOptions& options() const { return options_; }

 private:
  Optimizer(std::vector<Unit*> units, const OptimizerOptions& options, const Backend& backend,
            const LossScalerOptions& scaler)
      : units_(std::move(units)), options_(options), backend_(backend), scaler_(scaler) {}
  void Update(ParameterState& state, double lr, double grad_scale) const;

  std::vector<Unit*> units_;
  OptimizerOptions options_;
  const Backend& backend_;
  LossScaler scaler_;
  std::vector<ParameterState> states_;  // unit order, then declaration order
  int64_t step_ = 0;
};

}  // namespace deepnet
