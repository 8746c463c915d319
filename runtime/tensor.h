// Tensor: a shape, a dtype and a device over contiguous, reference-counted storage.
//
// Tensors are always contiguous (row-major). A view shares storage: Slice() takes rows [begin,
// end) of the first dimension (micro-batches of a batch) and Reshape() reinterprets the shape;
// neither copies. Storage is charged to a MemoryCategory of the device's Allocator, so every
// parameter, gradient and activation shows up in the memory accounting.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "runtime/allocator.h"
#include "runtime/dtype.h"
#include "runtime/status.h"

namespace deepnet {

using Shape = std::vector<int64_t>;
int64_t NumElements(const Shape& shape);
std::string ShapeToString(const Shape& shape);

// Owns one allocation; frees it (and uncharges the category) when the last tensor lets go.
class Storage {
 public:
  Storage(Allocator* allocator, void* data, size_t bytes, MemoryCategory category)
      : allocator_(allocator), data_(data), bytes_(bytes), category_(category) {}
  ~Storage() { allocator_->Free(data_, bytes_, category_); }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  MemoryCategory category() const { return category_; }

 private:
  Allocator* allocator_;
  void* data_;
  size_t bytes_;
  MemoryCategory category_;
};

class Tensor {
 public:
  Tensor() = default;  // an empty tensor: defined() is false

  // Uninitialised memory. Fails only when the device has no room.
  static StatusOr<Tensor> Allocate(const Shape& shape, DType dtype, MemoryCategory category,
                                   Device device = Device::Cpu());
  // From a given allocator (memory of its device()), e.g. pinned host memory a backend owns.
  static StatusOr<Tensor> Allocate(const Shape& shape, DType dtype, MemoryCategory category,
                                   Allocator& allocator);
  // As Allocate, but a failure is fatal (for compute code whose memory was planned up front).
  static Tensor Empty(const Shape& shape, DType dtype, MemoryCategory category,
                      Device device = Device::Cpu());
  // Zero-filled (host tensors only; device tensors are zeroed by their backend).
  static Tensor Zeros(const Shape& shape, DType dtype, MemoryCategory category,
                      Device device = Device::Cpu());

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_[i < 0 ? shape_.size() + i : i]; }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return static_cast<size_t>(numel_) * DTypeSize(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  MemoryCategory category() const;

  void* raw_data() const;
  template <typename T>
  T* data() const {
    CHECK(DTypeOf<T>::value == dtype_)
        << "tensor holds " << DTypeName(dtype_) << ", accessed as " << DTypeName(DTypeOf<T>::value);
    return static_cast<T*>(raw_data());
  }

  // Rows [begin, end) of dimension 0, sharing storage.
  Tensor Slice(int64_t begin, int64_t end) const;
  // Same elements, another shape (one dimension may be -1).
  Tensor Reshape(const Shape& shape) const;
  // A new tensor with a copy of the elements (host only), optionally charged to another category.
  Tensor Clone(MemoryCategory category) const;
  Tensor Clone() const { return Clone(category()); }
  // Copies the elements of `src` (same numel and dtype) into this tensor (host only).
  void CopyFrom(const Tensor& src);
  void Fill(double value);  // host only

  bool SameStorage(const Tensor& other) const { return storage_ == other.storage_; }
  // Tensors (views included) sharing this one's storage; 0 for an empty tensor.
  long storage_use_count() const { return storage_.use_count(); }
  std::string ToString() const;  // "f32[2, 3] on cpu"

 private:
  std::shared_ptr<Storage> storage_;
  size_t offset_bytes_ = 0;
  Shape shape_;
  int64_t numel_ = 0;
  DType dtype_ = DType::kF32;
  Device device_;
};

}  // namespace deepnet
