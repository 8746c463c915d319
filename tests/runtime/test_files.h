// Test helpers for file I/O: a scratch directory and a file system whose writes fail on demand.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "runtime/atomic_file.h"

namespace deepnet {

// Names of the entries directly in `dir`, sorted.
inline std::vector<std::string> DirectoryEntries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
class TempDir {
 public:
  explicit TempDir(const std::string& name) {
    path_ = (std::filesystem::temp_directory_path() /
             ("deepnet_" + name + "_" + std::to_string(getpid())))
                .string();
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

  // Names of the entries directly in the directory, sorted.
  std::vector<std::string> Files() const { return DirectoryEntries(path_); }

 private:
  std::string path_;
};

// The whole file (fatal when it cannot be read).
inline std::string FileBytes(const std::string& path) {
  StatusOr<std::string> bytes = ReadWholeFile(path);
  CHECK(bytes.ok()) << bytes.status();
  return *bytes;
}

// The local file system, except that appends fail once a file has received
// `fail_append_after_bytes` bytes (-1 = never), and sync or rename can be made to fail.
class FailingFileSystem final : public FileSystem {
 public:
  int64_t fail_append_after_bytes = -1;
  bool fail_sync = false;
  bool fail_rename = false;

  StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file, LocalFileSystem().NewWritableFile(path));
    return std::unique_ptr<WritableFile>(new FailingFile(std::move(file), this));
  }
  Status RenameFile(const std::string& from, const std::string& to) override {
    if (fail_rename) return Internal("injected rename failure");
    return LocalFileSystem().RenameFile(from, to);
  }
  Status SyncDirectory(const std::string& dir) override {
    return LocalFileSystem().SyncDirectory(dir);
  }
  Status DeleteFile(const std::string& path) override { return LocalFileSystem().DeleteFile(path); }
  Status CreateDirectories(const std::string& dir) override {
    return LocalFileSystem().CreateDirectories(dir);
  }

 private:
  class FailingFile final : public WritableFile {
   public:
    FailingFile(std::unique_ptr<WritableFile> base, FailingFileSystem* fs)
        : base_(std::move(base)), fs_(fs) {}
    Status Append(std::string_view data) override {
      const int64_t limit = fs_->fail_append_after_bytes;
      if (limit >= 0 && written_ + static_cast<int64_t>(data.size()) > limit) {
        // Write what fits, as a full disk would, then fail.
        const int64_t fits = std::max<int64_t>(0, limit - written_);
        (void)base_->Append(data.substr(0, fits));
        written_ += fits;
        return ResourceExhausted("injected write failure (disk full)");
      }
      written_ += static_cast<int64_t>(data.size());
      return base_->Append(data);
    }
    Status Sync() override {
      if (fs_->fail_sync) return Internal("injected fsync failure");
      return base_->Sync();
    }
    Status Close() override { return base_->Close(); }

   private:
    std::unique_ptr<WritableFile> base_;
    FailingFileSystem* fs_;
    int64_t written_ = 0;
  };
};

}  // namespace deepnet
