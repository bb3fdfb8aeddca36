// A CNI error as the spec defines it (SPEC.md "Error"): printed as JSON on
// stdout with a non-zero exit, so the runtime can show `msg` to a person.
// Codes 1-99 are the spec's; 100 and up are ours.
#pragma once

#include <boost/system/result.hpp>

#include <stdexcept>
#include <string>
#include <utility>

namespace meshd::cni {

enum ErrorCode : int {
  kIncompatibleVersion = 1,  // unsupported cniVersion
  kUnsupportedField = 2,     // a field in our own section we do not know
  kUnknownContainer = 3,     // CNI_NETNS does not exist
  kInvalidEnvironment = 4,   // a CNI_* variable is missing or malformed
  kIoFailure = 5,            // the store or a file could not be read or written
  kDecodeFailure = 6,        // stdin is not a JSON object
  kInvalidConfig = 7,        // a field has the wrong type or value
  kTryAgainLater = 11,       // the node has no settled pod CIDR yet
  kPluginNotAvailable = 50,  // STATUS: ADD cannot be served now
  // Ours.
  kNetworkSetup = 100,       // a netlink operation failed
  kPoolExhausted = 101,      // no free address left in the node's pod CIDR
  kInterfaceExists = 102,    // CNI_IFNAME already exists in the pod
  kCheckFailed = 103,        // CHECK found something ADD made missing
};

struct CniError {
  int code = 0;
  std::string msg;
  std::string details;
};

class CniErrorException : public std::runtime_error {
 public:
  explicit CniErrorException(CniError e) : std::runtime_error(e.msg), error_(std::move(e)) {}
  const CniError& error() const { return error_; }

 private:
  CniError error_;
};

// Found by ADL when CniResult<T>::value() is called on an error.
[[noreturn]] inline void throw_exception_from_error(const CniError& e,
                                                    const boost::source_location&) {
  throw CniErrorException(e);
}

template <class T>
using CniResult = boost::system::result<T, CniError>;

inline CniError cni_error(int code, std::string msg, std::string details = {}) {
  return CniError{code, std::move(msg), std::move(details)};
}

}  // namespace meshd::cni
