// store_append: how fast the store commits worker events, and how fast it
// replays one job's log. Appends 64-byte token events over 100 interleaved
// running jobs through the real writer thread (group commit), for several
// batch caps and both durabilities; then reads a 1,000,000-event log back in
// pages of 10,000, and again as the broker resumes a WebSocket client: pages
// of --frame-page events, each made into one frame straight from the store's
// blocks (from=blocks) and, for comparison, from Events read first
// (from=events). Prints figures; asserts nothing.
//
//   store_append [--events N] [--replay-events N] [--dir DIR] [--caps 1000,8192,32768]
//                [--no-full] [--no-replay] [--frame-page N]
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "persistence/store.hpp"
#include "protocol/client_api.hpp"

namespace {

using namespace jobcast;
using namespace jobcast::store;
using Clock = std::chrono::steady_clock;

constexpr int kJobs = 100;

struct Options {
    std::size_t events = 2'000'000;
    std::size_t replay_events = 1'000'000;
    std::string dir;
    std::vector<std::size_t> caps{1000, 8192, 32768};
    bool full = true;
    bool replay = true;
    std::size_t frame_page = 2000;  // the broker's --replay-page
};

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

UnixMs now_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// {"text":"..."} padded to exactly 64 bytes.
std::string token_payload() {
    std::string payload = "{\"text\":\"";
    payload.append(64 - payload.size() - 2, 'x');
    payload += "\"}";
    return payload;
}

struct Stats {
    std::atomic<std::size_t> events{0};
    std::atomic<std::size_t> batches{0};
    std::atomic<double> commit_seconds{0};
};

std::unique_ptr<Store> open_store(const std::string& path, Durability durability,
                                  std::size_t batch_cap, Stats& stats) {
    std::filesystem::remove(path);
    std::filesystem::remove(path + "-wal");
    std::filesystem::remove(path + "-shm");
    StoreConfig config;
    config.path = path;
    config.durability = durability;
    config.max_batch_ops = batch_cap;
    config.max_queue_ops = std::max<std::size_t>(65536, 2 * batch_cap);
    return Store::open(config, [&stats](CommittedBatch& batch) {
        stats.events += batch.event_count;
        stats.batches += 1;
        stats.commit_seconds = stats.commit_seconds + batch.commit_seconds;
    });
}

std::vector<std::string> start_jobs(Store& store, int count) {
    std::vector<std::string> ids;
    for (int i = 0; i < count; ++i) {
        Job job;
        job.id = new_job_id(now_ms());
        job.type = "llm.generate";
        job.owner = "bench";
        job.params = R"({"prompt":"benchmark"})";
        store.submit(CreateJob{job, ""});
        store.submit(LeaseJob{job.id, "bench-worker", 0});
        ids.push_back(job.id);
    }
    store.flush();
    return ids;
}

void append_run(const Options& options, Durability durability, std::size_t batch_cap) {
    Stats stats;
    const std::string path = options.dir + "/append.db";
    auto store = open_store(path, durability, batch_cap, stats);
    const std::vector<std::string> ids = start_jobs(*store, kJobs);
    const std::size_t before = stats.events;
    const std::size_t batches_before = stats.batches;
    const std::string payload = token_payload();
    const UnixUs ts = now_ms() * 1000;

    const auto start = Clock::now();
    for (std::size_t i = 0; i < options.events; ++i) {
        AppendChunk op;
        op.job = ids[i % kJobs];
        op.attempt = 1;
        op.wseq = i / kJobs + 1;
        op.kind = EventKind::token;
        op.ts = ts + static_cast<UnixUs>(i);
        op.data = payload;
        store->submit(std::move(op));
    }
    store->flush();
    const double elapsed = seconds_since(start);

    const std::size_t committed = stats.events - before;
    const std::size_t batches = stats.batches - batches_before;
    std::printf(
        "append  durability=%-6s batch_cap=%-6zu events=%zu seconds=%.3f events_per_s=%.0f "
        "batches=%zu avg_batch_events=%.0f avg_commit_ms=%.2f\n",
        durability == Durability::full ? "full" : "normal", batch_cap, committed, elapsed,
        committed / elapsed, batches, batches ? double(committed) / batches : 0.0,
        batches ? stats.commit_seconds / batches * 1000 : 0.0);
    std::fflush(stdout);
    store->close();
}

// A resume as the broker's WebSocket session makes it: pages of `page`
// events (at most `page_bytes` of data) read after `after` straight from the
// store's blocks into one frame each. Returns the frames' bytes. Not inlined,
// so callgrind's --toggle-collect='*replay_frames(*' counts it alone.
[[gnu::noinline]] std::size_t replay_frames(EventLog& log, const std::string& id, std::size_t page,
                                            std::size_t page_bytes) {
    std::size_t bytes = 0;
    std::uint64_t after = 0;
    client_api::PageFramer framer(client_api::PageFramer::Format::websocket, id);
    for (;;) {
        const auto read =
            log.read_into(id, after, page, page_bytes, [&](std::span<const EventView> events) {
                for (const EventView& event : events)
                    framer.add(event);
                after = events.back().seq;
            });
        if (read.events == 0) break;
        bytes += framer.take().size();
    }
    return bytes;
}

// The same resume the way it was made before pages were framed from the
// store's blocks: each page read as Events, then framed. For comparison.
[[gnu::noinline]] std::size_t replay_frames_of_events(EventLog& log, const std::string& id,
                                                      std::size_t page, std::size_t page_bytes) {
    std::size_t bytes = 0;
    std::uint64_t after = 0;
    for (;;) {
        const std::vector<Event> events = log.read(id, after, page, page_bytes);
        if (events.empty()) break;
        bytes += client_api::websocket_frame(id, events).size();
        after = events.back().seq;
    }
    return bytes;
}

void replay_run(const Options& options) {
    Stats stats;
    const std::string path = options.dir + "/replay.db";
    auto store = open_store(path, Durability::normal, 8192, stats);
    const std::vector<std::string> ids = start_jobs(*store, 1);
    const std::string& id = ids[0];
    const std::string payload = token_payload();
    const UnixUs ts = now_ms() * 1000;
    for (std::size_t w = 1; w <= options.replay_events; ++w) {
        AppendChunk op;
        op.job = id;
        op.attempt = 1;
        op.wseq = w;
        op.kind = EventKind::token;
        op.ts = ts + static_cast<UnixUs>(w);
        op.data = payload;
        store->submit(std::move(op));
    }
    store->flush();
    const std::uint64_t last = store->events().last_seq(id).value_or(0);

    for (int round = 1; round <= 3; ++round) {
        const auto start = Clock::now();
        std::size_t read = 0;
        std::uint64_t after = 0;
        std::size_t bytes = 0;
        for (;;) {
            std::vector<Event> page = store->events().read(id, after, 10'000);
            if (page.empty()) break;
            read += page.size();
            for (const Event& event : page)
                bytes += event.data.size();
            after = page.back().seq;
        }
        const double elapsed = seconds_since(start);
        std::printf(
            "replay  round=%d events=%zu last_seq=%llu page=10000 seconds=%.3f events_per_s=%.0f "
            "MiB_per_s=%.1f\n",
            round, read, static_cast<unsigned long long>(last), elapsed, read / elapsed,
            bytes / elapsed / (1024 * 1024));
        std::fflush(stdout);
    }
    for (int round = 1; round <= 3; ++round) {
        for (const bool from_blocks : {true, false}) {
            const auto start = Clock::now();
            const std::size_t bytes =
                from_blocks
                    ? replay_frames(store->events(), id, options.frame_page, 4 << 20)
                    : replay_frames_of_events(store->events(), id, options.frame_page, 4 << 20);
            const double elapsed = seconds_since(start);
            std::printf(
                "frames  round=%d from=%-6s events=%llu page=%zu seconds=%.4f events_per_s=%.0f "
                "frame_MiB=%.1f\n",
                round, from_blocks ? "blocks" : "events", static_cast<unsigned long long>(last),
                options.frame_page, elapsed, last / elapsed, bytes / (1024.0 * 1024));
            std::fflush(stdout);
        }
    }
    store->close();
}

}  // namespace

int main(int argc, char** argv) {
    Options options;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "%s needs a value\n", arg.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (arg == "--events") {
            options.events = std::stoull(value());
        } else if (arg == "--replay-events") {
            options.replay_events = std::stoull(value());
        } else if (arg == "--frame-page") {
            options.frame_page = std::stoull(value());
        } else if (arg == "--dir") {
            options.dir = value();
        } else if (arg == "--caps") {
            options.caps.clear();
            std::string list = value();
            for (std::size_t at = 0; at < list.size();) {
                std::size_t comma = list.find(',', at);
                if (comma == std::string::npos) comma = list.size();
                options.caps.push_back(std::stoull(list.substr(at, comma - at)));
                at = comma + 1;
            }
        } else if (arg == "--no-full") {
            options.full = false;
        } else if (arg == "--no-replay") {
            options.replay = false;
        } else {
            std::fprintf(stderr,
                         "usage: store_append [--events N] [--replay-events N] [--dir DIR] "
                         "[--caps N,N,...] [--no-full] [--no-replay] [--frame-page N]\n");
            return 2;
        }
    }
    bool own_dir = false;
    if (options.dir.empty()) {
        std::string pattern =
            (std::filesystem::temp_directory_path() / "jobcast-bench-XXXXXX").string();
        if (mkdtemp(pattern.data()) == nullptr) {
            std::perror("mkdtemp");
            return 1;
        }
        options.dir = pattern;
        own_dir = true;
    }

    try {
        for (std::size_t cap : options.caps)
            append_run(options, Durability::normal, cap);
        if (options.full) append_run(options, Durability::full, 8192);
        if (options.replay) replay_run(options);
    } catch (const std::exception& error) {
        std::fprintf(stderr, "store_append: %s\n", error.what());
        return 1;
    }
    if (own_dir) std::filesystem::remove_all(options.dir);
    return 0;
}
