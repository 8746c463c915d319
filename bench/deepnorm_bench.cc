// Fused DeepNorm (deepnorm_forward / deepnorm_backward) against the unfused sequence it replaces.
// Letters: N rows (tokens), C channels.
//
// Unfused forward: z = α·x (scale), z += g (add), y = LN(z) (layernorm_forward), z kept for the
// backward. Unfused backward: dz = LN backward (layernorm_backward), dx = α·dz (scale), dg = dz
// (the same buffer). bytes/s counts each op's compulsory traffic (forward: read x, g, write y;
// backward: read dy, x, g, write dx, dg), the same for both variants, so it reads as speed.
// Two cache states: hot (the same buffers every iteration: a variant's tensors stay in L3 when
// they fit, which favours the unfused steps, each touching fewer tensors) and cold (caches flushed
// before each iteration, as in training, where a layer's activations were written long before its
// backward runs). bench/pair_ratio.py prints the fused speed-ups.
// Run: OMP_NUM_THREADS=2 deepnorm_bench --benchmark_repetitions=3
//      --benchmark_enable_random_interleaving=true --benchmark_out=deepnorm.json
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/layernorm.h"

namespace deepnet::cpu {
namespace {

constexpr float kAlpha = 2.3f;
constexpr float kEps = 1e-5f;
constexpr int kColdIterations = 40;

// Writes and reads a buffer twice the size of a 32 MiB L3 so that no operand stays cached.
void FlushCaches() {
  static std::vector<float> buffer(int64_t{16} << 20);
  for (float& v : buffer) v += 1.0f;
  benchmark::DoNotOptimize(buffer.data());
}

struct Buffers {
  Buffers(int N, int C)
      : x(int64_t{N} * C, 0.5f),
        g(int64_t{N} * C, -0.25f),
        z(int64_t{N} * C),
        y(int64_t{N} * C),
        dy(int64_t{N} * C, 0.125f),
        dx(int64_t{N} * C),
        dg(int64_t{N} * C),
        gamma(C, 1.0f),
        beta(C, 0.0f),
        dgamma(C, 0.0f),
        dbeta(C, 0.0f),
        mean(N),
        rstd(N) {
    for (int64_t i = 0; i < int64_t{N} * C; ++i) x[i] = static_cast<float>(i % 97) / 97.0f;
  }
  std::vector<float> x, g, z, y, dy, dx, dg, gamma, beta, dgamma, dbeta, mean, rstd;
};

void Forward(Buffers& t, bool fused, int N, int C) {
  if (fused) {
    deepnorm_forward(t.y.data(), t.mean.data(), t.rstd.data(), t.x.data(), t.g.data(),
                     t.gamma.data(), t.beta.data(), kAlpha, N, C, kEps);
    return;
  }
  const int64_t n = int64_t{N} * C;
  scale(t.z.data(), t.x.data(), kAlpha, n);
  add(t.z.data(), t.z.data(), t.g.data(), n);
  layernorm_forward(t.y.data(), t.mean.data(), t.rstd.data(), t.z.data(), t.gamma.data(),
                    t.beta.data(), N, C, kEps);
}

void Backward(Buffers& t, bool fused, int N, int C) {
  if (fused) {
    deepnorm_backward(t.dx.data(), t.dg.data(), t.dgamma.data(), t.dbeta.data(), t.dy.data(),
                      t.x.data(), t.g.data(), t.gamma.data(), t.mean.data(), t.rstd.data(), kAlpha,
                      N, C);
    return;
  }
  layernorm_backward(t.dg.data(), t.dgamma.data(), t.dbeta.data(), t.dy.data(), t.z.data(),
                     t.gamma.data(), t.mean.data(), t.rstd.data(), N, C);
  scale(t.dx.data(), t.dg.data(), kAlpha, int64_t{N} * C);
}

void BM_DeepNorm(benchmark::State& state, bool backward, bool fused, bool cold, int N, int C) {
  Buffers t(N, C);
  Forward(t, fused, N, C);  // the backward reads mean, rstd (and z when unfused)
  for (auto _ : state) {
    if (cold) {
      state.PauseTiming();
      FlushCaches();
      state.ResumeTiming();
    }
    if (backward) {
      Backward(t, fused, N, C);
    } else {
      Forward(t, fused, N, C);
    }
    benchmark::ClobberMemory();
  }
  const double tensor_bytes = sizeof(float) * static_cast<double>(N) * C;
  state.counters["bytes/s"] = benchmark::Counter((backward ? 5 : 3) * tensor_bytes,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

void RegisterAll() {
  for (const int N : {2048, 8192}) {
    for (const int C : {256, 512, 1024}) {
      for (const bool cold : {false, true}) {
        for (const bool backward : {false, true}) {
          for (const bool fused : {false, true}) {
            const std::string name = std::string("deepnorm/") + (cold ? "cold/" : "hot/") +
                                     (backward ? "bwd" : "fwd") + "/N:" + std::to_string(N) +
                                     "/C:" + std::to_string(C) + "/" +
                                     (fused ? "fused" : "unfused");
            auto* bench =
                benchmark::RegisterBenchmark(name.c_str(), BM_DeepNorm, backward, fused, cold, N, C)
                    ->Unit(benchmark::kMicrosecond)
                    ->UseRealTime();
            if (cold) bench->Iterations(kColdIterations);  // each flush costs milliseconds
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace deepnet::cpu

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  deepnet::cpu::RegisterAll();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
