// Pure message code for the "wireguard" generic-netlink family
// (<linux/wireguard.h>): WgDevice -> SET_DEVICE messages, GET_DEVICE dump
// messages -> WgDevice, and the CTRL_CMD_GETFAMILY lookup that turns the
// family name into its id. No sockets here: every function takes or returns
// bytes, so the splitting and merging rules are unit-tested and fuzzed
// without a kernel that has WireGuard. The I/O around it is netlink/wireguard.h.
#pragma once

#include "common/result.h"
#include "netlink/wg_device.h"

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

struct nlmsghdr;

namespace meshd::nl {

// One netlink message (nlmsghdr included), as it goes on the wire. The bytes
// may hold a private or preshared key, so they are wiped when destroyed.
class NlMessage {
 public:
  NlMessage() = default;
  explicit NlMessage(std::vector<std::uint8_t> bytes) : bytes_(std::move(bytes)) {}
  NlMessage(NlMessage&&) noexcept = default;
  NlMessage& operator=(NlMessage&& o) noexcept;
  NlMessage(const NlMessage&) = delete;
  NlMessage& operator=(const NlMessage&) = delete;
  ~NlMessage();

  std::span<const std::uint8_t> bytes() const { return bytes_; }
  std::size_t size() const { return bytes_.size(); }
  // The header, for NlSocket::request (which fills in sequence and port id).
  nlmsghdr* header() { return reinterpret_cast<nlmsghdr*>(bytes_.data()); }

 private:
  std::vector<std::uint8_t> bytes_;
};

// wireguard-tools sends with a buffer of min(page size, 8192) bytes
// (MNL_SOCKET_BUFFER_SIZE) and so do we: the kernel's netlink receive path
// accepts anything up to the socket's receive buffer, but a page-sized
// message is what every deployed kernel has been exercised with.
std::size_t default_message_size();

// --- Generic-netlink controller: family name -> id ---

NlMessage build_get_family(std::string_view family_name);

// What a CTRL_CMD_NEWFAMILY reply says about a family (the parts we use).
struct GenlFamily {
  std::string name;          // CTRL_ATTR_FAMILY_NAME
  std::uint16_t id = 0;      // CTRL_ATTR_FAMILY_ID: the nlmsg_type of its messages
  std::uint32_t version = 0; // CTRL_ATTR_VERSION, 0 if absent
};
// Parses one reply message (nlmsghdr included): type GENL_ID_CTRL, command
// CTRL_CMD_NEWFAMILY, a NUL-terminated name and an id >= GENL_MIN_ID.
// Anything else is EINVAL naming what is wrong.
Result<GenlFamily> parse_family_reply(std::span<const std::uint8_t> message);
// The same, returning the id only if the reply names family `name` (EBADMSG if not).
Result<std::uint16_t> parse_family_reply(std::span<const std::uint8_t> message, std::string_view name);
// The id of any well-formed reply.
Result<std::uint16_t> parse_family_id(std::span<const std::uint8_t> message);

// --- One message of either command ---

// Parses ONE wireguard-family message (a GET_DEVICE dump part or a SET_DEVICE
// request: both use the same attributes) into the partial device it carries,
// without merging. Attributes that are absent stay unset; a peer's flags map
// to remove / replace_allowed_ips / update_only. Malformed input (truncated
// attributes, wrong payload sizes, unknown address families) is an error
// naming the attribute.
Result<wg::WgDevice> parse_device_message(std::span<const std::uint8_t> message);

// --- WG_CMD_GET_DEVICE ---

// The dump request for one device, by name or (when ifindex > 0) by index.
NlMessage build_get_device(std::uint16_t family_id, std::string_view ifname, int ifindex = 0);

// Merges the parts of a GET_DEVICE dump into one WgDevice. The kernel fills a
// message with as many peers as fit; when a peer's allowed IPs do not fit it
// ends the message and starts the next one with the SAME peer (public key
// repeated, only the remaining allowed IPs). Device attributes come only in
// the first message. So: a peer whose public key equals the last peer's
// continues it; any other key starts a new peer.
class WgDumpMerger {
 public:
  // One message of the dump (nlmsghdr included, type = the family id).
  // Errors name what is malformed; the merger must then be discarded.
  Result<void> add_message(std::span<const std::uint8_t> message);
  std::size_t messages() const { return messages_; }
  wg::WgDevice take() { return std::move(device_); }
  const wg::WgDevice& device() const { return device_; }

 private:
  wg::WgDevice device_;
  std::size_t messages_ = 0;
};

// A whole reply stream as read from the socket: netlink messages back to back,
// ending with NLMSG_DONE (or an NLMSG_ERROR, read by nl_socket.h's parse_ack
// as the socket reads it). For tests and benchmarks; production reads dumps
// through NlSocket::request and feeds this merger (WgGenl::get_device).
Result<wg::WgDevice> parse_get_device_stream(std::span<const std::uint8_t> stream);

// --- WG_CMD_SET_DEVICE ---

// Builds the SET_DEVICE messages that apply `change` (a partial update: the
// model's optionals say what to write, its flags what to replace or remove).
// Each message is at most `max_size` bytes. The splitting follows
// wireguard-tools' ipc-linux.h:
//  - device attributes (private key, port, fwmark, REPLACE_PEERS) go in the
//    first message only: repeating REPLACE_PEERS would delete the peers the
//    earlier messages added;
//  - peers fill a message until the next one does not fit;
//  - a peer whose allowed IPs do not fit is continued in the next message with
//    its public key and the remaining allowed IPs only: no REPLACE_ALLOWEDIPS
//    (that would drop the IPs just added), no PSK/endpoint/keepalive again.
//    UPDATE_ONLY is repeated so that a skipped peer is not created by its tail.
// A peer with `remove` set is sent as public key + REMOVE_ME only (the kernel
// ignores everything else of a peer it removes).
// Fails with EMSGSIZE if max_size cannot hold even the device header plus one
// allowed IP (a programming error, not a data error).
Result<std::vector<NlMessage>> build_set_device(std::uint16_t family_id,
                                                const wg::WgDevice& change,
                                                std::size_t max_size = default_message_size());

// The inverse of build_set_device for tests and tools: merges SET_DEVICE
// messages into the change they express (continuation peers are appended to
// the peer they continue, as the kernel applies them).
Result<wg::WgDevice> parse_set_device_messages(std::span<const NlMessage> messages);

}  // namespace meshd::nl
