// Status and Result<T>: error returns that never throw across library boundaries.
// A Status is OK or carries an errno-style code and one human line that says what and where
// ("layer sha256:ab12..: truncated gzip stream"). Result<T> holds a value or a non-OK Status.
#pragma once

#include <cerrno>
#include <string>
#include <utility>
#include <variant>

namespace layerfs {

class Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  // code is an errno value (EINVAL for malformed input, ENOENT for missing things, ...).
  static Status Error(int code, std::string message) { return Status(code, std::move(message)); }
  // Error from the current errno, as "<what>: <strerror(errno)>".
  static Status FromErrno(const std::string& what);
  static Status FromErrno(int err, const std::string& what);

  bool ok() const { return code_ == 0; }
  int code() const { return code_; }
  const std::string& message() const { return message_; }
  // A copy with "<prefix>: " in front of the message; keeps the code.
  Status WithContext(const std::string& prefix) const;

 private:
  Status(int code, std::string message) : code_(code), message_(std::move(message)) {}
  int code_ = 0;
  std::string message_;
};

template <class T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT: must not be OK

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace layerfs

#define LAYERFS_CONCAT_INNER(a, b) a##b
#define LAYERFS_CONCAT(a, b) LAYERFS_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function if expr (a Status) is not OK.
#define RETURN_IF_ERROR(expr)           \
  do {                                  \
    ::layerfs::Status _lfs_st = (expr); \
    if (!_lfs_st.ok()) return _lfs_st;  \
  } while (0)

// ASSIGN_OR_RETURN(auto x, MakeX()): binds the value or returns the error Status.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(LAYERFS_CONCAT(_lfs_res_, __LINE__), lhs, expr)
// tmp is a name and lhs may be a declaration ("auto x"): neither can be parenthesized.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()
// NOLINTEND(bugprone-macro-parentheses)
