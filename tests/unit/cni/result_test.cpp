// What a runtime reads on stdout, for each spec version it may ask for.
#include "cni/result.h"

#include "cni/spec.h"

#include <boost/json.hpp>
#include <gtest/gtest.h>

namespace meshd::cni {
namespace {

namespace json = boost::json;

AddResult sample() {
  AddResult r;
  r.interfaces.push_back({"mc1234abcdef012", "aa:bb:cc:00:00:01", "", 1420});
  r.interfaces.push_back({"eth0", "aa:bb:cc:00:00:02", "/var/run/netns/p", 1420});
  r.ips.push_back({*IpPrefix::parse("10.244.1.2/24"), *IpAddress::parse("10.244.1.1"), 1});
  r.routes.push_back({*IpPrefix::parse("0.0.0.0/0"), *IpAddress::parse("10.244.1.1")});
  r.dns_json = R"({"nameservers":["10.96.0.10"]})";
  return r;
}

json::object parse(const std::string& s) { return json::parse(s).as_object(); }

TEST(CniResultEncoding, Version040HasIpVersionAndNoMtu) {
  auto o = parse(encode_result(sample(), "0.4.0"));
  EXPECT_EQ(o["cniVersion"], "0.4.0");
  auto ip = o["ips"].as_array()[0].as_object();
  EXPECT_EQ(ip["version"], "4");
  EXPECT_EQ(ip["address"], "10.244.1.2/24");
  EXPECT_EQ(ip["gateway"], "10.244.1.1");
  EXPECT_EQ(ip["interface"], 1);
  EXPECT_FALSE(o["interfaces"].as_array()[1].as_object().contains("mtu"));
  EXPECT_EQ(o["interfaces"].as_array()[1].as_object()["sandbox"], "/var/run/netns/p");
  EXPECT_FALSE(o["interfaces"].as_array()[0].as_object().contains("sandbox"));
  EXPECT_EQ(o["routes"].as_array()[0].as_object()["dst"], "0.0.0.0/0");
  EXPECT_EQ(o["dns"].as_object()["nameservers"].as_array()[0], "10.96.0.10");
}

TEST(CniResultEncoding, Version100DropsIpVersion) {
  auto o = parse(encode_result(sample(), "1.0.0"));
  EXPECT_EQ(o["cniVersion"], "1.0.0");
  EXPECT_FALSE(o["ips"].as_array()[0].as_object().contains("version"));
  EXPECT_FALSE(o["interfaces"].as_array()[1].as_object().contains("mtu"));
}

TEST(CniResultEncoding, Version110ReportsInterfaceMtu) {
  auto o = parse(encode_result(sample(), "1.1.0"));
  EXPECT_EQ(o["cniVersion"], "1.1.0");
  EXPECT_FALSE(o["ips"].as_array()[0].as_object().contains("version"));
  EXPECT_EQ(o["interfaces"].as_array()[1].as_object()["mtu"], 1420);
}

TEST(CniResultEncoding, EmptyDnsIsAnEmptyObject) {
  auto r = sample();
  r.dns_json.clear();
  auto o = parse(encode_result(r, "1.0.0"));
  EXPECT_TRUE(o["dns"].is_object());
  EXPECT_TRUE(o["dns"].as_object().empty());
}

TEST(CniVersionEncoding, ListsExactlyTheImplementedVersions) {
  auto o = parse(encode_version("1.0.0"));
  EXPECT_EQ(o["cniVersion"], "1.0.0");
  auto list = o["supportedVersions"].as_array();
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0], "0.4.0");
  EXPECT_EQ(list[1], "1.0.0");
  EXPECT_EQ(list[2], "1.1.0");
  EXPECT_EQ(parse(encode_version("9.9.9"))["cniVersion"], "1.1.0");
}

TEST(CniErrorEncoding, HasTheSpecFields) {
  auto o = parse(encode_error(cni_error(kInvalidEnvironment, "invalid CNI_IFNAME", "too long"),
                              "0.4.0"));
  EXPECT_EQ(o["cniVersion"], "0.4.0");
  EXPECT_EQ(o["code"], 4);
  EXPECT_EQ(o["msg"], "invalid CNI_IFNAME");
  EXPECT_EQ(o["details"], "too long");
  // An unsupported request version is answered in one we speak.
  EXPECT_EQ(parse(encode_error(cni_error(1, "x"), "0.1.0"))["cniVersion"], "1.1.0");
}

}  // namespace
}  // namespace meshd::cni
