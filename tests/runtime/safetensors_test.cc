// safetensors: round trip of every dtype with metadata, the exact byte layout (checksums
// included), corrupt files reported as kDataLoss naming the file, and damage to the
// data or header caught by the checksums, naming the file and the tensor.
#include "runtime/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "runtime/atomic_file.h"
#include "runtime/checksum.h"
#include "tests/runtime/test_files.h"

namespace deepnet {
namespace {

Tensor Iota(const Shape& shape, DType dtype) {
  Tensor t = Tensor::Zeros(shape, dtype, MemoryCategory::kOther);
  auto* bytes = static_cast<uint8_t*>(t.raw_data());
  for (size_t i = 0; i < t.nbytes(); ++i) bytes[i] = static_cast<uint8_t>(i * 7 + 1);
  return t;
}

bool SameBytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

// A file with the given header text and `data_bytes` zero bytes after it.
std::string WriteRaw(const std::string& path, const std::string& header, size_t data_bytes) {
  std::string file(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(file.data(), &n, 8);
  file += header;
  file.append(data_bytes, '\0');
  EXPECT_TRUE(ReplaceFileAtomically(path, file).ok());
  return path;
}

// One line of the text "crc32.header" checksums: the fields joined by NUL, then LF.
std::string HeaderLine(const std::vector<std::string>& fields) {
  std::string line;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) line += '\0';
    line += fields[i];
  }
  return line + "\n";
}

TEST(SafetensorsTest, RoundTripEveryDtypeAndMetadata) {
  TempDir dir("st_roundtrip");
  const std::string path = dir.path() + "/t.safetensors";
  const Tensor f32 = Iota({3, 5}, DType::kF32);
  const Tensor f64 = Iota({2}, DType::kF64);
  const Tensor i32 = Iota({4, 1, 2}, DType::kI32);
  const Tensor u8 = Iota({7}, DType::kU8);
  const Tensor empty = Iota({0, 4}, DType::kF32);
  const Tensor scalar = Iota({}, DType::kF32);
  SafetensorsWriter writer;
  ASSERT_TRUE(writer.Add("a.weight", f32).ok());
  ASSERT_TRUE(writer.Add("b", f64).ok());
  ASSERT_TRUE(writer.Add("ids", i32).ok());
  ASSERT_TRUE(writer.Add("mask", u8).ok());
  ASSERT_TRUE(writer.Add("empty", empty).ok());
  ASSERT_TRUE(writer.Add("scalar", scalar).ok());
  writer.SetMetadata("d_model", "512");
  writer.SetMetadata("note", "quotes \" and\nnewlines, ñ");
  ASSERT_TRUE(writer.Write(path).ok());

  StatusOr<SafetensorsReader> reader = SafetensorsReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  ASSERT_EQ(reader->entries().size(), 6u);
  EXPECT_EQ(reader->metadata().at("d_model"), "512");
  EXPECT_EQ(reader->metadata().at("note"), "quotes \" and\nnewlines, ñ");
  const std::pair<const char*, const Tensor*> expected[] = {
      {"a.weight", &f32}, {"b", &f64},       {"ids", &i32},
      {"mask", &u8},      {"empty", &empty}, {"scalar", &scalar}};
  for (const auto& [name, tensor] : expected) {
    StatusOr<Tensor> read = reader->Read(name);
    ASSERT_TRUE(read.ok()) << name << ": " << read.status();
    EXPECT_TRUE(SameBytes(*read, *tensor)) << name;
  }
  EXPECT_EQ(reader->Read("missing").status().code(), StatusCode::kNotFound);
  Tensor wrong_shape = Tensor::Zeros({5, 3}, DType::kF32, MemoryCategory::kOther);
  EXPECT_EQ(reader->ReadInto("a.weight", wrong_shape).code(), StatusCode::kInvalidArgument);
}

TEST(SafetensorsTest, ExactLayout) {
  TempDir dir("st_layout");
  const std::string path = dir.path() + "/t.safetensors";
  Tensor t = Tensor::Zeros({2}, DType::kF32, MemoryCategory::kOther);
  t.data<float>()[0] = 1.0f;
  t.data<float>()[1] = -2.5f;
  SafetensorsWriter writer;
  ASSERT_TRUE(writer.Add("x", t).ok());
  writer.SetMetadata("format", "test");
  ASSERT_TRUE(writer.Write(path).ok());
  const std::string file = *ReadWholeFile(path);
  uint64_t n = 0;
  std::memcpy(&n, file.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(file.size(), 8 + n + 8);
  // The checksums as documented in the header, computed independently here.
  const std::string x_crc = Crc32Hex(Crc32(file.data() + 8 + n, 8));
  const std::string content = HeaderLine({"x", "F32", "2", "0", "8"}) +
                              HeaderLine({"crc32:x", x_crc}) + HeaderLine({"format", "test"});
  const std::string header_crc = Crc32Hex(Crc32(content));
  const std::string json =
      R"({"__metadata__":{"crc32.header":")" + header_crc + R"(","crc32:x":")" + x_crc +
      R"(","format":"test"},"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  EXPECT_EQ(file.substr(8, json.size()), json);
  EXPECT_EQ(file.substr(8 + json.size(), n - json.size()), std::string(n - json.size(), ' '));
  float values[2];
  std::memcpy(values, file.data() + 8 + n, 8);
  EXPECT_EQ(values[0], 1.0f);
  EXPECT_EQ(values[1], -2.5f);
  StatusOr<SafetensorsReader> reader = SafetensorsReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_TRUE(reader->has_checksums());
  EXPECT_EQ(reader->Find("x")->crc32, Crc32(file.data() + 8 + n, 8));
}

TEST(SafetensorsTest, WriterRejectsDuplicateAndReservedNames) {
  Tensor t = Tensor::Zeros({1}, DType::kF32, MemoryCategory::kOther);
  SafetensorsWriter writer;
  ASSERT_TRUE(writer.Add("x", t).ok());
  EXPECT_EQ(writer.Add("x", t).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(writer.Add("__metadata__", t).code(), StatusCode::kInvalidArgument);
}

TEST(SafetensorsTest, WriterRejectsReservedMetadataKeys) {
  TempDir dir("st_reserved");
  Tensor t = Tensor::Zeros({1}, DType::kF32, MemoryCategory::kOther);
  for (const char* key : {"crc32:x", "crc32.header", "crc32"}) {
    SafetensorsWriter writer;
    ASSERT_TRUE(writer.Add("x", t).ok());
    writer.SetMetadata(key, "00000000");
    const Status status = writer.Write(dir.path() + "/t.safetensors");
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << key;
    EXPECT_NE(status.message().find("reserved"), std::string::npos) << status;
  }
}

TEST(SafetensorsTest, CorruptFilesAreDataLossNamingTheFile) {
  TempDir dir("st_corrupt");
  const std::string ok_entry = R"("x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const struct {
    const char* what;
    std::string header;
    size_t data_bytes;
  } cases[] = {
      {"not json", "{\"x\": nope}", 8},
      {"not an object", "[1, 2]", 0},
      {"trailing comma", "{" + ok_entry + ",}", 8},
      {"duplicate key", "{" + ok_entry + "," + ok_entry + "}", 8},
      {"unknown dtype", R"({"x":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}})", 8},
      {"size mismatch", R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8},
      {"negative dim", R"({"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8},
      {"elements overflow",
       R"({"x":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", 0},
      // Zero bytes, but counting the elements dimension by dimension overflows int64 (fuzzing).
      {"elements overflow before a zero dim",
       R"({"x":{"dtype":"U8","shape":[2147483648,4294967296,0],"data_offsets":[0,0]}})", 0},
      {"extra field", R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"y":1}})", 8},
      {"missing offsets", R"({"x":{"dtype":"F32","shape":[2]}})", 8},
      {"gap", R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12},
      {"data too long", "{" + ok_entry + "}", 16},
      {"data too short", "{" + ok_entry + "}", 4},
      {"metadata not strings", R"({"__metadata__":{"a":1}})", 0},
      {"overlap",
       R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
       R"("y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
       12},
  };
  int k = 0;
  for (const auto& c : cases) {
    const std::string path = dir.path() + "/bad" + std::to_string(k++) + ".safetensors";
    WriteRaw(path, c.header, c.data_bytes);
    StatusOr<SafetensorsReader> reader = SafetensorsReader::Open(path);
    ASSERT_FALSE(reader.ok()) << c.what;
    EXPECT_EQ(reader.status().code(), StatusCode::kDataLoss) << c.what;
    EXPECT_NE(reader.status().message().find(path), std::string::npos) << reader.status();
  }
}

TEST(SafetensorsTest, TruncatedAndOversizedHeaderLength) {
  TempDir dir("st_truncated");
  const std::string tiny = dir.path() + "/tiny.safetensors";
  ASSERT_TRUE(ReplaceFileAtomically(tiny, "abc").ok());
  EXPECT_EQ(SafetensorsReader::Open(tiny).status().code(), StatusCode::kDataLoss);

  const std::string huge = dir.path() + "/huge.safetensors";
  std::string file(8, '\0');
  const uint64_t n = uint64_t{1} << 40;
  std::memcpy(file.data(), &n, 8);
  file += "{}";
  ASSERT_TRUE(ReplaceFileAtomically(huge, file).ok());
  EXPECT_EQ(SafetensorsReader::Open(huge).status().code(), StatusCode::kDataLoss);

  EXPECT_EQ(SafetensorsReader::Open(dir.path() + "/none").status().code(), StatusCode::kNotFound);
}

// A checkpoint-like file: a few tensors of several dtypes and a metadata entry.
std::string WriteSample(const std::string& path) {
  SafetensorsWriter writer;
  const Tensor a = Iota({64, 16}, DType::kF32);
  const Tensor b = Iota({40}, DType::kF64);
  const Tensor c = Iota({3, 5}, DType::kBF16);
  const Tensor empty = Iota({0}, DType::kF32);
  EXPECT_TRUE(writer.Add("encoder.layers.0.fc1.weight", a).ok());
  EXPECT_TRUE(writer.Add("m/encoder.layers.0.fc1.bias", b).ok());
  EXPECT_TRUE(writer.Add("half", c).ok());
  EXPECT_TRUE(writer.Add("empty", empty).ok());
  writer.SetMetadata("step", "1200");
  EXPECT_TRUE(writer.Write(path).ok());
  return *ReadWholeFile(path);
}

uint64_t DataStart(const std::string& file) {
  uint64_t n = 0;
  std::memcpy(&n, file.data(), 8);
  return 8 + n;
}

// Reading the damaged tensor `name` (and Verify) fails with kDataLoss naming the file, the
// tensor and the checksum; the other tensors still read.
void ExpectTensorDamaged(const std::string& path, const std::string& name) {
  StatusOr<SafetensorsReader> reader = SafetensorsReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  for (const SafetensorsEntry& entry : reader->entries()) {
    const StatusOr<Tensor> read = reader->Read(entry.name);
    if (entry.name != name) {
      EXPECT_TRUE(read.ok()) << read.status();
      continue;
    }
    ASSERT_FALSE(read.ok()) << name;
    EXPECT_EQ(read.status().code(), StatusCode::kDataLoss);
    EXPECT_NE(read.status().message().find(path + ": tensor " + name + ": checksum mismatch"),
              std::string::npos)
        << read.status();
    EXPECT_NE(read.status().message().find("the file is damaged"), std::string::npos);
  }
  const Status verify = reader->Verify();
  EXPECT_EQ(verify.code(), StatusCode::kDataLoss);
  EXPECT_NE(verify.message().find("tensor " + name + ": checksum mismatch"), std::string::npos)
      << verify;
}

TEST(SafetensorsChecksumTest, CleanFileVerifies) {
  TempDir dir("st_clean");
  const std::string path = dir.path() + "/t.safetensors";
  WriteSample(path);
  StatusOr<SafetensorsReader> reader = SafetensorsReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_TRUE(reader->has_checksums());
  EXPECT_TRUE(reader->Verify().ok());
  for (const SafetensorsEntry& entry : reader->entries()) {
    EXPECT_TRUE(entry.crc32.has_value()) << entry.name;
    EXPECT_TRUE(reader->Read(entry.name).ok()) << entry.name;
  }
  EXPECT_EQ(reader->metadata().at("step"), "1200");
}

TEST(SafetensorsChecksumTest, FlippedBytesNameTheTensor) {
  TempDir dir("st_flip");
  const std::string path = dir.path() + "/t.safetensors";
  const std::string clean = WriteSample(path);
  const SafetensorsReader reader = *SafetensorsReader::Open(path);
  const uint64_t start = DataStart(clean);
  for (const SafetensorsEntry& entry : reader.entries()) {
    if (entry.begin == entry.end) continue;
    // 64 bytes (or the whole tensor) in the middle of the tensor, every bit inverted.
    std::string bytes = clean;
    const uint64_t count = std::min<uint64_t>(64, entry.end - entry.begin);
    const uint64_t first = start + entry.begin + (entry.end - entry.begin - count) / 2;
    for (uint64_t i = first; i < first + count; ++i) bytes[i] = static_cast<char>(~bytes[i]);
    ASSERT_TRUE(ReplaceFileAtomically(path, bytes).ok());
    ExpectTensorDamaged(path, entry.name);
    // One bit: the exponent's top bit of the tensor's last element.
    bytes = clean;
    bytes[start + entry.end - 1] = static_cast<char>(bytes[start + entry.end - 1] ^ 0x40);
    ASSERT_TRUE(ReplaceFileAtomically(path, bytes).ok());
    ExpectTensorDamaged(path, entry.name);
  }
}

TEST(SafetensorsChecksumTest, ReadIntoChecksToo) {
  TempDir dir("st_readinto");
  const std::string path = dir.path() + "/t.safetensors";
  std::string bytes = WriteSample(path);
  bytes[DataStart(bytes) + 100] ^= 1;  // in encoder.layers.0.fc1.weight (bytes 0..4096)
  ASSERT_TRUE(ReplaceFileAtomically(path, bytes).ok());
  const SafetensorsReader reader = *SafetensorsReader::Open(path);
  Tensor dst = Tensor::Zeros({64, 16}, DType::kF32, MemoryCategory::kOther);
  const Status status = reader.ReadInto("encoder.layers.0.fc1.weight", dst);
  EXPECT_EQ(status.code(), StatusCode::kDataLoss);
  EXPECT_NE(status.message().find("encoder.layers.0.fc1.weight: checksum mismatch"),
            std::string::npos)
      << status;
  EXPECT_NE(status.message().find("file bytes " + std::to_string(DataStart(bytes)) + ".." +
                                  std::to_string(DataStart(bytes) + 4096)),
            std::string::npos)
      << status;
}

TEST(SafetensorsChecksumTest, HeaderDamageThatStillParsesIsCaught) {
  TempDir dir("st_header");
  const std::string path = dir.path() + "/t.safetensors";
  const std::string clean = WriteSample(path);
  // Same-length edits: the JSON still parses and the entries still tile the data.
  const std::string half_crc = R"("crc32:half":")";
  const size_t digit = clean.find(half_crc) + half_crc.size();
  const std::string other_digit(1, clean[digit] == '0' ? '1' : '0');
  const struct {
    const char* what;
    std::string from, to;
  } cases[] = {
      {"metadata value", R"("step":"1200")", R"("step":"1700")"},
      {"shape", R"("shape":[64,16])", R"("shape":[16,64])"},
      {"dtype and shape", R"("dtype":"F64","shape":[40])", R"("dtype":"I32","shape":[80])"},
      {"tensor checksum", clean.substr(digit - half_crc.size(), half_crc.size() + 1),
       half_crc + other_digit},
  };
  for (const auto& c : cases) {
    ASSERT_EQ(c.from.size(), c.to.size()) << c.what;
    std::string bytes = clean;
    const size_t at = bytes.find(c.from);
    ASSERT_NE(at, std::string::npos) << c.what;
    bytes.replace(at, c.from.size(), c.to);
    ASSERT_TRUE(ReplaceFileAtomically(path, bytes).ok());
    const StatusOr<SafetensorsReader> reader = SafetensorsReader::Open(path);
    ASSERT_FALSE(reader.ok()) << c.what;
    EXPECT_EQ(reader.status().code(), StatusCode::kDataLoss) << c.what;
    EXPECT_NE(reader.status().message().find(path + ": header checksum mismatch"),
              std::string::npos)
        << reader.status();
  }
}

TEST(SafetensorsChecksumTest, TruncationIsCaughtAtOpen) {
  TempDir dir("st_trunc");
  const std::string path = dir.path() + "/t.safetensors";
  const std::string clean = WriteSample(path);
  for (size_t keep : {clean.size() - 1, clean.size() - 64, DataStart(clean) + 10, DataStart(clean),
                      DataStart(clean) - 3, size_t{8}}) {
    ASSERT_TRUE(ReplaceFileAtomically(path, clean.substr(0, keep)).ok());
    const StatusOr<SafetensorsReader> reader = SafetensorsReader::Open(path);
    ASSERT_FALSE(reader.ok()) << keep;
    EXPECT_EQ(reader.status().code(), StatusCode::kDataLoss) << keep;
    EXPECT_NE(reader.status().message().find(path), std::string::npos) << reader.status();
    if (keep >= DataStart(clean)) {
      EXPECT_NE(reader.status().message().find("truncated"), std::string::npos) << reader.status();
    }
  }
}

TEST(SafetensorsChecksumTest, ChecksumsAreAllOrNone) {
  TempDir dir("st_partial");
  const std::string ok_entry = R"("x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  // A checksum key without the header's.
  const std::string no_header = dir.path() + "/no_header.safetensors";
  WriteRaw(no_header, R"({"__metadata__":{"crc32:x":"00000000"},)" + ok_entry + "}", 8);
  StatusOr<SafetensorsReader> reader = SafetensorsReader::Open(no_header);
  EXPECT_EQ(reader.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(reader.status().message().find("crc32.header"), std::string::npos) << reader.status();
  // A valid header checksum but no checksum for tensor x.
  const std::string content = HeaderLine({"x", "F32", "2", "0", "8"});
  const std::string no_tensor = dir.path() + "/no_tensor.safetensors";
  WriteRaw(
      no_tensor,
      R"({"__metadata__":{"crc32.header":")" + Crc32Hex(Crc32(content)) + R"("},)" + ok_entry + "}",
      8);
  reader = SafetensorsReader::Open(no_tensor);
  EXPECT_EQ(reader.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(reader.status().message().find("\"x\" has no valid checksum"), std::string::npos)
      << reader.status();
}

TEST(SafetensorsChecksumTest, FilesWithoutChecksumsStillLoad) {
  // As written before checksums (and by other tools): read, unverified, with a warning.
  TempDir dir("st_legacy");
  const std::string path = dir.path() + "/old.safetensors";
  WriteRaw(path,
           R"({"__metadata__":{"step":"3"},"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
           8);
  StatusOr<SafetensorsReader> reader = SafetensorsReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_FALSE(reader->has_checksums());
  EXPECT_FALSE(reader->Find("x")->crc32.has_value());
  EXPECT_TRUE(reader->Read("x").ok());
  EXPECT_TRUE(reader->Verify().ok());
}

}  // namespace
}  // namespace deepnet
