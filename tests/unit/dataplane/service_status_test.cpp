// The STATUS= line systemd shows for meshd: each state an operator can meet
// (founding, joining, waiting for etcd, unsettled, in sync, failing,
// removed) says so, and nothing breaks the sd_notify message apart.
#include "meshd/daemon/service_status.h"

#include <gtest/gtest.h>

namespace meshd::daemon {
namespace {

ServiceFacts member() {
  ServiceFacts f;
  f.cluster_mode = true;
  f.joined = true;
  f.settled = true;
  f.passed = true;
  f.pod_cidr = "10.244.1.0/24";
  f.peers = 3;
  return f;
}

TEST(ServiceStatus, FoundingAndJoiningSayWhatTheNodeWaitsFor) {
  ServiceFacts f;
  f.cluster_mode = true;
  f.passed = true;  // the device is up: the node is started, the join goes on
  EXPECT_EQ(service_status(f), "founding the cluster");
  f.join_target = "192.0.2.10:51821";
  EXPECT_EQ(service_status(f), "joining the cluster through 192.0.2.10:51821");
  f.datastore_reachable = false;
  EXPECT_EQ(service_status(f),
            "joining the cluster through 192.0.2.10:51821: waiting for the datastore (etcd unreachable)");
  f.join_target.clear();
  EXPECT_EQ(service_status(f), "founding the cluster: waiting for the datastore (etcd unreachable)");
}

TEST(ServiceStatus, MemberInSyncCountsPeersAndNamesItsCidr) {
  auto f = member();
  EXPECT_EQ(service_status(f), "mesh in sync: 3 peers; pod CIDR 10.244.1.0/24");
  f.peers = 1;
  EXPECT_EQ(service_status(f), "mesh in sync: 1 peer; pod CIDR 10.244.1.0/24");
  f.settled = false;
  EXPECT_EQ(service_status(f),
            "mesh in sync: 1 peer; pod CIDR 10.244.1.0/24 not settled yet (syncing), no new pods");
  f.settled = true;
  f.datastore_reachable = true;
  EXPECT_EQ(service_status(f), "mesh in sync: 1 peer; pod CIDR 10.244.1.0/24");
  f.datastore_reachable = false;
  EXPECT_EQ(service_status(f),
            "mesh in sync: 1 peer; pod CIDR 10.244.1.0/24; etcd unreachable: running from the store");
}

TEST(ServiceStatus, StaticModeHasNoClusterWords) {
  ServiceFacts f;
  f.passed = true;
  f.peers = 2;
  EXPECT_EQ(service_status(f), "mesh in sync: 2 peers");
  f.pod_cidr = "10.244.9.0/24";
  f.settled = false;  // settled means nothing without a cluster: a configured CIDR serves at once
  EXPECT_EQ(service_status(f), "mesh in sync: 2 peers; pod CIDR 10.244.9.0/24");
  f.passed = false;
  EXPECT_EQ(service_status(f), "starting: first reconcile pass");
}

TEST(ServiceStatus, FailingPassIsOneBoundedLine) {
  auto f = member();
  f.error = "set route 10.244.2.0/24: No such device\nsecond line";
  auto s = service_status(f);
  EXPECT_EQ(s.rfind("reconcile failing, retrying: set route 10.244.2.0/24: No such device second line", 0), 0u)
      << s;
  EXPECT_EQ(s.find('\n'), std::string::npos);
  f.error = std::string(1000, 'x');
  EXPECT_LE(service_status(f).size(), 200u);
}

TEST(ServiceStatus, RemovedWinsOverEverything) {
  auto f = member();
  f.removed = true;
  f.error = "anything";
  EXPECT_EQ(service_status(f), "removed from the cluster; mesh torn down");
}

}  // namespace
}  // namespace meshd::daemon
