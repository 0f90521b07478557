#include "domain/stream_rules.hpp"

#include <algorithm>
#include <cctype>

namespace jobcast::domain {

namespace {

AppendDecision verdict(AppendVerdict v) {
    AppendDecision decision;
    decision.verdict = v;
    return decision;
}

// The producer protocol: a new producer or a new epoch starts at seq 0; an
// older epoch is a zombie; within the epoch, seq at or below the last is a
// retry, last + 1 is next, anything beyond is a gap.
AppendDecision decide_producer(const std::optional<ProducerState>& state,
                               const ProducerClaim& claim) {
    AppendDecision decision;
    if (!state || claim.epoch > state->epoch) {
        if (claim.seq != 0) {
            if (!state) {
                decision.verdict = AppendVerdict::sequence_gap;
                decision.expected_seq = 0;
                decision.received_seq = claim.seq;
            } else {
                decision.verdict = AppendVerdict::invalid_epoch_seq;
            }
            return decision;
        }
        decision.producer_next = ProducerState{claim.epoch, 0};
        return decision;
    }
    if (claim.epoch < state->epoch) {
        decision.verdict = AppendVerdict::stale_epoch;
        decision.current_epoch = state->epoch;
        return decision;
    }
    if (claim.seq <= state->seq) {
        decision.verdict = AppendVerdict::duplicate;
        decision.producer_seq = state->seq;
        return decision;
    }
    if (claim.seq != state->seq + 1) {
        decision.verdict = AppendVerdict::sequence_gap;
        decision.expected_seq = state->seq + 1;
        decision.received_seq = claim.seq;
        return decision;
    }
    decision.producer_next = ProducerState{claim.epoch, claim.seq};
    return decision;
}

}  // namespace

std::string producer_tuple(const ProducerClaim& claim) {
    return claim.id + "\n" + std::to_string(claim.epoch) + "\n" + std::to_string(claim.seq);
}

AppendDecision decide_append(const StreamRecord& stream,
                             const std::optional<ProducerState>& producer,
                             const StreamAppendRequest& request) {
    if (stream.closed) {
        if (request.producer) {
            // The retry of the append that closed the stream succeeds again;
            // a zombie is told it is fenced even after the close.
            if (!stream.closed_by.empty() &&
                stream.closed_by == producer_tuple(*request.producer)) {
                AppendDecision decision = verdict(AppendVerdict::duplicate);
                decision.producer_seq = request.producer->seq;
                return decision;
            }
            if (producer && request.producer->epoch < producer->epoch) {
                AppendDecision decision = verdict(AppendVerdict::stale_epoch);
                decision.current_epoch = producer->epoch;
                return decision;
            }
            return verdict(AppendVerdict::closed);
        }
        if (!request.has_data) return verdict(AppendVerdict::close_again);
        return verdict(AppendVerdict::closed);
    }
    if (request.has_data && request.content_type != stream.content_type) {
        return verdict(AppendVerdict::content_type_mismatch);
    }
    AppendDecision decision;
    // The producer first: a retry that also carries Stream-Seq is a
    // duplicate, not a Stream-Seq conflict.
    if (request.producer) {
        decision = decide_producer(producer, *request.producer);
        if (decision.verdict != AppendVerdict::append) return decision;
    }
    if (request.stream_seq && !stream.stream_seq.empty() &&
        *request.stream_seq <= stream.stream_seq) {
        return verdict(AppendVerdict::stream_seq_conflict);
    }
    return decision;
}

bool stream_expired(const StreamRecord& stream, std::int64_t now_ms) {
    if (stream.expires_at_ms > 0 && now_ms >= stream.expires_at_ms) return true;
    return stream.ttl_seconds >= 0 && now_ms >= stream.accessed_at_ms + stream.ttl_seconds * 1000;
}

bool fork_too_deep(std::uint32_t source_depth) {
    return source_depth >= kMaxForkDepth;
}

std::string normalize_content_type(std::string_view content_type) {
    std::string_view media = content_type.substr(0, content_type.find(';'));
    while (!media.empty() && std::isspace(static_cast<unsigned char>(media.front())))
        media.remove_prefix(1);
    while (!media.empty() && std::isspace(static_cast<unsigned char>(media.back())))
        media.remove_suffix(1);
    std::string out(media);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

}  // namespace jobcast::domain
