#include "runtime/tensor.h"

#include <cstring>
#include <sstream>

namespace deepnet {

std::string_view DTypeName(DType t) {
  switch (t) {
    case DType::kF32:
      return "f32";
    case DType::kF64:
      return "f64";
    case DType::kBF16:
      return "bf16";
    case DType::kF16:
      return "f16";
    case DType::kI32:
      return "i32";
    case DType::kU8:
      return "u8";
  }
  return "?";
}

std::string Device::ToString() const {
  switch (kind) {
    case DeviceKind::kCpu:
      return "cpu";
    case DeviceKind::kCuda:
      return "cuda:" + std::to_string(index);
    case DeviceKind::kStrict:
      return "strict:" + std::to_string(index);
  }
  return "?";
}

int64_t NumElements(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string ShapeToString(const Shape& shape) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

StatusOr<Tensor> Tensor::Allocate(const Shape& shape, DType dtype, MemoryCategory category,
                                  Device device) {
  return Allocate(shape, dtype, category, GetAllocator(device));
}

StatusOr<Tensor> Tensor::Allocate(const Shape& shape, DType dtype, MemoryCategory category,
                                  Allocator& allocator) {
  for (int64_t d : shape) {
    if (d < 0) return InvalidArgument("negative dimension in shape " + ShapeToString(shape));
  }
  Tensor t;
  t.shape_ = shape;
  t.numel_ = NumElements(shape);
  t.dtype_ = dtype;
  t.device_ = allocator.device();
  ASSIGN_OR_RETURN(void* data, allocator.Allocate(t.nbytes(), category));
  t.storage_ = std::make_shared<Storage>(&allocator, data, t.nbytes(), category);
  return t;
}

Tensor Tensor::Empty(const Shape& shape, DType dtype, MemoryCategory category, Device device) {
  StatusOr<Tensor> t = Allocate(shape, dtype, category, device);
  CHECK(t.ok()) << t.status();
  return std::move(t).value();
}

Tensor Tensor::Zeros(const Shape& shape, DType dtype, MemoryCategory category, Device device) {
  CHECK(device.is_cpu()) << "Tensor::Zeros is host-only; use the backend to zero device memory";
  Tensor t = Empty(shape, dtype, category, device);
  if (t.nbytes() > 0) std::memset(t.raw_data(), 0, t.nbytes());
  return t;
}

MemoryCategory Tensor::category() const {
  return storage_ ? storage_->category() : MemoryCategory::kOther;
}

void* Tensor::raw_data() const {
  if (!storage_) return nullptr;
  return static_cast<char*>(storage_->data()) + offset_bytes_;
}

Tensor Tensor::Slice(int64_t begin, int64_t end) const {
  CHECK_GE(rank(), 1) << "Slice of a scalar";
  CHECK(0 <= begin && begin <= end && end <= shape_[0])
      << "Slice [" << begin << ", " << end << ") of " << ToString();
  Tensor t = *this;
  const int64_t row = shape_[0] == 0 ? 0 : numel_ / shape_[0];
  t.shape_[0] = end - begin;
  t.numel_ = row * (end - begin);
  t.offset_bytes_ += static_cast<size_t>(begin * row) * DTypeSize(dtype_);
  return t;
}

Tensor Tensor::Reshape(const Shape& shape) const {
  Shape s = shape;
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      CHECK_EQ(infer, -1) << "Reshape with two -1 dimensions";
      infer = static_cast<int>(i);
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0) s[infer] = known == 0 ? 0 : numel_ / known;
  CHECK_EQ(NumElements(s), numel_) << "Reshape " << ToString() << " to " << ShapeToString(shape);
  Tensor t = *this;
  t.shape_ = s;
  return t;
}

Tensor Tensor::Clone(MemoryCategory category) const {
  Tensor t = Empty(shape_, dtype_, category, device_);
  t.CopyFrom(*this);
  return t;
}

void Tensor::CopyFrom(const Tensor& src) {
  CHECK(device_.is_cpu() && src.device_.is_cpu()) << "Tensor::CopyFrom is host-only";
  CHECK_EQ(numel_, src.numel_) << ToString() << " <- " << src.ToString();
  CHECK(dtype_ == src.dtype_) << ToString() << " <- " << src.ToString();
  if (nbytes() > 0) std::memmove(raw_data(), src.raw_data(), nbytes());
}

void Tensor::Fill(double value) {
  CHECK(device_.is_cpu()) << "Tensor::Fill is host-only";
  switch (dtype_) {
    case DType::kF32:
      std::fill_n(data<float>(), numel_, static_cast<float>(value));
      break;
    case DType::kF64:
      std::fill_n(data<double>(), numel_, value);
      break;
    case DType::kI32:
      std::fill_n(data<int32_t>(), numel_, static_cast<int32_t>(value));
      break;
    case DType::kU8:
      std::fill_n(data<uint8_t>(), numel_, static_cast<uint8_t>(value));
      break;
    default:
      LOG(FATAL) << "Fill not supported for " << DTypeName(dtype_);
  }
}

std::string Tensor::ToString() const {
  return std::string(DTypeName(dtype_)) + ShapeToString(shape_) + " on " + device_.ToString();
}

}  // namespace deepnet
