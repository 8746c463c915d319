// Properties of CudaBackend beyond closeness to the CPU: creation fails cleanly without a GPU,
// dropout masks are bit-identical to the CPU's, fully masked attention rows are exact zeros, and
// two runs of the same backward ops give the same bits.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "kernels/cpu/dropout.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/device.h"
#include "tests/cuda/cuda_test_util.h"

namespace deepnet::cuda {
namespace {

using testing::DTypeLabel;
using testing::MakeTensor;
using testing::RandomValues;
using testing::ToDoubles;

constexpr RngStream kRng{.seed = 99, .step = 1000, .micro_batch = 2, .site = 17};

TEST(CudaBackendTest, CreateReportsWhyThereIsNoGpu) {
  StatusOr<int> count = DeviceCount();
  StatusOr<std::unique_ptr<CudaBackend>> backend = CudaBackend::Create();
  if (!count.ok()) {
    ASSERT_FALSE(backend.ok());
    EXPECT_EQ(backend.status().code(), StatusCode::kUnavailable);
    EXPECT_FALSE(backend.status().message().empty());
  } else {
    ASSERT_TRUE(backend.ok()) << backend.status();
    EXPECT_EQ((*backend)->name(), "cuda");
  }
}

// Raw bytes of a host copy.
std::vector<uint8_t> Bytes(const Backend& backend, const Tensor& t) {
  Tensor host = Tensor::Empty(t.shape(), t.dtype(), MemoryCategory::kOther);
  backend.Copy(host, t);
  std::vector<uint8_t> bytes(host.nbytes());
  std::memcpy(bytes.data(), host.raw_data(), bytes.size());
  return bytes;
}

TEST(CudaDropoutTest, MasksAreBitIdenticalToCpu) {
  DEEPNET_GPU_OR_SKIP(gpu);
  const int n = 4099;  // not a multiple of 4: the last Philox group is partial
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    // Nonzero inputs, so a zero output means "dropped".
    const std::vector<double> values = RandomValues(n, 7, 0.5, 1.5, dtype);
    std::vector<float> x(values.begin(), values.end()), want(n);
    cpu::dropout_forward(want.data(), x.data(), n, 0.3f, kRng);
    const Tensor input = MakeTensor(*gpu, values, {n}, dtype);
    const Tensor output = gpu->Empty({n}, dtype, MemoryCategory::kOther);
    gpu->DropoutForward(output, input, 0.3f, kRng);
    const std::vector<double> got = ToDoubles(*gpu, output);
    int mismatched_masks = 0, mismatched_values = 0;
    for (int i = 0; i < n; ++i) {
      mismatched_masks += (got[i] == 0.0) != (want[i] == 0.0f);
      // x·(1/(1 − p)) rounds once on both sides: f32 is exact, 16-bit rounds once more.
      mismatched_values += got[i] != testing::RoundTo(dtype, want[i]);
    }
    EXPECT_EQ(mismatched_masks, 0) << DTypeLabel(dtype);
    EXPECT_EQ(mismatched_values, 0) << DTypeLabel(dtype);
  }
}

TEST(CudaAttentionTest, FullyMaskedRowsGiveExactZeros) {
  DEEPNET_GPU_OR_SKIP(gpu);
  const AttentionShape s{.B = 2, .Tq = 9, .Tk = 12, .H = 2, .D = 64, .causal = false};
  const int C = s.H * s.D;
  std::vector<double> mask(s.B * s.Tk, 0.0);
  for (int j = 0; j < s.Tk; ++j) mask[s.Tk + j] = 1.0;  // batch 1: every key is padding
  const DType dtype = DType::kBF16;
  const Tensor q =
      MakeTensor(*gpu, RandomValues(s.B * s.Tq * C, 1, -1, 1, dtype), {s.B, s.Tq, C}, dtype);
  const Tensor kv =
      MakeTensor(*gpu, RandomValues(s.B * s.Tk * C, 2, -1, 1, dtype), {s.B, s.Tk, C}, dtype);
  const Tensor key_mask = MakeTensor(*gpu, mask, {s.B, s.Tk}, DType::kU8);
  const Tensor stats = gpu->Empty({static_cast<int64_t>(CudaBackend::AttentionStatsBytes(s))},
                                  DType::kU8, MemoryCategory::kOther);
  const Tensor out = gpu->Empty({s.B, s.Tq, C}, dtype, MemoryCategory::kOther);
  gpu->AttentionForward(out, stats, q, kv, kv, &key_mask, s, 0.1f, kRng);
  const Tensor dq = gpu->Empty(q.shape(), dtype, MemoryCategory::kOther);
  const Tensor dk = gpu->Empty(kv.shape(), dtype, MemoryCategory::kOther);
  const Tensor dv = gpu->Empty(kv.shape(), dtype, MemoryCategory::kOther);
  gpu->AttentionBackward(dq, dk, dv, q, q, kv, kv, stats, s, 0.1f, kRng);
  const std::vector<double> o = ToDoubles(*gpu, out), gq = ToDoubles(*gpu, dq);
  const std::vector<double> gk = ToDoubles(*gpu, dk);
  for (size_t i = static_cast<size_t>(s.Tq) * C; i < o.size(); ++i) {
    ASSERT_EQ(o[i], 0.0) << "out element " << i;
    ASSERT_EQ(gq[i], 0.0) << "dq element " << i;
  }
  for (size_t i = static_cast<size_t>(s.Tk) * C; i < gk.size(); ++i) {
    ASSERT_EQ(gk[i], 0.0) << "dk element " << i;
  }
  double first_batch = 0.0;
  for (size_t i = 0; i < static_cast<size_t>(s.Tq) * C; ++i) first_batch += std::abs(o[i]);
  EXPECT_GT(first_batch, 0.0);  // the unmasked batch is not zero
}

// Runs the backward ops whose reductions could depend on scheduling (GEMM, LayerNorm partials,
// attention, embedding scatter, column sums, sum of squares) and returns all their output bytes.
std::vector<uint8_t> BackwardBytes(CudaBackend& gpu, DType dtype) {
  const int N = 128, C = 256, V = 97;
  const AttentionShape s{.B = 2, .Tq = 64, .Tk = 64, .H = 4, .D = 64, .causal = true};
  auto in = [&](const Shape& shape, uint32_t seed, DType type) {
    return MakeTensor(gpu, RandomValues(NumElements(shape), seed, -1, 1, type), shape, type);
  };
  const Tensor x = in({N, C}, 1, dtype), g = in({N, C}, 2, dtype), dy = in({N, C}, 3, dtype);
  const Tensor gamma = in({C}, 4, dtype), beta = in({C}, 5, dtype);
  const Tensor weight = in({C, C}, 6, dtype);
  const Tensor dweight = in({C, C}, 7, DType::kF32), dbias = in({C}, 8, DType::kF32);
  const Tensor dgamma = in({C}, 9, DType::kF32), dbeta = in({C}, 10, DType::kF32);
  const Tensor mean = gpu.Empty({N}, DType::kF32, MemoryCategory::kOther);
  const Tensor rstd = gpu.Empty({N}, DType::kF32, MemoryCategory::kOther);
  const Tensor y = gpu.Empty({N, C}, dtype, MemoryCategory::kOther);
  const Tensor dx = gpu.Empty({N, C}, dtype, MemoryCategory::kOther);
  const Tensor dinp = gpu.Empty({N, C}, dtype, MemoryCategory::kOther);
  gpu.DeepNormForward(y, mean, rstd, x, g, gamma, beta, 2.0, 1e-5);
  gpu.DeepNormBackward(&dx, nullptr, dgamma, dbeta, dy, x, g, gamma, mean, rstd, 2.0);
  gpu.LinearBackward(&dinp, GradWrite::kOverwrite, &dweight, &dbias, dy, x, weight);

  std::vector<double> ids(N);
  for (int n = 0; n < N; ++n) ids[n] = (n * n) % V;
  const Tensor tokens = MakeTensor(gpu, ids, {N}, DType::kI32);
  const Tensor dtable = in({V, C}, 11, DType::kF32);
  gpu.EmbeddingBackward(dtable, tokens, dy, 16.0);

  const Tensor q = in({s.B, s.Tq, s.H * s.D}, 12, dtype), k = in(q.shape(), 13, dtype);
  const Tensor v = in(q.shape(), 14, dtype), dout = in(q.shape(), 15, dtype);
  const Tensor stats = gpu.Empty({static_cast<int64_t>(CudaBackend::AttentionStatsBytes(s))},
                                 DType::kU8, MemoryCategory::kOther);
  const Tensor out = gpu.Empty(q.shape(), dtype, MemoryCategory::kOther);
  const Tensor dq = gpu.Empty(q.shape(), dtype, MemoryCategory::kOther);
  const Tensor dk = gpu.Empty(q.shape(), dtype, MemoryCategory::kOther);
  const Tensor dv = gpu.Empty(q.shape(), dtype, MemoryCategory::kOther);
  gpu.AttentionForward(out, stats, q, k, v, nullptr, s, 0.1f, kRng);
  gpu.AttentionBackward(dq, dk, dv, dout, q, k, v, stats, s, 0.1f, kRng);

  std::vector<uint8_t> all;
  for (const Tensor* t :
       {&y, &dx, &dinp, &dweight, &dbias, &dgamma, &dbeta, &dtable, &out, &dq, &dk, &dv}) {
    const std::vector<uint8_t> bytes = Bytes(gpu, *t);
    all.insert(all.end(), bytes.begin(), bytes.end());
  }
  const double norm = gpu.SumOfSquares(std::vector<Tensor>{dweight, dtable, dq});
  const auto* norm_bytes = reinterpret_cast<const uint8_t*>(&norm);
  all.insert(all.end(), norm_bytes, norm_bytes + sizeof(norm));
  return all;
}

TEST(CudaDeterminismTest, TwoRunsGiveTheSameBits) {
  DEEPNET_GPU_OR_SKIP(gpu);
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    const std::vector<uint8_t> first = BackwardBytes(*gpu, dtype);
    const std::vector<uint8_t> second = BackwardBytes(*gpu, dtype);
    ASSERT_EQ(first.size(), second.size());
    EXPECT_TRUE(first == second) << DTypeLabel(dtype) << ": outputs differ between runs";
  }
}

}  // namespace
}  // namespace deepnet::cuda
