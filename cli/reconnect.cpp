#include "cli/reconnect.hpp"

#include <algorithm>

namespace jobcast::cli {

ReconnectPolicy::ReconnectPolicy(Config config, std::uint64_t seed)
    : config_(config), random_(seed) {
    config_.initial = std::max(config_.initial, duration{1});
    config_.max = std::max(config_.max, config_.initial);
}

std::optional<ReconnectPolicy::duration> ReconnectPolicy::next_delay(duration outage) {
    if (outage >= config_.give_up) return std::nullopt;
    // initial * 2^attempt, without overflowing: past 2^20 the cap has long won.
    auto ceiling = config_.max;
    if (attempt_ < 20 && config_.initial * (1LL << attempt_) < config_.max) {
        ceiling = config_.initial * (1LL << attempt_);
    }
    ++attempt_;
    std::uniform_int_distribution<duration::rep> pick(0, ceiling.count());
    return std::min(duration{pick(random_)}, config_.give_up - outage);
}

std::string seconds_text(std::chrono::milliseconds duration) {
    const auto tenths = duration.count() / 100;
    std::string text = std::to_string(tenths / 10);
    if (tenths % 10) {
        text += '.';
        text += std::to_string(tenths % 10);
    }
    text += " s";
    return text;
}

}  // namespace jobcast::cli
