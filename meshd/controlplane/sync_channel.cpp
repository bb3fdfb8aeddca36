#include "meshd/controlplane/sync_channel.h"

#include "meshd/controlplane/sync_message.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace meshd::controlplane {

namespace {

constexpr std::uint8_t kMagic[4] = {'M', 'S', 'E', 'N'};
// Offsets in the header.
constexpr std::size_t kOffVersion = 4;
constexpr std::size_t kOffReserved = 6;
constexpr std::size_t kOffSender = 8;
constexpr std::size_t kOffRecipient = 40;
constexpr std::size_t kOffTimestamp = 72;
constexpr std::size_t kOffLength = 80;
static_assert(kOffLength + 4 == kEnvelopeHeaderBytes);

void put_be(std::vector<std::uint8_t>& out, std::uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

std::uint64_t get_be(std::span<const std::uint8_t> in, std::size_t at, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | in[at + i];
  return v;
}

keys::IdentityPublicKey key_at(std::span<const std::uint8_t> in, std::size_t at) {
  keys::KeyBytes b{};
  std::copy_n(in.begin() + static_cast<std::ptrdiff_t>(at), b.size(), b.begin());
  return keys::IdentityPublicKey(b);
}

}  // namespace

std::vector<std::uint8_t> seal_envelope(const keys::IdentitySecretKey& sender,
                                        const keys::IdentityPublicKey& recipient,
                                        std::uint64_t now_ms,
                                        std::span<const std::uint8_t> payload) {
  if (payload.size() > kMaxMessageBytes)
    throw std::invalid_argument("seal_envelope: payload above kMaxMessageBytes");
  std::vector<std::uint8_t> out;
  out.reserve(kEnvelopeHeaderBytes + payload.size() + kEnvelopeSignatureBytes);
  out.insert(out.end(), std::begin(kMagic), std::end(kMagic));
  put_be(out, kEnvelopeVersion, 2);
  put_be(out, 0, 2);
  const auto& s = sender.public_key().bytes();
  out.insert(out.end(), s.begin(), s.end());
  out.insert(out.end(), recipient.bytes().begin(), recipient.bytes().end());
  put_be(out, now_ms, 8);
  put_be(out, payload.size(), 4);
  out.insert(out.end(), payload.begin(), payload.end());
  keys::Signature sig = sender.sign(kEnvelopeContext, out);
  out.insert(out.end(), sig.begin(), sig.end());
  return out;
}

Result<std::size_t> envelope_size(std::span<const std::uint8_t> header) {
  if (header.size() < kEnvelopeHeaderBytes)
    return fail(EBADMSG, "sync envelope: header truncated");
  if (!std::equal(std::begin(kMagic), std::end(kMagic), header.begin()))
    return fail(EBADMSG, "sync envelope: does not start with \"MSEN\"");
  const auto version = get_be(header, kOffVersion, 2);
  if (version != kEnvelopeVersion)
    return fail(EPROTONOSUPPORT,
                "sync envelope: version " + std::to_string(version) + " (this node speaks " +
                    std::to_string(kEnvelopeVersion) + ")");
  if (get_be(header, kOffReserved, 2) != 0)
    return fail(EBADMSG, "sync envelope: reserved field not 0");
  const auto length = get_be(header, kOffLength, 4);
  if (length > kMaxMessageBytes)
    return fail(EMSGSIZE, "sync envelope: payload of " + std::to_string(length) +
                              " bytes, above the limit of " + std::to_string(kMaxMessageBytes));
  return kEnvelopeHeaderBytes + static_cast<std::size_t>(length) + kEnvelopeSignatureBytes;
}

Result<OpenedEnvelope> open_envelope(std::span<const std::uint8_t> frame,
                                     const keys::IdentityPublicKey& expected_sender,
                                     const keys::IdentityPublicKey& self, std::uint64_t now_ms,
                                     std::uint64_t window_ms) {
  auto size = envelope_size(frame);
  if (!size) return size.error();
  if (frame.size() != *size)
    return fail(EBADMSG, "sync envelope: " + std::to_string(frame.size()) +
                             " bytes where the header announces " + std::to_string(*size));
  OpenedEnvelope e;
  e.sender = key_at(frame, kOffSender);
  if (e.sender != expected_sender)
    return fail(EACCES, "sync envelope: sender is not the member that owns the source address");
  if (key_at(frame, kOffRecipient) != self)
    return fail(EACCES, "sync envelope: addressed to another node");
  e.timestamp = get_be(frame, kOffTimestamp, 8);
  const std::uint64_t skew = e.timestamp > now_ms ? e.timestamp - now_ms : now_ms - e.timestamp;
  if (skew > window_ms)
    return fail(ETIME, "sync envelope: timestamp " + std::to_string(skew) +
                           " ms away from this node's clock (window " +
                           std::to_string(window_ms) + " ms)");
  const std::size_t signed_bytes = frame.size() - kEnvelopeSignatureBytes;
  keys::Signature sig{};
  std::copy_n(frame.begin() + static_cast<std::ptrdiff_t>(signed_bytes), sig.size(), sig.begin());
  if (!e.sender.verify(kEnvelopeContext, frame.first(signed_bytes), sig))
    return fail(EACCES, "sync envelope: signature does not verify");
  auto payload = frame.subspan(kEnvelopeHeaderBytes, signed_bytes - kEnvelopeHeaderBytes);
  e.payload.assign(payload.begin(), payload.end());
  return e;
}

}  // namespace meshd::controlplane
