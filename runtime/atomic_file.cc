// POSIX file system and atomic replacement (temporary file, fsync, rename, fsync directory).
#include "runtime/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace deepnet {
namespace {

std::string ErrnoText() { return std::strerror(errno); }

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) close(fd_);
  }

  Status Append(std::string_view data) override {
    size_t written = 0;
    while (written < data.size()) {
      const ssize_t n = write(fd_, data.data() + written, data.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return ResourceExhausted(path_ + ": write failed: " + ErrnoText());
      written += static_cast<size_t>(n);
    }
    return OkStatus();
  }

  Status Sync() override {
    if (fsync(fd_) != 0) return Internal(path_ + ": fsync failed: " + ErrnoText());
    return OkStatus();
  }

  Status Close() override {
    const int fd = fd_;
    fd_ = -1;
    if (close(fd) != 0) return Internal(path_ + ": close failed: " + ErrnoText());
    return OkStatus();
  }

 private:
  std::string path_;
  int fd_;
};

class PosixFileSystem final : public FileSystem {
 public:
  StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      const std::string why = ErrnoText();
      if (errno == ENOENT) return NotFound(path + ": cannot create: " + why);
      return FailedPrecondition(path + ": cannot create: " + why);
    }
    return std::unique_ptr<WritableFile>(new PosixWritableFile(path, fd));
  }

  Status RenameFile(const std::string& from, const std::string& to) override {
    if (rename(from.c_str(), to.c_str()) != 0) {
      return Internal("rename " + from + " -> " + to + " failed: " + ErrnoText());
    }
    return OkStatus();
  }

  Status SyncDirectory(const std::string& dir) override {
    const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return NotFound(dir + ": cannot open directory: " + ErrnoText());
    const bool synced = fsync(fd) == 0;
    const std::string why = ErrnoText();
    close(fd);
    if (!synced) return Internal(dir + ": fsync failed: " + why);
    return OkStatus();
  }

  Status DeleteFile(const std::string& path) override {
    if (unlink(path.c_str()) != 0) return Internal(path + ": cannot delete: " + ErrnoText());
    return OkStatus();
  }

  Status CreateDirectories(const std::string& dir) override {
    std::error_code error;
    std::filesystem::create_directories(dir, error);
    if (error) return FailedPrecondition(dir + ": cannot create directory: " + error.message());
    return OkStatus();
  }
};

std::string DirectoryOf(const std::string& path) {
  const std::string parent = std::filesystem::path(path).parent_path().string();
  return parent.empty() ? "." : parent;
}

// Unique within the process as well as across processes writing into one directory.
std::string TemporaryPathFor(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  return path + ".tmp." + std::to_string(getpid()) + "." + std::to_string(counter++);
}

// Where a write to `path` really goes: through symbolic links to the file they name (relative
// links resolve against their own directory). FailedPrecondition when that is not a regular file
// or a loop of links.
StatusOr<std::string> WriteDestination(const std::string& path) {
  namespace fs = std::filesystem;
  fs::path target = path;
  for (int hops = 0;; ++hops) {
    std::error_code error;
    const fs::file_status status = fs::symlink_status(target, error);
    if (fs::is_symlink(status)) {
      if (hops == 40) return FailedPrecondition(path + ": too many levels of symbolic links");
      const fs::path next = fs::read_symlink(target, error);
      if (error) return FailedPrecondition(path + ": cannot read link: " + error.message());
      target = next.is_absolute() ? next : target.parent_path() / next;
      continue;
    }
    if (!fs::exists(status) || fs::is_regular_file(status)) return target.string();
    const char* kind = fs::is_directory(status)  ? "a directory"
                       : fs::is_fifo(status)     ? "a FIFO"
                       : fs::is_socket(status)   ? "a socket"
                       : fs::is_block_file(status) || fs::is_character_file(status)
                           ? "a device"
                           : "not a regular file";
    return FailedPrecondition(path + (target.string() == path ? "" : " -> " + target.string()) +
                              " is " + kind + "; refusing to replace it with a file");
  }
}

}  // namespace

FileSystem& LocalFileSystem() {
  static PosixFileSystem* fs = new PosixFileSystem();
  return *fs;
}

StatusOr<std::unique_ptr<AtomicFileWriter>> AtomicFileWriter::Open(const std::string& path,
                                                                   FileSystem& fs) {
  ASSIGN_OR_RETURN(const std::string destination, WriteDestination(path));
  std::string temp_path = TemporaryPathFor(destination);
  StatusOr<std::unique_ptr<WritableFile>> file = fs.NewWritableFile(temp_path);
  if (!file.ok()) {
    std::string message(file.status().message());
    if (const size_t at = message.find(temp_path); at != std::string::npos) {
      message.replace(at, temp_path.size(), path);
    }
    return Status(file.status().code(), message);
  }
  return std::unique_ptr<AtomicFileWriter>(
      new AtomicFileWriter(fs, destination, std::move(temp_path), std::move(*file)));
}

AtomicFileWriter::AtomicFileWriter(FileSystem& fs, std::string path, std::string temp_path,
                                   std::unique_ptr<WritableFile> file)
    : fs_(fs), path_(std::move(path)), temp_path_(std::move(temp_path)), file_(std::move(file)) {}

AtomicFileWriter::~AtomicFileWriter() {
  if (file_ != nullptr) Abandon();
}

void AtomicFileWriter::Abandon() {
  failed_ = true;
  if (file_ != nullptr) {
    (void)file_->Close();
    file_.reset();
  }
  (void)fs_.DeleteFile(temp_path_);
}

Status AtomicFileWriter::Named(const Status& status) const {
  std::string message(status.message());
  for (size_t at = message.find(temp_path_); at != std::string::npos;
       at = message.find(temp_path_, at + path_.size())) {
    message.replace(at, temp_path_.size(), path_);
  }
  if (message.find(path_) == std::string::npos) message = path_ + ": " + message;
  return Status(status.code(), message);
}

Status AtomicFileWriter::Append(std::string_view data) {
  if (failed_ || file_ == nullptr) return FailedPrecondition(path_ + ": writer already closed");
  Status status = file_->Append(data);
  if (!status.ok()) {
    Abandon();
    return Named(status);
  }
  bytes_written_ += static_cast<int64_t>(data.size());
  return OkStatus();
}

Status AtomicFileWriter::Commit() {
  if (failed_ || file_ == nullptr) return FailedPrecondition(path_ + ": writer already closed");
  Status status = file_->Sync();
  if (status.ok()) status = file_->Close();
  file_.reset();
  if (status.ok()) status = fs_.RenameFile(temp_path_, path_);
  if (!status.ok()) {
    Abandon();
    return Named(status);
  }
  // The rename is done; a failed directory sync only weakens durability across a power cut.
  return fs_.SyncDirectory(DirectoryOf(path_));
}

Status ReplaceFileAtomically(const std::string& path, std::string_view contents, FileSystem& fs) {
  ASSIGN_OR_RETURN(std::unique_ptr<AtomicFileWriter> writer, AtomicFileWriter::Open(path, fs));
  RETURN_IF_ERROR(writer->Append(contents));
  return writer->Commit();
}

StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(path + ": cannot open: " + ErrnoText());
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) return DataLoss(path + ": read failed");
  return contents.str();
}

}  // namespace deepnet
