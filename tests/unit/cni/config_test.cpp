// The plugin's input rules: which env and stdin a runtime may send, and the
// spec error code (and named variable or field) for everything else.
#include "cni/config.h"

#include "common/ifname.h"

#include <gtest/gtest.h>

#include <map>

namespace meshd::cni {
namespace {

struct FakeEnv {
  std::map<std::string, std::string> vars;
  std::function<const char*(const char*)> fn() {
    return [this](const char* k) -> const char* {
      auto it = vars.find(k);
      return it == vars.end() ? nullptr : it->second.c_str();
    };
  }
};

FakeEnv add_env() {
  return {{{"CNI_COMMAND", "ADD"},
           {"CNI_CONTAINERID", "abc123"},
           {"CNI_NETNS", "/var/run/netns/pod"},
           {"CNI_IFNAME", "eth0"},
           {"CNI_PATH", "/opt/cni/bin"}}};
}

TEST(CniEnv, AddWithAllVariablesParses) {
  auto e = add_env();
  e.vars["CNI_ARGS"] = "IgnoreUnknown=1;K8S_POD_NAME=web";
  auto env = parse_env(e.fn());
  ASSERT_TRUE(env) << env.error().msg;
  EXPECT_EQ(env->command, Command::kAdd);
  EXPECT_EQ(env->container_id, "abc123");
  EXPECT_EQ(env->netns, "/var/run/netns/pod");
  EXPECT_EQ(env->ifname, "eth0");
  ASSERT_EQ(env->args.size(), 2u);
  EXPECT_EQ(env->args[1].first, "K8S_POD_NAME");
  EXPECT_EQ(env->args[1].second, "web");
}

void expect_env_error(FakeEnv e, const std::string& var) {
  auto env = parse_env(e.fn());
  ASSERT_FALSE(env) << "expected an error naming " << var;
  EXPECT_EQ(env.error().code, kInvalidEnvironment);
  EXPECT_NE((env.error().msg + env.error().details).find(var), std::string::npos)
      << env.error().msg << " / " << env.error().details;
}

TEST(CniEnv, MissingOrBadVariablesAreCode4NamingTheVariable) {
  {
    auto e = add_env();
    e.vars.erase("CNI_COMMAND");
    expect_env_error(e, "CNI_COMMAND");
  }
  {
    auto e = add_env();
    e.vars["CNI_COMMAND"] = "ATTACH";
    expect_env_error(e, "CNI_COMMAND");
  }
  {
    auto e = add_env();
    e.vars.erase("CNI_CONTAINERID");
    expect_env_error(e, "CNI_CONTAINERID");
  }
  {
    auto e = add_env();
    e.vars["CNI_CONTAINERID"] = "-leading-dash";
    expect_env_error(e, "CNI_CONTAINERID");
  }
  {
    auto e = add_env();
    e.vars.erase("CNI_IFNAME");
    expect_env_error(e, "CNI_IFNAME");
  }
  {
    auto e = add_env();
    e.vars["CNI_IFNAME"] = "this-is-too-long0";
    expect_env_error(e, "CNI_IFNAME");
  }
  {
    auto e = add_env();
    e.vars["CNI_IFNAME"] = "et h0";
    expect_env_error(e, "CNI_IFNAME");
  }
  {
    auto e = add_env();
    e.vars.erase("CNI_NETNS");
    expect_env_error(e, "CNI_NETNS");
  }
  {
    auto e = add_env();
    e.vars["CNI_NETNS"] = "relative/path";
    expect_env_error(e, "CNI_NETNS");
  }
  {
    auto e = add_env();
    e.vars["CNI_ARGS"] = "K8S_POD_NAME";
    expect_env_error(e, "CNI_ARGS");
  }
}

TEST(CniEnv, DelWithoutOrWithEmptyNetnsIsAccepted) {
  auto e = add_env();
  e.vars["CNI_COMMAND"] = "DEL";
  e.vars["CNI_NETNS"] = "";  // containerd sends it empty
  auto env = parse_env(e.fn());
  ASSERT_TRUE(env) << env.error().msg;
  EXPECT_TRUE(env->netns.empty());
  e.vars.erase("CNI_NETNS");
  EXPECT_TRUE(parse_env(e.fn()));
}

TEST(CniEnv, VersionStatusAndGcNeedOnlyTheCommand) {
  for (const char* cmd : {"VERSION", "STATUS", "GC"}) {
    FakeEnv e{{{"CNI_COMMAND", cmd}}};
    auto env = parse_env(e.fn());
    ASSERT_TRUE(env) << cmd << ": " << env.error().msg;
    EXPECT_EQ(to_string(env->command), cmd);
  }
}

TEST(CniArgs, ParsesPairsAndToleratesEmptySegments) {
  auto a = parse_cni_args("A=1;;B=;C=x=y;");
  ASSERT_TRUE(a);
  ASSERT_EQ(a->size(), 3u);
  EXPECT_EQ((*a)[1], (std::pair<std::string, std::string>{"B", ""}));
  EXPECT_EQ((*a)[2], (std::pair<std::string, std::string>{"C", "x=y"}));
  EXPECT_FALSE(parse_cni_args("=v"));
}

TEST(CniNames, IfnameFollowsTheOneInterfaceNameRule) {
  // CNI_IFNAME goes through common/ifname.h: what the daemon refuses, the
  // plugin refuses too, with the same expected form in the message.
  for (const char* name : {"eth0", "a23456789012345", "net1.100", "e_0-x"}) {
    auto e = add_env();
    e.vars["CNI_IFNAME"] = name;
    auto env = parse_env(e.fn());
    EXPECT_TRUE(env) << name << ": " << env.error().details;
  }
  for (const char* name : {"a234567890123456", ".", "..", "a/b", "a:b", "a b", "eth%d", "-eth0",
                           "eth\x01", "et@h0"}) {
    auto e = add_env();
    e.vars["CNI_IFNAME"] = name;
    auto env = parse_env(e.fn());
    ASSERT_FALSE(env) << name;
    EXPECT_EQ(env.error().code, kInvalidEnvironment);
    EXPECT_NE(env.error().details.find(std::string(kInterfaceNameForm)), std::string::npos)
        << env.error().details;
  }
}

TEST(CniEnv, NetnsMustBeAnAbsolutePathOfAPossibleLength) {
  {
    auto e = add_env();
    e.vars["CNI_NETNS"] = "var/run/netns/pod";
    expect_env_error(e, "CNI_NETNS");
  }
  {
    auto e = add_env();
    e.vars["CNI_NETNS"] = "/" + std::string(5000, 'a');
    expect_env_error(e, "CNI_NETNS");
  }
  {  // DEL never opens it: anything goes, kept for the log
    auto e = add_env();
    e.vars["CNI_COMMAND"] = "DEL";
    e.vars["CNI_NETNS"] = "relative";
    EXPECT_TRUE(parse_env(e.fn()));
  }
}

TEST(CniNames, ContainerIdRulesFollowTheSpec) {
  EXPECT_TRUE(valid_container_id("a.b_c-d9"));
  EXPECT_FALSE(valid_container_id("_x"));
  EXPECT_FALSE(valid_container_id("x y"));
}

constexpr const char* kGood = R"({"cniVersion":"1.0.0","name":"meshd","type":"meshd-cni",
  "database":"/tmp/x.db","mtu":1380,"logFile":"/tmp/cni.log",
  "dns":{"nameservers":["10.96.0.10"]}})";

TEST(CniConfig, GoodConfigParsesEveryField) {
  auto c = parse_config(kGood);
  ASSERT_TRUE(c) << c.error().msg;
  EXPECT_EQ(c->cni_version, "1.0.0");
  EXPECT_EQ(c->name, "meshd");
  EXPECT_EQ(c->database, "/tmp/x.db");
  EXPECT_EQ(c->mtu, 1380u);
  EXPECT_EQ(c->log_file, "/tmp/cni.log");
  EXPECT_NE(c->dns_json.find("10.96.0.10"), std::string::npos);
  EXPECT_FALSE(c->prev_result);
  EXPECT_FALSE(c->valid_attachments);
}

TEST(CniConfig, WholeNumberMtuWrittenAsADoubleIsAccepted) {
  for (const char* mtu : {"1400.0", "1.4e3", "68", "65535", "6.5535e4"}) {
    auto c = parse_config(std::string(R"({"cniVersion":"1.0.0","name":"n","type":"meshd-cni","mtu":)") +
                          mtu + "}");
    ASSERT_TRUE(c) << mtu << ": " << c.error().details;
  }
  EXPECT_EQ(parse_config(R"({"cniVersion":"1.0.0","name":"n","type":"meshd-cni","mtu":1.4e3})")->mtu,
            1400u);
}

TEST(CniConfig, DefaultsApplyWhenOptionalFieldsAreMissing) {
  auto c = parse_config(R"({"cniVersion":"0.4.0","name":"n","type":"meshd-cni"})");
  ASSERT_TRUE(c) << c.error().msg;
  EXPECT_EQ(c->database, "/var/lib/meshd/meshd.db");
  EXPECT_FALSE(c->mtu);
}

void expect_config_error(const std::string& json, int code, const std::string& named) {
  auto c = parse_config(json);
  ASSERT_FALSE(c) << json;
  EXPECT_EQ(c.error().code, code) << json << " → " << c.error().msg;
  EXPECT_NE((c.error().msg + c.error().details).find(named), std::string::npos)
      << c.error().msg << " / " << c.error().details;
}

TEST(CniConfig, ErrorsCarryTheSpecCodeAndNameTheField) {
  expect_config_error("not json", kDecodeFailure, "decode");
  expect_config_error("[1,2]", kDecodeFailure, "object");
  expect_config_error(R"({"name":"n","type":"meshd-cni"})", kInvalidConfig, "cniVersion");
  expect_config_error(R"({"cniVersion":"0.3.1","name":"n","type":"meshd-cni"})",
                      kIncompatibleVersion, "0.3.1");
  expect_config_error(R"({"cniVersion":"2.0.0","name":"n","type":"meshd-cni"})",
                      kIncompatibleVersion, "1.1.0");
  expect_config_error(R"({"cniVersion":"1.0.0","type":"meshd-cni"})", kInvalidConfig, "name");
  expect_config_error(R"({"cniVersion":"1.0.0","name":"n","type":"bridge"})", kInvalidConfig,
                      "type");
  expect_config_error(R"({"cniVersion":"1.0.0","name":"n","type":"meshd-cni","mtu":"1400"})",
                      kInvalidConfig, "mtu");
  expect_config_error(R"({"cniVersion":"1.0.0","name":"n","type":"meshd-cni","mtu":20})",
                      kInvalidConfig, "mtu");
  // Doubles beyond any integer type: range-checked before any conversion
  // (converting them is undefined behaviour, caught by the sanitizer pass).
  for (const char* mtu : {"1e300", "2e61", "-1e300", "9.3e18", "1e5", "1400.5", "-0.5", "67.0"})
    expect_config_error(std::string(R"({"cniVersion":"1.0.0","name":"n","type":"meshd-cni","mtu":)") +
                            mtu + "}",
                        kInvalidConfig, "mtu");
  expect_config_error(R"({"cniVersion":"1.0.0","name":"n","type":"meshd-cni","mtu":18446744073709551615})",
                      kInvalidConfig, "mtu");
  expect_config_error(R"({"cniVersion":"1.0.0","name":"n","type":"meshd-cni","database":"x.db"})",
                      kInvalidConfig, "database");
  expect_config_error(R"({"cniVersion":"1.0.0","name":"n","type":"meshd-cni","database":7})",
                      kInvalidConfig, "database");
  expect_config_error(R"({"cniVersion":"1.0.0","name":"n","type":"meshd-cni","dns":[]})",
                      kInvalidConfig, "dns");
}

TEST(CniConfig, UnknownFieldsInOurSectionAreCode2) {
  expect_config_error(R"({"cniVersion":"1.0.0","name":"n","type":"meshd-cni","mut":1400})",
                      kUnsupportedField, "mut");
  expect_config_error(
      R"({"cniVersion":"1.0.0","name":"n","type":"meshd-cni","ipam":{"type":"host-local"}})",
      kUnsupportedField, "ipam");
}

TEST(CniConfig, StandardFieldsFromRuntimesAreAccepted) {
  auto c = parse_config(R"({"cniVersion":"1.1.0","cniVersions":["1.0.0","1.1.0"],"name":"n",
    "type":"meshd-cni","runtimeConfig":{"portMappings":[]},"capabilities":{"portMappings":true},
    "args":{"cni":{}},"disableCheck":false,"disableGC":false})");
  EXPECT_TRUE(c) << c.error().msg;
}

TEST(CniConfig, PrevResultIsParsed) {
  auto c = parse_config(R"({"cniVersion":"1.0.0","name":"n","type":"meshd-cni","prevResult":{
    "cniVersion":"1.0.0","interfaces":[{"name":"mc1"},{"name":"eth0","mac":"aa:bb:cc:dd:ee:ff",
    "sandbox":"/var/run/netns/p"}],"ips":[{"address":"10.244.1.2/24","gateway":"10.244.1.1",
    "interface":1}],"routes":[{"dst":"0.0.0.0/0","gw":"10.244.1.1"}],"dns":{}}})");
  ASSERT_TRUE(c) << c.error().msg;
  ASSERT_TRUE(c->prev_result);
  ASSERT_EQ(c->prev_result->ips.size(), 1u);
  EXPECT_EQ(c->prev_result->ips[0].address.to_string(), "10.244.1.2/24");
  EXPECT_EQ(c->prev_result->ips[0].interface, 1);
  EXPECT_EQ(c->prev_result->interfaces[1].sandbox, "/var/run/netns/p");
  expect_config_error(
      R"({"cniVersion":"1.0.0","name":"n","type":"meshd-cni","prevResult":{"ips":[{"address":"nope"}]}})",
      kInvalidConfig, "prevResult");
}

TEST(CniConfig, GcAcceptsBothAttachmentKeysAndMergesThem) {
  auto c = parse_config(R"({"cniVersion":"1.1.0","name":"n","type":"meshd-cni",
    "cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}],
    "cni.dev/attachments":[{"containerID":"a","ifname":"eth0"},{"containerID":"b","ifname":"eth1"}]})");
  ASSERT_TRUE(c) << c.error().msg;
  ASSERT_TRUE(c->valid_attachments);
  EXPECT_EQ(c->valid_attachments->size(), 2u);
  auto only_old = parse_config(R"({"cniVersion":"1.1.0","name":"n","type":"meshd-cni",
    "cni.dev/attachments":[]})");
  ASSERT_TRUE(only_old);
  ASSERT_TRUE(only_old->valid_attachments);  // an empty list: every attachment is stale
  EXPECT_TRUE(only_old->valid_attachments->empty());
  expect_config_error(R"({"cniVersion":"1.1.0","name":"n","type":"meshd-cni",
    "cni.dev/valid-attachments":[{"containerID":"a"}]})",
                      kInvalidConfig, "cni.dev/valid-attachments");
}

TEST(CniConfig, RequestedVersionReadsOnlyCniVersion) {
  EXPECT_EQ(requested_version(R"({"cniVersion":"0.4.0"})"), "0.4.0");
  EXPECT_FALSE(requested_version("{}"));
  EXPECT_FALSE(requested_version(""));
}

}  // namespace
}  // namespace meshd::cni
