// safetensors reader and writer (see the header for the format and the checks).
#include "runtime/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <fstream>
#include <limits>
#include <mutex>

#include "runtime/checksum.h"
#include "runtime/json.h"

namespace deepnet {
namespace {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; deepnet writes host memory as is");

// Larger headers are rejected before allocating (as the reference implementation does).
constexpr uint64_t kMaxHeaderBytes = 100u << 20;

StatusOr<DType> ParseDTypeName(std::string_view name) {
  for (DType dtype :
       {DType::kF32, DType::kF64, DType::kBF16, DType::kF16, DType::kI32, DType::kU8}) {
    if (SafetensorsDTypeName(dtype) == name) return dtype;
  }
  return InvalidArgument("unsupported dtype \"" + std::string(name) + "\"");
}

// Checked product of the dimensions times the element size; false on overflow. The product of
// the non-zero dimensions must fit in int64 even when a dimension is 0: Tensor counts elements
// in int64, dimension by dimension, so [2^31, 2^32, 0] would overflow before reaching the 0.
bool ByteSize(const Shape& shape, DType dtype, uint64_t* bytes) {
  constexpr auto kMaxElements = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  uint64_t elements = 1;
  bool empty = false;
  for (int64_t d : shape) {
    if (d < 0) return false;
    const auto dim = static_cast<uint64_t>(d);
    if (dim == 0) {
      empty = true;
      continue;
    }
    if (elements > kMaxElements / dim) return false;
    elements *= dim;
  }
  const uint64_t size = DTypeSize(dtype);
  if (empty) elements = 0;
  if (elements > std::numeric_limits<uint64_t>::max() / size) return false;
  *bytes = elements * size;
  return true;
}

StatusOr<SafetensorsEntry> ParseEntry(const std::string& name, const JsonValue& value) {
  if (!value.is_object()) return InvalidArgument("entry is not an object");
  if (value.members().size() != 3) {
    return InvalidArgument("entry must have exactly dtype, shape and data_offsets");
  }
  const JsonValue* dtype = value.Find("dtype");
  const JsonValue* shape = value.Find("shape");
  const JsonValue* offsets = value.Find("data_offsets");
  if (dtype == nullptr || !dtype->is_string()) return InvalidArgument("missing string dtype");
  if (shape == nullptr || !shape->is_array()) return InvalidArgument("missing array shape");
  if (offsets == nullptr || !offsets->is_array() || offsets->elements().size() != 2) {
    return InvalidArgument("data_offsets must be [begin, end]");
  }
  SafetensorsEntry entry;
  entry.name = name;
  ASSIGN_OR_RETURN(entry.dtype, ParseDTypeName(dtype->text()));
  for (const JsonValue& dim : shape->elements()) {
    StatusOr<int64_t> d = dim.AsInt64();
    if (!d.ok() || *d < 0) return InvalidArgument("shape holds a non-integer or negative size");
    entry.shape.push_back(*d);
  }
  StatusOr<uint64_t> begin = offsets->elements()[0].AsUint64();
  StatusOr<uint64_t> end = offsets->elements()[1].AsUint64();
  if (!begin.ok() || !end.ok() || *begin > *end) {
    return InvalidArgument("data_offsets are not ordered non-negative integers");
  }
  entry.begin = *begin;
  entry.end = *end;
  uint64_t bytes = 0;
  if (!ByteSize(entry.shape, entry.dtype, &bytes)) {
    return InvalidArgument("shape " + ShapeToString(entry.shape) + " has too many elements");
  }
  if (bytes != entry.end - entry.begin) {
    return InvalidArgument("data_offsets span " + std::to_string(entry.end - entry.begin) +
                           " bytes, shape " + ShapeToString(entry.shape) + " needs " +
                           std::to_string(bytes));
  }
  return entry;
}

Status ParseMetadata(const JsonValue& value, std::map<std::string, std::string>* metadata) {
  if (!value.is_object()) return InvalidArgument("__metadata__ is not an object");
  for (const auto& [key, item] : value.members()) {
    if (!item.is_string()) return InvalidArgument("__metadata__." + key + " is not a string");
    (*metadata)[key] = item.text();
  }
  return OkStatus();
}

// Sorts the entries by offset and checks that they tile [0, data_bytes) exactly.
Status CheckTiling(std::vector<SafetensorsEntry>& entries, uint64_t data_bytes) {
  std::stable_sort(entries.begin(), entries.end(),
                   [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
                     return a.begin < b.begin || (a.begin == b.begin && a.end < b.end);
                   });
  uint64_t expected = 0;
  for (const SafetensorsEntry& entry : entries) {
    if (entry.begin != expected) {
      return InvalidArgument("tensor \"" + entry.name + "\" starts at byte " +
                             std::to_string(entry.begin) + ", expected " +
                             std::to_string(expected) + " (gap or overlap)");
    }
    expected = entry.end;
  }
  if (expected > data_bytes) {
    return InvalidArgument("truncated: the tensors need " + std::to_string(expected) +
                           " bytes of data but the file holds " + std::to_string(data_bytes));
  }
  if (expected != data_bytes) {
    return InvalidArgument("tensors cover " + std::to_string(expected) +
                           " bytes but the data section holds " + std::to_string(data_bytes));
  }
  return OkStatus();
}

bool IsChecksumKey(std::string_view key) { return key.starts_with("crc32"); }

// The text whose CRC-32 is "crc32.header" (see the header): `entries` in any order.
std::string HeaderContent(const std::vector<SafetensorsEntry>& entries,
                          const std::map<std::string, std::string>& metadata) {
  std::vector<const SafetensorsEntry*> sorted;
  sorted.reserve(entries.size());
  for (const SafetensorsEntry& entry : entries) sorted.push_back(&entry);
  std::sort(sorted.begin(), sorted.end(),
            [](const SafetensorsEntry* a, const SafetensorsEntry* b) { return a->name < b->name; });
  std::string text;
  for (const SafetensorsEntry* entry : sorted) {
    text += entry->name;
    text += '\0';
    text += SafetensorsDTypeName(entry->dtype);
    text += '\0';
    for (size_t i = 0; i < entry->shape.size(); ++i) {
      if (i > 0) text += ',';
      text += std::to_string(entry->shape[i]);
    }
    text += '\0';
    text += std::to_string(entry->begin);
    text += '\0';
    text += std::to_string(entry->end);
    text += '\n';
  }
  for (const auto& [key, value] : metadata) {
    if (key == kSafetensorsHeaderCrc32Key) continue;
    text += key;
    text += '\0';
    text += value;
    text += '\n';
  }
  return text;
}

// Logs, once per path in this process, that `path` has no checksums.
void WarnUnverifiedOnce(const std::string& path) {
  static std::mutex mutex;
  static std::set<std::string, std::less<>>* warned = new std::set<std::string, std::less<>>();
  std::lock_guard<std::mutex> lock(mutex);
  if (!warned->insert(path).second) return;
  LOG(WARNING) << path
               << ": carries no checksums (written before deepnet added them, or by another "
                  "tool), so its tensors are read unverified and damage to them cannot be "
                  "detected; saving a new checkpoint or exporting again adds them";
}

}  // namespace

std::string_view SafetensorsDTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "F32";
    case DType::kF64:
      return "F64";
    case DType::kBF16:
      return "BF16";
    case DType::kF16:
      return "F16";
    case DType::kI32:
      return "I32";
    case DType::kU8:
      return "U8";
  }
  return "?";
}

Status SafetensorsWriter::Add(std::string name, const Tensor& tensor) {
  if (name.empty() || name == kSafetensorsMetadataKey) {
    return InvalidArgument("safetensors: invalid tensor name \"" + name + "\"");
  }
  if (names_.contains(name)) {
    return InvalidArgument("safetensors: duplicate tensor \"" + name + "\"");
  }
  if (!tensor.device().is_cpu()) {
    return Unimplemented("safetensors: tensor \"" + name + "\" is on " +
                         tensor.device().ToString() + "; copy it to the host first");
  }
  names_.insert(name);
  items_.push_back({std::move(name), tensor});
  return OkStatus();
}

void SafetensorsWriter::SetMetadata(std::string key, std::string value) {
  metadata_[std::move(key)] = std::move(value);
}

std::string SafetensorsWriter::HeaderJson() const {
  // The entries in data order, each tensor's checksum, then the header's.
  std::vector<SafetensorsEntry> entries;
  entries.reserve(items_.size());
  std::map<std::string, std::string> metadata;
  for (const auto& [key, value] : metadata_) {
    if (!IsChecksumKey(key)) metadata.emplace(key, value);
  }
  uint64_t offset = 0;
  for (const Item& item : items_) {
    SafetensorsEntry entry;
    entry.name = item.name;
    entry.dtype = item.tensor.dtype();
    entry.shape = item.tensor.shape();
    entry.begin = offset;
    offset += item.tensor.nbytes();
    entry.end = offset;
    entries.push_back(std::move(entry));
    const uint32_t crc =
        item.tensor.numel() == 0 ? 0 : Crc32(item.tensor.raw_data(), item.tensor.nbytes());
    metadata[std::string(kSafetensorsCrc32Prefix) + item.name] = Crc32Hex(crc);
  }
  metadata[std::string(kSafetensorsHeaderCrc32Key)] =
      Crc32Hex(Crc32(HeaderContent(entries, metadata)));

  JsonValue header = JsonValue::Object();
  JsonValue metadata_json = JsonValue::Object();
  for (auto& [key, value] : metadata) metadata_json.AddNew(key, JsonValue::String(value));
  header.AddNew(std::string(kSafetensorsMetadataKey), std::move(metadata_json));
  for (const SafetensorsEntry& entry : entries) {
    JsonValue json = JsonValue::Object();
    json.AddNew("dtype", JsonValue::String(std::string(SafetensorsDTypeName(entry.dtype))));
    JsonValue shape = JsonValue::Array();
    for (int64_t d : entry.shape) shape.Append(JsonValue::Int(d));
    json.AddNew("shape", std::move(shape));
    JsonValue offsets = JsonValue::Array();
    offsets.Append(JsonValue::Uint(entry.begin));
    offsets.Append(JsonValue::Uint(entry.end));
    json.AddNew("data_offsets", std::move(offsets));
    header.AddNew(entry.name, std::move(json));
  }
  return header.Serialize();
}

Status SafetensorsWriter::Write(const std::string& path, FileSystem& fs) const {
  for (const auto& [key, value] : metadata_) {
    if (IsChecksumKey(key)) {
      return InvalidArgument("safetensors: " + path + ": metadata key \"" + key +
                             "\" is reserved for checksums (keys starting with \"crc32\")");
    }
  }
  std::string header = HeaderJson();
  header.append((8 - header.size() % 8) % 8, ' ');  // data starts 8-byte aligned
  const uint64_t length = header.size();
  char prefix[8];
  std::memcpy(prefix, &length, sizeof(length));

  ASSIGN_OR_RETURN(std::unique_ptr<AtomicFileWriter> writer, AtomicFileWriter::Open(path, fs));
  RETURN_IF_ERROR(writer->Append(std::string_view(prefix, sizeof(prefix))));
  RETURN_IF_ERROR(writer->Append(header));
  for (const Item& item : items_) {
    if (item.tensor.numel() == 0) continue;
    RETURN_IF_ERROR(writer->Append(
        std::string_view(static_cast<const char*>(item.tensor.raw_data()), item.tensor.nbytes())));
  }
  return writer->Commit();
}

StatusOr<SafetensorsReader> SafetensorsReader::Open(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return NotFound(path + ": cannot open");
  const auto file_size = static_cast<uint64_t>(in.tellg());
  auto corrupt = [&](std::string_view why) {
    return DataLoss(path + ": not a valid safetensors file: " + std::string(why));
  };
  if (file_size < 8) return corrupt("shorter than the 8-byte header length");
  uint64_t header_size = 0;
  in.seekg(0);
  in.read(reinterpret_cast<char*>(&header_size), sizeof(header_size));
  if (!in) return corrupt("cannot read the header length");
  if (header_size > kMaxHeaderBytes || header_size > file_size - 8) {
    return corrupt("header length " + std::to_string(header_size) + " exceeds the file");
  }
  std::string header(header_size, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_size));
  if (!in) return corrupt("truncated header");
  if (header.empty() || header[0] != '{') return corrupt("header does not start with '{'");

  StatusOr<JsonValue> json = ParseJson(header);
  if (!json.ok()) return corrupt("header: " + json.status().message());
  if (!json->is_object()) return corrupt("header is not a JSON object");

  SafetensorsReader reader;
  reader.path_ = path;
  reader.data_start_ = 8 + header_size;
  for (const auto& [name, value] : json->members()) {
    if (name == kSafetensorsMetadataKey) {
      Status status = ParseMetadata(value, &reader.metadata_);
      if (!status.ok()) return corrupt(status.message());
      continue;
    }
    StatusOr<SafetensorsEntry> entry = ParseEntry(name, value);
    if (!entry.ok()) return corrupt("tensor \"" + name + "\": " + entry.status().message());
    reader.entries_.push_back(std::move(entry).value());
  }

  // Checksums: all or none.
  for (const auto& [key, value] : reader.metadata_) {
    if (IsChecksumKey(key)) reader.has_checksums_ = true;
  }
  if (reader.has_checksums_) {
    const auto header_crc = reader.metadata_.find(std::string(kSafetensorsHeaderCrc32Key));
    const std::optional<uint32_t> stored =
        header_crc == reader.metadata_.end() ? std::nullopt : ParseCrc32Hex(header_crc->second);
    if (!stored) {
      return corrupt("it has checksums but no valid \"" + std::string(kSafetensorsHeaderCrc32Key) +
                     "\" (8 hex digits)");
    }
    const uint32_t computed = Crc32(HeaderContent(reader.entries_, reader.metadata_));
    if (computed != *stored) {
      return DataLoss(path + ": header checksum mismatch (stored " + Crc32Hex(*stored) +
                      ", computed " + Crc32Hex(computed) +
                      "): tensor names, dtypes, shapes, offsets or metadata are damaged");
    }
    for (SafetensorsEntry& entry : reader.entries_) {
      const auto it = reader.metadata_.find(std::string(kSafetensorsCrc32Prefix) + entry.name);
      if (it != reader.metadata_.end()) entry.crc32 = ParseCrc32Hex(it->second);
      if (!entry.crc32) {
        return corrupt("tensor \"" + entry.name + "\" has no valid checksum \"" +
                       std::string(kSafetensorsCrc32Prefix) + entry.name + "\" (8 hex digits)");
      }
    }
  } else {
    WarnUnverifiedOnce(path);
  }

  Status tiling = CheckTiling(reader.entries_, file_size - reader.data_start_);
  if (!tiling.ok()) return corrupt(tiling.message());
  for (size_t i = 0; i < reader.entries_.size(); ++i) reader.index_[reader.entries_[i].name] = i;
  return reader;
}

Status SafetensorsReader::CheckCrc(const SafetensorsEntry& entry, uint32_t computed) const {
  if (!entry.crc32 || *entry.crc32 == computed) return OkStatus();
  return DataLoss(path_ + ": tensor " + entry.name + ": checksum mismatch (stored " +
                  Crc32Hex(*entry.crc32) + ", computed " + Crc32Hex(computed) +
                  ") over file bytes " + std::to_string(data_start_ + entry.begin) + ".." +
                  std::to_string(data_start_ + entry.end) + "; the file is damaged");
}

Status SafetensorsReader::Verify() const {
  if (!has_checksums_) return OkStatus();
  std::ifstream in(path_, std::ios::binary);
  if (!in) return NotFound(path_ + ": cannot open");
  std::vector<char> buffer(size_t{16} << 20);
  for (const SafetensorsEntry& entry : entries_) {
    in.seekg(static_cast<std::streamoff>(data_start_ + entry.begin));
    uint32_t crc = 0;
    for (uint64_t left = entry.end - entry.begin; left > 0;) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(left, buffer.size()));
      in.read(buffer.data(), static_cast<std::streamsize>(n));
      if (!in) return DataLoss(path_ + ": cannot read tensor \"" + entry.name + "\"");
      crc = Crc32(buffer.data(), n, crc);
      left -= n;
    }
    RETURN_IF_ERROR(CheckCrc(entry, crc));
  }
  return OkStatus();
}

const SafetensorsEntry* SafetensorsReader::Find(std::string_view name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

Status SafetensorsReader::ReadInto(std::string_view name, const Tensor& dst) const {
  const SafetensorsEntry* entry = Find(name);
  if (entry == nullptr) return NotFound(path_ + ": no tensor \"" + std::string(name) + "\"");
  if (entry->dtype != dst.dtype() || entry->shape != dst.shape()) {
    return InvalidArgument(path_ + ": tensor \"" + entry->name + "\" is " +
                           std::string(SafetensorsDTypeName(entry->dtype)) +
                           ShapeToString(entry->shape) + ", expected " +
                           std::string(SafetensorsDTypeName(dst.dtype())) +
                           ShapeToString(dst.shape()));
  }
  if (!dst.device().is_cpu()) {
    return Unimplemented(path_ + ": reading into a " + dst.device().ToString() + " tensor");
  }
  if (dst.numel() == 0) return CheckCrc(*entry, 0);
  std::ifstream in(path_, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(data_start_ + entry->begin));
  in.read(static_cast<char*>(dst.raw_data()), static_cast<std::streamsize>(dst.nbytes()));
  if (!in) return DataLoss(path_ + ": cannot read tensor \"" + entry->name + "\"");
  return CheckCrc(*entry, Crc32(dst.raw_data(), dst.nbytes()));
}

StatusOr<Tensor> SafetensorsReader::Read(std::string_view name, MemoryCategory category) const {
  const SafetensorsEntry* entry = Find(name);
  if (entry == nullptr) return NotFound(path_ + ": no tensor \"" + std::string(name) + "\"");
  ASSIGN_OR_RETURN(Tensor tensor, Tensor::Allocate(entry->shape, entry->dtype, category));
  RETURN_IF_ERROR(ReadInto(name, tensor));
  return tensor;
}

}  // namespace deepnet
