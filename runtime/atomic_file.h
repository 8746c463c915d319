// Atomic file replacement for checkpoints, behind an injectable file system.
//
// A file is never half-written where a reader can see it: the bytes go to a temporary file in the
// same directory, which is fsync'ed, renamed over the destination and the directory fsync'ed.
// A crash or a failed write at any point leaves the previous file intact.
//
// The operating system is reached only through FileSystem (as LevelDB's Env), so tests swap in a
// file system whose writes fail, or fail after a number of bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "runtime/status.h"

namespace deepnet {

// A file open for appending. Destroying it without Close() closes it and drops errors.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Status Append(std::string_view data) = 0;
  virtual Status Sync() = 0;  // data on stable storage (fsync)
  virtual Status Close() = 0;
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;
  // Creates or truncates `path`.
  virtual StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) = 0;
  // Replaces `to` with `from` in one step (POSIX rename).
  virtual Status RenameFile(const std::string& from, const std::string& to) = 0;
  // Makes renames and creations in `dir` durable.
  virtual Status SyncDirectory(const std::string& dir) = 0;
  virtual Status DeleteFile(const std::string& path) = 0;
  // mkdir -p.
  virtual Status CreateDirectories(const std::string& dir) = 0;
};

// The process's real file system (POSIX).
FileSystem& LocalFileSystem();

// Streams a file into place: Open() creates the temporary file, Append() writes to it, Commit()
// syncs and renames it over `path`. Without a successful Commit() the temporary file is removed
// and `path` is untouched. A symbolic link at `path` stays a link: the file it points to is
// replaced. Anything else that is not a regular file there (a directory, FIFO, socket or device)
// is refused, never replaced. Errors name `path`, not the temporary file.
class AtomicFileWriter {
 public:
  static StatusOr<std::unique_ptr<AtomicFileWriter>> Open(const std::string& path,
                                                          FileSystem& fs = LocalFileSystem());
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  Status Append(std::string_view data);
  Status Commit();
  int64_t bytes_written() const { return bytes_written_; }

 private:
  // `status` naming the destination: the temporary file's name replaced by it, or it prefixed.
  Status Named(const Status& status) const;
  AtomicFileWriter(FileSystem& fs, std::string path, std::string temp_path,
                   std::unique_ptr<WritableFile> file);
  void Abandon();

  FileSystem& fs_;
  std::string path_;
  std::string temp_path_;
  std::unique_ptr<WritableFile> file_;
  int64_t bytes_written_ = 0;
  bool failed_ = false;
};

// Replaces `path` with `contents` atomically.
Status ReplaceFileAtomically(const std::string& path, std::string_view contents,
                             FileSystem& fs = LocalFileSystem());

// Reads a whole file (NotFound when it does not exist, DataLoss on a read error).
StatusOr<std::string> ReadWholeFile(const std::string& path);

}  // namespace deepnet
