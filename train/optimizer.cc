// Adam / AdamW with global gradient-norm clipping (see the header for the order of operations).
#include "train/optimizer.h"

#include <algorithm>
#include <cmath>

namespace deepnet {

StatusOr<double> LocalGradNormReducer::GlobalSumOfSquares(
    const std::vector<UnitGradSquares>& local) {
  double total = 0.0;
  for (const UnitGradSquares& unit : local) total += unit.sum_of_squares;
  return total;
}

OptimizerOptions OptimizerOptions::FromConfig(const config::RunConfig& config) {
  OptimizerOptions options;
  options.type = config.optimizer().type();
  options.beta1 = config.optimizer().beta1();
  options.beta2 = config.optimizer().beta2();
  options.eps = config.optimizer().eps();
  options.weight_decay = config.optimizer().weight_decay();
  options.clip_norm = config.train().clip_norm();
  return options;
}

StatusOr<std::unique_ptr<Optimizer>> Optimizer::Create(std::vector<Unit*> units,
                                                       const OptimizerOptions& options,
                                                       const Backend& backend,
                                                       const LossScalerOptions& scaler) {
  if (options.type != config::OptimizerConfig::ADAM &&
      options.type != config::OptimizerConfig::ADAMW) {
    return InvalidArgument("optimizer.type must be ADAM or ADAMW");
  }
  std::unique_ptr<Optimizer> optimizer(new Optimizer(std::move(units), options, backend, scaler));
  for (Unit* unit : optimizer->units_) {
    for (Parameter& parameter : unit->parameters()) {
      ParameterState state;
      state.unit = unit;
      state.parameter = &parameter;
      const Tensor& weights = parameter.weights();
      state.m = backend.Zeros(weights.shape(), weights.dtype(), MemoryCategory::kOptimizerState);
      state.v = backend.Zeros(weights.shape(), weights.dtype(), MemoryCategory::kOptimizerState);
      optimizer->states_.push_back(std::move(state));
    }
  }
  return optimizer;
}

std::vector<UnitGradSquares> Optimizer::LocalGradSquares() const {
  std::vector<UnitGradSquares> partials;
  partials.reserve(units_.size());
  for (const Unit* unit : units_) {
    UnitGradSquares partial{unit->index(), 0.0};
    const bool has_tied_copy =
        std::any_of(unit->parameters().begin(), unit->parameters().end(),
                    [](const Parameter& p) { return p.tied_copy; });
    if (!has_tied_copy && unit->flat_grads().numel() > 0) {
      // One reduction over the unit's flat buffer: on a GPU each is a host sync.
      partial.sum_of_squares = backend_.SumOfSquares(unit->flat_grads());
    } else {
      for (const Parameter& parameter : unit->parameters()) {
        if (!parameter.tied_copy) partial.sum_of_squares += backend_.SumOfSquares(parameter.grad);
      }
    }
    partials.push_back(partial);
  }
  return partials;
}

void Optimizer::Update(ParameterState& state, double lr, double grad_scale) const {
  const Parameter& p = *state.parameter;
  const Tensor& weights = p.weights();
  AdamWConfig adam;
  adam.lr = lr;
  adam.beta1 = options_.beta1;
  adam.beta2 = options_.beta2;
  adam.eps = options_.eps;
  const int64_t t = step_ + 1;
  if (options_.type == config::OptimizerConfig::ADAMW) {
    adam.weight_decay = options_.weight_decay;
  } else if (options_.weight_decay != 0.0) {
    // Adam with L2: grad ← grad_scale·grad + wd·param (the gradient is consumed by this step).
    if (grad_scale != 1.0) backend_.Scale(p.grad, p.grad, grad_scale);
    backend_.Axpy(p.grad, weights, options_.weight_decay);
    grad_scale = 1.0;
  }
  backend_.AdamW(weights, state.m, state.v, p.grad, adam, t, grad_scale);
  p.SyncComputeCopy(backend_);
}

Status Optimizer::CheckFinite() const {
  for (const ParameterState& state : states_) {
    const std::pair<const char*, const Tensor*> tensors[] = {
        {"", &state.parameter->weights()}, {" (Adam m)", &state.m}, {" (Adam v)", &state.v}};
    for (const auto& [what, tensor] : tensors) {
      if (!std::isfinite(backend_.SumOfSquares(*tensor))) {
        return FailedPrecondition("parameter " + state.parameter->name + what + " of " +
                                  state.unit->name() + " holds non-finite values");
      }
    }
  }
  return OkStatus();
}

StatusOr<OptimizerStepStats> Optimizer::Step(double lr, GradNormReducer& reducer) {
  ASSIGN_OR_RETURN(const double sum_of_squares, reducer.GlobalSumOfSquares(LocalGradSquares()));
  OptimizerStepStats stats;
  stats.loss_scale = scaler_.scale();
  stats.grad_norm = std::sqrt(sum_of_squares) / stats.loss_scale;
  const bool finite = std::isfinite(stats.grad_norm);
  stats.skipped = !scaler_.Update(!finite);
  stats.next_loss_scale = scaler_.scale();
  stats.skipped_steps = skipped_steps();
  if (stats.skipped) return stats;
  if (options_.clip_norm > 0.0) {
    stats.clip_scale = std::min(1.0, options_.clip_norm / (stats.grad_norm + 1e-6));
  }
  for (ParameterState& state : states_) Update(state, lr, stats.clip_scale / stats.loss_scale);
  ++step_;
  return stats;
}

}  // namespace deepnet
