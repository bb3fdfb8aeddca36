#include "meshd/controlplane/sync_message.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

namespace meshd::controlplane {

namespace {

constexpr std::uint8_t kMagic[4] = {'M', 'S', 'Y', 'N'};
constexpr std::size_t kFieldHeader = 5;
constexpr std::size_t kDigestEntryBytes = 32 + 8;

void put_u16(std::vector<std::uint8_t>& o, std::uint16_t v) {
  o.push_back(static_cast<std::uint8_t>(v >> 8));
  o.push_back(static_cast<std::uint8_t>(v));
}
void put_u32(std::vector<std::uint8_t>& o, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) o.push_back(static_cast<std::uint8_t>(v >> s));
}
void put_u64(std::vector<std::uint8_t>& o, std::uint64_t v) {
  for (int s = 56; s >= 0; s -= 8) o.push_back(static_cast<std::uint8_t>(v >> s));
}
std::uint64_t get_be(const std::uint8_t* p, int n) {
  std::uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

std::size_t signed_field_size(const SignedBytes& s) {
  return kFieldHeader + s.body.size() + keys::kSignatureLength;
}

void put_field(std::vector<std::uint8_t>& o, FieldId id, std::size_t len) {
  o.push_back(static_cast<std::uint8_t>(id));
  put_u32(o, static_cast<std::uint32_t>(len));
}

void put_signed(std::vector<std::uint8_t>& o, FieldId id, const SignedBytes& s) {
  put_field(o, id, s.body.size() + keys::kSignatureLength);
  o.insert(o.end(), s.body.begin(), s.body.end());
  o.insert(o.end(), s.signature.begin(), s.signature.end());
}

}  // namespace

std::size_t encoded_size(const SyncMessage& m) {
  std::size_t n = kFrameHeaderBytes;
  for (const auto& r : m.records) n += signed_field_size(r);
  for (const auto& t : m.tombstones) n += signed_field_size(t);
  if (m.table_hash) n += kFieldHeader + 32;
  if (!m.digest.empty()) n += kFieldHeader + m.digest.size() * kDigestEntryBytes;
  if (!m.wanted.empty()) n += kFieldHeader + m.wanted.size() * 32;
  if (m.reply_wanted) n += kFieldHeader;
  if constexpr (kWritesNextVersionFields) n += kFieldHeader + kNextVersionFieldValue.size();
  return n;
}

std::vector<std::uint8_t> encode_message(const SyncMessage& m) {
  std::size_t size = encoded_size(m);
  bool record_too_big = std::any_of(m.records.begin(), m.records.end(), [](const auto& s) {
    return s.body.size() > kMaxRecordBytes;
  }) || std::any_of(m.tombstones.begin(), m.tombstones.end(), [](const auto& s) {
    return s.body.size() > kMaxRecordBytes;
  });
  if (size > kMaxMessageBytes || record_too_big || m.digest.size() > kMaxDigestEntries ||
      m.wanted.size() > kMaxWanted ||
      m.records.size() + m.tombstones.size() > kMaxSignedPerMessage)
    throw std::length_error("sync message over its limits (" + std::to_string(size) + " bytes)");
  std::vector<std::uint8_t> o;
  o.reserve(size);
  o.insert(o.end(), std::begin(kMagic), std::end(kMagic));
  put_u16(o, m.protocol_version);
  o.push_back(static_cast<std::uint8_t>(m.type));
  o.push_back(0);
  put_u32(o, static_cast<std::uint32_t>(size - kFrameHeaderBytes));
  for (const auto& r : m.records) put_signed(o, FieldId::kRecord, r);
  for (const auto& t : m.tombstones) put_signed(o, FieldId::kTombstone, t);
  if (m.table_hash) {
    put_field(o, FieldId::kTableHash, 32);
    o.insert(o.end(), m.table_hash->begin(), m.table_hash->end());
  }
  if (!m.digest.empty()) {
    put_field(o, FieldId::kDigestEntries, m.digest.size() * kDigestEntryBytes);
    for (const auto& e : m.digest) {
      o.insert(o.end(), e.identity.bytes().begin(), e.identity.bytes().end());
      put_u64(o, e.version);
    }
  }
  if (!m.wanted.empty()) {
    put_field(o, FieldId::kWanted, m.wanted.size() * 32);
    for (const auto& id : m.wanted) o.insert(o.end(), id.bytes().begin(), id.bytes().end());
  }
  if (m.reply_wanted) put_field(o, FieldId::kReplyWanted, 0);
  if constexpr (kWritesNextVersionFields) {
    put_field(o, static_cast<FieldId>(kNextVersionFieldId), kNextVersionFieldValue.size());
    o.insert(o.end(), kNextVersionFieldValue.begin(), kNextVersionFieldValue.end());
  }
  return o;
}

Result<Decoded> decode_message(std::span<const std::uint8_t> f) {
  if (f.size() > kMaxMessageBytes)
    return Error::invalid("sync message: " + std::to_string(f.size()) + " bytes, at most " +
                          std::to_string(kMaxMessageBytes) + " allowed");
  if (f.size() < kFrameHeaderBytes || std::memcmp(f.data(), kMagic, 4) != 0)
    return Error::invalid("sync message: no MSYN frame header");
  Decoded d;
  SyncMessage& m = d.message;
  m.protocol_version = static_cast<std::uint16_t>(get_be(f.data() + 4, 2));
  if (m.protocol_version == 0) return Error::invalid("sync message: protocol version 0");
  std::uint8_t type = f[6];
  std::uint64_t body_len = get_be(f.data() + 8, 4);
  if (body_len != f.size() - kFrameHeaderBytes)
    return Error::invalid("sync message: body length " + std::to_string(body_len) +
                          " does not match the frame (" +
                          std::to_string(f.size() - kFrameHeaderBytes) + " bytes)");
  if (type < static_cast<std::uint8_t>(MessageType::kPush) ||
      type > static_cast<std::uint8_t>(MessageType::kRecords)) {
    d.unknown_type = true;  // a message of a newer version: not ours to judge
    return d;
  }
  m.type = static_cast<MessageType>(type);

  std::size_t pos = kFrameHeaderBytes;
  while (pos < f.size()) {
    if (f.size() - pos < kFieldHeader) return Error::invalid("sync message: truncated field header");
    std::uint8_t id = f[pos];
    std::size_t len = static_cast<std::size_t>(get_be(f.data() + pos + 1, 4));
    pos += kFieldHeader;
    if (len > f.size() - pos)
      return Error::invalid("sync message: field " + std::to_string(id) + " runs past the end");
    auto v = f.subspan(pos, len);
    pos += len;
    switch (static_cast<FieldId>(id)) {
      case FieldId::kRecord:
      case FieldId::kTombstone: {
        if (v.size() < keys::kSignatureLength + 1 ||
            v.size() > kMaxRecordBytes + keys::kSignatureLength)
          return Error::invalid("sync message: a signed record of " + std::to_string(v.size()) +
                                " bytes (at most " + std::to_string(kMaxRecordBytes) +
                                " plus a signature)");
        if (m.records.size() + m.tombstones.size() >= kMaxSignedPerMessage)
          return Error::invalid("sync message: more than " +
                                std::to_string(kMaxSignedPerMessage) + " records");
        SignedBytes s;
        std::size_t body = v.size() - keys::kSignatureLength;
        s.body.assign(v.begin(), v.begin() + body);
        std::copy(v.begin() + body, v.end(), s.signature.begin());
        (id == static_cast<std::uint8_t>(FieldId::kRecord) ? m.records : m.tombstones)
            .push_back(std::move(s));
        break;
      }
      case FieldId::kTableHash: {
        if (v.size() != 32 || m.table_hash)
          return Error::invalid("sync message: table hash must be one field of 32 bytes");
        TableHash h{};
        std::copy(v.begin(), v.end(), h.begin());
        m.table_hash = h;
        break;
      }
      case FieldId::kDigestEntries: {
        if (v.size() % kDigestEntryBytes != 0 || !m.digest.empty() ||
            v.size() / kDigestEntryBytes > kMaxDigestEntries)
          return Error::invalid("sync message: digest must be one field of at most " +
                                std::to_string(kMaxDigestEntries) + " 40-byte entries");
        m.digest.reserve(v.size() / kDigestEntryBytes);
        for (std::size_t i = 0; i < v.size(); i += kDigestEntryBytes) {
          keys::KeyBytes k{};
          std::copy(v.begin() + i, v.begin() + i + 32, k.begin());
          m.digest.push_back({keys::IdentityPublicKey(k), get_be(v.data() + i + 32, 8)});
        }
        break;
      }
      case FieldId::kWanted: {
        if (v.size() % 32 != 0 || !m.wanted.empty() || v.size() / 32 > kMaxWanted)
          return Error::invalid("sync message: wanted list must be one field of at most " +
                                std::to_string(kMaxWanted) + " 32-byte identities");
        for (std::size_t i = 0; i < v.size(); i += 32) {
          keys::KeyBytes k{};
          std::copy(v.begin() + i, v.begin() + i + 32, k.begin());
          m.wanted.push_back(keys::IdentityPublicKey(k));
        }
        break;
      }
      case FieldId::kReplyWanted:
        if (!v.empty() || m.reply_wanted)
          return Error::invalid("sync message: reply-wanted must be one empty field");
        m.reply_wanted = true;
        break;
      default:
        break;  // a field of a newer version: skipped
    }
  }
  return d;
}

std::vector<SyncMessage> split_signed(MessageType type, std::vector<SignedBytes> records,
                                      std::vector<SignedBytes> tombstones) {
  std::vector<SyncMessage> out;
  SyncMessage cur;
  cur.type = type;
  std::size_t size = kFrameHeaderBytes;
  auto add = [&](SignedBytes&& s, bool tomb) {
    std::size_t n = signed_field_size(s);
    if (size + n > kMaxMessageBytes ||
        cur.records.size() + cur.tombstones.size() >= kMaxSignedPerMessage) {
      out.push_back(std::move(cur));
      cur = SyncMessage{};
      cur.type = type;
      size = kFrameHeaderBytes;
    }
    size += n;
    (tomb ? cur.tombstones : cur.records).push_back(std::move(s));
  };
  for (auto& t : tombstones) add(std::move(t), true);
  for (auto& r : records) add(std::move(r), false);
  if (!cur.records.empty() || !cur.tombstones.empty()) out.push_back(std::move(cur));
  return out;
}

}  // namespace meshd::controlplane
