// OpenBLAS core choice and the start-up report (see the header). Compiled for the x86-64 baseline
// (CMakeLists.txt): it runs before anything has checked that the CPU has AVX2.
#include "kernels/cpu/blas_core.h"

#include <cblas.h>
#include <omp.h>
#include <strings.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#ifndef DEEPNET_CPU_ARCH_NAME
#define DEEPNET_CPU_ARCH_NAME "default"
#endif

namespace deepnet::cpu {
namespace {

constexpr char kCoreTypeVariable[] = "OPENBLAS_CORETYPE";
constexpr char kTestDetectsVariable[] = "DEEPNET_TEST_OPENBLAS_DETECTS";
constexpr char kChosenVariable[] = "DEEPNET_BLAS_CORE_CHOSEN";  // value: what the library detected

// How this process came by its core; filled by ChooseBlasCoreOrReexec.
struct CoreChoice {
  bool decided = false;
  bool user_set = false;  // OPENBLAS_CORETYPE was the user's
  std::string requested;  // the core deepnet asked for ("" when it asked for none)
  std::string source;
};

CoreChoice& Choice() {
  static CoreChoice choice;
  return choice;
}

bool SameName(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

bool Has(const std::vector<std::string>& cores, std::string_view core) {
  for (const std::string& c : cores) {
    if (SameName(c, core)) return true;
  }
  return false;
}

bool IsAmd(const CpuFeatures& f) {
  return f.vendor == "AuthenticAMD" || f.vendor == "HygonGenuine";
}

bool HasAvx512(const CpuFeatures& f) { return f.avx512f && f.avx512bw && f.avx512vl; }
bool HasAvx2(const CpuFeatures& f) { return f.avx2 && f.fma; }

std::string Getenv(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

#if defined(__x86_64__) || defined(__i386__)
uint64_t ReadXcr0() {
  uint32_t eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t{edx} << 32) | eax;
}
#endif

}  // namespace

CpuFeatures DetectCpuFeatures() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(0, &eax, &ebx, &ecx, &edx) == 0) return f;
  const unsigned max_leaf = eax;
  char vendor[13] = {};
  std::memcpy(vendor, &ebx, 4);
  std::memcpy(vendor + 4, &edx, 4);
  std::memcpy(vendor + 8, &ecx, 4);
  f.vendor = vendor;
  if (__get_cpuid(0x80000000, &eax, &ebx, &ecx, &edx) != 0 && eax >= 0x80000004) {
    char brand[49] = {};
    for (unsigned i = 0; i < 3; ++i) {
      __get_cpuid(0x80000002 + i, &eax, &ebx, &ecx, &edx);
      std::memcpy(brand + 16 * i, &eax, 4);
      std::memcpy(brand + 16 * i + 4, &ebx, 4);
      std::memcpy(brand + 16 * i + 8, &ecx, 4);
      std::memcpy(brand + 16 * i + 12, &edx, 4);
    }
    std::string model = brand;
    while (!model.empty() && model.back() == ' ') model.pop_back();
    f.model = model.substr(model.find_first_not_of(' ') == std::string::npos
                               ? model.size()
                               : model.find_first_not_of(' '));
  }
  if (max_leaf < 1) return f;
  __cpuid_count(1, 0, eax, ebx, ecx, edx);
  const bool osxsave = (ecx >> 27) & 1;
  const uint64_t xcr0 = osxsave ? ReadXcr0() : 0;
  const bool os_avx = (xcr0 & 0x6) == 0x6;       // SSE and AVX state
  const bool os_avx512 = (xcr0 & 0xE6) == 0xE6;  // + opmask, ZMM_Hi256, Hi16_ZMM
  f.avx = os_avx && ((ecx >> 28) & 1);
  f.fma = os_avx && ((ecx >> 12) & 1);
  if (max_leaf < 7) return f;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  const unsigned max_subleaf = eax;
  f.avx2 = os_avx && ((ebx >> 5) & 1);
  f.avx512f = os_avx512 && ((ebx >> 16) & 1);
  f.avx512bw = os_avx512 && ((ebx >> 30) & 1);
  f.avx512vl = os_avx512 && ((ebx >> 31) & 1);
  if (max_subleaf >= 1) {
    __cpuid_count(7, 1, eax, ebx, ecx, edx);
    f.avx512_bf16 = os_avx512 && ((eax >> 5) & 1);
  }
#endif
  return f;
}

std::string DescribeFeatures(const CpuFeatures& f) {
  if (HasAvx512(f)) return f.avx512_bf16 ? "AVX-512 BF16" : "AVX-512";
  if (HasAvx2(f)) return "AVX2+FMA";
  if (f.avx) return "AVX";
  return "SSE";
}

const std::vector<std::string>& KnownOpenBlasCores() {
  // openblas 0.3.21 driver/others/dynamic.c; checked against the names in libopenblas.so.0.
  static const std::vector<std::string> cores = {
      "Prescott",    "Core2",     "Penryn", "Dunnington", "Nehalem",    "Atom",        "Athlon",
      "Opteron",     "Barcelona", "Bobcat", "Bulldozer",  "Piledriver", "Steamroller", "Excavator",
      "Sandybridge", "Haswell",   "Zen",    "SkylakeX",   "Cooperlake"};
  return cores;
}

std::string BestOpenBlasCore(const CpuFeatures& features,
                             const std::vector<std::string>& available) {
  std::vector<std::string> wanted;  // best first
  if (HasAvx512(features) && features.avx512_bf16) wanted.push_back("Cooperlake");
  if (HasAvx512(features)) wanted.push_back("SkylakeX");
  if (HasAvx512(features) || HasAvx2(features)) {
    // Zen's kernels are Haswell's with AMD's cache blocking.
    if (IsAmd(features)) wanted.push_back("Zen");
    wanted.push_back("Haswell");
  }
  for (const std::string& core : wanted) {
    if (Has(available, core)) return core;
  }
  return "";
}

bool IsGenericCore(std::string_view core) {
  static const std::vector<std::string> avx2_cores = {"Haswell",    "Zen",    "SkylakeX",
                                                      "Cooperlake", "Dhyana", "SapphireRapids"};
  return !Has(avx2_cores, core);
}

void ChooseBlasCoreOrReexec(char** argv) {
  CoreChoice& choice = Choice();
  choice.decided = true;
  const std::string detected_before = Getenv(kChosenVariable);
  if (!detected_before.empty()) {  // this is the re-exec: the library runs what was asked
    choice.requested = Getenv(kCoreTypeVariable);
    choice.source = "chosen by deepnet; OpenBLAS alone detected " + detected_before;
    unsetenv(kChosenVariable);
    return;
  }
  if (!Getenv(kCoreTypeVariable).empty()) {
    choice.user_set = true;
    choice.source = "set by OPENBLAS_CORETYPE";
    return;
  }
  const std::string simulated = Getenv(kTestDetectsVariable);
  const std::string detected = simulated.empty() ? openblas_get_corename() : simulated;
  const std::string best = BestOpenBlasCore(DetectCpuFeatures(), KnownOpenBlasCores());
  // Under the test hook the library must really run a core of the hook's making: the best one, or
  // the simulated one itself when there is no better.
  const std::string target = best.empty() ? simulated : best;
  if (target.empty() || (simulated.empty() && SameName(target, detected))) {
    choice.source =
        best.empty() ? "OpenBLAS's own detection" : "OpenBLAS's own detection, as deepnet chooses";
    return;
  }
  setenv(kCoreTypeVariable, target.c_str(), 1);
  setenv(kChosenVariable,
         (detected +
          (simulated.empty() ? "" : " (simulated by " + std::string(kTestDetectsVariable) + ")"))
             .c_str(),
         1);
  execv("/proc/self/exe", argv);
  // Still here: the exec failed, so this process keeps the library's own core.
  const std::string error = std::strerror(errno);
  unsetenv(kCoreTypeVariable);
  unsetenv(kChosenVariable);
  choice.source = "OpenBLAS's own detection; running again with OPENBLAS_CORETYPE=" + target +
                  " failed: " + error;
}

BlasReport CurrentBlasReport() {
  BlasReport report;
  const std::string config =
      openblas_get_config();  // "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ..."
  const size_t second_space = config.find(' ', config.find(' ') + 1);
  report.library = config.substr(0, second_space);
  report.core = openblas_get_corename();
  report.threads = omp_get_max_threads();
  report.kernel_arch = DEEPNET_CPU_ARCH_NAME;
  const CpuFeatures features = DetectCpuFeatures();
  report.cpu = (features.model.empty() ? features.vendor : features.model) + " (" +
               DescribeFeatures(features) + ")";
  const CoreChoice& choice = Choice();
  const bool user_set = choice.decided ? choice.user_set : !Getenv(kCoreTypeVariable).empty();
  report.source = choice.decided ? choice.source
                  : user_set     ? "set by OPENBLAS_CORETYPE"
                                 : "OpenBLAS's own detection";
  const std::string best = BestOpenBlasCore(features, KnownOpenBlasCores());
  if (!choice.requested.empty() && !SameName(choice.requested, report.core)) {
    report.warning = "OpenBLAS has no core " + choice.requested + " and runs " + report.core;
  } else if (HasAvx2(features) && IsGenericCore(report.core)) {
    report.warning = "OpenBLAS runs its generic " + report.core + " core on a CPU with " +
                     DescribeFeatures(features) + ": GEMMs run several times slower; " +
                     (user_set ? "unset" : "set") + " OPENBLAS_CORETYPE" +
                     (user_set ? " (deepnet then picks " + best + ")" : "=" + best);
  }
  return report;
}

std::string BlasStartupLine(const BlasReport& r) {
  std::string line = "BLAS: " + r.library + ", core " + r.core + " (" + r.source + "), " +
                     std::to_string(r.threads) + (r.threads == 1 ? " thread" : " threads") +
                     ", CPU " + r.cpu + ", kernels -march=" + r.kernel_arch;
  if (!r.warning.empty()) line += "; WARNING: " + r.warning;
  return line;
}

JsonValue BlasReportJson(const BlasReport& r) {
  JsonValue json = JsonValue::Object();
  json.Set("library", JsonValue::String(r.library));
  json.Set("core", JsonValue::String(r.core));
  json.Set("core_source", JsonValue::String(r.source));
  json.Set("threads", JsonValue::Int(r.threads));
  json.Set("cpu", JsonValue::String(r.cpu));
  json.Set("kernel_arch", JsonValue::String(r.kernel_arch));
  json.Set("warning", JsonValue::String(r.warning));
  return json;
}

}  // namespace deepnet::cpu
