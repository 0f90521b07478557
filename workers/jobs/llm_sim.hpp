// The built-in deterministic text generator behind `llm.generate` with
// backend "sim": same prompt + seed -> same tokens, with nothing external.
//
// The algorithm (integration tests port it to Python, keep it this simple):
//   h     = FNV-1a 64 of the prompt's bytes (offset 0xcbf29ce484222325,
//           prime 0x100000001b3, arithmetic mod 2^64)
//   state = h XOR seed                 (seed taken mod 2^64: -1 -> 2^64-1)
//   for i in 0 .. max_tokens-1:
//       state = state + 0x9e3779b97f4a7c15               (mod 2^64)  -- splitmix64
//       z = state
//       z = (z XOR (z >> 30)) * 0xbf58476d1ce4e5b9       (mod 2^64)
//       z = (z XOR (z >> 27)) * 0x94d049bb133111eb       (mod 2^64)
//       z = z XOR (z >> 31)
//       word = kSimVocabulary[z % 64]
//       token i = word if i == 0 else " " + word
// The text is the concatenation of the tokens.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace jobcast::worker::jobs {

inline constexpr std::array<std::string_view, 64> kSimVocabulary = {
    "the",     "a",        "stream",    "of",     "tokens",  "flows",    "through", "jobcast",
    "and",     "every",    "event",     "is",     "stored",  "before",   "it",      "reaches",
    "client",  "worker",   "broker",    "log",    "resumes", "after",    "crash",   "without",
    "gap",     "or",       "duplicate", "model",  "writes",  "quickly",  "slowly",  "while",
    "browser", "watches",  "progress",  "in",     "real",    "time",     "with",    "ordered",
    "durable", "messages", "queue",     "lease",  "expires", "retries",  "succeed", "fail",
    "cancel",  "research", "plan",      "gather", "read",    "write",    "summary", "result",
    "data",    "signal",   "noise",     "light",  "river",   "mountain", "quiet",   "bright"};

// FNV-1a 64 of `text`.
std::uint64_t fnv1a64(std::string_view text);

// The first `max_tokens` tokens for (prompt, seed); see the algorithm above.
std::vector<std::string> sim_tokens(std::string_view prompt, std::int64_t seed,
                                    std::size_t max_tokens);

// Streams the same tokens one at a time (no vector of the whole text).
class SimTokenStream {
  public:
    SimTokenStream(std::string_view prompt, std::int64_t seed);
    // Writes token number `index()` into `out` (replacing its contents) and advances.
    void next(std::string& out);
    std::size_t index() const noexcept { return index_; }

  private:
    std::uint64_t state_;
    std::size_t index_ = 0;
};

}  // namespace jobcast::worker::jobs
