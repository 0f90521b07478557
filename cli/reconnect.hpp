// When `jobcast watch` (and `jobcast cancel`) try again after losing the
// broker: exponential backoff with full jitter, and a deadline after which
// they give up.
//
// Full jitter (a delay drawn uniformly from [0, ceiling]) rather than a fixed
// schedule: a broker restart drops every watcher at the same instant, and
// fixed delays would bring them all back in the same instant too.
// Pure: no clock (the caller says how long the outage has lasted) and a
// seeded random source.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <string>

namespace jobcast::cli {

class ReconnectPolicy {
  public:
    using duration = std::chrono::milliseconds;

    struct Config {
        duration initial{200};    // ceiling of the first delay
        duration max{5000};       // the ceiling stops doubling here
        duration give_up{60000};  // no connection for this long: stop trying
    };

    ReconnectPolicy(Config config, std::uint64_t seed);

    // The delay before the next attempt, given how long the connection has
    // been down; nullopt once that reached give_up. The last attempt is made
    // at the deadline rather than after it.
    std::optional<duration> next_delay(duration outage);

    // A connection worked (subscribed): the next outage starts from `initial`.
    void succeeded() { attempt_ = 0; }

    int attempts() const { return attempt_; }

  private:
    Config config_;
    int attempt_ = 0;  // retries since the last success
    std::mt19937_64 random_;
};

// "2 s", "0.5 s": a give_up deadline as the CLI says it (tenths cut off).
std::string seconds_text(std::chrono::milliseconds duration);

}  // namespace jobcast::cli
