// Mixed precision: the LossScaler state machine (host logic, runs everywhere) and, on a GPU, the
// overflow check and the multi-tensor AdamW with its compute copies.
#include "kernels/cuda/mixed_precision.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cuda/cuda_backend.h"
#include "tests/cuda/cuda_test_util.h"

namespace deepnet::cuda {
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

// ---- on a GPU ----

TEST(CudaMixedPrecisionTest, SumOfSquaresFlagsInfAndNan) {
  DEEPNET_GPU_OR_SKIP(gpu);
  for (double bad : {std::numeric_limits<double>::infinity(), std::nan("")}) {
    std::vector<double> values(50000, 0.25);
    values[31337] = bad;
    const Tensor clean =
        testing::MakeTensor(*gpu, std::vector<double>(100, 1.0), {100}, DType::kF32);
    const Tensor dirty = testing::MakeTensor(*gpu, values, {50000}, DType::kF16);
    EXPECT_FALSE(std::isfinite(gpu->SumOfSquares(std::vector<Tensor>{clean, dirty})));
    EXPECT_EQ(gpu->SumOfSquares(clean), 100.0);
  }
}

TEST(CudaMixedPrecisionTest, MultiTensorAdamWMatchesOneTensorAtATime) {
  DEEPNET_GPU_OR_SKIP(gpu);
  const cpu::AdamWConfig config{.lr = 1e-2, .weight_decay = 0.1};
  // More tensors than one launch takes, of uneven sizes.
  std::vector<AdamWParam> batched, single;
  for (int i = 0; i < 45; ++i) {
    const int64_t n = 1 + (i * 7919) % 20000;
    auto make = [&](uint32_t seed, DType dtype) {
      return testing::MakeTensor(*gpu, testing::RandomValues(n, seed, -1, 1, dtype), {n}, dtype);
    };
    batched.push_back({make(4 * i, DType::kF32), make(4 * i + 1, DType::kF32),
                       make(4 * i + 2, DType::kF32), make(4 * i + 3, DType::kBF16),
                       gpu->Empty({n}, DType::kBF16, MemoryCategory::kOther)});
    AdamWParam copy;
    for (auto [dst, src] :
         {std::pair{&copy.master, &batched.back().master}, std::pair{&copy.m, &batched.back().m},
          std::pair{&copy.v, &batched.back().v}}) {
      *dst = gpu->Empty({n}, DType::kF32, MemoryCategory::kOther);
      gpu->Copy(*dst, *src);
    }
    copy.grad = batched.back().grad;
    single.push_back(copy);
  }
  gpu->MultiTensorAdamW(batched, config, 5, 0.25);
  for (size_t i = 0; i < single.size(); ++i) {
    gpu->AdamW(single[i].master, single[i].m, single[i].v, single[i].grad, config, 5, 0.25);
    const Tensor rounded =
        gpu->Empty(single[i].master.shape(), DType::kBF16, MemoryCategory::kOther);
    gpu->Convert(rounded, single[i].master);
    EXPECT_EQ(testing::ToDoubles(*gpu, batched[i].master),
              testing::ToDoubles(*gpu, single[i].master))
        << "tensor " << i;
    EXPECT_EQ(testing::ToDoubles(*gpu, batched[i].compute_copy), testing::ToDoubles(*gpu, rounded))
        << "tensor " << i;
  }
}

}  // namespace
}  // namespace deepnet::cuda
