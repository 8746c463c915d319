// safetensors: round trip of every dtype with metadata, the exact byte layout, strict JSON, and
// corrupt files reported as kDataLoss naming the file.
#include "runtime/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "runtime/atomic_file.h"
#include "runtime/json.h"
#include "tests/train/test_files.h"

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
  ASSERT_TRUE(writer.Write(path).ok());
  const std::string file = *ReadWholeFile(path);
  uint64_t n = 0;
  std::memcpy(&n, file.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(file.size(), 8 + n + 8);
  const std::string json = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  EXPECT_EQ(file.substr(8, json.size()), json);
  EXPECT_EQ(file.substr(8 + json.size(), n - json.size()), std::string(n - json.size(), ' '));
  float values[2];
  std::memcpy(values, file.data() + 8 + n, 8);
  EXPECT_EQ(values[0], 1.0f);
  EXPECT_EQ(values[1], -2.5f);
}

TEST(SafetensorsTest, WriterRejectsDuplicateAndReservedNames) {
  Tensor t = Tensor::Zeros({1}, DType::kF32, MemoryCategory::kOther);
  SafetensorsWriter writer;
  ASSERT_TRUE(writer.Add("x", t).ok());
  EXPECT_EQ(writer.Add("x", t).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(writer.Add("__metadata__", t).code(), StatusCode::kInvalidArgument);
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

TEST(JsonTest, ParsesAndSerializesStrictly) {
  StatusOr<JsonValue> v = ParseJson(
      R"( {"a": [1, -2.5e3, true, null], "s": "\u00f1\ud83d\ude00\n", "big": 18446744073709551615} )");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v->Find("big")->AsUint64(), UINT64_MAX);
  EXPECT_EQ(*v->Find("a")->elements()[1].AsDouble(), -2500.0);
  EXPECT_FALSE(v->Find("a")->elements()[1].AsInt64().ok());
  EXPECT_EQ(v->Find("s")->text(), "ñ😀\n");
  EXPECT_EQ(v->Serialize(), R"({"a":[1,-2.5e3,true,null],"s":"ñ😀\n","big":18446744073709551615})");
  for (const char* bad : {"", "01", "1.", "[1,]", "{\"a\":1,}", "{'a':1}", "nan", "\"\t\"", "[1] 2",
                          "\"\\ud800\"", "{\"a\":1,\"a\":2}"}) {
    EXPECT_FALSE(ParseJson(bad).ok()) << bad;
  }
  std::string deep(100, '[');
  deep += std::string(100, ']');
  EXPECT_FALSE(ParseJson(deep).ok());
}

TEST(JsonTest, DoublesRoundTripExactly) {
  for (double x : {0.1, 1e-7, 5e-4 / 3.0, 123456789.123456789, -0.0}) {
    StatusOr<JsonValue> v = ParseJson(JsonValue::Double(x).Serialize());
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(*v->AsDouble(), x);
  }
  EXPECT_TRUE(JsonValue::Double(std::numeric_limits<double>::quiet_NaN()).is_null());
}

}  // namespace
}  // namespace deepnet
