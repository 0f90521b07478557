#include "cluster/partitions.hpp"

#include <boost/crc.hpp>
#include <stdexcept>

#include "redis/slot.hpp"

namespace jobcast::cluster {

Partitions::Partitions(std::uint32_t count) {
    if (count < 1 || count > kMaxPartitions)
        throw std::invalid_argument("partitions must be between 1 and " +
                                    std::to_string(kMaxPartitions));
    tags_.reserve(count);
    slots_.reserve(count);
    for (std::uint32_t p = 0; p < count; ++p) {
        // The first tag "p<p>.<n>" whose slot falls in partition p's range.
        const auto low = static_cast<std::uint32_t>(std::uint64_t{p} * redis::kSlots / count);
        const auto high = static_cast<std::uint32_t>(std::uint64_t{p + 1} * redis::kSlots / count);
        for (std::uint32_t n = 0;; ++n) {
            std::string tag(1, 'p');
            tag.append(std::to_string(p)).append(1, '.').append(std::to_string(n));
            const std::uint16_t slot = redis::key_slot(tag);
            if (slot >= low && slot < high) {
                tags_.push_back(std::move(tag));
                slots_.push_back(slot);
                break;
            }
        }
    }
}

std::uint32_t Partitions::of(std::string_view job_id) const {
    boost::crc_32_type crc;
    crc.process_bytes(job_id.data(), job_id.size());
    return crc.checksum() % count();
}

std::string Partitions::prefix(std::uint32_t partition) const {
    return "jc:{" + tag(partition) + "}:";
}

std::string Partitions::prefix_of(std::string_view job_id) const {
    return prefix(of(job_id));
}

std::string Partitions::job_key(std::string_view job_id) const {
    return prefix_of(job_id) + "job:" + std::string(job_id);
}

std::string Partitions::events_key(std::string_view job_id) const {
    return prefix_of(job_id) + "ev:" + std::string(job_id);
}

std::string Partitions::checkpoint_key(std::string_view job_id) const {
    return prefix_of(job_id) + "ck:" + std::string(job_id);
}

std::string Partitions::live_channel(std::string_view job_id) const {
    return prefix_of(job_id) + "live:" + std::string(job_id);
}

std::string Partitions::owner_feed_channel(std::string_view owner) {
    return "jc:feed:{" + std::string(owner) + "}";
}

}  // namespace jobcast::cluster
