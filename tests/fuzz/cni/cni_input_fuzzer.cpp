// Fuzzes what a runtime (or anyone who can exec the plugin) controls: the
// CNI_* environment, stdin's configuration, and what the namespace file
// named by CNI_NETNS turns out to be. No I/O: the namespace rule is fed
// facts derived from the input instead of opening host paths.
//
// Input: byte 0 picks CNI_COMMAND (low 3 bits: ADD DEL CHECK VERSION STATUS
// GC, an unknown word, empty); byte 1 XOR '0' says which variables are unset
// (bit 0 NETNS, 1 CONTAINERID, 2 IFNAME, 3 ARGS, 4 COMMAND); byte 2 (low 3
// bits) what CNI_NETNS turns out to be: a foreign network namespace,
// missing, a regular file, a FIFO, a mount namespace, the plugin's own
// namespace, a namespace of unreadable type, a directory. So "000" is a
// well-formed ADD. Then lines: CNI_NETNS, CNI_CONTAINERID, CNI_IFNAME,
// CNI_ARGS; the rest is the configuration.
// Parsers must never crash, and every rejection must carry a spec error code.
#include "cni/config.h"
#include "cni/netns_facts.h"
#include "cni/result.h"

#include <linux/magic.h>
#include <sched.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

using namespace meshd::cni;

std::string_view next_line(std::string_view& in) {
  auto nl = in.find('\n');
  std::string_view line = in.substr(0, nl);
  in = nl == std::string_view::npos ? std::string_view{} : in.substr(nl + 1);
  return line;
}

// What the namespace file turns out to be; .second: whether ADD may use it.
std::pair<NetnsFacts, bool> facts_for(std::uint8_t selector, const FileId& own) {
  NetnsFacts f;
  f.fs_type = NSFS_MAGIC;
  f.mode = S_IFREG | 0444;
  f.ns_type = CLONE_NEWNET;
  f.id = {4, 4026532000};
  switch (selector & 7) {
    case 0: return {f, true};
    case 1: return {NetnsFacts{.open_errno = ENOENT}, false};
    case 2: f.fs_type = 0xEF53; f.ns_type = 0; break;  // ext4
    case 3: f.fs_type = 0x01021994; f.mode = S_IFIFO | 0600; f.ns_type = 0; break;  // tmpfs
    case 4: f.ns_type = CLONE_NEWNS; break;
    case 5: f.id = own; break;
    case 6: f.ns_type = 0; break;
    case 7: f.fs_type = 0x01021994; f.mode = S_IFDIR | 0755; f.ns_type = 0; break;
  }
  return {f, false};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::uint8_t hdr[3] = {0, 0, 0};
  for (std::size_t i = 0; i < 3 && !in.empty(); ++i) {
    hdr[i] = static_cast<std::uint8_t>(in.front());
    in.remove_prefix(1);
  }
  static constexpr const char* kCommands[] = {"ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC", "add", ""};
  const std::string command = kCommands[hdr[0] & 7];
  const unsigned unset = hdr[1] ^ static_cast<unsigned>('0');  // so that "0" unsets nothing
  const std::string netns(next_line(in));
  const std::string container_id(next_line(in));
  const std::string ifname(next_line(in));
  const std::string args(next_line(in));
  const std::string_view config = in;

  if (auto a = parse_cni_args(args); !a && a.error().code != kInvalidEnvironment) std::abort();
  auto env = parse_env([&](const char* k) -> const char* {
    std::string_view key(k);
    if (key == "CNI_COMMAND") return unset & 16 ? nullptr : command.c_str();
    if (key == "CNI_NETNS") return unset & 1 ? nullptr : netns.c_str();
    if (key == "CNI_CONTAINERID") return unset & 2 ? nullptr : container_id.c_str();
    if (key == "CNI_IFNAME") return unset & 4 ? nullptr : ifname.c_str();
    if (key == "CNI_ARGS") return unset & 8 ? nullptr : args.c_str();
    return nullptr;
  });
  if (!env) {
    if (env.error().code != kInvalidEnvironment) std::abort();
    (void)encode_error(env.error(), "1.0.0");
  } else if (env->command == Command::kAdd || env->command == Command::kCheck) {
    if (env->netns.empty() || env->netns.front() != '/') std::abort();
    const FileId own{4, 4026531840};
    auto [facts, usable] = facts_for(hdr[2], own);
    auto r = check_container_netns(env->netns, facts, own);
    if (r.has_value() != usable) std::abort();
    if (!r) {
      if (r.error().code != kUnknownContainer && r.error().code != kInvalidEnvironment) std::abort();
      (void)encode_error(r.error(), "1.1.0");
    }
  }

  auto c = parse_config(config);
  if (!c) {
    int code = c.error().code;
    if (code != 1 && code != 2 && code != 6 && code != 7) std::abort();
    (void)encode_error(c.error(), requested_version(config).value_or(""));
  } else {
    if (c->name.empty() || c->database.empty() || c->database[0] != '/') std::abort();
    if (c->mtu && (*c->mtu < 68 || *c->mtu > 65535)) std::abort();
    AddResult r;
    r.dns_json = c->dns_json;
    (void)encode_result(r, c->cni_version);
  }
  return 0;
}
