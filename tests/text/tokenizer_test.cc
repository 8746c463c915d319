// Trains a small joint SentencePiece model (vocab 500) on the first 1,000 verse pairs of the
// shipped corpus once for the suite, then checks the round trip on held-out verses.
#include "text/tokenizer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "text/file_io.h"
#include "text/tsv.h"

namespace deepnet {
namespace {

namespace fs = std::filesystem;

std::string DataFile(const std::string& name) {
  return std::string(DEEPNET_SOURCE_DIR) + "/data/" + name;
}

class TokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::path(::testing::TempDir()) /
                        ("tokenizer_test_" + std::to_string(::getpid())));
    fs::remove_all(*dir_);
    fs::create_directories(*dir_);
    StatusOr<std::string> tsv = ReadTextFile(DataFile("train.tsv"));
    ASSERT_TRUE(tsv.ok()) << tsv.status();
    StatusOr<ParallelCorpus> corpus = ParseParallelTsv(*tsv, "train.tsv", 1, 2);
    ASSERT_TRUE(corpus.ok()) << corpus.status();
    std::vector<std::string> sentences;
    for (int i = 0; i < 1000; ++i) {
      sentences.push_back(corpus->pairs[i].source);
      sentences.push_back(corpus->pairs[i].target);
    }
    held_out_ =
        new std::vector<SentencePair>(corpus->pairs.begin() + 20000, corpus->pairs.begin() + 20050);
    TokenizerTrainOptions options;
    options.vocab_size = 500;
    const auto start = std::chrono::steady_clock::now();
    const Status trained = Tokenizer::Train(sentences, options, ModelPath());
    train_seconds_ =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ASSERT_TRUE(trained.ok()) << trained;
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
    delete held_out_;
  }
  static std::string ModelPath() { return (*dir_ / "spm.model").string(); }

  static fs::path* dir_;
  static std::vector<SentencePair>* held_out_;
  static double train_seconds_;
};

fs::path* TokenizerTest::dir_ = nullptr;
std::vector<SentencePair>* TokenizerTest::held_out_ = nullptr;
double TokenizerTest::train_seconds_ = 0;

TEST_F(TokenizerTest, TrainsQuicklyWithFixedSpecialIds) {
  EXPECT_LT(train_seconds_, 20.0);
  StatusOr<Tokenizer> tokenizer = Tokenizer::Load(ModelPath());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ(tokenizer->vocab_size(), 500);
  EXPECT_EQ(tokenizer->pad_id(), 0);
  EXPECT_EQ(tokenizer->unk_id(), 1);
  EXPECT_EQ(tokenizer->bos_id(), 2);
  EXPECT_EQ(tokenizer->eos_id(), 3);
}

TEST_F(TokenizerTest, RoundTripsHeldOutVersesInBothLanguages) {
  StatusOr<Tokenizer> tokenizer = Tokenizer::Load(ModelPath());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  for (const SentencePair& pair : *held_out_) {
    for (const std::string& text : {pair.source, pair.target}) {
      StatusOr<std::vector<int32_t>> ids = tokenizer->Encode(text);
      ASSERT_TRUE(ids.ok()) << ids.status();
      ASSERT_FALSE(ids->empty());
      for (const int32_t id : *ids) {
        EXPECT_GE(id, 1);  // pieces or unk, never pad/bos/eos
        EXPECT_LT(id, 500);
        EXPECT_NE(id, tokenizer->bos_id());
        EXPECT_NE(id, tokenizer->eos_id());
      }
      StatusOr<std::string> decoded = tokenizer->Decode(*ids);
      ASSERT_TRUE(decoded.ok()) << decoded.status();
      EXPECT_EQ(*decoded, text);
    }
  }
}

TEST_F(TokenizerTest, DecodeSkipsControlIdsAndRejectsOutOfRange) {
  StatusOr<Tokenizer> tokenizer = Tokenizer::Load(ModelPath());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  StatusOr<std::vector<int32_t>> ids = tokenizer->Encode("And God said");
  ASSERT_TRUE(ids.ok()) << ids.status();
  std::vector<int32_t> framed = {tokenizer->bos_id()};
  framed.insert(framed.end(), ids->begin(), ids->end());
  framed.push_back(tokenizer->eos_id());
  framed.push_back(tokenizer->pad_id());
  StatusOr<std::string> decoded = tokenizer->Decode(framed);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, "And God said");
  EXPECT_EQ(tokenizer->Decode({5, 500}).status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(tokenizer->Decode({-1}).status().code(), StatusCode::kOutOfRange);
}

TEST_F(TokenizerTest, LoadErrors) {
  EXPECT_EQ(Tokenizer::Load((*dir_ / "missing.model").string()).status().code(),
            StatusCode::kNotFound);
  const std::string garbage = (*dir_ / "garbage.model").string();
  ASSERT_TRUE(WriteFileAtomically(garbage, "not a model").ok());
  EXPECT_FALSE(Tokenizer::Load(garbage).ok());
}

TEST(TokenizerTrainTest, RejectsBadOptions) {
  TokenizerTrainOptions options;
  options.model_type = "wordpiece";
  EXPECT_EQ(Tokenizer::Train({"a b c"}, options, "/nonexistent/m.model").code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Tokenizer::Train({}, TokenizerTrainOptions{}, "/nonexistent/m.model").code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace deepnet
