// The GradScaler state machine (see the header).
#include "train/loss_scaler.h"

#include <glog/logging.h>

#include <algorithm>

namespace deepnet {

LossScaler::LossScaler(const LossScalerOptions& options) : options_(options) {
  CHECK_GT(options.growth_factor, 1.0) << "LossScaler: growth_factor must exceed 1";
  CHECK(options.backoff_factor > 0.0 && options.backoff_factor < 1.0)
      << "LossScaler: backoff_factor must lie in (0, 1)";
  CHECK_GE(options.growth_interval, 1) << "LossScaler: growth_interval must be positive";
  CHECK(0.0 < options.min_scale && options.min_scale <= options.initial_scale &&
        options.initial_scale <= options.max_scale)
      << "LossScaler: need 0 < min_scale <= initial_scale <= max_scale";
  state_.scale = options.enabled ? options.initial_scale : 1.0;
}

bool LossScaler::Update(bool found_nonfinite) {
  if (found_nonfinite) {
    ++state_.skipped_steps;
    state_.finite_steps = 0;
    if (options_.enabled) {
      state_.scale = std::max(options_.min_scale, state_.scale * options_.backoff_factor);
    }
    return false;
  }
  if (!options_.enabled) return true;
  if (++state_.finite_steps >= options_.growth_interval) {
    state_.scale = std::min(options_.max_scale, state_.scale * options_.growth_factor);
    state_.finite_steps = 0;
  }
  return true;
}

}  // namespace deepnet
