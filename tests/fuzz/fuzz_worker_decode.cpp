// libFuzzer target: arbitrary bytes through both decoders. Whatever decodes must
// re-encode, decode again to an equal message and re-encode to the same bytes;
// peek_assign must agree with the decoder on what it decodes; the one-pass
// chunk decoder must agree with the full one; anything else (a
// crash, a sanitizer report, an exception, a mismatch) aborts.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>

#include "fast_path_check.hpp"
#include "protocol/codec.hpp"
#include "protocol/json.hpp"

using namespace jobcast;
using namespace jobcast::proto;

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz_worker_decode: %s\n", what);
    std::abort();
}

void check_json_payloads(const WorkerMessage& message) {
    if (const auto* chunk = std::get_if<Chunk>(&message)) {
        if (!json::is_object(chunk->data)) fail("chunk data is not a JSON object");
    } else if (const auto* done = std::get_if<Done>(&message)) {
        if (!json::is_object(done->result)) fail("done result is not a JSON object");
    }
}

void check_json_payloads(const BrokerMessage& message) {
    if (const auto* assign = std::get_if<Assign>(&message)) {
        if (!json::is_object(assign->params)) fail("assign params is not a JSON object");
    }
}

template <class Message, class Decode>
void check_round_trip(std::string_view frame, Decode decode) {
    const Decoded<Message> first = decode(frame, DecodeLimits{});
    if (!std::holds_alternative<Message>(first)) return;
    const Message& message = std::get<Message>(first);
    check_json_payloads(message);

    std::string encoded;
    try {
        encode(message, encoded);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "encode threw: %s\n", e.what());
        fail("a decoded message could not be encoded");
    }
    const Decoded<Message> second = decode(encoded, DecodeLimits{});
    if (const auto* error = std::get_if<DecodeError>(&second)) {
        std::fprintf(stderr, "re-decode failed: %s: %s\n",
                     std::string(to_string(error->code)).c_str(), error->detail.c_str());
        fail("our own encoding did not decode");
    }
    if (std::get<Message>(second) != message) fail("round trip changed the message");
    if (encode(std::get<Message>(second)) != encoded) fail("encoding is not stable");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view frame(reinterpret_cast<const char*>(data), size);
    check_round_trip<WorkerMessage>(frame, [](std::string_view f, const DecodeLimits& l) {
        return decode_worker_message(f, l);
    });
    check_round_trip<BrokerMessage>(frame, [](std::string_view f, const DecodeLimits& l) {
        return decode_broker_message(f, l);
    });
    // What a worker reads from an assign it cannot decode agrees with the
    // decoder whenever the decoder can (and never crashes on the rest).
    const AssignHeader header = peek_assign(frame);
    const auto decoded = decode_broker_message(frame);
    if (const auto* message = std::get_if<BrokerMessage>(&decoded)) {
        if (const auto* assign = std::get_if<Assign>(message)) {
            if (!header.is_assign) fail("peek_assign missed a decodable assign");
            if (header.attempt != assign->attempt) fail("peek_assign read another attempt");
            if (assign->job.size() <= kMaxJobIdBytes && !assign->job.empty() &&
                header.job != assign->job) {
                fail("peek_assign read another job");
            }
        } else if (header.is_assign) {
            fail("peek_assign took another message for an assign");
        }
    }
    // Tight limits take the other branches (oversize, too_deep at small depths).
    DecodeLimits tight;
    tight.max_frame_bytes = size > 0 ? size - (data[0] & 1) : 0;
    tight.max_depth = size > 0 ? data[size - 1] % 6 : 0;
    fuzz::check_fast_path(frame, DecodeLimits{});
    fuzz::check_fast_path(frame, tight);
    (void)decode_worker_message(frame, tight);
    (void)decode_broker_message(frame, tight);
    return 0;
}
