// The LossScaler state machine of fp16 mixed precision (host logic).
#include "train/loss_scaler.h"

#include <gtest/gtest.h>

namespace deepnet {
namespace {

LossScalerOptions SmallOptions() {
  LossScalerOptions options;
  options.initial_scale = 1024.0;
  options.growth_factor = 2.0;
  options.backoff_factor = 0.5;
  options.growth_interval = 3;
  options.min_scale = 256.0;
  options.max_scale = 4096.0;
  return options;
}

TEST(LossScalerTest, GrowsAfterTheIntervalOfFiniteSteps) {
  LossScaler scaler(SmallOptions());
  EXPECT_EQ(scaler.scale(), 1024.0);
  EXPECT_TRUE(scaler.Update(false));
  EXPECT_TRUE(scaler.Update(false));
  EXPECT_EQ(scaler.scale(), 1024.0);
  EXPECT_TRUE(scaler.Update(false));
  EXPECT_EQ(scaler.scale(), 2048.0);
  EXPECT_EQ(scaler.state().finite_steps, 0);
  EXPECT_DOUBLE_EQ(scaler.inverse_scale(), 1.0 / 2048.0);
}

TEST(LossScalerTest, OverflowSkipsTheStepBacksOffAndRestartsTheCount) {
  LossScaler scaler(SmallOptions());
  EXPECT_TRUE(scaler.Update(false));
  EXPECT_TRUE(scaler.Update(false));
  EXPECT_FALSE(scaler.Update(true));
  EXPECT_EQ(scaler.scale(), 512.0);
  EXPECT_EQ(scaler.state().finite_steps, 0);
  EXPECT_EQ(scaler.state().skipped_steps, 1);
  // The count restarted: two more finite steps are not enough to grow.
  EXPECT_TRUE(scaler.Update(false));
  EXPECT_TRUE(scaler.Update(false));
  EXPECT_EQ(scaler.scale(), 512.0);
  EXPECT_TRUE(scaler.Update(false));
  EXPECT_EQ(scaler.scale(), 1024.0);
}

TEST(LossScalerTest, ScaleStaysWithinItsBounds) {
  LossScaler scaler(SmallOptions());
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(scaler.Update(true));
  EXPECT_EQ(scaler.scale(), 256.0);
  EXPECT_EQ(scaler.state().skipped_steps, 5);
  for (int i = 0; i < 30; ++i) EXPECT_TRUE(scaler.Update(false));
  EXPECT_EQ(scaler.scale(), 4096.0);
}

TEST(LossScalerTest, DisabledScalerKeepsScaleOneButStillSkipsOverflows) {
  LossScalerOptions options = SmallOptions();
  options.enabled = false;
  LossScaler scaler(options);
  EXPECT_EQ(scaler.scale(), 1.0);
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(scaler.Update(false));
  EXPECT_FALSE(scaler.Update(true));
  EXPECT_EQ(scaler.scale(), 1.0);
  EXPECT_EQ(scaler.state().skipped_steps, 1);
}

TEST(LossScalerTest, RestoreResumesExactly) {
  LossScaler original(SmallOptions());
  original.Update(false);
  original.Update(true);
  original.Update(false);
  LossScaler resumed(SmallOptions());
  resumed.Restore(original.state());
  for (bool overflow : {false, false, true, false, false, false}) {
    EXPECT_EQ(resumed.Update(overflow), original.Update(overflow));
    EXPECT_EQ(resumed.scale(), original.scale());
    EXPECT_EQ(resumed.state().finite_steps, original.state().finite_steps);
  }
}

TEST(LossScalerTest, DefaultsFollowTheUsualDynamicScaling) {
  LossScaler scaler;
  EXPECT_EQ(scaler.scale(), 65536.0);
  for (int i = 0; i < 1999; ++i) scaler.Update(false);
  EXPECT_EQ(scaler.scale(), 65536.0);
  scaler.Update(false);
  EXPECT_EQ(scaler.scale(), 131072.0);
}

TEST(LossScalerDeathTest, RejectsOptionsThatCannotWork) {
  LossScalerOptions options;
  options.backoff_factor = 1.5;
  EXPECT_DEATH(LossScaler{options}, "backoff_factor");
}

}  // namespace
}  // namespace deepnet
