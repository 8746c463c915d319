// Learning-rate schedules against fairseq's formulas, written out by hand.
#include "train/lr_schedule.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

namespace deepnet {
namespace {

config::LrScheduleConfig Schedule(config::LrScheduleConfig::Type type, int64_t warmup,
                                  double init_lr, double min_lr) {
  config::LrScheduleConfig s;
  s.set_type(type);
  s.set_warmup_steps(warmup);
  s.set_warmup_init_lr(init_lr);
  s.set_min_lr(min_lr);
  return s;
}

TEST(LrScheduleTest, InverseSqrtAsFairseq) {
  const LrSchedule s = *LrSchedule::Create(
      Schedule(config::LrScheduleConfig::INVERSE_SQRT, 4000, 1e-7, 0.0), 5e-4, 100000);
  EXPECT_DOUBLE_EQ(s.LearningRate(0), 1e-7);
  EXPECT_DOUBLE_EQ(s.LearningRate(1000), 1e-7 + (5e-4 - 1e-7) * 0.25);
  EXPECT_DOUBLE_EQ(s.LearningRate(2000), 1e-7 + (5e-4 - 1e-7) * 0.5);
  EXPECT_DOUBLE_EQ(s.LearningRate(4000), 5e-4);
  EXPECT_DOUBLE_EQ(s.LearningRate(16000), 2.5e-4);
  // fairseq: decay_factor = lr · sqrt(warmup), lr = decay_factor / sqrt(num_updates).
  EXPECT_DOUBLE_EQ(s.LearningRate(9000), 5e-4 * std::sqrt(4000.0) / std::sqrt(9000.0));
  EXPECT_LT(s.LearningRate(4001), s.LearningRate(4000));
}

TEST(LrScheduleTest, MinLrFloorsTheDecay) {
  const LrSchedule s = *LrSchedule::Create(
      Schedule(config::LrScheduleConfig::INVERSE_SQRT, 100, 0.0, 1e-4), 1e-3, 0);
  EXPECT_DOUBLE_EQ(s.LearningRate(0), 0.0);  // warm-up is not floored
  EXPECT_DOUBLE_EQ(s.LearningRate(400), 5e-4);
  EXPECT_DOUBLE_EQ(s.LearningRate(1000000), 1e-4);
}

TEST(LrScheduleTest, Constant) {
  const LrSchedule s =
      *LrSchedule::Create(Schedule(config::LrScheduleConfig::CONSTANT, 10, 0.0, 0.0), 2e-3, 50);
  EXPECT_DOUBLE_EQ(s.LearningRate(0), 0.0);
  EXPECT_DOUBLE_EQ(s.LearningRate(5), 1e-3);
  EXPECT_DOUBLE_EQ(s.LearningRate(10), 2e-3);
  EXPECT_DOUBLE_EQ(s.LearningRate(1000), 2e-3);
  const LrSchedule no_warmup =
      *LrSchedule::Create(Schedule(config::LrScheduleConfig::CONSTANT, 0, 0.0, 0.0), 2e-3, 50);
  EXPECT_DOUBLE_EQ(no_warmup.LearningRate(0), 2e-3);
}

TEST(LrScheduleTest, CosineFromPeakToMinAtMaxSteps) {
  const LrSchedule s = *LrSchedule::Create(
      Schedule(config::LrScheduleConfig::LINEAR_WARMUP_COSINE, 100, 0.0, 1e-5), 1e-3, 1100);
  EXPECT_DOUBLE_EQ(s.LearningRate(50), 5e-4);
  EXPECT_DOUBLE_EQ(s.LearningRate(100), 1e-3);
  EXPECT_DOUBLE_EQ(s.LearningRate(600), 1e-5 + (1e-3 - 1e-5) * 0.5);
  EXPECT_DOUBLE_EQ(s.LearningRate(350),
                   1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + std::cos(std::numbers::pi * 0.25)));
  EXPECT_DOUBLE_EQ(s.LearningRate(1100), 1e-5);
  EXPECT_DOUBLE_EQ(s.LearningRate(5000), 1e-5);
}

TEST(LrScheduleTest, RejectsBadSchedules) {
  EXPECT_FALSE(LrSchedule::Create(
                   Schedule(config::LrScheduleConfig::LR_SCHEDULE_UNSPECIFIED, 10, 0, 0), 1e-3, 10)
                   .ok());
  EXPECT_FALSE(
      LrSchedule::Create(Schedule(config::LrScheduleConfig::INVERSE_SQRT, 0, 0, 0), 1e-3, 10).ok());
}

}  // namespace
}  // namespace deepnet
