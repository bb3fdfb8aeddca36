#include "cni/result.h"

#include "cni/spec.h"

#include <boost/json.hpp>

namespace meshd::cni {

namespace json = boost::json;

std::string encode_result(const AddResult& r, std::string_view version) {
  json::object o;
  o["cniVersion"] = version;
  json::array ifs;
  for (const auto& i : r.interfaces) {
    json::object jo;
    jo["name"] = i.name;
    if (!i.mac.empty()) jo["mac"] = i.mac;
    if (!i.sandbox.empty()) jo["sandbox"] = i.sandbox;
    if (version == "1.1.0" && i.mtu != 0) jo["mtu"] = i.mtu;  // SPEC 1.1: interface mtu
    ifs.push_back(std::move(jo));
  }
  o["interfaces"] = std::move(ifs);
  json::array ips;
  for (const auto& ip : r.ips) {
    json::object jo;
    if (version == "0.4.0") jo["version"] = ip.address.address.is_v4() ? "4" : "6";
    jo["address"] = ip.address.to_string();
    if (ip.gateway) jo["gateway"] = ip.gateway->to_string();
    if (ip.interface) jo["interface"] = *ip.interface;
    ips.push_back(std::move(jo));
  }
  o["ips"] = std::move(ips);
  json::array routes;
  for (const auto& rt : r.routes) {
    json::object jo;
    jo["dst"] = rt.dst.to_string();
    if (rt.gw) jo["gw"] = rt.gw->to_string();
    routes.push_back(std::move(jo));
  }
  o["routes"] = std::move(routes);
  json::value dns = json::object();
  if (!r.dns_json.empty()) {
    boost::system::error_code ec;
    auto parsed = json::parse(r.dns_json, ec);
    if (!ec && parsed.is_object()) dns = std::move(parsed);
  }
  o["dns"] = std::move(dns);
  return json::serialize(o);
}

std::string encode_version(std::string_view version) {
  json::object o;
  o["cniVersion"] = is_supported_version(version) ? version : kLatestVersion;
  json::array list;
  for (auto v : kSupportedVersions) list.emplace_back(v);
  o["supportedVersions"] = std::move(list);
  return json::serialize(o);
}

std::string encode_error(const CniError& e, std::string_view version) {
  json::object o;
  o["cniVersion"] = is_supported_version(version) ? version : kLatestVersion;
  o["code"] = e.code;
  o["msg"] = e.msg;
  if (!e.details.empty()) o["details"] = e.details;
  return json::serialize(o);
}

}  // namespace meshd::cni
