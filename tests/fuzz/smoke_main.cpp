// Without libFuzzer (the default gcc build), every fuzz target is linked with
// this driver and runs as a CTest "fuzz-smoke" test: it feeds the target the
// seed files given on the command line, then a fixed number of deterministic
// mutations of them. It catches crashes and sanitizer reports on the paths
// the seeds reach; the real coverage-guided run is MESHD_FUZZ=ON.
//
// When an input crashes (a sanitizer report or a fatal signal) it is written
// to smoke-crash-input.bin in the working directory (the test's build
// folder) and the path printed: the reproducer to fix and keep under
// tests/fuzz/<area>/regressions/<target>/ (docs/fuzzing.md).
#include <fcntl.h>
#include <unistd.h>

#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

// In the sanitizer runtimes (gcc's and clang's); absent in a plain build.
extern "C" void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

namespace {

const char* g_input = nullptr;  // the input being run
std::size_t g_size = 0;
constexpr char kCrashFile[] = "smoke-crash-input.bin";

// Async-signal-safe: open/write/close only.
void save_input() {
  if (!g_input) return;
  int fd = open(kCrashFile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  for (std::size_t off = 0; off < g_size;) {
    ssize_t n = write(fd, g_input + off, g_size - off);
    if (n <= 0) break;
    off += static_cast<std::size_t>(n);
  }
  close(fd);
  constexpr char msg[] = "fuzz-smoke: the crashing input is in smoke-crash-input.bin (working directory)\n";
  (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
  g_input = nullptr;
}

extern "C" void on_fatal_signal(int sig) {
  save_input();
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

}  // namespace

int main(int argc, char** argv) {
  if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(save_input);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP}) std::signal(sig, on_fatal_signal);
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
    g_input = s.data();
    g_size = s.size();
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
    g_input = nullptr;
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
