// Dynamic loss scaling for fp16 mixed precision (host logic; the same on every backend).
//
// fp16 has too little exponent range for small gradients: the loss is multiplied by scale()
// before backward, the gradients are checked for inf/NaN (their sum of squares is non-finite
// exactly when one is), an overflowing step is skipped and the scale backed off, and the
// optimizer divides the scale out again (grad_scale = clip_factor / scale). bf16 and fp32 keep
// scale() at 1 (enabled = false) but still count skipped steps.
#pragma once

#include <cstdint>

namespace deepnet {

struct LossScalerOptions {
  bool enabled = true;  // false: scale() stays 1 (bf16, fp32)
  double initial_scale = 65536.0;
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;  // finite steps in a row before the scale grows
  double min_scale = 1.0;
  double max_scale = 16777216.0;  // 2^24
};

// The GradScaler state machine: after each backward, Update(found_nonfinite) says whether the
// optimizer step may run. An overflow skips the step, multiplies the scale by backoff_factor
// (not below min_scale) and restarts the count; growth_interval finite steps in a row multiply it
// by growth_factor (not above max_scale).
class LossScaler {
 public:
  struct State {
    double scale = 1.0;
    int64_t finite_steps = 0;  // finite steps since the last change of scale
    int64_t skipped_steps = 0;
  };

  explicit LossScaler(const LossScalerOptions& options = {});

  double scale() const { return state_.scale; }
  // Multiply gradients by this before the optimizer (1 / scale).
  double inverse_scale() const { return 1.0 / state_.scale; }
  // True: apply the step. False: skip it (gradients overflowed).
  bool Update(bool found_nonfinite);

  // For checkpoints: the scaler resumes exactly where it stopped.
  const State& state() const { return state_; }
  void Restore(const State& state) { state_ = state; }
  const LossScalerOptions& options() const { return options_; }

 private:
  LossScalerOptions options_;
  State state_;
};

}  // namespace deepnet
