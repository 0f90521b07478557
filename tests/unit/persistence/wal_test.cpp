// The store checkpoints by itself: with readers reading all along, the WAL
// file stays bounded instead of growing with everything written, and it is
// emptied once the writes stop.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "store_test_support.hpp"

namespace jobcast::store {

TEST_CASE("the WAL stays bounded while readers keep reading", "[wal]") {
    testing::TempDir dir;
    StoreConfig config = testing::test_config(dir);
    auto store = Store::open(config);
    testing::create_running(*store, "job-1");
    testing::create_running(*store, "job-2");
    const std::string wal = config.path + "-wal";

    std::atomic<bool> done{false};
    std::atomic<std::uintmax_t> max_wal{0};
    std::atomic<long> reads{0};
    auto watch_wal = [&] {
        std::error_code ec;
        const auto size = std::filesystem::file_size(wal, ec);
        if (!ec && size > max_wal) max_wal = size;
    };
    std::vector<std::thread> readers;
    for (int r = 0; r < 2; ++r) {
        readers.emplace_back([&, r] {
            std::uint64_t after = 0;
            while (!done) {
                const auto events = store->events().read(r == 0 ? "job-1" : "job-2", after, 50);
                after = events.empty() ? 0 : events.back().seq;
                store->jobs().get("job-1");
                ++reads;
                watch_wal();
            }
        });
    }

    // ~80 MiB of events in 1000 commits: without checkpoints the WAL would
    // hold all of it.
    const std::string payload = "{\"text\":\"" + std::string(2000, 'x') + "\"}";
    constexpr int kChunks = 40'000;
    for (int w = 1; w <= kChunks; ++w) {
        store->submit(testing::chunk(w % 2 ? "job-1" : "job-2", 1, (w + 1) / 2, payload));
        if (w % 40 == 0) store->flush();  // many small commits
        if (w % 500 == 0) watch_wal();
    }
    store->flush();
    done = true;
    for (auto& reader : readers)
        reader.join();
    watch_wal();

    INFO("max WAL size " << max_wal / 1024 << " KiB after " << reads << " reads");
    CHECK(reads > 100);
    CHECK(max_wal < 64u * 1024 * 1024);
    CHECK(store->events().last_seq("job-1") == 2 + kChunks / 2);

    store->close();
    std::error_code ec;
    const auto final_size = std::filesystem::file_size(wal, ec);
    CHECK((ec || final_size == 0));  // TRUNCATE at close
}

TEST_CASE("the WAL is emptied once the writes stop, while the store stays open", "[wal]") {
    testing::TempDir dir;
    StoreConfig config = testing::test_config(dir);
    auto store = Store::open(config);
    testing::create_running(*store, "job-1");
    for (int w = 1; w <= 200; ++w)
        store->submit(testing::chunk("job-1", 1, w, "{\"text\":\"some words\"}"));
    store->flush();
    const std::string wal = config.path + "-wal";
    std::error_code ec;
    REQUIRE(std::filesystem::file_size(wal, ec) > 0);

    // The checkpointer truncates after half a second without a commit.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::filesystem::file_size(wal, ec) > 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK(std::filesystem::file_size(wal, ec) == 0);
    // And the data is all there, read back through the database file.
    CHECK(store->events().last_seq("job-1") == 2 + 200);
    store->submit(testing::chunk("job-1", 1, 201, "{}"));
    store->flush();
    CHECK(store->events().last_seq("job-1") == 2 + 201);
}

}  // namespace jobcast::store
