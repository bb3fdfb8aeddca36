// Without libFuzzer (the default gcc build), every fuzz target is linked with
// this driver and runs as a CTest "fuzz-smoke" test: it feeds the target the
// seed files given on the command line, then a fixed number of deterministic
// mutations of them. It catches crashes and sanitizer reports on the paths
// the seeds reach; the real coverage-guided run is MESHD_FUZZ=ON.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

int main(int argc, char** argv) {
  std::vector<std::string> seeds;
  for (int i = 1; i < argc; ++i) {
    std::ifstream f(argv[i], std::ios::binary);
    if (!f) {
      std::fprintf(stderr, "fuzz-smoke: cannot read seed %s\n", argv[i]);
      return 2;
    }
    seeds.emplace_back(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  if (seeds.empty()) seeds.emplace_back();
  std::mt19937_64 rng(0x6d657368);  // fixed: a failure reproduces
  auto run = [](const std::string& s) {
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
  };
  for (const auto& s : seeds) run(s);
  const int kMutations = 20000;
  for (int i = 0; i < kMutations; ++i) {
    std::string s = seeds[rng() % seeds.size()];
    int edits = 1 + static_cast<int>(rng() % 8);
    for (int e = 0; e < edits; ++e) {
      switch (rng() % 5) {
        case 0:  // flip a byte
          if (!s.empty()) s[rng() % s.size()] = static_cast<char>(rng());
          break;
        case 1:  // insert a byte
          s.insert(s.begin() + static_cast<long>(s.empty() ? 0 : rng() % (s.size() + 1)),
                   static_cast<char>(rng()));
          break;
        case 2:  // erase a range
          if (!s.empty()) {
            std::size_t at = rng() % s.size();
            s.erase(at, 1 + rng() % 16);
          }
          break;
        case 3:  // truncate
          if (!s.empty()) s.resize(rng() % s.size());
          break;
        case 4:  // duplicate a chunk
          if (!s.empty()) {
            std::size_t at = rng() % s.size();
            s.insert(at, s.substr(at, 1 + rng() % 32));
          }
          break;
      }
    }
    run(s);
  }
  std::printf("fuzz-smoke: %zu seeds, %d mutations, no crash\n", seeds.size(), kMutations);
  return 0;
}
