// ExpFloat against the C library's double exp: accuracy over the whole finite range, the special
// values, and that it agrees inside a vectorised loop with the scalar call.
#include "kernels/cpu/vector_math.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

namespace deepnet::cpu {
namespace {

// |got − exact| in units of the last place of the correctly rounded float.
double UlpError(float got, double exact) {
  const float rounded = static_cast<float>(exact);
  const double ulp = std::nextafter(rounded, std::numeric_limits<float>::infinity()) - rounded;
  return std::abs(static_cast<double>(got) - exact) / ulp;
}

TEST(ExpFloatTest, WithinTwoUlpOverTheNormalRange) {
  double worst = 0.0;
  float worst_x = 0.0f;
  // ln(FLT_MIN) .. ln(FLT_MAX), about 1.3 million points.
  for (float x = -87.33f; x < 88.72f; x += 1.3e-4f) {
    const double error = UlpError(ExpFloat(x), std::exp(static_cast<double>(x)));
    if (error > worst) worst = error, worst_x = x;
  }
  EXPECT_LE(worst, 2.0) << "at x = " << worst_x;
}

TEST(ExpFloatTest, SpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(ExpFloat(0.0f), 1.0f);
  EXPECT_EQ(ExpFloat(-inf), 0.0f);
  EXPECT_EQ(ExpFloat(-100.0f), 0.0f);  // below the normal range: flushed
  EXPECT_EQ(ExpFloat(inf), inf);
  EXPECT_EQ(ExpFloat(89.0f), inf);
  EXPECT_TRUE(std::isfinite(ExpFloat(88.72f)));
  EXPECT_TRUE(std::isnan(ExpFloat(std::numeric_limits<float>::quiet_NaN())));
}

TEST(ExpFloatTest, VectorLoopMatchesScalarCalls) {
  std::vector<float> x(1001), vector_result(x.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] = -90.0f + 0.179f * static_cast<float>(i);
#pragma omp simd
  for (size_t i = 0; i < x.size(); ++i) vector_result[i] = ExpFloat(x[i]);
  for (size_t i = 0; i < x.size(); ++i) {
    volatile float xi = x[i];  // keeps this call scalar
    EXPECT_EQ(vector_result[i], ExpFloat(xi)) << "x = " << x[i];
  }
}

}  // namespace
}  // namespace deepnet::cpu
