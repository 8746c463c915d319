// TransferBuffers: a buffer is handed out again only once nothing references it, requests of any
// shape that fit reuse it, and the pool never holds more buffers than were in use at once.
#include "parallel/transfer_buffers.h"

#include <gtest/gtest.h>

namespace deepnet {
namespace {

TEST(TransferBuffersTest, ReusesAFreedBufferForAnyShapeThatFits) {
  TransferBuffers pool;
  const Backend& cpu = CpuBackend();
  Tensor a = pool.Acquire({2, 3, 4}, DType::kF32, cpu);
  EXPECT_EQ(a.shape(), (Shape{2, 3, 4}));
  void* const first = a.raw_data();
  Tensor b = pool.Acquire({2, 3, 4}, DType::kF32, cpu);  // `a` is still held
  EXPECT_NE(b.raw_data(), first);
  EXPECT_EQ(pool.allocations(), 2);

  a = Tensor();
  Tensor c = pool.Acquire({3, 2, 4}, DType::kF32, cpu);  // same size, other shape
  EXPECT_EQ(c.raw_data(), first);
  EXPECT_EQ(c.shape(), (Shape{3, 2, 4}));
  c = Tensor();
  Tensor d = pool.Acquire({1, 5, 4}, DType::kF32, cpu);  // smaller fits
  EXPECT_EQ(d.raw_data(), first);
  EXPECT_EQ(pool.reuses(), 2);
  EXPECT_EQ(pool.allocations(), 2);
  EXPECT_EQ(pool.pooled(), 2u);
}

TEST(TransferBuffersTest, AViewKeepsItsBufferBusy) {
  TransferBuffers pool;
  Tensor a = pool.Acquire({4, 8}, DType::kF32, CpuBackend());
  Tensor row = a.Slice(1, 2);
  a = Tensor();
  Tensor b = pool.Acquire({4, 8}, DType::kF32, CpuBackend());
  EXPECT_FALSE(b.SameStorage(row));
  EXPECT_EQ(pool.allocations(), 2);
}

TEST(TransferBuffersTest, GrowingRequestsReplaceInsteadOfAccumulating) {
  TransferBuffers pool;
  for (int64_t n = 1; n <= 50; ++n) {
    Tensor t = pool.Acquire({n, 16}, DType::kF32, CpuBackend());
    EXPECT_EQ(t.numel(), n * 16);
  }
  EXPECT_EQ(pool.pooled(), 1u);  // one in use at a time: one buffer, the latest size
  EXPECT_EQ(pool.pooled_bytes(), 50 * 16 * 4);
  EXPECT_EQ(pool.allocations(), 50);
}

TEST(TransferBuffersTest, DTypesDoNotMix) {
  TransferBuffers pool;
  { Tensor f = pool.Acquire({8}, DType::kF32, CpuBackend()); }
  Tensor d = pool.Acquire({4}, DType::kF64, CpuBackend());
  EXPECT_EQ(d.dtype(), DType::kF64);
  EXPECT_EQ(pool.reuses(), 0);
}

}  // namespace
}  // namespace deepnet
