// Learning-rate schedules (see the header for the formulas).
#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace deepnet {

StatusOr<LrSchedule> LrSchedule::Create(const config::LrScheduleConfig& schedule, double peak_lr,
                                        int64_t max_steps) {
  if (schedule.type() == config::LrScheduleConfig::LR_SCHEDULE_UNSPECIFIED) {
    return InvalidArgument("lr_schedule.type is unspecified");
  }
  if (schedule.warmup_steps() < 0) return InvalidArgument("lr_schedule.warmup_steps < 0");
  if (schedule.type() == config::LrScheduleConfig::INVERSE_SQRT && schedule.warmup_steps() < 1) {
    return InvalidArgument("lr_schedule.warmup_steps must be >= 1 for INVERSE_SQRT");
  }
  LrSchedule s;
  s.type_ = schedule.type();
  s.peak_lr_ = peak_lr;
  s.warmup_init_lr_ = schedule.warmup_init_lr();
  s.min_lr_ = schedule.min_lr();
  s.warmup_steps_ = schedule.warmup_steps();
  s.max_steps_ = max_steps;
  return s;
}

double LrSchedule::LearningRate(int64_t step) const {
  if (step < warmup_steps_) {
    const double fraction = static_cast<double>(step) / static_cast<double>(warmup_steps_);
    return warmup_init_lr_ + (peak_lr_ - warmup_init_lr_) * fraction;
  }
  double lr = peak_lr_;
  switch (type_) {
    case config::LrScheduleConfig::INVERSE_SQRT:
      lr = peak_lr_ * std::sqrt(static_cast<double>(warmup_steps_)) /
           std::sqrt(static_cast<double>(step));
      break;
    case config::LrScheduleConfig::LINEAR_WARMUP_COSINE: {
      const int64_t decay_steps = std::max<int64_t>(1, max_steps_ - warmup_steps_);
      const double progress = std::min(
          1.0, static_cast<double>(step - warmup_steps_) / static_cast<double>(decay_steps));
      lr = min_lr_ + (peak_lr_ - min_lr_) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
      break;
    }
    default:
      break;
  }
  return std::max(lr, min_lr_);
}

}  // namespace deepnet
