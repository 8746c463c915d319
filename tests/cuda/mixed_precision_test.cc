// Mixed precision on a GPU: the overflow check and the multi-tensor AdamW with its compute copies
// (the LossScaler is host logic: tests/train/loss_scaler_test.cc).
#include "kernels/cuda/mixed_precision.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cuda/cuda_backend.h"
#include "tests/cuda/cuda_test_util.h"

namespace deepnet::cuda {
namespace {

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
  const AdamWConfig config{.lr = 1e-2, .weight_decay = 0.1};
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
