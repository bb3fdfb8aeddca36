#include "meshd/daemon/service_status.h"

namespace meshd::daemon {

namespace {

std::string plural(std::size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// A line break would end the STATUS= assignment and start a bogus one.
std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  constexpr std::size_t kMax = 200;  // systemctl shows one line; the journal has the rest
  if (s.size() > kMax) s = s.substr(0, kMax - 3) + "...";
  return s;
}

}  // namespace

std::string service_status(const ServiceFacts& f) {
  if (f.removed) return "removed from the cluster; mesh torn down";
  const bool etcd_away = f.datastore_reachable && !*f.datastore_reachable;
  if (f.cluster_mode && !f.joined) {
    std::string what = f.join_target.empty() ? "founding the cluster"
                                             : "joining the cluster through " + f.join_target;
    if (etcd_away) return what + ": waiting for the datastore (etcd unreachable)";
    return what;
  }
  if (!f.passed) return "starting: first reconcile pass";
  std::string s;
  if (f.error)
    s = "reconcile failing, retrying: " + *f.error;
  else
    s = "mesh in sync: " + plural(f.peers, "peer", "peers");
  if (f.cluster_mode && f.pod_cidr && !f.settled)
    s += "; pod CIDR " + *f.pod_cidr + " not settled yet (syncing), no new pods";
  else if (f.pod_cidr)
    s += "; pod CIDR " + *f.pod_cidr;
  if (etcd_away) s += "; etcd unreachable: running from the store";
  return one_line(s);
}

}  // namespace meshd::daemon
