// API errors: every failure answers {"error": code, "message": text} with the
// HTTP status that fits. `code` is a stable machine-readable word; `message`
// says what was wrong and what is expected, and never quotes a secret (nor
// anything a client sent that could hold one, like a token pasted into a path).
#pragma once

#include "meshd/api/http.h"

#include <boost/system/result.hpp>

#include <string>

namespace meshd::api {

struct ApiError {
  int status = 500;
  std::string code;
  std::string message;

  static ApiError bad_request(std::string code, std::string message) {
    return ApiError{400, std::move(code), std::move(message)};
  }
};

Response error_response(const ApiError& e);

// Found by ADL when ApiResult<T>::value() is called on an error: a broken
// invariant in our own code, turned into a 500 by the router.
class ApiErrorException : public std::exception {
 public:
  explicit ApiErrorException(ApiError e) : error_(std::move(e)) {}
  const char* what() const noexcept override { return error_.message.c_str(); }
  const ApiError& error() const { return error_; }

 private:
  ApiError error_;
};
[[noreturn]] inline void throw_exception_from_error(const ApiError& e,
                                                    const boost::source_location&) {
  throw ApiErrorException(e);
}

template <class T>
using ApiResult = boost::system::result<T, ApiError>;

}  // namespace meshd::api
