// Atomic replacement: a writer that fails at any point leaves the previous file intact and no
// temporary file behind.
#include "runtime/atomic_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "tests/runtime/test_files.h"

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

TEST(AtomicFileTest, SymlinkStaysALinkAndItsTargetIsReplaced) {
  TempDir dir("atomic_symlink");
  const std::string real = dir.path() + "/real.bin", link = dir.path() + "/link.bin";
  ASSERT_TRUE(ReplaceFileAtomically(real, "old").ok());
  std::filesystem::create_symlink("real.bin", link);  // relative, as users make them
  ASSERT_TRUE(ReplaceFileAtomically(link, "new").ok());
  EXPECT_TRUE(std::filesystem::is_symlink(link));
  EXPECT_EQ(*ReadWholeFile(real), "new");
  // A dangling link creates its target.
  const std::string dangling = dir.path() + "/dangling.bin";
  std::filesystem::create_symlink(dir.path() + "/made.bin", dangling);
  ASSERT_TRUE(ReplaceFileAtomically(dangling, "made").ok());
  EXPECT_EQ(*ReadWholeFile(dir.path() + "/made.bin"), "made");
}

TEST(AtomicFileTest, NonRegularFilesAreRefusedNotReplaced) {
  TempDir dir("atomic_special");
  const std::string fifo = dir.path() + "/fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const std::string subdir = dir.path() + "/sub";
  std::filesystem::create_directories(subdir);
  const std::string link_to_device = dir.path() + "/null.bin";
  std::filesystem::create_symlink("/dev/null", link_to_device);
  for (const auto& [path, kind] : std::vector<std::pair<std::string, std::string>>{
           {fifo, "a FIFO"}, {subdir, "a directory"}, {"/dev/null", "a device"},
           {link_to_device, "a device"}}) {
    const Status status = ReplaceFileAtomically(path, "x");
    EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition) << path << ": " << status;
    EXPECT_NE(status.message().find(path), std::string::npos) << status;
    EXPECT_NE(status.message().find(kind), std::string::npos) << status;
  }
  EXPECT_TRUE(std::filesystem::is_fifo(fifo));
  EXPECT_TRUE(std::filesystem::is_character_file("/dev/null"));
  EXPECT_EQ(dir.Files(), (std::vector<std::string>{"fifo", "null.bin", "sub"}));
}

TEST(AtomicFileTest, ErrorsNameTheDestinationNotTheTemporaryFile) {
  FailingFileSystem fs;
  fs.fail_append_after_bytes = 0;
  TempDir dir("atomic_names");
  const std::string path = dir.path() + "/out.bin";
  const Status status = ReplaceFileAtomically(path, "contents", fs);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find(path), std::string::npos) << status;
  EXPECT_EQ(status.message().find(".tmp."), std::string::npos) << status;
  const Status missing = ReplaceFileAtomically(dir.path() + "/no/such/dir/out.bin", "x");
  EXPECT_EQ(missing.message().find(".tmp."), std::string::npos) << missing;
}

}  // namespace
}  // namespace deepnet
