// Atomic replacement: a writer that fails at any point leaves the previous file intact and no
// temporary file behind.
#include "runtime/atomic_file.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "tests/train/test_files.h"

namespace deepnet {
namespace {

TEST(AtomicFileTest, ReplacesContents) {
  TempDir dir("atomic_replace");
  const std::string path = dir.path() + "/f.txt";
  ASSERT_TRUE(ReplaceFileAtomically(path, "first").ok());
  ASSERT_TRUE(ReplaceFileAtomically(path, "second, longer").ok());
  EXPECT_EQ(*ReadWholeFile(path), "second, longer");
  EXPECT_EQ(dir.Files(), std::vector<std::string>{"f.txt"});
}

TEST(AtomicFileTest, FailingWriteKeepsOldFile) {
  TempDir dir("atomic_fail_write");
  const std::string path = dir.path() + "/f.txt";
  ASSERT_TRUE(ReplaceFileAtomically(path, "old contents").ok());
  for (int64_t fail_after : {0, 3, 11}) {
    FailingFileSystem fs;
    fs.fail_append_after_bytes = fail_after;
    Status status = ReplaceFileAtomically(path, "new contents that never land", fs);
    EXPECT_FALSE(status.ok()) << "fail_after " << fail_after;
    EXPECT_EQ(*ReadWholeFile(path), "old contents");
    EXPECT_EQ(dir.Files(), std::vector<std::string>{"f.txt"}) << "temporary file left behind";
  }
}

TEST(AtomicFileTest, FailingSyncOrRenameKeepsOldFile) {
  TempDir dir("atomic_fail_sync");
  const std::string path = dir.path() + "/f.txt";
  ASSERT_TRUE(ReplaceFileAtomically(path, "old").ok());
  {
    FailingFileSystem fs;
    fs.fail_sync = true;
    EXPECT_FALSE(ReplaceFileAtomically(path, "new", fs).ok());
  }
  {
    FailingFileSystem fs;
    fs.fail_rename = true;
    EXPECT_FALSE(ReplaceFileAtomically(path, "new", fs).ok());
  }
  EXPECT_EQ(*ReadWholeFile(path), "old");
  EXPECT_EQ(dir.Files(), std::vector<std::string>{"f.txt"});
}

TEST(AtomicFileTest, StreamingWriterWithoutCommitLeavesNothing) {
  TempDir dir("atomic_abandon");
  const std::string path = dir.path() + "/f.bin";
  {
    StatusOr<std::unique_ptr<AtomicFileWriter>> writer = AtomicFileWriter::Open(path);
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Append("partial").ok());
  }
  EXPECT_TRUE(dir.Files().empty());
  EXPECT_EQ(ReadWholeFile(path).status().code(), StatusCode::kNotFound);
}

TEST(AtomicFileTest, MissingDirectoryIsAnError) {
  TempDir dir("atomic_missing_dir");
  Status status = ReplaceFileAtomically(dir.path() + "/no/such/dir/f.txt", "x");
  EXPECT_EQ(status.code(), StatusCode::kNotFound) << status;
}

}  // namespace
}  // namespace deepnet
