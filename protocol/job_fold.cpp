#include "protocol/job_fold.hpp"

#include "protocol/event_data.hpp"
#include "protocol/json.hpp"

namespace jobcast::client_api {

void fold_events(JobFold& fold, const std::vector<Event>& events, std::size_t max_logs) {
    for (const Event& event : events) {
        if (event.seq <= fold.seq) continue;
        fold.seq = event.seq;
        switch (event.kind) {
            case EventKind::token:
                fold.text += read_event_data(event).text;
                break;
            case EventKind::state: {
                EventData data = read_event_data(event);
                if (!data.state) break;
                fold.state = data.state;
                fold.attempt = data.attempt;
                if (*data.state == JobState::running) fold.error.clear();
                if (*data.state == JobState::failed) fold.error = data.reason;
                if (*data.state == JobState::succeeded) fold.progress = 1;
                break;
            }
            case EventKind::progress: {
                EventData data = read_event_data(event);
                if (data.fraction) fold.progress = *data.fraction;
                if (data.stage) fold.stage = std::move(data.stage);
                break;
            }
            case EventKind::log:
                if (max_logs == 0) break;
                if (fold.logs.size() == max_logs) fold.logs.pop_front();
                fold.logs.push_back(event.data.empty() ? "{}" : event.data);
                break;
            case EventKind::result:
                fold.result = event.data.empty() ? "{}" : event.data;
                break;
            case EventKind::error:
                fold.error = read_event_data(event).message;
                break;
        }
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
    out += '}';
    return out;
}

}  // namespace jobcast::client_api
