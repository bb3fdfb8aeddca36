// The journal sink's parts that need no journal: the level -> PRIORITY
// mapping, $JOURNAL_STREAM's parsing and matching against a descriptor,
// the fields of a line, and the scoped peer field. The sink itself, with
// libsystemd and a socket, is tested in tests/integration/logging.
#include "meshd/logging/fields.h"
#include "meshd/logging/journal.h"
#include "tests/support/journal_socket.h"
#include "tests/support/temp_dir.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

namespace meshd::logging {
namespace {

TEST(JournalPriority, MapsEveryLevelToItsSyslogPriority) {
  EXPECT_EQ(journal_priority(spdlog::level::trace), 7);
  EXPECT_EQ(journal_priority(spdlog::level::debug), 7);
  EXPECT_EQ(journal_priority(spdlog::level::info), 6);
  EXPECT_EQ(journal_priority(spdlog::level::warn), 4);
  EXPECT_EQ(journal_priority(spdlog::level::err), 3);
  EXPECT_EQ(journal_priority(spdlog::level::critical), 2);
}

TEST(JournalStream, ParsesDeviceAndInode) {
  auto id = parse_journal_stream("64769:123456789");
  ASSERT_TRUE(id);
  EXPECT_EQ(id->device, 64769u);
  EXPECT_EQ(id->inode, 123456789u);
  for (const char* bad : {"", ":", "1", "1:", ":2", "a:2", "1:b", "1:2x", "1:2:3", " 1:2", "-1:2",
                          "99999999999999999999999:1"})
    EXPECT_FALSE(parse_journal_stream(bad)) << bad;
}

TEST(JournalStream, MatchesOnlyTheDescriptorItNames) {
  testing::TempDir dir;
  int a = ::open((dir.path() + "/a").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  int b = ::open((dir.path() + "/b").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  struct stat st {};
  ASSERT_EQ(::fstat(a, &st), 0);
  std::string value = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  EXPECT_TRUE(is_journal_stream(value.c_str(), a));
  // The variable inherited by a process whose output went elsewhere.
  EXPECT_FALSE(is_journal_stream(value.c_str(), b));
  EXPECT_FALSE(is_journal_stream(nullptr, a));
  EXPECT_FALSE(is_journal_stream("", a));
  EXPECT_FALSE(is_journal_stream(value.c_str(), 987));  // not open
  ::close(a);
  ::close(b);
}

spdlog::details::log_msg message(std::string_view logger, spdlog::level::level_enum level, std::string_view text) {
  return spdlog::details::log_msg(spdlog::string_view_t(logger.data(), logger.size()), level,
                                  spdlog::string_view_t(text.data(), text.size()));
}

TEST(JournalFields, CarryTheMessageLevelComponentNodeAndPeer) {
  auto f = journal_fields(message("cluster", spdlog::level::warn, "node node2 silent for 9 s"), "node1", "node2");
  EXPECT_EQ(f, (std::vector<std::string>{"MESSAGE=node node2 silent for 9 s", "PRIORITY=4",
                                         "SYSLOG_IDENTIFIER=meshd", "MESHD_COMPONENT=cluster",
                                         "MESHD_NODE=node1", "MESHD_PEER=node2"}));
}

TEST(JournalFields, LeaveOutAnUnknownNodeAndPeerAndNameTheDefaultLogger) {
  auto f = journal_fields(message("", spdlog::level::err, "line one\nline two"), "", "");
  EXPECT_EQ(f, (std::vector<std::string>{"MESSAGE=line one\nline two", "PRIORITY=3", "SYSLOG_IDENTIFIER=meshd",
                                         "MESHD_COMPONENT=meshd"}));
}

TEST(PeerField, IsScopedNestedAndPerThread) {
  EXPECT_EQ(current_peer(), "");
  {
    PeerField outer("node2");
    EXPECT_EQ(current_peer(), "node2");
    {
      PeerField inner("node3");
      EXPECT_EQ(current_peer(), "node3");
      std::string other = "unset";
      std::thread([&] { other = std::string(current_peer()); }).join();
      EXPECT_EQ(other, "") << "another thread's lines must not carry this thread's peer";
    }
    EXPECT_EQ(current_peer(), "node2");
  }
  EXPECT_EQ(current_peer(), "");
}

TEST(NodeName, IsSetForEveryThread) {
  set_node_name("node7");
  std::string seen;
  std::thread([&] { seen = node_name(); }).join();
  EXPECT_EQ(seen, "node7");
  set_node_name("");
}

// The test receiver's parser (tests/support/journal_socket.h) on the
// protocol's two forms, so that the integration test reads what it thinks.
TEST(NativeProtocol, TestParserReadsBothFieldForms) {
  std::string len(8, '\0');
  len[0] = 3;
  std::string d = "MESSAGE\n" + len + "a\nb\nPRIORITY=6\n";
  auto e = testing::parse_journal_datagram(d);
  EXPECT_EQ(e.at("MESSAGE"), "a\nb");
  EXPECT_EQ(e.at("PRIORITY"), "6");
  EXPECT_THROW(testing::parse_journal_datagram("MESSAGE=x"), std::runtime_error);
  EXPECT_THROW(testing::parse_journal_datagram("MESSAGE\n" + len + "ab"), std::runtime_error);
}

}  // namespace
}  // namespace meshd::logging
