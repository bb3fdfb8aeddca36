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

}  // namespace meshd::controlplane
