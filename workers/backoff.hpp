// Reconnect delays: a ceiling growing exponentially from `min` to `max`, each
// delay drawn uniformly between 0 and that ceiling ("full jitter"), so that the
// workers of a broker that died do not all reconnect in lock-step. Pure: the
// random source is a seeded generator owned by the object.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>

namespace jobcast::worker {

class Backoff {
  public:
    using duration = std::chrono::milliseconds;

    Backoff(duration min, duration max, std::uint64_t seed)
        : min_(std::max(min, duration{1})), max_(std::max(max, min_)), current_(min_), rng_(seed) {}

    // The delay before the next attempt; each call doubles the ceiling up to max.
    duration next() {
        const auto ceiling = current_;
        current_ = std::min(max_, current_ * 2);
        std::uniform_int_distribution<std::int64_t> pick(0, ceiling.count());
        return duration{pick(rng_)};
    }

    // After a successful connection the next failure starts from min again.
    void reset() { current_ = min_; }

  private:
    duration min_;
    duration max_;
    duration current_;
    std::mt19937_64 rng_;
};

}  // namespace jobcast::worker
