// jobcast-bench-codec: the per-event CPU of the ingest path's pure parts, in
// isolation (one thread, no I/O), for one token chunk whose text is --size bytes:
//   encode      worker side: proto::encode of a Chunk (JSON data -> msgpack map)
//   decode      broker side: proto::decode_worker_message (msgpack -> JSON), of a
//               `chunk` frame and of a `chunks` frame of --per-frame such events
//   op build    broker side: the gateway's AppendChunk pushed into a fresh
//               std::vector<WriteOp> per batch of --batch frames, as drain_router does
// Prints ns per event; asserts nothing. For instruction counts, run it under
// callgrind with --toggle-collect='*decode_chunk_frames*' (or
// '*decode_chunks_frames*') and divide by the events.
//
//   jobcast-bench-codec [--events N] [--size S] [--batch B] [--per-frame K]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <variant>
#include <vector>

#include "persistence/store.hpp"
#include "protocol/codec.hpp"
#include "protocol/limits.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace jobcast;

double ns_per(Clock::time_point start, std::size_t n) {
    return std::chrono::duration<double, std::nano>(Clock::now() - start).count() /
           static_cast<double>(n);
}

// The broker's decode of `frame` (a chunk), `count` times. Not inlined, so
// callgrind's --toggle-collect can count its instructions alone.
[[gnu::noinline]] std::size_t decode_chunk_frames(const std::string& frame, std::size_t count) {
    const proto::DecodeLimits limits;
    std::size_t bytes = 0;
    for (std::size_t i = 0; i < count; ++i) {
        auto decoded = proto::decode_worker_message(frame, limits);
        bytes += std::get<proto::Chunk>(std::get<proto::WorkerMessage>(decoded)).data.size();
    }
    return bytes;
}

// The same for `frame`, a chunks.
[[gnu::noinline]] std::size_t decode_chunks_frames(const std::string& frame, std::size_t count) {
    const proto::DecodeLimits limits;
    std::size_t bytes = 0;
    for (std::size_t i = 0; i < count; ++i) {
        auto decoded = proto::decode_worker_message(frame, limits);
        bytes += std::get<proto::Chunks>(std::get<proto::WorkerMessage>(decoded))
                     .events.back()
                     .data.size();
    }
    return bytes;
}

}  // namespace

int main(int argc, char** argv) {
    std::size_t events = 1'000'000;
    std::size_t size = 64;
    std::size_t batch = 8192;
    std::size_t per_frame = 64;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string arg = argv[i];
        const auto value = std::strtoull(argv[i + 1], nullptr, 10);
        if (arg == "--events") {
            events = value;
        } else if (arg == "--size") {
            size = value;
        } else if (arg == "--batch") {
            batch = value;
        } else if (arg == "--per-frame") {
            per_frame = value;
        } else {
            std::fprintf(stderr,
                         "usage: jobcast-bench-codec [--events N] [--size S] [--batch B] "
                         "[--per-frame K]\n");
            return 2;
        }
    }
    if (events == 0 || batch == 0 || per_frame == 0 || per_frame > proto::kMaxChunksEvents)
        return 2;

    proto::Chunk chunk;
    chunk.job = "01JD3Q7V9K8W2X5Y6Z7A8B9C0D";  // a ULID: 26 characters
    chunk.attempt = 1;
    chunk.kind = EventKind::token;
    chunk.data = "{\"text\":\"" + std::string(size, 'x') + "\"}";
    chunk.ts = 1'700'000'000'000'000;
    proto::WorkerMessage message{chunk};

    // Worker side.
    std::string frame;
    std::size_t sink = 0;
    auto start = Clock::now();
    for (std::size_t i = 0; i < events; ++i) {
        std::get<proto::Chunk>(message).wseq = i + 1;
        proto::encode(message, frame);
        sink += frame.size();
    }
    const double encode_ns = ns_per(start, events);

    // Broker side: the same frame decoded again and again.
    std::size_t decoded_bytes = 0;
    start = Clock::now();
    decoded_bytes += decode_chunk_frames(frame, events);
    const double decode_ns = ns_per(start, events);

    // The batched form a worker sends: one `chunks` frame of per_frame events.
    std::string batched;
    proto::begin_chunks(chunk.job, chunk.attempt, 1, per_frame, batched);
    for (std::size_t i = 0; i < per_frame; ++i)
        proto::append_chunks_event(proto::chunk_event(frame), batched);
    start = Clock::now();
    decoded_bytes += decode_chunks_frames(batched, events / per_frame);
    const double batched_ns = ns_per(start, events / per_frame * per_frame);

    // The op the gateway builds per chunk, into a vector that starts empty per batch.
    start = Clock::now();
    std::size_t ops_total = 0;
    for (std::size_t done = 0; done < events;) {
        std::vector<store::WriteOp> ops;
        for (std::size_t i = 0; i < batch && done < events; ++i, ++done) {
            proto::Chunk c = chunk;  // stands for the decoded message the gateway moves from
            ops.push_back(store::AppendChunk{std::move(c.job), c.attempt, done + 1, c.kind, c.ts,
                                             std::move(c.data)});
        }
        ops_total += ops.size();
    }
    const double ops_ns = ns_per(start, events);

    // The same into one vector reused from batch to batch (cleared, capacity kept).
    start = Clock::now();
    {
        std::vector<store::WriteOp> ops;
        for (std::size_t done = 0; done < events;) {
            ops.clear();
            for (std::size_t i = 0; i < batch && done < events; ++i, ++done) {
                proto::Chunk c = chunk;
                ops.push_back(store::AppendChunk{std::move(c.job), c.attempt, done + 1, c.kind,
                                                 c.ts, std::move(c.data)});
            }
            ops_total += ops.size();
        }
    }
    const double reused_ns = ns_per(start, events);

    // What a WriteOp the size of an AppendChunk would cost (a boxed CreateJob).
    start = Clock::now();
    for (std::size_t done = 0; done < events;) {
        std::vector<std::variant<store::AppendChunk, store::LeaseJob>> ops;
        for (std::size_t i = 0; i < batch && done < events; ++i, ++done) {
            proto::Chunk c = chunk;
            ops.push_back(store::AppendChunk{std::move(c.job), c.attempt, done + 1, c.kind, c.ts,
                                             std::move(c.data)});
        }
        ops_total += ops.size();
    }
    const double small_ns = ns_per(start, events);

    // The copy of the Chunk inside the op loops, measured alone, to subtract.
    start = Clock::now();
    for (std::size_t i = 0; i < events; ++i) {
        proto::Chunk c = chunk;
        sink += c.job.size();
    }
    const double copy_ns = ns_per(start, events);

    std::printf("token chunk: %zu-byte text, %zu-byte frame, %zu events\n", size, frame.size(),
                events);
    std::printf("  encode (worker)             %8.1f ns/event\n", encode_ns);
    std::printf("  decode (broker)             %8.1f ns/event\n", decode_ns);
    std::printf("    ... %4zu per chunks frame  %8.1f ns/event\n", per_frame, batched_ns);
    std::printf("  AppendChunk into WriteOps   %8.1f ns/event (sizeof(WriteOp) = %zu bytes)\n",
                ops_ns - copy_ns, sizeof(store::WriteOp));
    std::printf("    ... into a reused vector  %8.1f ns/event\n", reused_ns - copy_ns);
    std::printf("    ... as a %zu-byte variant   %8.1f ns/event (fresh vector per batch)\n",
                sizeof(std::variant<store::AppendChunk, store::LeaseJob>), small_ns - copy_ns);
    std::printf("(checksums %zu %zu %zu)\n", sink, decoded_bytes, ops_total);
    return 0;
}
