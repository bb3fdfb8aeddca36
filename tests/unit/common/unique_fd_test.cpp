#include "common/unique_fd.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

namespace meshd {
namespace {

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

// Two fresh descriptors (a pipe); the test closes whatever it still owns.
struct Pipe {
  int r = -1, w = -1;
  Pipe() {
    int p[2];
    EXPECT_EQ(::pipe2(p, O_CLOEXEC), 0);
    r = p[0];
    w = p[1];
  }
};

TEST(UniqueFd, ClosesOnDestructionAndHoldsNothingByDefault) {
  Pipe p;
  {
    UniqueFd a(p.r);
    UniqueFd b(p.w);
    EXPECT_TRUE(a.valid());
    EXPECT_EQ(a.get(), p.r);
    UniqueFd none;
    EXPECT_FALSE(none.valid());
    EXPECT_EQ(none.get(), -1);
  }
  EXPECT_FALSE(is_open(p.r));
  EXPECT_FALSE(is_open(p.w));
}

TEST(UniqueFd, MoveTransfersOwnershipAndClosesWhatItReplaces) {
  Pipe p;
  UniqueFd a(p.r);
  UniqueFd b(p.w);
  b = std::move(a);  // b closes the write end, takes the read end
  EXPECT_FALSE(is_open(p.w));
  EXPECT_TRUE(is_open(p.r));
  EXPECT_FALSE(a.valid());
  UniqueFd c(std::move(b));
  EXPECT_FALSE(b.valid());
  EXPECT_EQ(c.get(), p.r);
  EXPECT_TRUE(is_open(p.r));
  c.reset();
  EXPECT_FALSE(is_open(p.r));
  EXPECT_FALSE(c.valid());
}

TEST(UniqueFd, ReleaseHandsTheDescriptorOverOpen) {
  Pipe p;
  int fd = -1;
  {
    UniqueFd a(p.r);
    fd = a.release();
    EXPECT_FALSE(a.valid());
  }
  EXPECT_EQ(fd, p.r);
  EXPECT_TRUE(is_open(fd));
  ::close(p.r);
  ::close(p.w);
}

}  // namespace
}  // namespace meshd
