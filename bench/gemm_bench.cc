// gemm.h against one raw cblas_sgemm call, at the model's linear-layer shapes.
// Letters: N tokens, d model width; m, n, k of a GEMM.
//
// Layers: qkv (d → 3d), ffn_in (d → 4d), ffn_out (4d → d). Products of a layer with C inputs and
// OC outputs: fwd out (N, OC) = inp · Wᵀ (NT), bwd_data dinp (N, C) = dout · W (NN), bwd_weight
// dW (OC, C) += doutᵀ · inp (TN, beta 1). Variants: raw (cblas_sgemm on the whole matrix, which
// OpenBLAS threads itself), gemm (ours: fixed panels, thread-count independent), and for fwd also
// linear (linear_forward with a bias). bench/pair_ratio.py prints the ratios to raw.
// Run: OMP_NUM_THREADS=2 gemm_bench --benchmark_repetitions=3
//      --benchmark_enable_random_interleaving=true --benchmark_out=gemm.json
//
// Like deepnet, it first picks the OpenBLAS core (kernels/cpu/blas_core.h; OPENBLAS_CORETYPE set
// by hand wins), then prints the BLAS start-up line and the machine's sgemm peak: the best of a few
// square cblas_sgemm calls that OpenBLAS threads itself. `gemm_bench --peak` prints only those two
// lines (bench/torch_step_bench.py reads them).
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cpu/blas_core.h"
#include "kernels/cpu/gemm.h"

namespace deepnet::cpu {
namespace {

struct Layer {
  const char* name;
  int in_mult, out_mult;  // C = in_mult·d, OC = out_mult·d
};
constexpr Layer kLayers[] = {{"proj", 1, 1}, {"qkv", 1, 3}, {"ffn_in", 1, 4}, {"ffn_out", 4, 1}};

enum class Product { kForward, kBackwardData, kBackwardWeight };
enum class Variant { kRaw, kGemm, kLinear };

struct GemmCase {
  int m, n, k;
  bool trans_a, trans_b;
  float beta;
};

GemmCase MakeCase(Product product, int N, int C, int OC) {
  switch (product) {
    case Product::kForward:
      return {N, OC, C, false, true, 0.0f};
    case Product::kBackwardData:
      return {N, C, OC, false, false, 0.0f};
    case Product::kBackwardWeight:
      return {OC, C, N, true, false, 1.0f};
  }
  return {};
}

void BM_Product(benchmark::State& state, Product product, Variant variant, int N, int C, int OC) {
  const GemmCase g = MakeCase(product, N, C, OC);
  std::vector<float> a(int64_t{g.m} * g.k, 0.5f), b(int64_t{g.k} * g.n, 0.25f);
  std::vector<float> c(int64_t{g.m} * g.n, 0.0f), bias(g.n, 0.125f);
  const int lda = g.trans_a ? g.m : g.k, ldb = g.trans_b ? g.k : g.n;
  for (auto _ : state) {
    switch (variant) {
      case Variant::kRaw:
        cblas_sgemm(CblasRowMajor, g.trans_a ? CblasTrans : CblasNoTrans,
                    g.trans_b ? CblasTrans : CblasNoTrans, g.m, g.n, g.k, 1.0f, a.data(), lda,
                    b.data(), ldb, g.beta, c.data(), g.n);
        break;
      case Variant::kGemm:
        gemm(c.data(), a.data(), b.data(), g.m, g.n, g.k, g.trans_a, g.trans_b, 1.0f, g.beta);
        break;
      case Variant::kLinear:
        linear_forward(c.data(), a.data(), b.data(), bias.data(), N, C, OC);
        break;
    }
    benchmark::ClobberMemory();
  }
  const double flops = 2.0 * g.m * g.n * g.k;
  // Compulsory traffic: A and B read once, C written once (and read too when beta = 1).
  const double bytes =
      sizeof(float) * (static_cast<double>(g.m) * g.k + static_cast<double>(g.k) * g.n +
                       static_cast<double>(g.m) * g.n * (1 + g.beta));
  state.counters["flop/s"] =
      benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["bytes/s"] =
      benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate);
}

// GFLOP/s of the fastest of a few square sgemm calls (after one warm-up), threaded by OpenBLAS.
double MeasureSgemmPeakGflops() {
  constexpr int kSize = 2048, kCalls = 5;
  std::vector<float> a(kSize * kSize, 0.5f), b(kSize * kSize, 0.25f), c(kSize * kSize);
  double best_s = 1e30;
  for (int call = 0; call <= kCalls; ++call) {
    const auto start = std::chrono::steady_clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, kSize, kSize, kSize, 1.0f, a.data(),
                kSize, b.data(), kSize, 0.0f, c.data(), kSize);
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (call > 0) best_s = std::min(best_s, s);
  }
  return 2.0 * kSize * kSize * kSize / best_s * 1e-9;
}

void RegisterAll() {
  const std::pair<Product, const char*> products[] = {{Product::kForward, "fwd"},
                                                      {Product::kBackwardData, "bwd_data"},
                                                      {Product::kBackwardWeight, "bwd_weight"}};
  for (const int N : {512, 2048}) {
    for (const int d : {256, 512, 1024}) {
      for (const Layer& layer : kLayers) {
        for (const auto& [product, product_name] : products) {
          const std::string base = std::string("gemm/") + layer.name + "_" + product_name +
                                   "/N:" + std::to_string(N) + "/d:" + std::to_string(d) + "/";
          const int C = layer.in_mult * d, OC = layer.out_mult * d;
          std::vector<std::pair<Variant, const char*>> variants = {{Variant::kRaw, "raw"},
                                                                   {Variant::kGemm, "gemm"}};
          if (product == Product::kForward) variants.push_back({Variant::kLinear, "linear"});
          for (const auto& [variant, variant_name] : variants) {
            benchmark::RegisterBenchmark((base + variant_name).c_str(), BM_Product, product,
                                         variant, N, C, OC)
                ->Unit(benchmark::kMillisecond)
                ->UseRealTime();
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace deepnet::cpu

int main(int argc, char** argv) {
  deepnet::cpu::ChooseBlasCoreOrReexec(argv);
  const deepnet::cpu::BlasReport blas = deepnet::cpu::CurrentBlasReport();
  const double peak = deepnet::cpu::MeasureSgemmPeakGflops();
  std::printf("%s\nsgemm peak: %.1f GFLOP/s (2048^3, %d threads, core %s)\n",
              deepnet::cpu::BlasStartupLine(blas).c_str(), peak, blas.threads, blas.core.c_str());
  std::fflush(stdout);
  if (argc == 2 && std::strcmp(argv[1], "--peak") == 0) return 0;
  benchmark::AddCustomContext("blas", deepnet::cpu::BlasStartupLine(blas));
  benchmark::AddCustomContext("blas_core", blas.core);
  benchmark::AddCustomContext("sgemm_peak_gflops", std::to_string(peak));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  deepnet::cpu::RegisterAll();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
