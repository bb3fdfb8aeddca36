// One RAII netlink socket over libmnl, shared by rtnetlink (netlink/rtnl.h) and
// generic netlink (the "wireguard" family). It owns the request/reply dance the
// kernel expects: sequence numbers, multi-part dumps, NLMSG_ERROR acks with the
// kernel's extended-ack text, dumps interrupted by concurrent changes
// (NLM_F_DUMP_INTR, retried a bounded number of times), and batches of requests
// whose acks are collected one by one. Not thread-safe; one socket per user.
//
// Callers build messages with libmnl (mnl_nlmsg_put_header, mnl_attr_put...) in
// their own buffer and hand the finished header here.
#pragma once

#include "common/result.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

struct nlmsghdr;
struct mnl_socket;

namespace meshd::nl {

// Receive buffer for one datagram. The kernel sizes dump datagrams after the
// largest buffer a reader has used, up to 32 KiB; libmnl 1.0.4's
// MNL_SOCKET_BUFFER_SIZE (<= 8 KiB, and not a constant) would truncate them.
inline constexpr std::size_t kNlRecvBufferSize = 32768;

// A dump the kernel flagged NLM_F_DUMP_INTR (the table changed while it was
// being walked) is thrown away and requested again, at most this many times.
inline constexpr int kNlMaxDumpAttempts = 5;

// What an NLMSG_ERROR (or the status of an NLMSG_DONE) says.
struct NlAck {
  int error = 0;              // positive errno; 0 = success
  std::uint32_t seq = 0;      // sequence number of the request it answers
  std::string ext_message;    // NLMSGERR_ATTR_MSG (extended ack), "" if none
  std::uint32_t ext_offset = 0;  // NLMSGERR_ATTR_OFFS: offending attribute, 0 if none
};

// Parses an NLMSG_ERROR or NLMSG_DONE message (pure). Handles acks with and
// without NETLINK_CAP_ACK and with or without extended-ack TLVs. An NLMSG_DONE
// with no status word counts as success. Rejects truncated messages with EBADMSG.
Result<NlAck> parse_ack(const nlmsghdr* nlh);

// The error a person reads, e.g.
// "create link wg0 (wireguard): Operation not supported (kernel: Unknown device type)".
Error ack_error(const NlAck& ack, std::string_view what);

// Visits every well-formed netlink message in `data` (pure). A message whose
// length runs past the end, or is shorter than a header, ends the walk with EBADMSG.
using MessageFn = std::function<Result<void>(const nlmsghdr&)>;
Result<void> for_each_message(std::span<const std::uint8_t> data, const MessageFn& fn);

// One request of a batch: the finished message and what it does, for errors.
struct NlBatchEntry {
  nlmsghdr* msg = nullptr;
  std::string what;
};

// The two system calls under an NlSocket. open() uses the kernel's socket;
// tests and fuzzers inject their own (NlSocket::over), so that the request
// loop, the dump collection, the ack parsing and each caller's reply handling
// run exactly as in production on recorded or arbitrary "kernel" datagrams.
class NlTransport {
 public:
  virtual ~NlTransport() = default;
  // Sends one datagram to the kernel, whole.
  virtual Result<void> send(std::span<const std::uint8_t> datagram) = 0;
  // Copies the next datagram from the kernel into `buf` and returns its full
  // length: more than buf.size() means it was truncated (MSG_TRUNC). When
  // nothing is queued: 0 if `dont_wait`, else an error (ETIMEDOUT, as a
  // blocking socket whose receive timeout expired).
  virtual Result<std::size_t> receive(std::span<std::uint8_t> buf, bool dont_wait) = 0;
};

class NlSocket {
 public:
  NlSocket(NlSocket&&) noexcept;
  NlSocket& operator=(NlSocket&&) noexcept;
  NlSocket(const NlSocket&) = delete;
  NlSocket& operator=(const NlSocket&) = delete;
  ~NlSocket();

  // A socket on `bus` (NETLINK_ROUTE, NETLINK_GENERIC) in the calling thread's
  // network namespace, bound with a kernel-chosen port id, with NETLINK_EXT_ACK
  // and NETLINK_CAP_ACK on. A non-blocking socket serves event subscriptions;
  // a blocking one gets a receive timeout so a lost reply cannot hang meshd.
  static Result<NlSocket> open(int bus, bool nonblocking = false);

  // A socket whose datagrams go through `transport` instead of the kernel,
  // with `portid` as its port id (replies must carry it, as the kernel's do).
  // fd() is -1 and join_group() fails; everything else behaves as open()'s.
  static NlSocket over(std::unique_ptr<NlTransport> transport, std::uint32_t portid);

  int fd() const;
  std::uint32_t portid() const;
  std::uint32_t next_seq();

  // Joins a multicast group (e.g. RTNLGRP_LINK) for event delivery.
  Result<void> join_group(unsigned group);

  // Every datagram received is wiped from the receive buffer once it has been
  // walked, and a dump's kept copy is wiped when freed: replies may carry
  // private and preshared keys (GET_DEVICE).
  //
  // Sends `req` and runs every data message of the reply through `on_reply`.
  // Fills in nlmsg_seq and nlmsg_pid. Without NLM_F_DUMP it sets NLM_F_ACK and
  // waits for the ack (a kernel error becomes an Error naming `what`, with the
  // extended-ack text). With NLM_F_DUMP it reads to NLMSG_DONE; a dump flagged
  // NLM_F_DUMP_INTR is discarded and re-requested (see kNlMaxDumpAttempts), and
  // `on_reply` only ever sees one complete, consistent dump. An error returned
  // by `on_reply` stops the walk and is returned (after the socket is drained).
  Result<void> request(nlmsghdr* req, std::string_view what, const MessageFn& on_reply = {});

  // Sends many requests in as few datagrams as fit and collects the ack of
  // each: the outer Result fails only on socket trouble; element i is the
  // outcome of entries[i]. The kernel applies every message even after one fails.
  Result<std::vector<Result<void>>> batch(std::span<const NlBatchEntry> entries);

  // For non-blocking (event) sockets: reads everything queued and runs each
  // message through `fn`; returns when nothing is left. ENOBUFS (the kernel
  // dropped messages for us) is returned as an error naming `what`.
  Result<void> drain(std::string_view what, const MessageFn& fn);

  // How many dumps were thrown away and re-requested after NLM_F_DUMP_INTR
  // (for metrics and tests; it only grows).
  std::uint64_t dump_restarts() const { return dump_restarts_; }

 private:
  explicit NlSocket(mnl_socket* s);
  Result<std::size_t> recv_datagram(std::vector<std::uint8_t>& buf, std::string_view what,
                                   int flags = 0);
  Result<void> send_all(const void* data, std::size_t len, std::string_view what);

  mnl_socket* sock_ = nullptr;
  std::unique_ptr<NlTransport> transport_;  // set by over(); sock_ is then null
  std::uint32_t portid_ = 0;
  std::uint32_t seq_ = 0;
  bool nonblocking_ = false;
  std::uint64_t dump_restarts_ = 0;
  std::vector<std::uint8_t> rbuf_;
};

}  // namespace meshd::nl
