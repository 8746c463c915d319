// Learning-rate schedules, as fairseq computes them.
//
// `step` is the number of optimizer updates already done: the update that takes the model from
// step s to s + 1 uses LearningRate(s). Every schedule starts with a linear warm-up from
// warmup_init_lr (at step 0) to the peak lr (at step warmup_steps), then:
//   INVERSE_SQRT          lr · sqrt(warmup_steps / step)
//   CONSTANT              lr
//   LINEAR_WARMUP_COSINE  min_lr + (lr − min_lr) · (1 + cos(π · progress)) / 2, progress from 0 at
//                         the end of warm-up to 1 at max_steps (then it stays at min_lr)
// and never goes below min_lr after the warm-up.
#pragma once

#include <cstdint>

#include "configs/deepnet.pb.h"
#include "runtime/status.h"

namespace deepnet {

class LrSchedule {
 public:
  // InvalidArgument for an unspecified type or INVERSE_SQRT without warm-up.
  static StatusOr<LrSchedule> Create(const config::LrScheduleConfig& schedule, double peak_lr,
                                     int64_t max_steps);

  double LearningRate(int64_t step) const;

 private:
  LrSchedule() = default;

  config::LrScheduleConfig::Type type_ = config::LrScheduleConfig::CONSTANT;
  double peak_lr_ = 0.0;
  double warmup_init_lr_ = 0.0;
  double min_lr_ = 0.0;
  int64_t warmup_steps_ = 0;
  int64_t max_steps_ = 0;
};

}  // namespace deepnet
