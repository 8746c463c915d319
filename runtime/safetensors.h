// safetensors files: deepnet's checkpoint and export format (SPEC §2).
//
// Layout: an 8-byte little-endian header length N, N bytes of JSON, then the raw little-endian
// tensor data. The JSON maps each tensor name to {"dtype": "F32", "shape": [..],
// "data_offsets": [begin, end]} (byte offsets into the data section) and may hold
// "__metadata__": a string -> string map. The writer pads the header with spaces so the data
// starts 8-byte aligned and lays tensors out back to back in the order they were added.
//
// The reader is strict: the header must parse, every entry must have exactly those three fields,
// a known dtype, sizes that match the shape, and the entries must tile the data section with no
// gap or overlap. Any fault is kDataLoss naming the file.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/atomic_file.h"
#include "runtime/dtype.h"
#include "runtime/status.h"
#include "runtime/tensor.h"

namespace deepnet {

inline constexpr std::string_view kSafetensorsMetadataKey = "__metadata__";

// "F32", "F64", "BF16", "F16", "I32", "U8".
std::string_view SafetensorsDTypeName(DType dtype);

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
  uint64_t begin = 0;  // byte offsets into the data section
  uint64_t end = 0;
};

// Collects host tensors (by reference: they must stay alive until Write) and metadata, then
// writes the file atomically.
class SafetensorsWriter {
 public:
  // InvalidArgument for a duplicate or reserved name, Unimplemented for a device tensor.
  Status Add(std::string name, const Tensor& tensor);
  void SetMetadata(std::string key, std::string value);
  Status Write(const std::string& path, FileSystem& fs = LocalFileSystem()) const;

  // The JSON header (without the length prefix and padding), for tests.
  std::string HeaderJson() const;

 private:
  struct Item {
    std::string name;
    Tensor tensor;
  };
  std::vector<Item> items_;
  std::set<std::string, std::less<>> names_;
  std::map<std::string, std::string> metadata_;
};

class SafetensorsReader {
 public:
  // Reads and checks the header (the data is read on demand).
  static StatusOr<SafetensorsReader> Open(const std::string& path);

  const std::string& path() const { return path_; }
  // In data order.
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  const SafetensorsEntry* Find(std::string_view name) const;  // null when absent
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // Reads tensor `name` into `dst`, a host tensor of the same dtype and shape.
  Status ReadInto(std::string_view name, const Tensor& dst) const;
  // Reads tensor `name` into a new host tensor.
  StatusOr<Tensor> Read(std::string_view name,
                        MemoryCategory category = MemoryCategory::kOther) const;

 private:
  SafetensorsReader() = default;

  std::string path_;
  uint64_t data_start_ = 0;  // file offset of the data section
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, size_t, std::less<>> index_;  // name -> position in entries_
  std::map<std::string, std::string> metadata_;
};

}  // namespace deepnet
