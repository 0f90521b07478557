#include "workers/jobs/llm_sim.hpp"

namespace jobcast::worker::jobs {

std::uint64_t fnv1a64(std::string_view text) {
    std::uint64_t hash = 0xcbf29ce484222325ULL;
    for (const char c : text) {
        hash ^= static_cast<unsigned char>(c);
        hash *= 0x100000001b3ULL;
    }
    return hash;
}

SimTokenStream::SimTokenStream(std::string_view prompt, std::int64_t seed)
    : state_(fnv1a64(prompt) ^ static_cast<std::uint64_t>(seed)) {}

void SimTokenStream::next(std::string& out) {
    state_ += 0x9e3779b97f4a7c15ULL;
    std::uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    out.clear();
    if (index_ > 0) out += ' ';
    out += kSimVocabulary[z % kSimVocabulary.size()];
    ++index_;
}

std::vector<std::string> sim_tokens(std::string_view prompt, std::int64_t seed,
                                    std::size_t max_tokens) {
    std::vector<std::string> tokens(max_tokens);
    SimTokenStream stream(prompt, seed);
    for (auto& token : tokens)
        stream.next(token);
    return tokens;
}

}  // namespace jobcast::worker::jobs
