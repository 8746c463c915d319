// safetensors reader and writer (see the header for the format and the checks).
#include "runtime/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <fstream>
#include <limits>

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

// Checked product of the dimensions times the element size; false on overflow.
bool ByteSize(const Shape& shape, DType dtype, uint64_t* bytes) {
  uint64_t total = DTypeSize(dtype);
  for (int64_t d : shape) {
    if (d < 0) return false;
    const auto dim = static_cast<uint64_t>(d);
    if (dim != 0 && total > std::numeric_limits<uint64_t>::max() / dim) return false;
    total *= dim;
  }
  *bytes = total;
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
  if (!ByteSize(entry.shape, entry.dtype, &bytes) || bytes != entry.end - entry.begin) {
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
  if (expected != data_bytes) {
    return InvalidArgument("tensors cover " + std::to_string(expected) +
                           " bytes but the data section holds " + std::to_string(data_bytes));
  }
  return OkStatus();
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
  JsonValue header = JsonValue::Object();
  if (!metadata_.empty()) {
    JsonValue metadata = JsonValue::Object();
    for (const auto& [key, value] : metadata_) metadata.Set(key, JsonValue::String(value));
    header.Set(std::string(kSafetensorsMetadataKey), std::move(metadata));
  }
  uint64_t offset = 0;
  for (const Item& item : items_) {
    JsonValue entry = JsonValue::Object();
    entry.Set("dtype", JsonValue::String(std::string(SafetensorsDTypeName(item.tensor.dtype()))));
    JsonValue shape = JsonValue::Array();
    for (int64_t d : item.tensor.shape()) shape.Append(JsonValue::Int(d));
    entry.Set("shape", std::move(shape));
    JsonValue offsets = JsonValue::Array();
    offsets.Append(JsonValue::Uint(offset));
    offset += item.tensor.nbytes();
    offsets.Append(JsonValue::Uint(offset));
    entry.Set("data_offsets", std::move(offsets));
    header.AddNew(item.name, std::move(entry));
  }
  return header.Serialize();
}

Status SafetensorsWriter::Write(const std::string& path, FileSystem& fs) const {
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
  Status tiling = CheckTiling(reader.entries_, file_size - reader.data_start_);
  if (!tiling.ok()) return corrupt(tiling.message());
  for (size_t i = 0; i < reader.entries_.size(); ++i) reader.index_[reader.entries_[i].name] = i;
  return reader;
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
  if (dst.numel() == 0) return OkStatus();
  std::ifstream in(path_, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(data_start_ + entry->begin));
  in.read(static_cast<char*>(dst.raw_data()), static_cast<std::streamsize>(dst.nbytes()));
  if (!in) return DataLoss(path_ + ": cannot read tensor \"" + entry->name + "\"");
  return OkStatus();
}

StatusOr<Tensor> SafetensorsReader::Read(std::string_view name, MemoryCategory category) const {
  const SafetensorsEntry* entry = Find(name);
  if (entry == nullptr) return NotFound(path_ + ": no tensor \"" + std::string(name) + "\"");
  ASSIGN_OR_RETURN(Tensor tensor, Tensor::Allocate(entry->shape, entry->dtype, category));
  RETURN_IF_ERROR(ReadInto(name, tensor));
  return tensor;
}

}  // namespace deepnet
