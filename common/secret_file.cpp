#include "common/secret_file.h"

#include "common/unique_fd.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace meshd {

namespace {

std::string octal(mode_t m) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
  return buf;
}

Error refused(int err, std::string why) {
  return Error{{err, boost::system::generic_category()}, std::move(why)};
}

}  // namespace

Result<std::string> read_secret_file(const std::string& path, std::size_t max_bytes) {
  // O_NONBLOCK: a FIFO planted at the path must not block the open; it is
  // refused below as not a regular file.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC | O_NONBLOCK));
  if (!fd.valid()) {
    if (errno == ELOOP)
      return refused(ELOOP, "secret file " + path +
                                " is a symbolic link; point the setting at the file itself");
    return fail(errno, "open secret file " + path);
  }
  // Judge the file we opened, not the path: no race with a rename or chmod.
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return fail(errno, "stat secret file " + path);
  if (!S_ISREG(st.st_mode))
    return refused(EINVAL, "secret file " + path + " is not a regular file");
  const uid_t me = ::geteuid();
  if (st.st_uid != 0 && st.st_uid != me)
    return refused(EPERM, "secret file " + path + " is owned by uid " + std::to_string(st.st_uid) +
                              ", expected root or uid " + std::to_string(me) + ": run `chown " +
                              std::to_string(me) + " " + path + "`");
  if ((st.st_mode & 077) != 0)
    return refused(EPERM, "secret file " + path + " is accessible by group or others (mode " +
                              octal(st.st_mode) + "); run `chmod 600 " + path +
                              "` (and replace the secret if others could read it)");
  if (st.st_size > static_cast<off_t>(max_bytes))
    return refused(EFBIG, "secret file " + path + " has " + std::to_string(st.st_size) +
                              " bytes, more than " + std::to_string(max_bytes) +
                              "; it should hold only the secret");

  std::string out(max_bytes + 1, '\0');
  std::size_t len = 0;
  while (len < out.size()) {
    ssize_t n = ::read(fd.get(), out.data() + len, out.size() - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      explicit_bzero(out.data(), out.size());
      return fail(err, "read secret file " + path);
    }
    if (n == 0) break;
    len += static_cast<std::size_t>(n);
  }
  // The file may have grown since fstat.
  if (len > max_bytes) {
    explicit_bzero(out.data(), out.size());
    return refused(EFBIG, "secret file " + path + " has more than " +
                              std::to_string(max_bytes) +
                              " bytes; it should hold only the secret");
  }
  if (len > 0 && out[len - 1] == '\n') {
    --len;
    if (len > 0 && out[len - 1] == '\r') --len;
  }
  // Shrink in place (no reallocation, so no unwiped copy is left behind).
  explicit_bzero(out.data() + len, out.size() - len);
  out.resize(len);
  return out;
}

}  // namespace meshd
