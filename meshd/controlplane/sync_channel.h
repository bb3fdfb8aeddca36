// The sync channel: sync messages (sync_message.h frames) between members,
// inside the mesh, in signed envelopes over TCP, one connection per envelope
// (connect, write one envelope, close).
//
//   envelope = "MSEN" | u16 version | u16 reserved (0) | sender identity (32)
//              | recipient identity (32) | u64 timestamp (unix ms)
//              | u32 payload length | payload | Ed25519 signature (64)
//   signature: the sender's identity key over context "meshd/sync-envelope/v1"
//              and every byte before the signature (integers big-endian)
//
// A receiver accepts an envelope only from the member that owns the source
// address of the connection, addressed to itself, inside a time window, with
// a signature that verifies: the source address alone (which any process on
// an underlay that can reach the mesh address may forge) is not enough, and
// neither is a valid signature sent from another member's address.
#pragma once

#include "common/ip.h"
#include "common/result.h"
#include "keys/identity.h"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace meshd::controlplane {

inline constexpr std::uint16_t kEnvelopeVersion = 1;
// Everything before the payload.
inline constexpr std::size_t kEnvelopeHeaderBytes = 4 + 2 + 2 + 32 + 32 + 8 + 4;
inline constexpr std::size_t kEnvelopeSignatureBytes = keys::kSignatureLength;
inline constexpr std::string_view kEnvelopeContext = "meshd/sync-envelope/v1";

std::vector<std::uint8_t> seal_envelope(const keys::IdentitySecretKey& sender,
                                        const keys::IdentityPublicKey& recipient,
                                        std::uint64_t now_ms,
                                        std::span<const std::uint8_t> payload);

// The whole envelope's size as its header announces it, for a reader that
// must bound the read before it allocates: an error for a wrong magic,
// version or reserved field, or a payload above kMaxMessageBytes.
Result<std::size_t> envelope_size(std::span<const std::uint8_t> header);

struct OpenedEnvelope {
  keys::IdentityPublicKey sender;
  std::uint64_t timestamp = 0;
  std::vector<std::uint8_t> payload;
};
// Checks, in this order: header, lengths (payload <= kMaxMessageBytes, the
// frame exactly as long as announced), sender == expected_sender (the member
// owning the source address), recipient == self, |timestamp - now| <=
// window_ms, signature. Each error names the check that failed, never key
// bytes.
Result<OpenedEnvelope> open_envelope(std::span<const std::uint8_t> frame,
                                     const keys::IdentityPublicKey& expected_sender,
                                     const keys::IdentityPublicKey& self, std::uint64_t now_ms,
                                     std::uint64_t window_ms);

struct SyncChannelOptions {
  IpAddress bind_address;                  // this node's mesh address (its pod CIDR's gateway)
  // The mesh device: outgoing connections are bound to it (SO_BINDTODEVICE),
  // so a member whose route is not installed yet is unreachable rather than
  // reached in the clear through the underlay's default route. "" = unbound.
  std::string device;
  std::uint16_t port = 0;                  // 0 = ephemeral (tests)
  std::chrono::milliseconds io_timeout{3000};
  std::size_t max_connections = 64;        // inbound in flight
  std::uint64_t window_ms = 120000;
  std::uint16_t peer_port = 0;             // where other members listen; 0 = this channel's port()
};

struct SyncChannelCounters {
  std::uint64_t sent = 0, send_failures = 0, received = 0, refused_source = 0,
                refused_envelope = 0, bytes_in = 0, bytes_out = 0;
  std::uint64_t refused_busy = 0;  // a member's connection beyond max_connections
  std::uint64_t timeouts = 0;      // an envelope not whole within io_timeout
};

// Receiver: on accept, lookup(source); nothing means refused_source and the
// connection is closed without reading. Else the envelope is read within
// io_timeout (its header first: a payload above kMaxMessageBytes is refused
// before anything is allocated for it), opened with expected_sender = the
// looked-up identity, and its payload delivered. Everything runs on the
// io_context's thread; counters are read there too.
class SyncChannel {
 public:
  using MemberLookup = std::function<std::optional<keys::IdentityPublicKey>(const IpAddress& source)>;
  using Deliver = std::function<void(const keys::IdentityPublicKey& from, std::span<const std::uint8_t> payload)>;
  using Clock = std::function<std::uint64_t()>;  // unix ms
  // Binds bind_address:port at once (throws ErrorException). `self` must outlive the channel.
  SyncChannel(boost::asio::io_context& ioc, SyncChannelOptions opts, const keys::IdentitySecretKey& self,
              MemberLookup lookup, Deliver deliver, Clock clock);
  ~SyncChannel();
  SyncChannel(const SyncChannel&) = delete;
  SyncChannel& operator=(const SyncChannel&) = delete;

  // Fire and forget: seal, connect (source bound to bind_address, port 0),
  // write, close; failures counted (and logged at debug, naming the address,
  // no key bytes). Safe to call from Deliver.
  void send(const keys::IdentityPublicKey& to, const IpAddress& address, std::vector<std::uint8_t> payload);
  std::uint16_t port() const;
  const SyncChannelCounters& counters() const;
  // Stops accepting and closes every connection in flight; lookup, deliver
  // and clock are not called again. Also done by the destructor.
  void close();

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace meshd::controlplane
