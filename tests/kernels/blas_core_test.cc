// Tests for blas_core.h: the CPU-feature → OpenBLAS-core mapping over feature sets, generic-core
// classification, and the start-up line's content.
#include "kernels/cpu/blas_core.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace deepnet::cpu {
namespace {

CpuFeatures Avx2Only(const std::string& vendor) {
  CpuFeatures f;
  f.vendor = vendor;
  f.avx = f.fma = f.avx2 = true;
  return f;
}

CpuFeatures Avx512(const std::string& vendor, bool bf16) {
  CpuFeatures f = Avx2Only(vendor);
  f.avx512f = f.avx512bw = f.avx512vl = true;
  f.avx512_bf16 = bf16;
  return f;
}

TEST(BestOpenBlasCoreTest, UnknownIntelModelWithAvx512GetsSkylakeX) {
  EXPECT_EQ(BestOpenBlasCore(Avx512("GenuineIntel", false), KnownOpenBlasCores()), "SkylakeX");
}

TEST(BestOpenBlasCoreTest, IntelWithAvx512Bf16GetsCooperlake) {  // Sapphire/Emerald Rapids
  EXPECT_EQ(BestOpenBlasCore(Avx512("GenuineIntel", true), KnownOpenBlasCores()), "Cooperlake");
}

TEST(BestOpenBlasCoreTest, AmdZen4GetsCooperlake) {  // AVX-512 with BF16
  EXPECT_EQ(BestOpenBlasCore(Avx512("AuthenticAMD", true), KnownOpenBlasCores()), "Cooperlake");
}

TEST(BestOpenBlasCoreTest, Avx2OnlyGetsHaswellOnIntelAndZenOnAmd) {
  EXPECT_EQ(BestOpenBlasCore(Avx2Only("GenuineIntel"), KnownOpenBlasCores()), "Haswell");
  EXPECT_EQ(BestOpenBlasCore(Avx2Only("AuthenticAMD"), KnownOpenBlasCores()), "Zen");
  EXPECT_EQ(BestOpenBlasCore(Avx2Only("HygonGenuine"), KnownOpenBlasCores()), "Zen");
}

TEST(BestOpenBlasCoreTest, LessThanAvx2KeepsTheLibrarysChoice) {
  CpuFeatures avx_only;
  avx_only.vendor = "GenuineIntel";
  avx_only.avx = true;
  EXPECT_EQ(BestOpenBlasCore(avx_only, KnownOpenBlasCores()), "");
  CpuFeatures avx2_without_fma = Avx2Only("GenuineIntel");
  avx2_without_fma.fma = false;
  EXPECT_EQ(BestOpenBlasCore(avx2_without_fma, KnownOpenBlasCores()), "");
  EXPECT_EQ(BestOpenBlasCore(CpuFeatures{}, KnownOpenBlasCores()), "");  // not x86
}

TEST(BestOpenBlasCoreTest, AvxWithoutBwOrVlIsNotAvx512) {  // Knights Landing: F without BW/VL
  CpuFeatures f = Avx2Only("GenuineIntel");
  f.avx512f = true;
  EXPECT_EQ(BestOpenBlasCore(f, KnownOpenBlasCores()), "Haswell");
}

TEST(BestOpenBlasCoreTest, FallsBackToWhatTheLibraryHas) {
  const std::vector<std::string> older = {"Prescott", "Haswell", "SkylakeX"};
  EXPECT_EQ(BestOpenBlasCore(Avx512("GenuineIntel", true), older), "SkylakeX");
  EXPECT_EQ(BestOpenBlasCore(Avx512("AuthenticAMD", true), {"Prescott", "haswell"}), "Haswell");
  EXPECT_EQ(BestOpenBlasCore(Avx2Only("GenuineIntel"), {"Prescott"}), "");
}

TEST(IsGenericCoreTest, PreAvx2CoresAreGeneric) {
  for (const char* core : {"Prescott", "prescott", "Nehalem", "Sandybridge", "Core2", "Unknown"}) {
    EXPECT_TRUE(IsGenericCore(core)) << core;
  }
  for (const char* core : {"Haswell", "Zen", "SkylakeX", "Cooperlake", "cooperlake"}) {
    EXPECT_FALSE(IsGenericCore(core)) << core;
  }
}

TEST(DescribeFeaturesTest, NamesTheBestClass) {
  EXPECT_EQ(DescribeFeatures(Avx512("AuthenticAMD", true)), "AVX-512 BF16");
  EXPECT_EQ(DescribeFeatures(Avx512("GenuineIntel", false)), "AVX-512");
  EXPECT_EQ(DescribeFeatures(Avx2Only("GenuineIntel")), "AVX2+FMA");
  EXPECT_EQ(DescribeFeatures(CpuFeatures{}), "SSE");
}

TEST(BlasStartupLineTest, SaysLibraryCoreThreadsArchAndWarning) {
  BlasReport report;
  report.library = "OpenBLAS 0.3.21";
  report.core = "Prescott";
  report.source = "set by OPENBLAS_CORETYPE";
  report.threads = 2;
  report.cpu = "Some CPU (AVX-512 BF16)";
  report.kernel_arch = "x86-64-v3";
  EXPECT_EQ(BlasStartupLine(report),
            "BLAS: OpenBLAS 0.3.21, core Prescott (set by OPENBLAS_CORETYPE), 2 threads, CPU Some "
            "CPU (AVX-512 BF16), kernels -march=x86-64-v3");
  report.warning = "slow";
  EXPECT_NE(BlasStartupLine(report).find("; WARNING: slow"), std::string::npos);
  const JsonValue json = BlasReportJson(report);
  ASSERT_NE(json.Find("core"), nullptr);
  EXPECT_EQ(json.Find("core")->text(), "Prescott");
  EXPECT_EQ(json.Find("warning")->text(), "slow");
}

// This process never called ChooseBlasCoreOrReexec: the report names the core the library runs.
TEST(CurrentBlasReportTest, NamesTheCoreInUse) {
  const BlasReport report = CurrentBlasReport();
  EXPECT_EQ(report.library.rfind("OpenBLAS ", 0), 0u) << report.library;
  EXPECT_FALSE(report.core.empty());
  EXPECT_GE(report.threads, 1);
}

}  // namespace
}  // namespace deepnet::cpu
