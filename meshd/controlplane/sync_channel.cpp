#include "meshd/controlplane/sync_channel.h"
#include "common/unique_fd.h"

#include "meshd/controlplane/asio_endpoint.h"
#include "meshd/controlplane/sync_message.h"

#include <sys/socket.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <set>
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

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

struct Inbound;
struct Outbound;

// Its own name, so that its lines carry MESHD_COMPONENT=control in the
// journal (a clone of the default logger: the same sinks and level).
std::shared_ptr<spdlog::logger> control_logger() {
  if (auto l = spdlog::get("control")) return l;
  auto l = spdlog::default_logger()->clone("control");
  spdlog::register_logger(l);
  return l;
}

}  // namespace

struct SyncChannel::Impl : std::enable_shared_from_this<SyncChannel::Impl> {
  Impl(asio::io_context& ioc, SyncChannelOptions o, const keys::IdentitySecretKey& self,
       MemberLookup lookup, Deliver deliver, Clock clock)
      : ioc_(ioc), opts_(std::move(o)), self_(self), lookup_(std::move(lookup)),
        deliver_(std::move(deliver)), clock_(std::move(clock)), acceptor_(ioc),
        log_(control_logger()) {}

  void accept();
  std::uint16_t peer_port() const { return opts_.peer_port ? opts_.peer_port : port_; }

  asio::io_context& ioc_;
  SyncChannelOptions opts_;
  const keys::IdentitySecretKey& self_;
  MemberLookup lookup_;
  Deliver deliver_;
  Clock clock_;
  tcp::acceptor acceptor_;
  std::shared_ptr<spdlog::logger> log_;
  std::uint16_t port_ = 0;
  SyncChannelCounters counters_;
  bool closed_ = false;
  std::size_t inbound_ = 0;
  std::set<Inbound*> live_in_;
  std::set<Outbound*> live_out_;
};

namespace {

// One envelope received: the header, then the rest, within io_timeout.
struct Inbound : std::enable_shared_from_this<Inbound> {
  Inbound(std::shared_ptr<SyncChannel::Impl> c, tcp::socket s, IpAddress src,
          keys::IdentityPublicKey expected)
      : ch(std::move(c)), socket(std::move(s)), timer(ch->ioc_), source(src),
        expected(expected) {
    ++ch->inbound_;
    ch->live_in_.insert(this);
  }
  ~Inbound() {
    ch->live_in_.erase(this);
    --ch->inbound_;
  }
  void stop() {
    boost::system::error_code ec;
    socket.close(ec);
    timer.cancel();
  }
  void refuse(const std::string& why) {
    ++ch->counters_.refused_envelope;
    ch->log_->debug("sync channel: refused an envelope from {}: {}", source.to_string(), why);
    stop();
  }
  void start() {
    timer.expires_after(ch->opts_.io_timeout);
    timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->done) return;
      ++self->ch->counters_.timeouts;
      self->ch->log_->debug("sync channel: {} did not send a whole envelope in time",
                            self->source.to_string());
      self->stop();
    });
    frame.resize(kEnvelopeHeaderBytes);
    asio::async_read(socket, asio::buffer(frame),
                     [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                       if (ec) return self->read_failed(ec);
                       self->on_header();
                     });
  }
  void read_failed(boost::system::error_code ec) {
    if (ec != asio::error::operation_aborted && !ch->closed_ && socket.is_open())
      return refuse("connection closed before the envelope was whole");
    stop();
  }
  void on_header() {
    if (ch->closed_) return;
    auto size = envelope_size(frame);
    if (!size) return refuse(size.error().message);
    frame.resize(*size);
    asio::async_read(socket, asio::buffer(frame.data() + kEnvelopeHeaderBytes,
                                          *size - kEnvelopeHeaderBytes),
                     [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                       if (ec) return self->read_failed(ec);
                       self->on_envelope();
                     });
  }
  void on_envelope() {
    if (ch->closed_) return;
    done = true;
    stop();
    auto e = open_envelope(frame, expected, ch->self_.public_key(), ch->clock_(),
                           ch->opts_.window_ms);
    if (!e) return refuse(e.error().message);
    ++ch->counters_.received;
    ch->counters_.bytes_in += frame.size();
    ch->deliver_(e->sender, e->payload);
  }

  std::shared_ptr<SyncChannel::Impl> ch;
  tcp::socket socket;
  asio::steady_timer timer;
  IpAddress source;
  keys::IdentityPublicKey expected;
  std::vector<std::uint8_t> frame;
  bool done = false;
};

// One envelope sent: connect from our address, write, close.
struct Outbound : std::enable_shared_from_this<Outbound> {
  Outbound(std::shared_ptr<SyncChannel::Impl> c, IpAddress to, std::vector<std::uint8_t> env)
      : ch(std::move(c)), socket(ch->ioc_), timer(ch->ioc_), to(to), envelope(std::move(env)) {
    ch->live_out_.insert(this);
  }
  ~Outbound() { ch->live_out_.erase(this); }
  void stop() {
    boost::system::error_code ec;
    socket.close(ec);
    timer.cancel();
  }
  void failed(const std::string& why) {
    if (finished) return;
    finished = true;
    ++ch->counters_.send_failures;
    ch->log_->debug("sync channel: send to {} failed: {}", to.to_string(), why);
    stop();
  }
  void start() {
    const tcp::endpoint target = to_asio(Endpoint{to, ch->peer_port()});
    const tcp::endpoint source = to_asio(Endpoint{ch->opts_.bind_address, 0});
    boost::system::error_code ec;
    if (!socket.open(source.protocol(), ec)) {
      set_cloexec(socket.native_handle());
      const std::string& dev = ch->opts_.device;
      if (!dev.empty() && ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_BINDTODEVICE,
                                       dev.c_str(), static_cast<socklen_t>(dev.size())) != 0)
        ec.assign(errno, boost::system::system_category());
      if (!ec) socket.bind(source, ec);
    }
    if (ec) return failed("bind " + ch->opts_.bind_address.to_string() + ": " + ec.message());
    timer.expires_after(ch->opts_.io_timeout);
    timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->failed("timed out");
    });
    socket.async_connect(target, [self = shared_from_this()](boost::system::error_code ec) {
      if (self->finished) return;
      if (ec) return self->failed("connect: " + ec.message());
      asio::async_write(self->socket, asio::buffer(self->envelope),
                        [self](boost::system::error_code ec, std::size_t) {
                          if (self->finished) return;
                          if (ec) return self->failed("write: " + ec.message());
                          self->finished = true;
                          ++self->ch->counters_.sent;
                          self->ch->counters_.bytes_out += self->envelope.size();
                          self->socket.shutdown(tcp::socket::shutdown_send, ec);
                          self->stop();
                        });
    });
  }

  std::shared_ptr<SyncChannel::Impl> ch;
  tcp::socket socket;
  asio::steady_timer timer;
  IpAddress to;
  std::vector<std::uint8_t> envelope;
  bool finished = false;
};

}  // namespace

void SyncChannel::Impl::accept() {
  acceptor_.async_accept([self = shared_from_this()](boost::system::error_code ec,
                                                     tcp::socket sock) {
    if (self->closed_) return;
    if (ec == asio::error::operation_aborted) return;
    if (!ec) {
      set_cloexec(sock.native_handle());
      boost::system::error_code pe;
      const auto peer = sock.remote_endpoint(pe);
      if (!pe) {
        const IpAddress source = from_asio(peer).address;
        auto member = self->lookup_(source);
        if (!member) {
          ++self->counters_.refused_source;
          self->log_->debug("sync channel: refused {}: not a member's address",
                            source.to_string());
        } else if (self->inbound_ >= self->opts_.max_connections) {
          ++self->counters_.refused_busy;
        } else {
          std::make_shared<Inbound>(self, std::move(sock), source, *member)->start();
        }
      }
    }
    self->accept();
  });
}

SyncChannel::SyncChannel(asio::io_context& ioc, SyncChannelOptions opts,
                         const keys::IdentitySecretKey& self, MemberLookup lookup,
                         Deliver deliver, Clock clock)
    : impl_(std::make_shared<Impl>(ioc, std::move(opts), self, std::move(lookup),
                                   std::move(deliver), std::move(clock))) {
  const Endpoint at{impl_->opts_.bind_address, impl_->opts_.port};
  const std::string where = "sync channel on " + at.to_string();
  if (at.empty()) throw ErrorException(Error::invalid(where + ": no bind address"));
  listen_on(impl_->acceptor_, at, where);
  impl_->port_ = impl_->acceptor_.local_endpoint().port();
  impl_->accept();
}

SyncChannel::~SyncChannel() { close(); }

void SyncChannel::send(const keys::IdentityPublicKey& to, const IpAddress& address,
                       std::vector<std::uint8_t> payload) {
  if (impl_->closed_) return;
  if (payload.size() > kMaxMessageBytes) {
    ++impl_->counters_.send_failures;
    impl_->log_->debug("sync channel: send to {} failed: a payload of {} bytes is above the limit",
                       address.to_string(), payload.size());
    return;
  }
  auto env = seal_envelope(impl_->self_, to, impl_->clock_(), payload);
  std::make_shared<Outbound>(impl_, address, std::move(env))->start();
}

std::uint16_t SyncChannel::port() const { return impl_->port_; }

const SyncChannelCounters& SyncChannel::counters() const { return impl_->counters_; }

void SyncChannel::close() {
  if (impl_->closed_) return;
  impl_->closed_ = true;
  boost::system::error_code ec;
  impl_->acceptor_.close(ec);
  auto in = impl_->live_in_;
  for (Inbound* c : in) c->stop();
  auto out = impl_->live_out_;
  for (Outbound* c : out) c->stop();
}

}  // namespace meshd::controlplane
