// OpenBLAS (deepnet's gemm.h, the core deepnet picks) against BLIS and oneDNN's sgemm at the demo
// model's linear-layer products, on 1 and 2 threads, with bit identity across 1, 2 and 3 threads.
//
// BLIS (libblis4-openmp) and oneDNN (libdnnl2) are loaded at run time (dlopen), so this builds
// without them and says which one is missing. BLIS goes through its typed API (bli_sgemm) and is
// loaded RTLD_LOCAL: its CBLAS layer must not replace OpenBLAS's cblas_sgemm. Products as in
// gemm_bench.cc: fwd (N, OC) = inp · Wᵀ, bwd_data (N, C) = dout · W, bwd_weight (OC, C) += doutᵀ ·
// inp (beta 1). Times: the fastest of repeated calls (a shared machine's load only slows calls).
// Run: blas_compare [N=2048] [d=256]
#include <cblas.h>
#include <dlfcn.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/blas_core.h"
#include "kernels/cpu/gemm.h"

namespace deepnet::cpu {
namespace {

struct Product {
  std::string name;
  int m, n, k;
  bool trans_a, trans_b;
  float beta;
};

std::vector<Product> ModelProducts(int N, int d) {
  struct Layer {
    const char* name;
    int C, OC;
  };
  const Layer layers[] = {
      {"proj", d, d}, {"qkv", d, 3 * d}, {"ffn_in", d, 4 * d}, {"ffn_out", 4 * d, d}};
  std::vector<Product> products;
  for (const Layer& l : layers) {
    products.push_back({std::string(l.name) + "_fwd", N, l.OC, l.C, false, true, 0.0f});
    products.push_back({std::string(l.name) + "_bwd_data", N, l.C, l.OC, false, false, 0.0f});
    products.push_back({std::string(l.name) + "_bwd_weight", l.OC, l.C, N, true, false, 1.0f});
  }
  return products;
}

// One library's sgemm: row-major C (m×n, ldc n) = op(A)·op(B) + beta·C on `threads` threads.
using Sgemm =
    std::function<void(const Product&, const float* a, const float* b, float* c, int threads)>;

struct Library {
  std::string name;
  Sgemm sgemm;
};

int Lda(const Product& p) { return p.trans_a ? p.m : p.k; }
int Ldb(const Product& p) { return p.trans_b ? p.k : p.n; }

Library OpenBlasLibrary() {
  return {"OpenBLAS (deepnet gemm)",
          [](const Product& p, const float* a, const float* b, float* c, int threads) {
            omp_set_num_threads(threads);
            gemm(c, a, b, p.m, p.n, p.k, p.trans_a, p.trans_b, 1.0f, p.beta);
          }};
}

// BLIS typed API: dims and strides are `long` (BLIS_INT_TYPE_SIZE 64 on x86-64); transposes are
// expressed through the strides, so trans_t is always BLIS_NO_TRANSPOSE (0).
using BliSgemm = void (*)(int, int, long, long, long, const float*, const float*, long, long,
                          const float*, long, long, const float*, float*, long, long);
using BliSetThreads = void (*)(long);

bool LoadBlis(Library* library, std::string* version) {
  void* handle = dlopen("libblis.so.4", RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) return false;
  auto sgemm = reinterpret_cast<BliSgemm>(dlsym(handle, "bli_sgemm"));
  auto set_threads = reinterpret_cast<BliSetThreads>(dlsym(handle, "bli_thread_set_num_threads"));
  auto version_str = reinterpret_cast<const char* (*)()>(dlsym(handle, "bli_info_get_version_str"));
  auto arch_id = reinterpret_cast<int (*)()>(dlsym(handle, "bli_arch_query_id"));
  auto arch_name = reinterpret_cast<const char* (*)(int)>(dlsym(handle, "bli_arch_string"));
  if (sgemm == nullptr || set_threads == nullptr) return false;
  *version = std::string("BLIS ") + (version_str ? version_str() : "?") + ", config " +
             (arch_id && arch_name ? arch_name(arch_id()) : "?");
  library->name = "BLIS";
  library->sgemm = [sgemm, set_threads](const Product& p, const float* a, const float* b, float* c,
                                        int threads) {
    set_threads(threads);
    const float one = 1.0f;
    const long lda = Lda(p), ldb = Ldb(p);
    sgemm(0, 0, p.m, p.n, p.k, &one, a, p.trans_a ? 1 : lda, p.trans_a ? lda : 1, b,
          p.trans_b ? 1 : ldb, p.trans_b ? ldb : 1, &p.beta, c, p.n, 1);
  };
  return true;
}

struct DnnlVersion {
  int major, minor, patch;
  const char* hash;
  unsigned cpu_runtime, gpu_runtime;
};
using DnnlSgemm = int (*)(char, char, long, long, long, float, const float*, long, const float*,
                          long, float, float*, long);

bool LoadDnnl(Library* library, std::string* version) {
  void* handle = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) return false;
  auto sgemm = reinterpret_cast<DnnlSgemm>(dlsym(handle, "dnnl_sgemm"));
  auto get_version = reinterpret_cast<const DnnlVersion* (*)()>(dlsym(handle, "dnnl_version"));
  if (sgemm == nullptr) return false;
  if (get_version != nullptr) {
    const DnnlVersion* v = get_version();
    *version = "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
               std::to_string(v->patch) + (v->cpu_runtime == 2 ? " (OpenMP)" : "");
  }
  library->name = "oneDNN";
  library->sgemm = [sgemm](const Product& p, const float* a, const float* b, float* c,
                           int threads) {
    omp_set_num_threads(threads);
    sgemm(p.trans_a ? 'T' : 'N', p.trans_b ? 'T' : 'N', p.m, p.n, p.k, 1.0f, a, Lda(p), b, Ldb(p),
          p.beta, c, p.n);
  };
  return true;
}

double Seconds(const std::function<void()>& call) {
  const auto start = std::chrono::steady_clock::now();
  call();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Fastest call after one warm-up, over at least 5 calls and 0.3 s.
double FastestCallSeconds(const std::function<void()>& call) {
  call();
  double best = 1e30, total = 0.0;
  for (int calls = 0; calls < 5 || total < 0.3; ++calls) {
    const double s = Seconds(call);
    best = std::min(best, s);
    total += s;
  }
  return best;
}

void Run(int N, int d) {
  std::vector<Library> libraries = {OpenBlasLibrary()};
  std::vector<std::string> versions;
  Library blis, dnnl;
  std::string version;
  if (LoadBlis(&blis, &version)) {
    libraries.push_back(blis);
    versions.push_back(version);
  } else {
    versions.push_back("BLIS: not installed (apt install libblis4-openmp)");
  }
  if (LoadDnnl(&dnnl, &version)) {
    libraries.push_back(dnnl);
    versions.push_back(version);
  } else {
    versions.push_back("oneDNN: not installed (apt install libdnnl2)");
  }
  std::printf("%s\n", BlasStartupLine(CurrentBlasReport()).c_str());
  for (const std::string& v : versions) std::printf("%s\n", v.c_str());
  std::printf(
      "N=%d tokens, d=%d; GFLOP/s of the fastest call; identical = same bits on 1, 2, 3 "
      "threads\n\n",
      N, d);

  const std::vector<Product> products = ModelProducts(N, d);
  const int thread_counts[] = {1, 2};
  std::printf("| product (m×n×k) |");
  for (const Library& l : libraries) std::printf(" %s 1 thr | 2 thr |", l.name.c_str());
  std::printf("\n|---|");
  for (size_t i = 0; i < libraries.size(); ++i) std::printf("---|---|");
  std::printf("\n");
  std::vector<std::vector<double>> total_s(libraries.size(), std::vector<double>(2, 0.0));
  std::vector<int> differing(libraries.size(), 0);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (const Product& p : products) {
    std::vector<float> a(size_t(p.m) * p.k), b(size_t(p.k) * p.n), c0(size_t(p.m) * p.n);
    for (float& x : a) x = uniform(rng);
    for (float& x : b) x = uniform(rng);
    for (float& x : c0) x = uniform(rng);
    std::printf("| %s (%d×%d×%d) |", p.name.c_str(), p.m, p.n, p.k);
    for (size_t li = 0; li < libraries.size(); ++li) {
      const Library& library = libraries[li];
      // Bit identity: the same product on 1, 2 and 3 threads from the same C.
      std::vector<std::vector<float>> results;
      for (const int threads : {1, 2, 3}) {
        std::vector<float> c = c0;
        library.sgemm(p, a.data(), b.data(), c.data(), threads);
        results.push_back(std::move(c));
      }
      const bool identical = results[0] == results[1] && results[0] == results[2];
      if (!identical) ++differing[li];
      for (int t = 0; t < 2; ++t) {
        std::vector<float> c = c0;
        const double s = FastestCallSeconds(
            [&] { library.sgemm(p, a.data(), b.data(), c.data(), thread_counts[t]); });
        total_s[li][t] += s;
        std::printf(" %.0f%s |", 2.0 * p.m * p.n * p.k / s * 1e-9, identical ? "" : "*");
      }
    }
    std::printf("\n");
  }
  std::printf("| **all %zu products, ms** |", products.size());
  for (size_t li = 0; li < libraries.size(); ++li) {
    std::printf(" %.2f | %.2f |", total_s[li][0] * 1e3, total_s[li][1] * 1e3);
  }
  std::printf("\n\n* = bits differ between 1, 2 and 3 threads.");
  for (size_t li = 0; li < libraries.size(); ++li) {
    std::printf(" %s: %d of %zu products differ.", libraries[li].name.c_str(), differing[li],
                products.size());
  }
  std::printf("\n");
}

}  // namespace
}  // namespace deepnet::cpu

int main(int argc, char** argv) {
  deepnet::cpu::ChooseBlasCoreOrReexec(argv);
  const int N = argc > 1 ? std::atoi(argv[1]) : 2048;
  const int d = argc > 2 ? std::atoi(argv[2]) : 256;
  deepnet::cpu::Run(N, d);
  return 0;
}
