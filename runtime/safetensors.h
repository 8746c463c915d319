// safetensors files: deepnet's checkpoint and export format (docs/design.md#export-format).
//
// Layout: an 8-byte little-endian header length N, N bytes of JSON, then the raw little-endian
// tensor data. The JSON maps each tensor name to {"dtype": "F32", "shape": [..],
// "data_offsets": [begin, end]} (byte offsets into the data section) and may hold
// "__metadata__": a string -> string map. The writer pads the header with spaces so the data
// starts 8-byte aligned and lays tensors out back to back in the order they were added.
//
// The reader is strict: the header must parse, every entry must have exactly those three fields,
// a known dtype, sizes that match the shape, and the entries must tile the data section with no
// gap or overlap (so a truncated or extended file fails at Open). Any fault is kDataLoss naming the
// file.
//
// Checksums. Every file deepnet writes carries CRC-32 checksums (runtime/checksum.h: zlib's
// crc32, the same number as Python's zlib.crc32) as ordinary "__metadata__" strings, so the file
// stays a standard safetensors file that any reader loads:
//   "crc32:<tensor name>"  8 hex digits: the CRC-32 of that tensor's data bytes
//                          (data_offsets), one key per tensor;
//   "crc32.header"         8 hex digits: the CRC-32 of the header's content, a text of one line
//                          per tensor, in byte order of the names,
//                            name NUL dtype NUL dims-joined-by-"," NUL begin NUL end LF
//                          (numbers in decimal, no spaces), then one line per metadata key, in
//                          byte order, except "crc32.header" itself,
//                            key NUL value LF
//                          It guards dtypes, shapes, offsets and metadata such as the optimizer
//                          step against damage that still parses.
// Metadata keys starting with "crc32" are reserved for these. The reader checks "crc32.header" at
// Open and a tensor's checksum whenever it reads the tensor (ReadInto, Read, Verify): a mismatch
// is kDataLoss naming the file, the tensor and its bytes. A file with any "crc32" key must have
// all of them. A file with none (written before deepnet added checksums, or by another tool) is
// read unverified, with a warning logged once per path.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
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
  std::optional<uint32_t> crc32;  // the stored checksum; none in files without checksums
};

// Metadata keys of the checksums (see above).
inline constexpr std::string_view kSafetensorsCrc32Prefix = "crc32:";
inline constexpr std::string_view kSafetensorsHeaderCrc32Key = "crc32.header";

// Collects host tensors (by reference: they must stay alive until Write) and metadata, then
// writes the file atomically, with its checksums.
class SafetensorsWriter {
 public:
  // InvalidArgument for a duplicate or reserved name, Unimplemented for a device tensor.
  Status Add(std::string name, const Tensor& tensor);
  // Keys starting with "crc32" are reserved for the checksums: Write then fails.
  void SetMetadata(std::string key, std::string value);
  // Computes the checksums (one pass over the data) and writes the file. InvalidArgument for a
  // reserved metadata key.
  Status Write(const std::string& path, FileSystem& fs = LocalFileSystem()) const;

  // The JSON header (without the length prefix and padding), checksums included, for tests.
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
  // Reads and checks the header and its checksum (the data is read, and its checksums checked,
  // on demand).
  static StatusOr<SafetensorsReader> Open(const std::string& path);

  const std::string& path() const { return path_; }
  // In data order.
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  const SafetensorsEntry* Find(std::string_view name) const;  // null when absent
  // All of "__metadata__", the checksum keys included.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Whether the file carries checksums (false: written before deepnet had them).
  bool has_checksums() const { return has_checksums_; }

  // Reads tensor `name` into `dst`, a host tensor of the same dtype and shape, and checks its
  // checksum: kDataLoss naming the file, the tensor and its bytes on a mismatch.
  Status ReadInto(std::string_view name, const Tensor& dst) const;
  // Reads tensor `name` into a new host tensor (checked as ReadInto).
  StatusOr<Tensor> Read(std::string_view name,
                        MemoryCategory category = MemoryCategory::kOther) const;
  // Checks every tensor's checksum, reading the whole file in pieces (no tensor is kept).
  Status Verify() const;

 private:
  SafetensorsReader() = default;
  // kDataLoss for a stored checksum that differs from `computed`.
  Status CheckCrc(const SafetensorsEntry& entry, uint32_t computed) const;

  std::string path_;
  bool has_checksums_ = false;
  uint64_t data_start_ = 0;  // file offset of the data section
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, size_t, std::less<>> index_;  // name -> position in entries_
  std::map<std::string, std::string> metadata_;
};

}  // namespace deepnet
