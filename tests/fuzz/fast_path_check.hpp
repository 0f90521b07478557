// Shared by the decoder fuzz targets: the one-pass chunk decoder
// (protocol/codec_impl.hpp) takes only frames the full decoder takes, and
// gives the same message for them.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "protocol/codec.hpp"
#include "protocol/codec_impl.hpp"

namespace jobcast::fuzz {

inline void check_fast_path(std::string_view frame, const proto::DecodeLimits& limits) {
    proto::Decoded<proto::WorkerMessage> fast;
    if (!proto::detail::decode_chunk_frame(frame, limits, fast)) return;
    const auto full = proto::detail::decode_worker_message_in_full(frame, limits);
    const char* wrong = nullptr;
    if (!std::holds_alternative<proto::WorkerMessage>(full)) {
        wrong = "the fast path took a frame the full decoder refuses";
    } else if (std::get<proto::WorkerMessage>(fast) != std::get<proto::WorkerMessage>(full)) {
        wrong = "the fast path decoded another message than the full decoder";
    }
    if (wrong) {
        std::fprintf(stderr, "%s\n", wrong);
        std::abort();
    }
}

}  // namespace jobcast::fuzz
