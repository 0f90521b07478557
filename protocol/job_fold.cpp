#include "protocol/job_fold.hpp"

#include <algorithm>
#include <iterator>
#include <string_view>

#include "protocol/event_data.hpp"
#include "protocol/json.hpp"

namespace jobcast::client_api {

namespace {

// The text size at `seq`: the last mark at or below it. A seq before the
// marks (a log that broke the rules) keeps the whole text.
std::size_t size_at(const JobFold& fold, std::uint64_t seq) {
    auto after = std::upper_bound(fold.marks.begin(), fold.marks.end(), seq,
                                  [](std::uint64_t s, const auto& mark) { return s < mark.first; });
    if (after == fold.marks.begin()) return fold.text.size();
    return std::prev(after)->second;
}

// UTF-16 code units of UTF-8 text: one per code point, two above U+FFFF.
std::size_t utf16_length(std::string_view text) {
    std::size_t units = 0;
    for (const char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        if ((byte & 0xC0) != 0x80) ++units;
        if (byte >= 0xF0) ++units;
    }
    return units;
}

}  // namespace

void fold_event(JobFold& fold, const Event& event, const EventData& data, std::size_t max_logs) {
    if (event.seq <= fold.seq) return;
    fold.seq = event.seq;
    switch (event.kind) {
        case EventKind::token:
            fold.text += data.text;
            fold.marks.emplace_back(event.seq, fold.text.size());
            break;
        case EventKind::state:
            if (!data.state) break;
            fold.state = data.state;
            fold.attempt = data.attempt;
            if (*data.state == JobState::running) {
                fold.error.clear();
                const std::size_t size = data.resume_seq == 0 ? 0 : size_at(fold, data.resume_seq);
                fold.text.resize(std::min(size, fold.text.size()));
                fold.marks.assign(1, {data.resume_seq, fold.text.size()});
            }
            if (*data.state == JobState::failed) fold.error = data.reason;
            if (*data.state == JobState::succeeded) fold.progress = 1;
            break;
        case EventKind::progress:
            if (data.fraction) fold.progress = std::max(fold.progress, *data.fraction);
            if (data.stage) fold.stage = data.stage;
            break;
        case EventKind::log:
            if (max_logs == 0) break;
            if (fold.logs.size() == max_logs) fold.logs.pop_front();
            fold.logs.push_back(event.data.empty() ? "{}" : event.data);
            break;
        case EventKind::result:
            fold.result = event.data.empty() ? "{}" : event.data;
            break;
        case EventKind::error:
            fold.error = data.message;
            break;
    }
}

void fold_events(JobFold& fold, const std::vector<Event>& events, std::size_t max_logs) {
    for (const Event& event : events) {
        if (event.seq <= fold.seq) continue;
        // Logs and results are kept as they are: only the other kinds are read.
        const bool read = event.kind != EventKind::log && event.kind != EventKind::result;
        fold_event(fold, event, read ? read_event_data(event) : EventData{}, max_logs);
    }
}

std::string snapshot_body(Job job, const JobFold& fold) {
    job.result.clear();  // the same as fold.result: written once
    std::string out;
    out.reserve(512 + fold.text.size() + fold.result.size());
    out += "{\"job\":";
    out += json::job(job);
    out += ",\"seq\":";
    out += std::to_string(fold.seq);
    out += ",\"state\":";
    if (fold.state) {
        json::append_quoted(out, to_string(*fold.state));
    } else {
        out += "null";
    }
    out += ",\"attempt\":";
    out += std::to_string(fold.attempt);
    out += ",\"text\":";
    json::append_quoted(out, fold.text);
    out += ",\"progress\":";
    if (!json::detail::append_double(out, fold.progress)) out += '0';
    out += ",\"stage\":";
    if (fold.stage) {
        json::append_quoted(out, *fold.stage);
    } else {
        out += "null";
    }
    out += ",\"logs\":[";
    for (std::size_t i = 0; i < fold.logs.size(); ++i) {
        if (i != 0) out += ',';
        out += fold.logs[i];
    }
    out += ']';
    if (!fold.result.empty()) out += ",\"result\":" + fold.result;
    if (!fold.error.empty()) {
        out += ",\"error\":";
        json::append_quoted(out, fold.error);
    }
    if (!is_terminal(job.state) && job.checkpoint_seq != 0 && job.checkpoint_seq <= fold.seq) {
        out += ",\"resume\":{\"seq\":";
        out += std::to_string(job.checkpoint_seq);
        out += ",\"text_length\":";
        const std::size_t size = std::min(size_at(fold, job.checkpoint_seq), fold.text.size());
        out += std::to_string(utf16_length(std::string_view(fold.text).substr(0, size)));
        out += '}';
    }
    out += '}';
    return out;
}

}  // namespace jobcast::client_api
