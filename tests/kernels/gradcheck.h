// Test helpers for kernels: random fills, naive references, and finite-difference gradient checks
// in double precision.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

namespace deepnet::testing {

inline std::vector<double> RandomVector(size_t n, uint32_t seed, double lo = -1.0,
                                        double hi = 1.0) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> v(n);
  for (double& x : v) x = dist(gen);
  return v;
}

inline std::vector<float> ToFloat(const std::vector<double>& v) {
  return std::vector<float>(v.begin(), v.end());
}

// Checks `analytic` = d loss / d x by central differences on each element of `x`:
// (loss(x + h·e_i) − loss(x − h·e_i)) / 2h, with loss evaluated in double. `loss` must read `x`
// (it is perturbed in place and restored). Fails the test with the worst element otherwise.
inline void ExpectGradientMatches(const char* what, std::vector<double>& x,
                                  const std::vector<double>& analytic,
                                  const std::function<double()>& loss, double h = 1e-6,
                                  double tolerance = 1e-6) {
  ASSERT_EQ(x.size(), analytic.size()) << what;
  double worst = 0.0;
  size_t worst_index = 0;
  double worst_numeric = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + h;
    const double plus = loss();
    x[i] = saved - h;
    const double minus = loss();
    x[i] = saved;
    const double numeric = (plus - minus) / (2 * h);
    const double error = std::abs(numeric - analytic[i]) / std::max(1.0, std::abs(numeric));
    if (error > worst) {
      worst = error;
      worst_index = i;
      worst_numeric = numeric;
    }
  }
  EXPECT_LE(worst, tolerance) << what << ": element " << worst_index << " analytic "
                              << analytic[worst_index] << " numeric " << worst_numeric;
}

// Σ w_i·y_i: the scalar whose gradient w.r.t. y is w (used as the upstream gradient).
inline double Dot(const std::vector<double>& w, const std::vector<double>& y) {
  double s = 0.0;
  for (size_t i = 0; i < w.size(); ++i) s += w[i] * y[i];
  return s;
}

// Max |a − b| / max(1, |b|).
template <typename A, typename B>
double MaxRelativeError(const std::vector<A>& a, const std::vector<B>& b) {
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i]));
    worst = std::max(worst, d / std::max(1.0, std::abs(static_cast<double>(b[i]))));
  }
  return worst;
}

}  // namespace deepnet::testing
