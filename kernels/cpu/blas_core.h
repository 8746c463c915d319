// Which OpenBLAS core (kernel set) runs the GEMMs, chosen from the CPU's features, and the start-up
// report of what the machine gives.
//
// OpenBLAS built with DYNAMIC_ARCH picks its core from the CPU model when the library loads. A CPU
// newer than the library (e.g. Emerald Rapids under Debian 12's 0.3.21) falls back to the SSE3
// "Prescott" core, 5-8x slower, without a word. So deepnet maps the CPU's features (cpuid: AVX-512
// F/BW/VL/BF16, AVX2, FMA) to the best core the library has and, when the library picked another,
// runs itself again with OPENBLAS_CORETYPE set: the library reads that variable in its constructor,
// before main, so only a fresh exec can change it. A non-empty OPENBLAS_CORETYPE of the user's
// always wins.
//
// Environment:
//   OPENBLAS_CORETYPE              the user's choice (kept as it is)
//   DEEPNET_TEST_OPENBLAS_DETECTS  test hook: pretend the library detected this core (e.g.
//                                  Prescott), to exercise the correction on any machine
//   DEEPNET_BLAS_CORE_CHOSEN       set by deepnet on its re-exec (loop guard); not for users
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "runtime/json.h"

namespace deepnet::cpu {

// What cpuid (and the OS, through XCR0) says the CPU can run.
struct CpuFeatures {
  std::string vendor;  // "GenuineIntel", "AuthenticAMD", "" when unknown (not x86)
  std::string model;   // brand string, e.g. "AMD EPYC 9R14"; "" when unknown
  bool avx = false;
  bool fma = false;
  bool avx2 = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512_bf16 = false;
};

// The features of the CPU this process runs on (AVX and AVX-512 only when the OS saves their
// registers).
CpuFeatures DetectCpuFeatures();

// "AVX-512 BF16", "AVX-512", "AVX2+FMA", "AVX", "SSE" — the best instruction set class.
std::string DescribeFeatures(const CpuFeatures& features);

// The x86-64 cores of Debian 12's OpenBLAS 0.3.21 (DYNAMIC_ARCH), in OPENBLAS_CORETYPE spelling.
const std::vector<std::string>& KnownOpenBlasCores();

// The best core in `available` for `features`: AVX-512 F+BW+VL with BF16 → Cooperlake, without
// BF16 → SkylakeX, AVX2+FMA → Zen on AMD, Haswell otherwise; "" (keep the library's own
// choice) for anything less or when `available` lacks the core. Falls back one tier (Cooperlake →
// SkylakeX → Haswell) when a core is missing. Pure; names compare case-insensitively.
std::string BestOpenBlasCore(const CpuFeatures& features,
                             const std::vector<std::string>& available);

// True for a core whose kernels are older than AVX2 (Prescott, Nehalem, Sandybridge, ...): on a CPU
// with AVX2 or better such a core runs GEMMs several times slower.
bool IsGenericCore(std::string_view core);

// Called first thing in main() of every program that wants deepnet's choice (deepnet, the
// benches). Either returns (the core in use is fine, the user chose it, or the re-exec failed —
// BlasStartupReport says which) or execs /proc/self/exe with `argv` and OPENBLAS_CORETYPE set, at
// most once per process tree.
void ChooseBlasCoreOrReexec(char** argv);

// What the machine gives, for the start-up line and metadata.
struct BlasReport {
  std::string library;      // "OpenBLAS 0.3.21"
  std::string core;         // in use (openblas_get_corename), e.g. "Cooperlake"
  std::string source;       // why this core: "set by OPENBLAS_CORETYPE", "chosen by deepnet ..."
  int threads = 1;          // OpenMP threads of this process
  std::string cpu;          // brand string and feature class
  std::string kernel_arch;  // DEEPNET_CPU_ARCH the CPU kernels were built for
  std::string warning;      // "" or why the GEMMs run slower than the machine allows
};

BlasReport CurrentBlasReport();

// One line: "BLAS: OpenBLAS 0.3.21, core Cooperlake (chosen by deepnet ...), 2 threads, CPU AMD
// EPYC (AVX-512 BF16), kernels -march=x86-64-v3", then "; WARNING: ..." when there is a warning.
std::string BlasStartupLine(const BlasReport& report);

// The same as a JSON object (library, core, core_source, threads, cpu, kernel_arch, warning).
JsonValue BlasReportJson(const BlasReport& report);

}  // namespace deepnet::cpu
