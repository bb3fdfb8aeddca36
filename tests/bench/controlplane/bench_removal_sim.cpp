// A removal among 1000 simulated nodes (issue 12's benchmark): the sync rules
// of meshd/controlplane driven as the daemon drives them, over the simulated
// transport of tests/unit/controlplane/sync_sim.h (no processes, no network).
// Prints figures; asserts nothing on them.
//
// One member removes another (a random pair per seed; the removed node goes
// quiet at once). For each configuration, over several seeds:
//   pushes    the share of live nodes the pushes reached, and the hops
//             (message deliveries in a row) they took;
//   reach     rounds until every live node holds the tombstone (0: the
//             pushes alone got there before the first anti-entropy period);
//   released  rounds until the remover, sending its release probe with each
//             period's tick (to every member it lacks an answer from, or to
//             at most 32 of them chosen at random, as a daemon that bounds
//             its probes would), sees the tombstone released (every member
//             showed it holds it): when the CIDR may be handed out again.
//             The probe also carries the tombstone: a member that lacks it
//             answers with its digest and is sent it.
// Wall time is rounds x the anti-entropy period (1000 ms by default); the
// hops add one network round trip each, well under a period on a LAN.
// "push only" runs no anti-entropy at all: how far the pushes alone carry it.
//
// Usage: bench_removal_sim [--nodes N] [--seeds S] [--period-ms MS]
#include "sync_sim.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

using namespace meshd::controlplane;
using namespace meshd::controlplane::testing;

namespace {

struct Options {
  std::size_t nodes = 1000;
  int seeds = 5;
  int period_ms = 1000;
};

struct Run {
  int reach_round = -1;       // -1: not within the cap
  std::size_t pushed_to = 0;  // live nodes holding it when the pushes were done
  int push_hops = 0;          // hops until the pushes were done
  int released_round = -1;  // at the remover, or at the bystander when watched
  double bytes_per_node = 0;  // every message sent until the end of the run
};

constexpr std::size_t kNoProbe = 0;

constexpr int kMaxRounds = 200;
constexpr int kMaxBystanderRounds = 20000;

// With `bystander`, `released` is watched at a third member that sends no
// release probe of its own: what an admitting member other than the remover
// knows from its anti-entropy exchanges and the probes it answers.
Run run_one(const Options& o, std::uint64_t seed, double loss, SyncOptions sync, bool rounds,
            std::size_t probe_limit, bool bystander) {
  Sim sim(o.nodes, loss, sync, /*full_start=*/true, seed);
  std::mt19937_64 pick(seed * 31 + 7);
  std::size_t remover = 1 + pick() % (o.nodes - 1);
  std::size_t victim = remover;
  while (victim == remover) victim = 1 + pick() % (o.nodes - 1);
  std::size_t watched = remover;
  if (bystander)
    while (watched == remover || watched == victim) watched = 1 + pick() % (o.nodes - 1);
  const auto gone = sim.key(victim).public_key();
  sim.silence(victim);
  if (probe_limit != kNoProbe) sim.probe_release_each_round(remover, probe_limit);

  Run r;
  int hop0 = sim.figures().hops;
  sim.publish(remover, sim.tombstone_for(victim, remover, 5000));
  sim.deliver();
  r.pushed_to = sim.count_with(gone, kTombstoneVersion);
  r.push_hops = sim.figures().hops - hop0;
  if (r.pushed_to == sim.live()) r.reach_round = 0;
  if (sim.node(watched).released(gone)) r.released_round = 0;
  if (!rounds) return r;
  bool probing = probe_limit != kNoProbe || bystander;
  int round = 0;
  int cap = bystander ? kMaxBystanderRounds : kMaxRounds;
  while (round < cap && (r.reach_round < 0 || (probing && r.released_round < 0))) {
    sim.round();
    ++round;
    if (r.reach_round < 0 && sim.count_with(gone, kTombstoneVersion) == sim.live())
      r.reach_round = round;
    if (r.released_round < 0 && sim.node(watched).released(gone)) r.released_round = round;
  }
  r.bytes_per_node = static_cast<double>(sim.figures().bytes) / static_cast<double>(o.nodes);
  return r;
}

// "median (min-max)" of the values; "-" for a value that never came.
std::string summary(std::vector<int> v) {
  if (std::find(v.begin(), v.end(), -1) != v.end())
    return "not within the cap";
  std::sort(v.begin(), v.end());
  return std::to_string(v[v.size() / 2]) + " (" + std::to_string(v.front()) + "-" +
         std::to_string(v.back()) + ")";
}

std::string seconds(std::vector<int> rounds, int period_ms) {
  if (std::find(rounds.begin(), rounds.end(), -1) != rounds.end()) return "-";
  std::sort(rounds.begin(), rounds.end());
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f s", rounds[rounds.size() / 2] * period_ms / 1000.0);
  return buf;
}

void row(const Options& o, const char* what, double loss, SyncOptions sync, bool rounds,
         std::size_t probe_limit, bool bystander = false, int seeds = 0) {
  std::vector<int> reach, released, push_hops;
  std::vector<double> pushed, bytes;
  auto t0 = std::chrono::steady_clock::now();
  for (int s = 1; s <= (seeds ? seeds : o.seeds); ++s) {
    Run r = run_one(o, static_cast<std::uint64_t>(s), loss, sync, rounds, probe_limit, bystander);
    reach.push_back(r.reach_round);
    released.push_back(r.released_round);
    pushed.push_back(100.0 * static_cast<double>(r.pushed_to) / static_cast<double>(o.nodes - 1));
    bytes.push_back(r.bytes_per_node);
    push_hops.push_back(r.push_hops);
  }
  double cpu = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::sort(pushed.begin(), pushed.end());
  std::sort(push_hops.begin(), push_hops.end());
  std::printf("%-44s %4.0f%%  pushes reached %5.1f%% in %2d hops", what, loss * 100,
              pushed[pushed.size() / 2], push_hops[push_hops.size() / 2]);
  if (rounds) {
    std::printf("  reach: %s rounds = %s", summary(reach).c_str(),
                seconds(reach, o.period_ms).c_str());
    if (probe_limit != kNoProbe || bystander)
      std::printf("  released: %s rounds = %s", summary(released).c_str(),
                  seconds(released, o.period_ms).c_str());
    std::sort(bytes.begin(), bytes.end());
    std::printf("  sent %.1f KB/node", bytes[bytes.size() / 2] / 1000);
  }
  std::printf("  [%.1f s to simulate]\n", cpu);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    auto next = [&](const char* flag) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_removal_sim: %s needs a value\n", flag);
        std::exit(2);
      }
      return argv[++i];
    };
    if (!std::strcmp(argv[i], "--nodes")) o.nodes = std::stoul(next("--nodes"));
    else if (!std::strcmp(argv[i], "--seeds")) o.seeds = std::stoi(next("--seeds"));
    else if (!std::strcmp(argv[i], "--period-ms")) o.period_ms = std::stoi(next("--period-ms"));
    else {
      std::fprintf(stderr, "usage: bench_removal_sim [--nodes N] [--seeds S] [--period-ms MS]\n");
      return 2;
    }
  }
  if (o.nodes < 3 || o.seeds < 1 || o.period_ms < 1) {
    std::fprintf(stderr, "bench_removal_sim: at least 3 nodes, 1 seed and a period of 1 ms\n");
    return 2;
  }
  std::printf(
      "A removal among %zu simulated nodes; rounds are anti-entropy periods of %d ms; median "
      "(min-max) over %d seeds\n",
      o.nodes, o.period_ms, o.seeds);
  SyncOptions defaults;
  SyncOptions push_only;  // no anti-entropy: rounds are not run at all
  SyncOptions ae_only;
  ae_only.push = false;
  for (double loss : {0.0, 0.10}) {
    row(o, "defaults (push 3, anti-entropy 2), no probe", loss, defaults, true, kNoProbe);
    row(o, "defaults, release probe to every member", loss, defaults, true, SIZE_MAX);
    row(o, "defaults, release probe to at most 32", loss, defaults, true, 32);
    row(o, "push only", loss, push_only, false, kNoProbe);
    row(o, "anti-entropy only (fanout 2), no probe", loss, ae_only, true, kNoProbe);
    row(o, "anti-entropy only, probe to every member", loss, ae_only, true, SIZE_MAX);
  }
  // Slow by nature (it needs every member's Summary or Digest): one seed.
  row(o, "defaults, remover probes; another member", 0.0, defaults, true, SIZE_MAX,
      /*bystander=*/true, 1);
  return 0;
}
