// fmt (and so spdlog) formatters for key types. A secret must never reach a
// log line, so formatting any key prints only a short prefix of its PUBLIC
// half, the same prefix `wg show` users recognise; a preshared key (no public
// half) prints as a fixed placeholder, a token as its public id.
// Without this header, formatting a key type does not compile at all.
#pragma once

#include "keys/identity.h"
#include "keys/token.h"
#include "keys/wg_key.h"

#include <fmt/format.h>

namespace meshd::keys::detail {
// Accepts only an empty format spec ("{}"), so no width/precision trick can
// change what is printed.
struct KeyFormatterBase {
  constexpr auto parse(fmt::format_parse_context& ctx) -> decltype(ctx.begin()) {
    auto it = ctx.begin();
    if (it != ctx.end() && *it != '}') throw fmt::format_error("key types take no format spec");
    return it;
  }
};
}  // namespace meshd::keys::detail

template <>
struct fmt::formatter<meshd::keys::PublicKey> : meshd::keys::detail::KeyFormatterBase {
  template <class Ctx>
  auto format(const meshd::keys::PublicKey& k, Ctx& ctx) const {
    return fmt::format_to(ctx.out(), "{}", k.short_id());
  }
};

template <>
struct fmt::formatter<meshd::keys::PrivateKey> : meshd::keys::detail::KeyFormatterBase {
  template <class Ctx>
  auto format(const meshd::keys::PrivateKey& k, Ctx& ctx) const {
    return fmt::format_to(ctx.out(), "private key of {}", k.public_key().short_id());
  }
};

template <>
struct fmt::formatter<meshd::keys::PresharedKey> : meshd::keys::detail::KeyFormatterBase {
  template <class Ctx>
  auto format(const meshd::keys::PresharedKey&, Ctx& ctx) const {
    return fmt::format_to(ctx.out(), "(preshared key)");
  }
};

template <>
struct fmt::formatter<meshd::keys::SecretKey> : meshd::keys::detail::KeyFormatterBase {
  template <class Ctx>
  auto format(const meshd::keys::SecretKey&, Ctx& ctx) const {
    return fmt::format_to(ctx.out(), "(secret key)");
  }
};

template <>
struct fmt::formatter<meshd::keys::TokenKey> : meshd::keys::detail::KeyFormatterBase {
  template <class Ctx>
  auto format(const meshd::keys::TokenKey&, Ctx& ctx) const {
    return fmt::format_to(ctx.out(), "(token key)");
  }
};

template <>
struct fmt::formatter<meshd::keys::IdentityPublicKey> : meshd::keys::detail::KeyFormatterBase {
  template <class Ctx>
  auto format(const meshd::keys::IdentityPublicKey& k, Ctx& ctx) const {
    return fmt::format_to(ctx.out(), "{}", k.short_id());
  }
};

template <>
struct fmt::formatter<meshd::keys::IdentitySecretKey> : meshd::keys::detail::KeyFormatterBase {
  template <class Ctx>
  auto format(const meshd::keys::IdentitySecretKey& k, Ctx& ctx) const {
    return fmt::format_to(ctx.out(), "identity key of {}", k.public_key().short_id());
  }
};

template <>
struct fmt::formatter<meshd::keys::Token> : meshd::keys::detail::KeyFormatterBase {
  template <class Ctx>
  auto format(const meshd::keys::Token& t, Ctx& ctx) const {
    return fmt::format_to(ctx.out(), "token {}", t.id());
  }
};
