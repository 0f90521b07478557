// Cluster mode's key layout (CLUSTER.md §5.1): a job belongs to one of P
// partitions, a pure function of its id, and every key of a job carries its
// partition's hash tag, so all of them live in one hash slot and one Redis
// Function call sees them all. The tags are chosen so that partition p's slot
// lies in the p-th of P equal slot ranges: the partitions spread evenly over
// primaries that own contiguous slot ranges (bare "{0}".."{63}" tags would not).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace jobcast::cluster {

inline constexpr std::uint32_t kDefaultPartitions = 64;
inline constexpr std::uint32_t kMaxPartitions = 16384;

class Partitions {
  public:
    // count in [1, kMaxPartitions]; throws std::invalid_argument otherwise.
    explicit Partitions(std::uint32_t count = kDefaultPartitions);

    std::uint32_t count() const { return static_cast<std::uint32_t>(tags_.size()); }
    // crc32(job id) mod P.
    std::uint32_t of(std::string_view job_id) const;
    // The hash tag of partition p, without braces (e.g. "p7.12").
    const std::string& tag(std::uint32_t partition) const { return tags_.at(partition); }
    std::uint16_t slot(std::uint32_t partition) const { return slots_.at(partition); }

    // "jc:{T}:" for the job's partition: the prefix of every key of the job.
    std::string prefix_of(std::string_view job_id) const;
    std::string prefix(std::uint32_t partition) const;

    std::string job_key(std::string_view job_id) const;         // HASH
    std::string events_key(std::string_view job_id) const;      // STREAM (event_entries.hpp)
    std::string checkpoint_key(std::string_view job_id) const;  // STRING
    std::string live_channel(std::string_view job_id) const;    // shard channel
    // Shard channel of the state changes of one owner's jobs (the jobs feed):
    // its own hash tag, so owners spread over the cluster.
    static std::string owner_feed_channel(std::string_view owner);

  private:
    std::vector<std::string> tags_;
    std::vector<std::uint16_t> slots_;
};

}  // namespace jobcast::cluster
