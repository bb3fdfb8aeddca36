#include "meshd/meshctl/client.h"

#include "common/secret_file.h"
#include "common/version.h"
#include "meshd/meshctl/views.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>

#include <sodium.h>

#include <cctype>
#include <charconv>
#include <cstdio>

namespace meshd::meshctl {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;

namespace {

// Runs one asynchronous operation to completion on `ioc` and returns its
// error: the client is sequential, and the Beast stream's own expiry (or a
// timer) bounds every wait.
template <class Initiate>
error_code run(asio::io_context& ioc, Initiate&& initiate) {
  error_code result = asio::error::would_block;
  initiate([&](error_code ec, auto&&...) { result = ec; });
  ioc.restart();
  ioc.run();
  return result;
}

int errno_of(const error_code& ec) {
  if (ec == beast::error::timeout) return ETIMEDOUT;
  if (ec.category() == boost::system::system_category() ||
      ec.category() == boost::system::generic_category())
    return ec.value();
  return EIO;
}

Error unreachable(const std::string& where, const error_code& ec) {
  std::string hint = " (is meshd running?)";
  if (ec == asio::error::access_denied)
    hint = " (the socket's mode and group decide who may manage meshd: run as root or as a "
           "member of that group)";
  std::string reason = ec == beast::error::timeout ? "no connection within the connect timeout"
                                                   : ec.message();
  return Error{{errno_of(ec), boost::system::generic_category()},
               "cannot reach meshd at " + where + ": " + reason + hint};
}

Error exchange_failed(const std::string& where, const error_code& ec, std::string_view stage,
                      std::chrono::milliseconds timeout, bool tcp) {
  if (ec == beast::error::timeout)
    return Error{{ETIMEDOUT, boost::system::generic_category()},
                 "meshd at " + where + " did not answer within " +
                     std::to_string(timeout.count() / 1000) + " s"};
  if (ec == http::error::end_of_stream || ec == asio::error::eof ||
      ec == asio::error::connection_reset)
    return Error{{ECONNRESET, boost::system::generic_category()},
                 "meshd at " + where + " closed the connection " + std::string(stage) +
                     (tcp ? " (is meshd stopping, or does the URL say http for a TLS listener?)"
                          : " (is meshd stopping?)")};
  if (ec == http::error::body_limit)
    return Error{{EMSGSIZE, boost::system::generic_category()},
                 "meshd at " + where + " sent an answer over " +
                     std::to_string(kMaxAnswerBytes >> 20) + " MiB"};
  return Error{{errno_of(ec), boost::system::generic_category()},
               "talking to meshd at " + where + " failed " + std::string(stage) + ": " +
                   ec.message()};
}

http::request<http::string_body> make_request(std::string_view method, std::string_view target,
                                              std::string_view body, const std::string& host,
                                              const std::string& token) {
  http::request<http::string_body> req;
  req.method_string(method);
  req.target(target);
  req.version(11);
  req.set(http::field::host, host);
  req.set(http::field::user_agent, std::string("meshctl/") + meshd::kVersion);
  req.set(http::field::accept, "application/json");
  if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
  if (!body.empty() || method == "POST") {
    req.set(http::field::content_type, "application/json");
    req.body() = std::string(body);
  }
  req.keep_alive(false);
  req.prepare_payload();
  return req;
}

// Writes `req` and reads the answer over a connected stream, both within
// `timeout` (the lowest layer's expiry).
template <class Stream>
Result<HttpAnswer> exchange(asio::io_context& ioc, Stream& stream,
                            const http::request<http::string_body>& req,
                            std::chrono::milliseconds timeout, const std::string& where, bool tcp) {
  beast::get_lowest_layer(stream).expires_after(timeout);
  if (error_code ec = run(ioc, [&](auto h) { http::async_write(stream, req, std::move(h)); }))
    return exchange_failed(where, ec, "while sending the request", timeout, tcp);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxAnswerBytes);
  if (error_code ec =
          run(ioc, [&](auto h) { http::async_read(stream, buffer, parser, std::move(h)); }))
    return exchange_failed(where, ec, "before answering", timeout, tcp);
  auto& res = parser.get();
  HttpAnswer a;
  a.status = static_cast<int>(res.result_int());
  a.content_type = std::string(res[http::field::content_type]);
  a.body = std::move(res.body());
  return a;
}

bool is_ip_literal(const std::string& host) {
  error_code ec;
  (void)asio::ip::make_address(host, ec);
  return !ec;
}

}  // namespace

Result<ServerUrl> parse_server_url(std::string_view url) {
  auto bad = [&] {
    return Error::invalid("--server " + printable(url) +
                          ": expected https://HOST:PORT or http://HOST:PORT (an IPv6 address in "
                          "brackets)");
  };
  ServerUrl u;
  std::string_view rest = url;
  if (rest.starts_with("https://")) {
    u.tls = true;
    rest.remove_prefix(8);
  } else if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else {
    return bad();
  }
  if (rest.ends_with('/')) rest.remove_suffix(1);
  std::string_view host, port;
  if (rest.starts_with('[')) {
    auto close = rest.find(']');
    if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':')
      return bad();
    host = rest.substr(1, close - 1);
    port = rest.substr(close + 2);
    error_code ec;
    (void)asio::ip::make_address_v6(std::string(host), ec);
    if (ec) return bad();
  } else {
    auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) return bad();
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    for (char c : host)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-')) return bad();
  }
  if (host.empty() || port.empty() || port.size() > 5) return bad();
  unsigned p = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (ec != std::errc() || end != port.data() + port.size() || p == 0 || p > 65535) return bad();
  u.host = std::string(host);
  u.port = static_cast<std::uint16_t>(p);
  u.host_header = std::string(rest.substr(0, rest.size() - port.size() - 1)) + ":" + std::string(port);
  return u;
}

Result<std::string> read_token_file(const std::string& path) {
  auto secret = read_secret_file(path);
  if (!secret) return Error{secret.error().code, "--token-file: " + secret.error().message};
  std::string_view t = *secret;
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!t.empty() && space(t.front())) t.remove_prefix(1);
  while (!t.empty() && space(t.back())) t.remove_suffix(1);
  // The token goes into an HTTP header: one word of printable ASCII.
  bool ok = !t.empty();
  for (char c : t)
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) ok = false;
  std::string token = ok ? std::string(t) : std::string();
  const bool empty = t.empty();
  sodium_memzero(secret->data(), secret->size());
  if (!ok)
    return Error::invalid("--token-file: " + printable(path) +
                          (empty ? std::string(" is empty")
                                 : std::string(" holds characters a bearer token cannot have (it "
                                               "must be one line of printable ASCII)")));
  return token;
}

std::string encode_path_segment(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

Result<Client> Client::make(ClientOptions opts) {
  Client c;
  if (!opts.server.empty()) {
    auto u = parse_server_url(opts.server);
    if (!u) return u.error();
    c.url_ = *u;
    c.where_ = std::string(u->tls ? "https://" : "http://") + u->host_header;
  } else {
    c.where_ = opts.socket_path;
  }
  c.opts_ = std::move(opts);
  return c;
}

Result<HttpAnswer> Client::request(std::string_view method, std::string_view target,
                                   std::string_view body,
                                   std::optional<std::chrono::milliseconds> timeout) const {
  std::chrono::milliseconds request_timeout = timeout.value_or(opts_.request_timeout);
  asio::io_context ioc;

  if (!url_) {
    beast::basic_stream<asio::local::stream_protocol> stream(ioc);
    stream.expires_after(opts_.connect_timeout);
    asio::local::stream_protocol::endpoint ep;
    try {
      ep = asio::local::stream_protocol::endpoint(opts_.socket_path);
    } catch (const boost::system::system_error& e) {  // a path longer than sun_path
      return unreachable(where_, e.code());
    }
    if (error_code ec = run(ioc, [&](auto h) { stream.async_connect(ep, std::move(h)); }))
      return unreachable(where_, ec);
    // The unix socket needs no token: its file mode decides who manages.
    return exchange(ioc, stream, make_request(method, target, body, "localhost", {}),
                    request_timeout, where_, false);
  }

  // Resolve within the connect timeout: a resolver has no expiry of its own.
  asio::ip::tcp::resolver resolver(ioc);
  asio::steady_timer timer(ioc, opts_.connect_timeout);
  asio::ip::tcp::resolver::results_type endpoints;
  error_code resolve_ec = asio::error::would_block;
  bool resolve_timed_out = false;
  timer.async_wait([&](error_code ec) {
    if (ec) return;
    resolve_timed_out = true;
    resolver.cancel();
  });
  resolver.async_resolve(url_->host, std::to_string(url_->port),
                         [&](error_code ec, asio::ip::tcp::resolver::results_type r) {
                           resolve_ec = ec;
                           endpoints = std::move(r);
                           timer.cancel();
                         });
  ioc.run();
  if (resolve_timed_out) return unreachable(where_, beast::error::timeout);
  if (resolve_ec) return unreachable(where_, resolve_ec);

  auto req = make_request(method, target, body, url_->host_header, opts_.bearer_token);
  if (!url_->tls) {
    beast::tcp_stream stream(ioc);
    stream.expires_after(opts_.connect_timeout);
    if (error_code ec = run(ioc, [&](auto h) { stream.async_connect(endpoints, std::move(h)); }))
      return unreachable(where_, ec);
    return exchange(ioc, stream, req, request_timeout, where_, true);
  }

  asio::ssl::context ctx(asio::ssl::context::tls_client);
  ctx.set_options(asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 |
                  asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
  error_code ec;
  if (opts_.cacert_file.empty()) ctx.set_default_verify_paths(ec);
  else ctx.load_verify_file(opts_.cacert_file, ec);
  if (ec)
    return Error{{EINVAL, boost::system::generic_category()},
                 opts_.cacert_file.empty()
                     ? "cannot load the system's CA certificates: " + ec.message() + " (give --cacert FILE)"
                     : "--cacert " + printable(opts_.cacert_file) + ": cannot load it: " + ec.message() +
                           " (expected PEM certificates)"};
  ctx.set_verify_mode(asio::ssl::verify_peer);
  beast::ssl_stream<beast::tcp_stream> stream(ioc, ctx);
  // The certificate must name the host as given: a DNS name, or for an IP
  // address an IP SAN (asio checks X509_check_ip_asc for those).
  stream.set_verify_callback(asio::ssl::host_name_verification(url_->host));
  if (!is_ip_literal(url_->host))  // SNI carries names only (RFC 6066 section 3)
    SSL_set_tlsext_host_name(stream.native_handle(), url_->host.c_str());
  beast::get_lowest_layer(stream).expires_after(opts_.connect_timeout);
  if (error_code cec = run(ioc, [&](auto h) {
        beast::get_lowest_layer(stream).async_connect(endpoints, std::move(h));
      }))
    return unreachable(where_, cec);
  beast::get_lowest_layer(stream).expires_after(opts_.connect_timeout);
  if (error_code hec = run(ioc, [&](auto h) {
        stream.async_handshake(asio::ssl::stream_base::client, std::move(h));
      })) {
    std::string reason = hec == beast::error::timeout ? "no answer within the connect timeout"
                                                      : hec.message();
    return Error{{EPROTO, boost::system::generic_category()},
                 "TLS handshake with meshd at " + where_ + " failed: " + reason +
                     " (is the server's certificate signed by --cacert and issued for " +
                     url_->host + "?)"};
  }
  return exchange(ioc, stream, req, request_timeout, where_, true);
}

std::string describe_error_answer(const HttpAnswer& a) {
  boost::system::error_code ec;
  boost::json::value v;
  try {
    v = boost::json::parse(a.body, ec);
  } catch (const std::exception&) {
    ec = boost::json::error::exception;
  }
  if (!ec && v.is_object()) {
    const auto& o = v.as_object();
    const auto* msg = o.if_contains("message");
    const auto* code = o.if_contains("error");
    if (msg && msg->is_string()) {
      std::string out = printable(msg->as_string());
      if (code && code->is_string())
        out += " (" + printable(code->as_string()) + ", HTTP " + std::to_string(a.status) + ")";
      else
        out += " (HTTP " + std::to_string(a.status) + ")";
      return out;
    }
  }
  return "meshd answered HTTP " + std::to_string(a.status) + " without an error message";
}

}  // namespace meshd::meshctl
