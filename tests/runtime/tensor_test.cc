#include "runtime/tensor.h"

#include <gtest/gtest.h>

namespace deepnet {
namespace {

// Each test measures deltas: the CPU allocator is process-wide.
MemoryStats CpuStats() { return GetAllocator(Device::Cpu()).stats(); }

TEST(TensorTest, ShapeDtypeAndZeros) {
  Tensor t = Tensor::Zeros({2, 3, 4}, DType::kF32, MemoryCategory::kActivations);
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.nbytes(), 96u);
  EXPECT_EQ(t.rank(), 3);
  EXPECT_EQ(t.dim(-1), 4);
  EXPECT_EQ(t.ToString(), "f32[2, 3, 4] on cpu");
  for (int i = 0; i < 24; ++i) EXPECT_EQ(t.data<float>()[i], 0.0f);
}

TEST(TensorTest, SliceIsAViewOfTheBatchDimension) {
  Tensor t = Tensor::Empty({4, 3}, DType::kF32, MemoryCategory::kActivations);
  for (int i = 0; i < 12; ++i) t.data<float>()[i] = static_cast<float>(i);
  Tensor rows = t.Slice(1, 3);
  EXPECT_EQ(rows.shape(), (Shape{2, 3}));
  EXPECT_TRUE(rows.SameStorage(t));
  EXPECT_EQ(rows.data<float>()[0], 3.0f);
  rows.data<float>()[0] = 42.0f;  // writes through to the parent
  EXPECT_EQ(t.data<float>()[3], 42.0f);
  EXPECT_EQ(t.Slice(2, 2).numel(), 0);
}

TEST(TensorTest, ReshapeInfersOneDimension) {
  Tensor t = Tensor::Zeros({2, 3, 4}, DType::kF64, MemoryCategory::kWorkspace);
  EXPECT_EQ(t.Reshape({-1, 4}).shape(), (Shape{6, 4}));
  EXPECT_TRUE(t.Reshape({24}).SameStorage(t));
}

TEST(TensorTest, CloneCopiesAndFillSets) {
  Tensor t = Tensor::Empty({5}, DType::kI32, MemoryCategory::kOther);
  t.Fill(7);
  Tensor c = t.Clone();
  t.Fill(1);
  EXPECT_FALSE(c.SameStorage(t));
  EXPECT_EQ(c.data<int32_t>()[4], 7);
}

TEST(TensorTest, AccessWithWrongTypeDies) {
  Tensor t = Tensor::Zeros({2}, DType::kF32, MemoryCategory::kOther);
  EXPECT_DEATH(t.data<double>(), "accessed as f64");
}

TEST(AllocatorTest, AccountsCurrentAndPeakPerCategoryExactly) {
  const MemoryStats before = CpuStats();
  {
    Tensor p = Tensor::Empty({1000}, DType::kF32, MemoryCategory::kParameters);
    Tensor g = Tensor::Empty({10, 10}, DType::kF64, MemoryCategory::kGradients);
    const MemoryStats during = CpuStats();
    EXPECT_EQ(during.current_of(MemoryCategory::kParameters) -
                  before.current_of(MemoryCategory::kParameters),
              4000);
    EXPECT_EQ(during.current_of(MemoryCategory::kGradients) -
                  before.current_of(MemoryCategory::kGradients),
              800);
    EXPECT_EQ(during.total_current - before.total_current, 4800);
    Tensor view = p.Slice(0, 10);  // views cost nothing
    EXPECT_EQ(CpuStats().total_current, during.total_current);
  }
  const MemoryStats after = CpuStats();
  EXPECT_EQ(after.total_current, before.total_current);
  EXPECT_GE(
      after.peak_of(MemoryCategory::kParameters) - before.current_of(MemoryCategory::kParameters),
      4000);
}

TEST(AllocatorTest, PeakResetsAndTracksTheSumNotTheSumOfPeaks) {
  Allocator& cpu = GetAllocator(Device::Cpu());
  cpu.ResetPeak();
  const int64_t base = cpu.stats().total_current;
  { Tensor a = Tensor::Empty({256}, DType::kF32, MemoryCategory::kActivations); }
  { Tensor b = Tensor::Empty({256}, DType::kF32, MemoryCategory::kWorkspace); }
  EXPECT_EQ(cpu.stats().total_peak - base, 1024);  // never both live at once
}

TEST(AllocatorTest, LimitGivesResourceExhaustedWithContext) {
  Allocator& cpu = GetAllocator(Device::Cpu());
  cpu.set_limit_bytes(cpu.stats().total_current + 1024);
  StatusOr<Tensor> big = Tensor::Allocate({1 << 20}, DType::kF32, MemoryCategory::kActivations);
  cpu.set_limit_bytes(0);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(big.status().message().find("activations"), std::string::npos);
}

}  // namespace
}  // namespace deepnet
