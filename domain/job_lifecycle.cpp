#include "domain/job_lifecycle.hpp"

#include <algorithm>
#include <cassert>
#include <charconv>
#include <cmath>
#include <system_error>
#include <utility>

#include "protocol/json.hpp"

namespace jobcast::domain {

namespace {

// {"state":S,"attempt":A[,"worker":W][,"resume_seq":N][,"reason":R]}
std::string state_event_data(JobState state, int attempt, std::string_view worker,
                             std::string_view reason, std::uint64_t resume_seq = 0) {
    std::string data = "{\"state\":\"";
    data += to_string(state);
    data += "\",\"attempt\":";
    data += std::to_string(attempt);
    if (!worker.empty()) {
        data += ",\"worker\":";
        json::append_quoted(data, worker);
    }
    if (resume_seq != 0) {
        data += ",\"resume_seq\":";
        data += std::to_string(resume_seq);
    }
    if (!reason.empty()) {
        data += ",\"reason\":";
        json::append_quoted(data, reason);
    }
    data += '}';
    return data;
}

Decision refuse(WriteStatus status, std::string message) {
    Decision decision;
    decision.status = status;
    decision.message = std::move(message);
    return decision;
}

// A refused worker message of the attempt holding the lease: the committed
// wseq is still reported.
Decision refuse_acked(const JobRecord& record, WriteStatus status, std::string message) {
    Decision decision = refuse(status, std::move(message));
    decision.acked_wseq = record.wseq;
    return decision;
}

Decision accepted(const JobRecord& record) {
    Decision decision;
    decision.acked_wseq = record.wseq;
    return decision;
}

void add_event(Decision& decision, EventKind kind, UnixMs now, std::string data) {
    Event& event = decision.events.emplace_back();
    event.kind = kind;
    event.ts = now * 1000;
    event.data = std::move(data);
}

// Moves the job to `state` and adds the matching state event.
void change_state(JobRecord& record, Decision& decision, JobState state, UnixMs now,
                  std::string_view reason, bool with_worker = false) {
    Job& job = record.job;
    assert(can_transition(job.state, state));  // the rules only make legal moves
    job.state = state;
    // A finished job keeps the worker that ran it last; a requeued one has none.
    if (state == JobState::queued) job.worker.clear();
    if (state == JobState::succeeded) job.progress = 1.0;
    if (is_terminal(state)) job.finished_at = now;
    decision.lifecycle_changed = true;
    // A new attempt that resumes from a checkpoint says where: the log up to
    // that seq is what it does not emit again.
    const std::uint64_t resume_seq =
        state == JobState::running && !job.checkpoint.empty() ? job.checkpoint_seq : 0;
    add_event(
        decision, EventKind::state, now,
        state_event_data(state, job.attempt, with_worker ? job.worker : "", reason, resume_seq));
}

std::string lease_lost(int attempt, int current) {
    return "lease lost: attempt " + std::to_string(attempt) + " is not the current attempt " +
           std::to_string(current);
}

std::string not_running(JobState state) {
    return "not running: job is " + std::string(to_string(state));
}

}  // namespace

std::string_view to_string(WriteStatus status) {
    switch (status) {
        case WriteStatus::ok:
            return "ok";
        case WriteStatus::duplicate:
            return "duplicate";
        case WriteStatus::gap:
            return "gap";
        case WriteStatus::not_found:
            return "not_found";
        case WriteStatus::conflict:
            return "conflict";
    }
    return "unknown";
}

Decision create(JobRecord& record, UnixMs now) {
    Job& job = record.job;
    if (job.params.empty()) job.params = "{}";
    job.created_at = now;
    job.state = JobState::queued;
    job.attempt = 0;
    job.max_attempts = std::max(1, job.max_attempts);
    job.worker.clear();
    job.progress = 0;
    job.last_seq = 0;
    job.checkpoint.clear();
    job.checkpoint_seq = 0;
    job.result.clear();
    job.error.clear();
    job.cancel_requested = false;
    job.started_at = 0;
    job.finished_at = 0;
    record.wseq = 0;

    Decision decision = accepted(record);
    decision.lifecycle_changed = true;
    add_event(decision, EventKind::state, now, state_event_data(JobState::queued, 0, "", ""));
    return decision;
}

Decision create_again(const JobRecord& existing, const Job& submitted) {
    const Job& job = existing.job;
    const bool same = job.owner == submitted.owner && job.type == submitted.type &&
                      job.params == submitted.params && job.priority == submitted.priority &&
                      job.max_attempts == submitted.max_attempts &&
                      job.created_at == submitted.created_at;
    if (!same) return refuse(WriteStatus::conflict, "job id " + job.id + " already exists");
    return accepted(existing);
}

Decision lease(JobRecord& record, std::string worker, UnixMs now) {
    Job& job = record.job;
    if (job.state == JobState::running && job.worker == worker && job.started_at == now) {
        return accepted(record);
    }
    if (job.state != JobState::queued) {
        return refuse(WriteStatus::conflict,
                      "job is " + std::string(to_string(job.state)) + ", not queued");
    }
    if (job.cancel_requested) return refuse(WriteStatus::conflict, "cancel requested");
    if (job.attempt >= job.max_attempts) return refuse(WriteStatus::conflict, "no attempts left");
    job.attempt += 1;
    job.worker = std::move(worker);
    job.started_at = now;
    record.wseq = 0;  // the new attempt numbers its messages from 1
    Decision decision = accepted(record);
    change_state(record, decision, JobState::running, now, "", /*with_worker=*/true);
    return decision;
}

Decision check_worker_message(const JobRecord& record, int attempt, std::uint64_t wseq) {
    const Job& job = record.job;
    if (attempt != job.attempt) {
        return refuse(WriteStatus::conflict, lease_lost(attempt, job.attempt));
    }
    // Before the state check: a resent message of a finished attempt is still
    // acknowledged, so its worker stops resending it.
    if (wseq <= record.wseq)
        return refuse_acked(record, WriteStatus::duplicate, "already committed");
    if (job.state != JobState::running) {
        return refuse_acked(record, WriteStatus::conflict, not_running(job.state));
    }
    if (wseq > record.wseq + 1) {
        return refuse_acked(
            record, WriteStatus::gap,
            "expected wseq " + std::to_string(record.wseq + 1) + ", got " + std::to_string(wseq));
    }
    return accepted(record);
}

Decision accept_chunk(JobRecord& record, int attempt, std::uint64_t wseq, EventKind kind,
                      std::string_view data) {
    Decision decision = check_worker_message(record, attempt, wseq);
    if (!decision.ok()) return decision;
    if (kind == EventKind::state) {
        return refuse_acked(record, WriteStatus::conflict,
                            "state events are written by the broker only");
    }
    if (kind == EventKind::progress) {
        if (auto fraction = find_fraction(data)) record.job.progress = *fraction;
    }
    record.wseq = wseq;
    decision.acked_wseq = wseq;
    return decision;
}

Decision accept_checkpoint(JobRecord& record, int attempt, std::uint64_t wseq, std::string bytes) {
    Decision decision = check_worker_message(record, attempt, wseq);
    if (!decision.ok()) return decision;
    record.job.checkpoint = std::move(bytes);
    record.job.checkpoint_seq = record.job.last_seq;
    record.wseq = wseq;
    decision.acked_wseq = wseq;
    return decision;
}

Decision finish(JobRecord& record, int attempt, std::uint64_t wseq, std::string result,
                UnixMs now) {
    Decision decision = check_worker_message(record, attempt, wseq);
    if (!decision.ok()) return decision;
    record.wseq = wseq;
    decision.acked_wseq = wseq;
    if (result.empty()) result = "{}";
    record.job.result = result;
    add_event(decision, EventKind::result, now, std::move(result));
    change_state(record, decision, JobState::succeeded, now, "");
    return decision;
}

Decision fail(JobRecord& record, int attempt, std::uint64_t wseq, std::string error, bool retryable,
              UnixMs now) {
    Decision decision = check_worker_message(record, attempt, wseq);
    if (!decision.ok()) return decision;
    Job& job = record.job;
    record.wseq = wseq;
    decision.acked_wseq = wseq;
    std::string data = "{\"message\":";
    json::append_quoted(data, error);
    data += '}';
    add_event(decision, EventKind::error, now, std::move(data));
    job.error = std::move(error);
    if (job.cancel_requested) {
        change_state(record, decision, JobState::cancelled, now, "cancelled");
    } else if (retryable && job.attempt < job.max_attempts) {
        change_state(record, decision, JobState::queued, now, "retry: " + job.error);
    } else {
        change_state(record, decision, JobState::failed, now, job.error);
    }
    return decision;
}

Decision requeue(JobRecord& record, int attempt, std::string_view reason, UnixMs now) {
    Job& job = record.job;
    if (job.state != JobState::running)
        return refuse(WriteStatus::conflict, not_running(job.state));
    if (attempt != job.attempt) {
        return refuse(WriteStatus::conflict, lease_lost(attempt, job.attempt));
    }
    if (reason.empty()) reason = "lease lost";
    Decision decision = accepted(record);
    if (job.cancel_requested) {
        change_state(record, decision, JobState::cancelled, now, "cancelled");
    } else if (job.attempt >= job.max_attempts) {
        job.error =
            std::string(reason) + "; gave up after " + std::to_string(job.attempt) + " attempts";
        change_state(record, decision, JobState::failed, now, job.error);
    } else {
        change_state(record, decision, JobState::queued, now, reason);
    }
    return decision;
}

Decision cancel(JobRecord& record, bool force, UnixMs now) {
    Job& job = record.job;
    if (is_terminal(job.state)) return refuse(WriteStatus::conflict, "already finished");
    job.cancel_requested = true;
    Decision decision = accepted(record);
    if (job.state == JobState::queued || force) {
        change_state(record, decision, JobState::cancelled, now, "cancelled");
    } else {
        decision.lifecycle_changed = true;  // the flag: the broker tells the worker
    }
    return decision;
}

std::optional<double> find_fraction(std::string_view json) {
    constexpr std::string_view kKey = "\"fraction\"";
    for (std::size_t at = json.find(kKey); at != std::string_view::npos;
         at = json.find(kKey, at + 1)) {
        std::size_t i = at + kKey.size();
        auto skip_space = [&] {
            while (i < json.size() &&
                   (json[i] == ' ' || json[i] == '\t' || json[i] == '\n' || json[i] == '\r')) {
                ++i;
            }
        };
        skip_space();
        if (i >= json.size() || json[i] != ':') continue;  // "fraction" was a value
        ++i;
        skip_space();
        double value = 0;
        const auto [end, ec] = std::from_chars(json.data() + i, json.data() + json.size(), value);
        if (ec != std::errc() || std::isnan(value)) return std::nullopt;
        return std::clamp(value, 0.0, 1.0);
    }
    return std::nullopt;
}

}  // namespace jobcast::domain
