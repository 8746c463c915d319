// Element types and devices. Precision is a runtime property of a tensor, never a build-wide
// typedef: the CPU backend computes in fp32 (and fp64 for gradient checks), the CUDA backend
// adds bf16/fp16.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace deepnet {

enum class DType : uint8_t { kF32, kF64, kBF16, kF16, kI32, kU8 };

constexpr size_t DTypeSize(DType t) {
  switch (t) {
    case DType::kF32:
      return 4;
    case DType::kF64:
      return 8;
    case DType::kBF16:
      return 2;
    case DType::kF16:
      return 2;
    case DType::kI32:
      return 4;
    case DType::kU8:
      return 1;
  }
  return 0;
}

std::string_view DTypeName(DType t);

template <typename T>
struct DTypeOf;
template <>
struct DTypeOf<float> {
  static constexpr DType value = DType::kF32;
};
template <>
struct DTypeOf<double> {
  static constexpr DType value = DType::kF64;
};
template <>
struct DTypeOf<int32_t> {
  static constexpr DType value = DType::kI32;
};
template <>
struct DTypeOf<uint8_t> {
  static constexpr DType value = DType::kU8;
};

// kStrict: the strict test device (kernels/strict): CPU-run, but its memory is unreadable from the
// host, so device code paths are exercised without a GPU.
enum class DeviceKind : uint8_t { kCpu, kCuda, kStrict };

struct Device {
  DeviceKind kind = DeviceKind::kCpu;
  int index = 0;

  static constexpr Device Cpu() { return {DeviceKind::kCpu, 0}; }
  static constexpr Device Cuda(int index) { return {DeviceKind::kCuda, index}; }
  static constexpr Device Strict() { return {DeviceKind::kStrict, 0}; }
  bool is_cpu() const { return kind == DeviceKind::kCpu; }
  bool operator==(const Device&) const = default;
  std::string ToString() const;
};

}  // namespace deepnet
