#include "text/shard.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "text/file_io.h"

namespace deepnet {
namespace {

namespace fs = std::filesystem;

class ShardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("shard_test_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "train.bin").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Three examples over a vocabulary of 10 (eos = 3).
  void WriteSample() {
    ShardWriter writer(10, SpecialIds{});
    writer.Add(std::vector<int32_t>{5, 6, 3}, std::vector<int32_t>{7, 3});
    writer.Add(std::vector<int32_t>{3}, std::vector<int32_t>{8, 9, 4, 3});
    writer.Add(std::vector<int32_t>{9, 9, 9, 9, 3}, std::vector<int32_t>{1, 3});
    ASSERT_TRUE(writer.Write(path_).ok());
  }

  std::string ReadBytes() {
    std::ifstream in(path_, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  void WriteBytes(const std::string& bytes) { ASSERT_TRUE(WriteFileAtomically(path_, bytes).ok()); }
  // Opening must fail with kDataLoss and a message naming the file and `what`.
  void ExpectDataLoss(const std::string& what) {
    StatusOr<ShardReader> reader = ShardReader::Open(path_);
    ASSERT_FALSE(reader.ok());
    EXPECT_EQ(reader.status().code(), StatusCode::kDataLoss) << reader.status();
    EXPECT_NE(reader.status().message().find(path_), std::string::npos) << reader.status();
    EXPECT_NE(reader.status().message().find(what), std::string::npos) << reader.status();
  }

  fs::path dir_;
  std::string path_;
};

std::vector<int32_t> ToVector(std::span<const int32_t> span) { return {span.begin(), span.end()}; }

TEST_F(ShardTest, RoundTrip) {
  WriteSample();
  StatusOr<ShardReader> reader = ShardReader::Open(path_);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ(reader->num_examples(), 3);
  EXPECT_EQ(reader->num_source_tokens(), 9);
  EXPECT_EQ(reader->num_target_tokens(), 8);
  EXPECT_EQ(reader->vocab_size(), 10);
  EXPECT_EQ(reader->special_ids().eos, 3);
  EXPECT_EQ(reader->special_ids().bos, 2);
  EXPECT_EQ(ToVector(reader->source(0)), (std::vector<int32_t>{5, 6, 3}));
  EXPECT_EQ(ToVector(reader->target(1)), (std::vector<int32_t>{8, 9, 4, 3}));
  EXPECT_EQ(ToVector(reader->source(2)), (std::vector<int32_t>{9, 9, 9, 9, 3}));
  EXPECT_EQ(reader->target_length(2), 2);
  EXPECT_EQ(reader->source_lengths(), (std::vector<int32_t>{3, 1, 5}));
  EXPECT_EQ(reader->target_lengths(), (std::vector<int32_t>{2, 4, 2}));
  // Moving keeps the mapping valid.
  ShardReader moved = std::move(*reader);
  EXPECT_EQ(ToVector(moved.target(0)), (std::vector<int32_t>{7, 3}));
  // The atomic write leaves no temporary file behind.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

TEST_F(ShardTest, EmptyShardIsValid) {
  ASSERT_TRUE(ShardWriter(10, SpecialIds{}).Write(path_).ok());
  StatusOr<ShardReader> reader = ShardReader::Open(path_);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ(reader->num_examples(), 0);
}

TEST_F(ShardTest, MissingFileIsNotFound) {
  EXPECT_EQ(ShardReader::Open(path_ + ".nope").status().code(), StatusCode::kNotFound);
}

TEST_F(ShardTest, BadMagicIsDataLoss) {
  WriteSample();
  std::string bytes = ReadBytes();
  bytes[0] = 'X';
  WriteBytes(bytes);
  ExpectDataLoss("bad magic");
}

TEST_F(ShardTest, WrongVersionIsDataLoss) {
  WriteSample();
  std::string bytes = ReadBytes();
  bytes[4] = 7;
  WriteBytes(bytes);
  ExpectDataLoss("version 7");
}

TEST_F(ShardTest, TruncatedFileIsDataLoss) {
  WriteSample();
  const std::string bytes = ReadBytes();
  WriteBytes(bytes.substr(0, bytes.size() - 4));
  ExpectDataLoss("truncated");
  WriteBytes(bytes.substr(0, 10));
  ExpectDataLoss("smaller than the 64-byte header");
  WriteBytes("");
  ExpectDataLoss("truncated");
}

TEST_F(ShardTest, TrailingBytesAreDataLoss) {
  WriteSample();
  WriteBytes(ReadBytes() + "junk");
  ExpectDataLoss("wrong shard size");
}

TEST_F(ShardTest, HugeCountsInHeaderAreDataLoss) {
  WriteSample();
  std::string bytes = ReadBytes();
  const uint64_t huge = ~uint64_t{0} / 2;
  std::memcpy(bytes.data() + offsetof(ShardHeader, num_examples), &huge, sizeof(huge));
  WriteBytes(bytes);
  ExpectDataLoss("truncated");
}

TEST_F(ShardTest, IdOutOfRangeIsDataLoss) {
  WriteSample();
  std::string bytes = ReadBytes();
  // The last target token; make it 10 (vocab_size) instead of </s>.
  const int32_t bad = 10;
  std::memcpy(bytes.data() + bytes.size() - 4, &bad, sizeof(bad));
  WriteBytes(bytes);
  ExpectDataLoss("outside the vocabulary of 10");
  const int32_t negative = -5;
  std::memcpy(bytes.data() + bytes.size() - 4, &negative, sizeof(negative));
  WriteBytes(bytes);
  ExpectDataLoss("id -5");
}

TEST_F(ShardTest, BadOffsetsAreDataLoss) {
  WriteSample();
  std::string bytes = ReadBytes();
  const uint64_t backwards = 1;  // source offsets 0, 3, 4, 9 -> 0, 3, 1, 9
  std::memcpy(bytes.data() + sizeof(ShardHeader) + 2 * 8, &backwards, sizeof(backwards));
  WriteBytes(bytes);
  ExpectDataLoss("source offset of example 2");
}

TEST_F(ShardTest, MissingEndOfSentenceIsDataLoss) {
  WriteSample();
  std::string bytes = ReadBytes();
  const int32_t not_eos = 4;
  std::memcpy(bytes.data() + bytes.size() - 4, &not_eos, sizeof(not_eos));
  WriteBytes(bytes);
  ExpectDataLoss("does not end with </s>");
}

}  // namespace
}  // namespace deepnet
