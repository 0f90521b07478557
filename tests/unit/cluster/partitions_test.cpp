#include <catch2/catch.hpp>

#include <set>
#include <stdexcept>

#include "cluster/partitions.hpp"
#include "redis/slot.hpp"

using jobcast::cluster::Partitions;

TEST_CASE("each partition's tag hashes into its own equal share of the slots") {
    for (std::uint32_t count : {1u, 3u, 64u, 1000u}) {
        const Partitions partitions(count);
        REQUIRE(partitions.count() == count);
        std::set<std::uint16_t> slots;
        for (std::uint32_t p = 0; p < count; ++p) {
            const std::uint16_t slot = jobcast::redis::key_slot(partitions.tag(p));
            CHECK(slot == partitions.slot(p));
            CHECK(slot >= p * 16384ull / count);
            CHECK(slot < (p + 1) * 16384ull / count);
            slots.insert(slot);
        }
        CHECK(slots.size() == count);
    }
}

TEST_CASE("every key of a job lies in its partition's slot") {
    const Partitions partitions(64);
    const std::string id = "01JCZ8Q9W7ZC8Y0J3M5N6P7Q8R";
    const std::uint16_t slot = partitions.slot(partitions.of(id));
    for (const auto& key : {partitions.job_key(id), partitions.events_key(id),
                            partitions.checkpoint_key(id), partitions.live_channel(id)}) {
        CHECK(jobcast::redis::key_slot(key) == slot);
        CHECK(key.find(id) != std::string::npos);
    }
    CHECK(partitions.job_key(id) != partitions.events_key(id));
}

TEST_CASE("the partition is a pure function of the id, and ids spread over all partitions") {
    const Partitions a(64), b(64);
    std::set<std::uint32_t> seen;
    for (int i = 0; i < 5000; ++i) {
        const std::string id = "job-" + std::to_string(i);
        CHECK(a.of(id) == b.of(id));
        CHECK(a.of(id) < 64);
        seen.insert(a.of(id));
    }
    CHECK(seen.size() == 64);
    // crc32("123456789") = 0xCBF43926, the CRC-32 check value.
    CHECK(Partitions(1000).of("123456789") == 0xCBF43926u % 1000);
}

TEST_CASE("a partition count out of range is refused") {
    CHECK_THROWS_AS(Partitions(0), std::invalid_argument);
    CHECK_THROWS_AS(Partitions(16385), std::invalid_argument);
}

TEST_CASE("owners' feed channels carry the owner as their hash tag") {
    CHECK(Partitions::owner_feed_channel("alice") == "jc:feed:{alice}");
    CHECK(jobcast::redis::key_slot(Partitions::owner_feed_channel("alice")) ==
          jobcast::redis::key_slot("alice"));
}
