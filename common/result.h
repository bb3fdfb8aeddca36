// Error currency of meshd's libraries: an errno-style code (what Asio and the
// kernel speak) plus a sentence for a person: which operation on which object
// failed, and, where there is one, what to do about it.
#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <cerrno>
#include <stdexcept>
#include <string>
#include <utility>

namespace meshd {

struct Error {
  boost::system::error_code code;
  std::string message;

  // `what` names the operation and object, e.g. "add route 10.1.0.0/24 dev wg0".
  static Error from_errno(int err, std::string what) {
    return Error{{err, boost::system::generic_category()},
                 std::move(what) + ": " + boost::system::generic_category().message(err)};
  }
  static Error invalid(std::string what) {
    return Error{{EINVAL, boost::system::generic_category()}, std::move(what)};
  }

  int value() const { return code.value(); }
  bool is(int err) const { return code.value() == err; }
};

class ErrorException : public std::runtime_error {
 public:
  explicit ErrorException(Error e) : std::runtime_error(e.message), error_(std::move(e)) {}
  const Error& error() const { return error_; }

 private:
  Error error_;
};

// Found by ADL when result<T, Error>::value() is called on an error.
[[noreturn]] inline void throw_exception_from_error(const Error& e,
                                                    const boost::source_location&) {
  throw ErrorException(e);
}

template <class T>
using Result = boost::system::result<T, Error>;

// Shorthand: `return fail(EINVAL, "parse ...")` inside a Result-returning function.
inline Error fail(int err, std::string what) { return Error::from_errno(err, std::move(what)); }

}  // namespace meshd
