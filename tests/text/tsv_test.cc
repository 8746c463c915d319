// Corpus reading (plain and .xz files, TSV parsing and its errors) and PrepareData end to end on a
// small slice of the corpus.
#include "text/tsv.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include "text/file_io.h"
#include "text/prepare.h"
#include "text/shard.h"
#include "text/utf8.h"

namespace deepnet {
namespace {

namespace fs = std::filesystem;

std::string DataFile(const std::string& name) {
  return std::string(DEEPNET_SOURCE_DIR) + "/data/" + name;
}

class CorpusFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("tsv_test_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

TEST(ParseParallelTsvTest, KeepsChosenColumnsAndSkipsEmptyLines) {
  const std::string tsv = "r1\tHello\tHola\n\nr2\tBye\tAdiós\r\n   \nr3\tA\tB\textra";
  StatusOr<ParallelCorpus> corpus = ParseParallelTsv(tsv, "x.tsv", 1, 2);
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  ASSERT_EQ(corpus->pairs.size(), 3u);
  EXPECT_EQ(corpus->pairs[0].source, "Hello");
  EXPECT_EQ(corpus->pairs[1].target, "Adiós");  // CR dropped
  EXPECT_EQ(corpus->pairs[2].target, "B");
  EXPECT_EQ(corpus->num_lines, 5);
  EXPECT_EQ(corpus->num_empty_lines, 2);
  EXPECT_EQ(corpus->num_malformed_lines, 0);
  // Reversed direction: Spanish to English.
  StatusOr<ParallelCorpus> reversed = ParseParallelTsv(tsv, "x.tsv", 2, 1);
  ASSERT_TRUE(reversed.ok());
  EXPECT_EQ(reversed->pairs[0].source, "Hola");
}

TEST(ParseParallelTsvTest, NamesMalformedLinesByFileAndLine) {
  const std::string tsv = "r1\tHello\tHola\nr2 no tabs\nr3\t\tVacío\nr4\tA\tB\n";
  StatusOr<ParallelCorpus> corpus = ParseParallelTsv(tsv, "x.tsv", 1, 2);
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  EXPECT_EQ(corpus->pairs.size(), 2u);
  EXPECT_EQ(corpus->num_malformed_lines, 2);
  ASSERT_EQ(corpus->malformed_examples.size(), 2u);
  EXPECT_EQ(corpus->malformed_examples[0],
            "x.tsv:2: expected at least 3 tab-separated columns, found 1");
  EXPECT_EQ(corpus->malformed_examples[1], "x.tsv:3: empty source or target column");
}

TEST(ParseParallelTsvTest, RejectsBadColumns) {
  EXPECT_EQ(ParseParallelTsv("a\tb", "x", 1, 1).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseParallelTsv("a\tb", "x", -1, 1).status().code(), StatusCode::kInvalidArgument);
}

TEST(ReadTextFileTest, FindsTheShippedXzCorpus) {
  StatusOr<std::string> valid = ReadTextFile(DataFile("valid.tsv"));  // only .xz is shipped
  ASSERT_TRUE(valid.ok()) << valid.status();
  EXPECT_EQ(std::count(valid->begin(), valid->end(), '\n'), 321);
  EXPECT_EQ(valid->substr(0, 12), "Genesis 1:11");
  StatusOr<ParallelCorpus> corpus = ParseParallelTsv(*valid, "valid.tsv", 1, 2);
  ASSERT_TRUE(corpus.ok());
  EXPECT_EQ(corpus->pairs.size(), 321u);
  EXPECT_EQ(corpus->num_malformed_lines, 0);
}

TEST_F(CorpusFileTest, ReadsPlainFilesAndReportsMissingOnes) {
  ASSERT_TRUE(WriteFileAtomically(Path("a.tsv"), "x\ty\tz\n").ok());
  StatusOr<std::string> text = ReadTextFile(Path("a.tsv"));
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, "x\ty\tz\n");
  EXPECT_EQ(ReadTextFile(Path("none.tsv")).status().code(), StatusCode::kNotFound);
}

TEST_F(CorpusFileTest, CorruptXzIsDataLoss) {
  StatusOr<std::string> real = ReadTextFile(DataFile("valid.tsv"));
  ASSERT_TRUE(real.ok());
  ASSERT_TRUE(fs::exists(DataFile("valid.tsv.xz")));
  std::string compressed;
  {
    std::ifstream in(DataFile("valid.tsv.xz"), std::ios::binary);
    compressed.assign(std::istreambuf_iterator<char>(in), {});
  }
  ASSERT_TRUE(WriteFileAtomically(Path("cut.tsv.xz"), compressed.substr(0, 1000)).ok());
  const Status status = ReadTextFile(Path("cut.tsv.xz")).status();
  EXPECT_EQ(status.code(), StatusCode::kDataLoss) << status;
  EXPECT_NE(status.message().find("cut.tsv.xz"), std::string::npos) << status;
}

// First `lines` lines of the shipped training corpus, plus `extra` appended.
std::string CorpusSlice(int lines, const std::string& extra = "") {
  StatusOr<std::string> train = ReadTextFile(DataFile("train.tsv"));
  CHECK(train.ok()) << train.status();
  size_t end = 0;
  for (int i = 0; i < lines; ++i) end = train->find('\n', end) + 1;
  return train->substr(0, end) + extra;
}

TEST_F(CorpusFileTest, PrepareWritesModelAndShardsAndDropsLongExamples) {
  ASSERT_TRUE(WriteFileAtomically(Path("train.tsv"), CorpusSlice(600, "\nbad line\n")).ok());
  StatusOr<std::string> valid = ReadTextFile(DataFile("valid.tsv"));
  ASSERT_TRUE(valid.ok());
  ASSERT_TRUE(WriteFileAtomically(Path("valid.tsv"), *valid).ok());
  PrepareOptions options;
  options.train_path = Path("train.tsv");
  options.valid_path = Path("valid.tsv");
  options.data_dir = Path("out");
  options.tokenizer.vocab_size = 300;
  options.max_source_tokens = 48;
  options.max_target_tokens = 48;
  PrepareSummary summary;
  const Status status = PrepareData(options, &summary);
  ASSERT_TRUE(status.ok()) << status;

  EXPECT_EQ(summary.vocab_size, 300);
  EXPECT_EQ(summary.malformed_lines, 1);
  EXPECT_GT(summary.train_dropped, 0);
  EXPECT_EQ(summary.train_examples + summary.train_dropped, 600);
  EXPECT_EQ(summary.valid_examples, 321);  // validation is truncated, never dropped
  EXPECT_GT(summary.valid_truncated, 0);

  StatusOr<ShardReader> train = ShardReader::Open(Path("out/train.bin"));
  ASSERT_TRUE(train.ok()) << train.status();
  EXPECT_EQ(train->num_examples(), summary.train_examples);
  EXPECT_EQ(train->num_source_tokens(), summary.train_source_tokens);
  EXPECT_EQ(train->vocab_size(), 300);
  StatusOr<ShardReader> valid_shard = ShardReader::Open(Path("out/valid.bin"));
  ASSERT_TRUE(valid_shard.ok()) << valid_shard.status();
  for (int64_t e = 0; e < valid_shard->num_examples(); ++e) {
    ASSERT_LE(valid_shard->source_length(e), 48);
    ASSERT_LE(valid_shard->target_length(e), 48);
  }
  // The first training example decodes back to Genesis 1:1.
  StatusOr<Tokenizer> tokenizer = Tokenizer::Load(Path("out/spm.model"));
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  const std::span<const int32_t> source = train->source(0);
  StatusOr<std::string> text = tokenizer->Decode({source.begin(), source.end()});
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "In the beginning God created the heaven and the earth.");
}

TEST_F(CorpusFileTest, PrepareFailsWhenTooManyLinesAreMalformed) {
  std::string bad;
  for (int i = 0; i < 20; ++i) bad += "line without tabs\n";
  ASSERT_TRUE(WriteFileAtomically(Path("train.tsv"), CorpusSlice(200, bad)).ok());
  PrepareOptions options;
  options.train_path = Path("train.tsv");
  options.valid_path = Path("train.tsv");
  options.data_dir = Path("out");
  const Status status = PrepareData(options);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("20 of 220 lines are malformed"), std::string::npos) << status;
  EXPECT_NE(status.message().find("train.tsv:201:"), std::string::npos) << status;
  EXPECT_FALSE(fs::exists(Path("out/train.bin")));
}

TEST_F(CorpusFileTest, PrepareRefusesTextThatIsNotUtf8) {
  // Line 3 holds a Latin-1 "ñ" (0xf1) where UTF-8 has two bytes.
  ASSERT_TRUE(WriteFileAtomically(Path("latin1.tsv"),
                                  "Gen 1:1\tIn the beginning\tEn el principio\n"
                                  "Gen 1:2\tAnd the earth\tY la tierra\n"
                                  "Gen 1:3\tAnd God said\tY dijo Dios: Sea la ma\xf1"
                                  "ana\n")
                  .ok());
  PrepareOptions options;
  options.train_path = Path("latin1.tsv");
  options.valid_path = Path("latin1.tsv");
  options.data_dir = Path("out");
  const Status status = PrepareData(options);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("latin1.tsv:3: not valid UTF-8 (byte 0xf1 at column 44)"),
            std::string::npos)
      << status;
  EXPECT_FALSE(fs::exists(Path("out/train.bin")));
}

TEST(Utf8Test, FindsTheFirstIllFormedSequence) {
  EXPECT_EQ(FirstInvalidUtf8(""), std::string_view::npos);
  EXPECT_EQ(FirstInvalidUtf8("ma\xc3\xb1"
                             "ana \xe2\x82\xac \xf0\x9f\x98\x80"),
            std::string_view::npos);
  EXPECT_EQ(FirstInvalidUtf8("ab\xff"), 2u);            // never a UTF-8 byte
  EXPECT_EQ(FirstInvalidUtf8("a\xc0\x80"), 1u);         // overlong NUL
  EXPECT_EQ(FirstInvalidUtf8("\xed\xa0\x80"), 0u);      // a surrogate
  EXPECT_EQ(FirstInvalidUtf8("ok\xe2\x82"), 2u);        // cut at the end
  EXPECT_EQ(FirstInvalidUtf8("\xf4\x90\x80\x80"), 0u);  // past U+10FFFF
  EXPECT_EQ(FirstInvalidUtf8("x\xc3y"), 1u);            // continuation missing
  EXPECT_TRUE(IsValidUtf8("plain ASCII"));
}

TEST_F(CorpusFileTest, PrepareReportsMissingInput) {
  PrepareOptions options;
  options.train_path = Path("nothing.tsv");
  options.data_dir = Path("out");
  EXPECT_EQ(PrepareData(options).code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace deepnet
