// Damaged files through the real `deepnet` binary (issue 14): a tiny run prepared from the
// shipped corpus (`deepnet prepare`) and trained for a few steps, then copies of its checkpoint,
// its export and its token shards with bytes flipped, one exponent bit flipped, 100 token ids
// changed to other ids in the vocabulary, or the end cut off. `train --resume`, `export` and
// `translate` must each fail (exit 1) with a message naming the file and the tensor (checkpoints)
// or the block (shards); the export's reader must refuse the damaged tensor. Files written before
// checksums existed (safetensors without checksum metadata, v1 shards) still load, with a warning.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/atomic_file.h"
#include "runtime/json.h"
#include "runtime/safetensors.h"
#include "tests/train/corpus_run.h"
#include "tests/runtime/test_files.h"
#include "text/file_io.h"
#include "text/shard.h"

namespace deepnet {
namespace {

namespace fs = std::filesystem;

std::string Slurp(const std::string& path) {
  StatusOr<std::string> text = ReadWholeFile(path);
  return text.ok() ? *text : "";
}

void Spit(const std::string& path, const std::string& bytes) {
  ASSERT_TRUE(ReplaceFileAtomically(path, bytes).ok()) << path;
}

uint64_t DataStart(const std::string& file) {
  uint64_t n = 0;
  std::memcpy(&n, file.data(), 8);
  return 8 + n;
}

// Names of the tensors of safetensors file `path` whose data overlaps file bytes
// [first, first + count).
std::set<std::string> TensorsAt(const std::string& path, uint64_t first, uint64_t count) {
  const SafetensorsReader reader = *SafetensorsReader::Open(path);
  const uint64_t start = DataStart(Slurp(path));
  std::set<std::string> names;
  for (const SafetensorsEntry& entry : reader.entries()) {
    if (start + entry.begin < first + count && first < start + entry.end) names.insert(entry.name);
  }
  return names;
}

// Inverts 64 bytes in the middle of `path`; returns the tensors they belong to.
std::set<std::string> Flip64InTheMiddle(const std::string& path) {
  std::string bytes = Slurp(path);
  const uint64_t first = bytes.size() / 2;
  const std::set<std::string> names = TensorsAt(path, first, 64);
  for (uint64_t i = first; i < first + 64; ++i) bytes[i] = static_cast<char>(~bytes[i]);
  Spit(path, bytes);
  return names;
}

// Flips the top exponent bit of the middle element of fp32 tensor `name`.
void FlipExponentBit(const std::string& path, const std::string& name) {
  std::string bytes = Slurp(path);
  const SafetensorsReader reader = *SafetensorsReader::Open(path);
  const SafetensorsEntry* entry = reader.Find(name);
  ASSERT_NE(entry, nullptr) << name;
  ASSERT_EQ(entry->dtype, DType::kF32);
  const uint64_t element = (entry->end - entry->begin) / 4 / 2;
  const uint64_t top_byte = DataStart(bytes) + entry->begin + 4 * element + 3;
  bytes[top_byte] = static_cast<char>(bytes[top_byte] ^ 0x40);
  Spit(path, bytes);
}

// Rewrites a safetensors file as deepnet wrote it before checksums: no "crc32" metadata.
void StripChecksums(const std::string& path) {
  const std::string bytes = Slurp(path);
  const uint64_t start = DataStart(bytes);
  const JsonValue header = *ParseJson(std::string_view(bytes).substr(8, start - 8));
  JsonValue stripped = JsonValue::Object();
  for (const auto& [key, value] : header.members()) {
    if (key != "__metadata__") {
      stripped.AddNew(key, value);
      continue;
    }
    JsonValue metadata = JsonValue::Object();
    for (const auto& [k, v] : value.members()) {
      if (!k.starts_with("crc32")) metadata.AddNew(k, v);
    }
    stripped.AddNew(key, std::move(metadata));
  }
  std::string json = stripped.Serialize();
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string file(8, '\0');
  const uint64_t n = json.size();
  std::memcpy(file.data(), &n, 8);
  Spit(path, file + json + bytes.substr(start));
}

// Rewrites a token shard in format version 1 (no checksums), as older builds wrote it.
void ShardToV1(const std::string& path) {
  const std::string bytes = Slurp(path);
  ShardHeader header;
  std::memcpy(&header, bytes.data(), sizeof(header));
  const uint64_t body =
      16 * (header.num_examples + 1) + 4 * (header.num_source_tokens + header.num_target_tokens);
  header.version = 1;
  header.header_crc32 = 0;
  header.checksum_block_bytes = 0;
  Spit(path, std::string(reinterpret_cast<const char*>(&header), sizeof(header)) +
                 bytes.substr(sizeof(header), body));
}

// Changes `count` source token ids in the middle of shard `path` to other ids of the vocabulary
// (never to or from </s>, so the file stays structurally valid).
void ChangeTokenIds(const std::string& path, int count) {
  std::string bytes = Slurp(path);
  ShardHeader header;
  std::memcpy(&header, bytes.data(), sizeof(header));
  ASSERT_GT(header.num_source_tokens, 4u * count);
  const uint64_t source_tokens = sizeof(header) + 16 * (header.num_examples + 1);
  int changed = 0;
  for (uint64_t i = header.num_source_tokens / 2; changed < count; ++i) {
    int32_t id;
    std::memcpy(&id, bytes.data() + source_tokens + 4 * i, 4);
    if (id == header.eos_id) continue;
    id = id == 4 ? 5 : 4;
    std::memcpy(bytes.data() + source_tokens + 4 * i, &id, 4);
    ++changed;
  }
  Spit(path, bytes);
}

class CorruptionTest : public ::testing::Test {
 protected:
  // One tiny run: prepare (200-piece tokenizer) and 4 training steps, checkpoint at step 4.
  static void SetUpTestSuite() {
    root_ = new TempDir("corruption");
    const std::string d = root_->path();
    Spit(d + "/train.tsv", CorpusHead(DEEPNET_SOURCE_DIR, "train.tsv", 300));
    Spit(d + "/valid.tsv", CorpusHead(DEEPNET_SOURCE_DIR, "valid.tsv", 12));
    Spit(d + "/input.txt", "In the beginning\nAnd the earth\n");
    const std::string config = CorpusRunConfigText(d, 4);
    Spit(d + "/run.pbtxt", config);
    ASSERT_EQ(Run("prepare --config " + d + "/run.pbtxt", d), 0) << Slurp(d + "/stderr.txt");
    ASSERT_EQ(Run("train --config " + d + "/run.pbtxt", d), 0) << Slurp(d + "/stderr.txt");
    ASSERT_TRUE(fs::exists(d + "/ck/step-0000004/params.safetensors"));
  }
  static void TearDownTestSuite() {
    delete root_;
    root_ = nullptr;
  }

  // A fresh copy of the run's checkpoints and data for this test, in dir_.
  void SetUp() override {
    dir_ = root_->path() + "/" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::create_directories(dir_);
    fs::copy(root_->path() + "/ck", dir_ + "/ck", fs::copy_options::recursive);
    fs::copy(root_->path() + "/data", dir_ + "/data", fs::copy_options::recursive);
  }

  // Runs `deepnet <args>` with stdout and stderr into files of `dir`; the exit code.
  static int Run(const std::string& args, const std::string& dir) {
    const std::string command = std::string(DEEPNET_BINARY) + " " + args + " > " + dir +
                                "/stdout.txt 2> " + dir + "/stderr.txt";
    const int status = std::system(command.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  int Run(const std::string& args) const { return Run(args, dir_); }
  std::string Err() const { return Slurp(dir_ + "/stderr.txt"); }

  std::string Step4(const std::string& file) const { return dir_ + "/ck/step-0000004/" + file; }
  std::string Resume() const {
    return "train --config " + root_->path() + "/run.pbtxt --checkpoint_dir " + dir_ +
           "/ck --data_dir " + dir_ + "/data --set train.max_steps=6 --set train.valid_every=2" +
           " --resume";
  }
  std::string Train() const {
    return "train --config " + root_->path() + "/run.pbtxt --checkpoint_dir " + dir_ +
           "/fresh --data_dir " + dir_ + "/data --set train.valid_every=2";
  }
  std::string Export() const {
    return "export --checkpoint " + dir_ + "/ck --out " + dir_ + "/model.safetensors";
  }
  std::string Translate() const {
    return "translate --checkpoint " + dir_ + "/ck --data_dir " + dir_ + "/data --input " +
           root_->path() + "/input.txt";
  }

  // `command` exits 1 naming tensor `one_of` (any of them) of `path` and a checksum mismatch.
  void ExpectChecksumFailure(const std::string& command, const std::string& path,
                             const std::set<std::string>& one_of) {
    ASSERT_FALSE(one_of.empty());
    EXPECT_EQ(Run(command), 1) << command << "\n" << Err();
    const std::string err = Err();
    bool named = false;
    for (const std::string& name : one_of) {
      named |= err.find(path + ": tensor " + name + ": checksum mismatch") != std::string::npos;
    }
    EXPECT_TRUE(named) << command << "\n" << err;
    EXPECT_NE(err.find("the file is damaged"), std::string::npos) << err;
  }

  static TempDir* root_;
  std::string dir_;
};

TempDir* CorruptionTest::root_ = nullptr;

TEST_F(CorruptionTest, CleanCopyResumesExportsAndTranslates) {
  ASSERT_EQ(Run(Resume()), 0) << Err();
  EXPECT_EQ(Err().find("checksums"), std::string::npos) << Err();
  ASSERT_EQ(Run(Export()), 0) << Err();
  ASSERT_EQ(Run(Translate()), 0) << Err();
  const SafetensorsReader exported = *SafetensorsReader::Open(dir_ + "/model.safetensors");
  EXPECT_TRUE(exported.has_checksums());
  EXPECT_TRUE(exported.Verify().ok());
}

TEST_F(CorruptionTest, FlippedParametersFailResumeExportAndTranslate) {
  const std::string params = Step4("params.safetensors");
  const std::set<std::string> damaged = Flip64InTheMiddle(params);
  ExpectChecksumFailure(Resume(), params, damaged);
  ExpectChecksumFailure(Export(), params, damaged);
  EXPECT_FALSE(fs::exists(dir_ + "/model.safetensors"));
  ExpectChecksumFailure(Translate(), params, damaged);
}

TEST_F(CorruptionTest, FlippedOptimizerStateFailsResume) {
  const std::string optimizer = Step4("optimizer.safetensors");
  const std::set<std::string> damaged = Flip64InTheMiddle(optimizer);
  for (const std::string& name : damaged) {
    EXPECT_TRUE(name.starts_with("m/") || name.starts_with("v/")) << name;
  }
  ExpectChecksumFailure(Resume(), optimizer, damaged);
  // The optimizer state is for training only: export and translate do not read it.
  EXPECT_EQ(Run(Export()), 0) << Err();
}

TEST_F(CorruptionTest, OneExponentBitFailsResumeExportAndTranslate) {
  const std::string params = Step4("params.safetensors");
  const SafetensorsReader reader = *SafetensorsReader::Open(params);
  const std::string name = reader.entries().back().name;
  FlipExponentBit(params, name);
  ExpectChecksumFailure(Resume(), params, {name});
  ExpectChecksumFailure(Export(), params, {name});
  ExpectChecksumFailure(Translate(), params, {name});

  const std::string optimizer = Step4("optimizer.safetensors");
  FlipExponentBit(optimizer, "v/" + name);
  Spit(params, Slurp(root_->path() + "/ck/step-0000004/params.safetensors"));
  ExpectChecksumFailure(Resume(), optimizer, {"v/" + name});
}

TEST_F(CorruptionTest, TruncatedCheckpointFilesFail) {
  for (const char* file : {"params.safetensors", "optimizer.safetensors"}) {
    const std::string path = Step4(file);
    const std::string clean = Slurp(path);
    Spit(path, clean.substr(0, clean.size() - 100));
    EXPECT_EQ(Run(Resume()), 1) << file << "\n" << Err();
    EXPECT_NE(Err().find(path + ": not a valid safetensors file: truncated"), std::string::npos)
        << Err();
    Spit(path, clean);
  }
  const std::string params = Step4("params.safetensors");
  Spit(params, Slurp(params).substr(0, 40));  // inside the header
  EXPECT_EQ(Run(Export()), 1) << Err();
  EXPECT_NE(Err().find(params + ": not a valid safetensors file"), std::string::npos) << Err();
}

TEST_F(CorruptionTest, DamagedExportIsRefusedByItsReader) {
  ASSERT_EQ(Run(Export()), 0) << Err();
  const std::string out = dir_ + "/model.safetensors";
  const std::string clean = Slurp(out);
  const std::set<std::string> damaged = Flip64InTheMiddle(out);
  StatusOr<SafetensorsReader> reader = SafetensorsReader::Open(out);
  ASSERT_TRUE(reader.ok()) << reader.status();
  for (const std::string& name : damaged) {
    const StatusOr<Tensor> tensor = reader->Read(name);
    EXPECT_EQ(tensor.status().code(), StatusCode::kDataLoss) << name;
    EXPECT_NE(tensor.status().message().find(out + ": tensor " + name + ": checksum mismatch"),
              std::string::npos)
        << tensor.status();
  }
  EXPECT_EQ(reader->Verify().code(), StatusCode::kDataLoss);

  Spit(out, clean.substr(0, clean.size() - 1));
  EXPECT_EQ(SafetensorsReader::Open(out).status().code(), StatusCode::kDataLoss);
}

TEST_F(CorruptionTest, ChangedTokenIdsInShardsFailTraining) {
  for (const char* file : {"train.bin", "valid.bin"}) {
    const std::string path = dir_ + "/data/" + file;
    const std::string clean = Slurp(path);
    ChangeTokenIds(path, std::string(file) == "train.bin" ? 100 : 10);
    EXPECT_EQ(Run(Train()), 1) << file << "\n" << Err();
    EXPECT_NE(Err().find(path + ": checksum mismatch in block "), std::string::npos) << Err();
    EXPECT_NE(Err().find("re-run `deepnet prepare`"), std::string::npos) << Err();
    EXPECT_EQ(Run(Resume()), 1) << file << "\n" << Err();
    EXPECT_NE(Err().find(path + ": checksum mismatch in block "), std::string::npos) << Err();

    Spit(path, clean.substr(0, clean.size() - 64));
    EXPECT_EQ(Run(Train()), 1) << file << "\n" << Err();
    EXPECT_NE(Err().find(path + ": truncated shard"), std::string::npos) << Err();

    std::string bytes = clean;
    for (size_t i = bytes.size() / 2; i < bytes.size() / 2 + 64; ++i) bytes[i] = ~bytes[i];
    Spit(path, bytes);
    EXPECT_EQ(Run(Train()), 1) << file << "\n" << Err();
    EXPECT_NE(Err().find(path + ": checksum mismatch in block "), std::string::npos) << Err();
    Spit(path, clean);
  }
  EXPECT_EQ(Run(Train()), 0) << Err();
}

TEST_F(CorruptionTest, FilesFromBeforeChecksumsStillLoadWithAWarning) {
  StripChecksums(Step4("params.safetensors"));
  StripChecksums(Step4("optimizer.safetensors"));
  ShardToV1(dir_ + "/data/train.bin");
  ShardToV1(dir_ + "/data/valid.bin");
  ASSERT_EQ(Run(Resume()), 0) << Err();
  const std::string err = Err();
  EXPECT_NE(err.find(Step4("params.safetensors") + ": carries no checksums"), std::string::npos)
      << err;
  EXPECT_NE(err.find(Step4("optimizer.safetensors") + ": carries no checksums"), std::string::npos)
      << err;
  EXPECT_NE(err.find(dir_ + "/data/train.bin: token shard format v1 carries no checksums"),
            std::string::npos)
      << err;
  // The new checkpoint has them again.
  const SafetensorsReader params =
      *SafetensorsReader::Open(dir_ + "/ck/step-0000006/params.safetensors");
  EXPECT_TRUE(params.has_checksums());
  ASSERT_EQ(Run(Export()), 0) << Err();
}

}  // namespace
}  // namespace deepnet
