// libFuzzer target: the batched `chunks` message. The input's first 10 bytes
// give an events count (u16) and a first wseq (u64), the rest is taken as the
// events array's items, behind a well-formed envelope. Whatever decodes has
// 1..kMaxChunksEvents events, wseqs that do not overflow and JSON-object data;
// it re-encodes to a frame that decodes to the same message; and the chunks
// of its events, batched as a worker does (chunk_event, begin_chunks,
// append_chunks_event), give the same bytes; the one-pass chunk decoder agrees
// with the full one. Anything else (a crash, a sanitizer report, an
// exception, a mismatch) aborts.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>

#include "fast_path_check.hpp"
#include "protocol/codec.hpp"
#include "protocol/json.hpp"
#include "protocol/limits.hpp"

using namespace jobcast;
using namespace jobcast::proto;

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz_chunks: %s\n", what);
    std::abort();
}

std::uint64_t big_endian(const std::uint8_t* p, std::size_t n) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i)
        v = (v << 8) | p[i];
    return v;
}

// A chunks envelope claiming `count` events from `wseq`, then `items` as they are.
std::string envelope(std::uint32_t count, std::uint64_t wseq, std::string_view items) {
    std::string out;
    begin_chunks("01HZY3J5KX8Q2V7R4M6N0P1S9T", 1, 0, 1, out);
    // begin_chunks ends with the wseq (uint64 0: one byte), the "events" key
    // and the array header (0x91): put the fuzzed ones in their place.
    out.resize(out.size() - 1 - 7 - 1);
    out.push_back('\xcf');
    for (int shift = 56; shift >= 0; shift -= 8)
        out.push_back(static_cast<char>((wseq >> shift) & 0xff));
    out +=
        "\xa6"
        "events";
    out.push_back('\xdd');
    for (int shift = 24; shift >= 0; shift -= 8)
        out.push_back(static_cast<char>((count >> shift) & 0xff));
    out.append(items);
    return out;
}

Chunks decoded_chunks(std::string_view frame, const char* what) {
    auto result = decode_worker_message(frame);
    auto* message = std::get_if<WorkerMessage>(&result);
    if (!message || !std::holds_alternative<Chunks>(*message)) fail(what);
    return std::get<Chunks>(*message);
}

void check(const Chunks& chunks) {
    if (chunks.events.empty() || chunks.events.size() > kMaxChunksEvents) {
        fail("a chunks with no events or too many decoded");
    }
    if (chunks.wseq > UINT64_MAX - (chunks.events.size() - 1)) fail("the wseqs overflow");
    for (const ChunkEvent& e : chunks.events) {
        if (!json::is_object(e.data)) fail("event data is not a JSON object");
    }

    std::string encoded;
    try {
        encode(WorkerMessage{chunks}, encoded);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "encode threw: %s\n", e.what());
        fail("a decoded chunks could not be encoded");
    }
    if (decoded_chunks(encoded, "our own encoding did not decode") != chunks) {
        fail("round trip changed the message");
    }

    // A batching worker's path: its chunk frames, their events cut out.
    std::string batch;
    begin_chunks(chunks.job, chunks.attempt, chunks.wseq, chunks.events.size(), batch);
    for (std::size_t i = 0; i < chunks.events.size(); ++i) {
        const ChunkEvent& e = chunks.events[i];
        const std::string frame = encode(WorkerMessage{
            Chunk{chunks.job, chunks.attempt, chunks.wseq + i, e.kind, e.data, e.ts}});
        append_chunks_event(chunk_event(frame), batch);
    }
    if (batch != encoded) fail("batched chunk frames differ from encode(Chunks)");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 10) return 0;
    const auto count = static_cast<std::uint32_t>(big_endian(data, 2));
    const std::uint64_t wseq = big_endian(data + 2, 8);
    const std::string frame = envelope(
        count, wseq, std::string_view(reinterpret_cast<const char*>(data + 10), size - 10));
    fuzz::check_fast_path(frame, DecodeLimits{});
    const auto result = decode_worker_message(frame);
    if (const auto* message = std::get_if<WorkerMessage>(&result)) {
        const auto* chunks = std::get_if<Chunks>(message);
        if (!chunks) fail("a chunks envelope decoded as another message");
        check(*chunks);
    }
    return 0;
}
