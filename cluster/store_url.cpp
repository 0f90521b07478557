// parse_store_url: the --store redis-cluster://... URL into a RedisStoreConfig.
// Every number is parsed with bounds (from_chars, no overflow), every error
// names what was wrong.
#include <charconv>
#include <string>
#include <string_view>

#include "cluster/redis_store.hpp"

namespace jobcast::cluster {

namespace {

constexpr std::string_view kScheme = "redis-cluster://";

[[noreturn]] void bad(std::string_view what) {
    throw store::StoreError("bad store URL: " + std::string(what));
}

// A whole decimal number in [min, max], or an error naming `name`.
std::uint64_t number(std::string_view text, std::string_view name, std::uint64_t min,
                     std::uint64_t max) {
    std::uint64_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < min ||
        value > max) {
        bad(std::string(name) + " must be a whole number between " + std::to_string(min) + " and " +
            std::to_string(max) + ", got \"" + std::string(text) + "\"");
    }
    return value;
}

// "500ms", "2s" or "500" (milliseconds), at most an hour.
std::chrono::milliseconds duration(std::string_view text, std::string_view name) {
    constexpr std::uint64_t kMaxMs = 3'600'000;
    std::uint64_t scale = 1;
    if (text.ends_with("ms")) {
        text.remove_suffix(2);
    } else if (text.ends_with('s')) {
        text.remove_suffix(1);
        scale = 1000;
    }
    const std::uint64_t value = number(text, name, 1, kMaxMs / scale);
    return std::chrono::milliseconds(static_cast<std::int64_t>(value * scale));
}

}  // namespace

std::string seed_list(const std::vector<redis::Endpoint>& seeds) {
    std::string out;
    for (const redis::Endpoint& seed : seeds) {
        if (!out.empty()) out += ',';
        out += seed.str();
    }
    return out;
}

RedisStoreConfig parse_store_url(std::string_view url) {
    if (!url.starts_with(kScheme)) bad("expected redis-cluster://host:port[,host:port...]");
    url.remove_prefix(kScheme.size());
    std::string_view hosts = url;
    std::string_view query;
    if (const auto q = url.find('?'); q != std::string_view::npos) {
        hosts = url.substr(0, q);
        query = url.substr(q + 1);
    }

    RedisStoreConfig config;
    while (!hosts.empty()) {
        const auto comma = hosts.find(',');
        const std::string_view item = hosts.substr(0, comma);
        auto endpoint = redis::parse_endpoint(item);
        if (!endpoint || endpoint->host.empty()) {
            bad(std::string(1, '"').append(item).append("\" is not host:port (port 1-65535)"));
        }
        config.seeds.push_back(std::move(*endpoint));
        if (comma == std::string_view::npos) break;
        hosts.remove_prefix(comma + 1);
        if (hosts.empty()) bad("empty host after ','");
    }
    if (config.seeds.empty()) bad("no host:port given");

    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        const auto eq = pair.find('=');
        if (eq == std::string_view::npos) bad("\"" + std::string(pair) + "\" is not name=value");
        const std::string_view name = pair.substr(0, eq);
        const std::string_view value = pair.substr(eq + 1);
        if (name == "partitions") {
            config.partitions = static_cast<std::uint32_t>(number(value, name, 1, kMaxPartitions));
        } else if (name == "wait") {
            config.wait_replicas = static_cast<int>(number(value, name, 0, 16));
        } else if (name == "wait_timeout") {
            config.wait_timeout = duration(value, name);
        } else {
            bad("unknown option \"" + std::string(name) +
                "\" (known: partitions, wait, wait_timeout)");
        }
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
    }
    return config;
}

}  // namespace jobcast::cluster
