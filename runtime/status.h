// Status and StatusOr<T>: how recoverable failures travel through deepnet.
//
// Library code returns Status; only launcher/ turns a failed Status into an exit code and a
// message. A Status is cheap when OK (no allocation) and carries a code plus a message that
// names the context ("config.pbtxt:12:3: model.d_model: ...", "recv from rank 3 timed out").
#pragma once

#include <glog/logging.h>

#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>

namespace deepnet {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // bad input from the user (config, CLI, data file)
  kNotFound,         // a file or name that does not exist
  kOutOfRange,       // an index or size beyond its limit
  kFailedPrecondition,
  kResourceExhausted,  // memory that does not fit
  kDeadlineExceeded,   // a peer that never answered
  kUnavailable,        // a peer that went away
  kDataLoss,           // a corrupt or truncated file
  kUnimplemented,      // an op or dtype a backend does not support
  kInternal,
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message);

  bool ok() const { return rep_ == nullptr; }
  StatusCode code() const { return rep_ ? rep_->code : StatusCode::kOk; }
  const std::string& message() const;
  std::string ToString() const;

  // Prefixes the message with context, e.g. the file or the rank: "ctx: message".
  Status WithContext(std::string_view context) const;

 private:
  struct Rep {
    StatusCode code;
    std::string message;
  };
  std::shared_ptr<const Rep> rep_;
};

inline Status OkStatus() { return Status(); }
Status InvalidArgument(std::string message);
Status NotFound(std::string message);
Status OutOfRange(std::string message);
Status FailedPrecondition(std::string message);
Status ResourceExhausted(std::string message);
Status DeadlineExceeded(std::string message);
Status Unavailable(std::string message);
Status DataLoss(std::string message);
Status Unimplemented(std::string message);
Status Internal(std::string message);

std::ostream& operator<<(std::ostream& os, const Status& status);

// A value or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    CHECK(!status_.ok()) << "StatusOr built from an OK status without a value";
  }
  StatusOr(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }

  T& value() & {
    CheckOk();
    return *value_;
  }
  const T& value() const& {
    CheckOk();
    return *value_;
  }
  T&& value() && {
    CheckOk();
    return std::move(*value_);
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  void CheckOk() const { CHECK(status_.ok()) << "StatusOr has no value: " << status_; }

  Status status_;
  std::optional<T> value_;
};

}  // namespace deepnet

#define DEEPNET_CONCAT_INNER(a, b) a##b
#define DEEPNET_CONCAT(a, b) DEEPNET_CONCAT_INNER(a, b)

// Returns from the enclosing function when `expr` yields a failed Status.
#define RETURN_IF_ERROR(expr)                          \
  do {                                                 \
    ::deepnet::Status deepnet_status_ = (expr);        \
    if (!deepnet_status_.ok()) return deepnet_status_; \
  } while (0)

// ASSIGN_OR_RETURN(auto x, MakeX()): binds the value or returns the error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(DEEPNET_CONCAT(deepnet_statusor_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()
