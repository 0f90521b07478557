#include "contract_session.hpp"

#include <cstdio>
#include <future>
#include <optional>
#include <set>
#include <type_traits>
#include <variant>

namespace jobcast::contract {

// ---- ops -------------------------------------------------------------------

Job job_spec(const std::string& id, const std::string& owner, const std::string& type,
             int max_attempts) {
    Job job;
    job.id = id;
    job.type = type;
    job.owner = owner;
    job.params = R"({"n":1})";
    job.max_attempts = max_attempts;
    job.created_at = kCreatedAt;
    return job;
}

CreateJob create(const std::string& id, const std::string& idempotency_key,
                 const std::string& owner, int max_attempts) {
    return CreateJob{job_spec(id, owner, "test", max_attempts), idempotency_key};
}

LeaseJob lease(const std::string& job, const std::string& worker, UnixMs at) {
    return LeaseJob{job, worker, at};
}

AppendChunk chunk(const std::string& job, int attempt, std::uint64_t wseq) {
    return chunk(job, attempt, wseq, EventKind::token, "{\"w\":" + std::to_string(wseq) + "}");
}

AppendChunk chunk(const std::string& job, int attempt, std::uint64_t wseq, EventKind kind,
                  std::string data) {
    AppendChunk op;
    op.job = job;
    op.attempt = attempt;
    op.wseq = wseq;
    op.kind = kind;
    op.ts = kLeasedAt * 1000 + 1000 * attempt + static_cast<UnixUs>(wseq);
    op.data = std::move(data);
    return op;
}

SaveCheckpoint checkpoint(const std::string& job, int attempt, std::uint64_t wseq,
                          std::string bytes) {
    return SaveCheckpoint{job, attempt, wseq, std::move(bytes)};
}

namespace {

FinishJob finish_op(const std::string& job, int attempt, std::uint64_t wseq, bool success) {
    FinishJob op;
    op.job = job;
    op.attempt = attempt;
    op.wseq = wseq;
    op.success = success;
    op.now = kFinishedAt;
    return op;
}

}  // namespace

FinishJob done(const std::string& job, int attempt, std::uint64_t wseq, std::string result) {
    FinishJob op = finish_op(job, attempt, wseq, true);
    op.result = std::move(result);
    return op;
}

FinishJob fail(const std::string& job, int attempt, std::uint64_t wseq, std::string error,
               bool retryable) {
    FinishJob op = finish_op(job, attempt, wseq, false);
    op.error = std::move(error);
    op.retryable = retryable;
    return op;
}

RequeueJob requeue(const std::string& job, int attempt, std::string reason) {
    return RequeueJob{job, attempt, std::move(reason), kFinishedAt};
}

CancelJob cancel(const std::string& job, bool force) {
    return CancelJob{job, force, kFinishedAt};
}

// ---- descriptions ----------------------------------------------------------

namespace {

// Opaque bytes (checkpoints) as text: printable characters as they are.
std::string printable(std::string_view bytes) {
    std::string out;
    for (const char c : bytes) {
        const auto byte = static_cast<unsigned char>(c);
        if (byte >= 0x20 && byte < 0x7f && c != '\\') {
            out += c;
        } else {
            char escaped[8];
            std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
            out += escaped;
        }
    }
    return out;
}

std::string describe(const store::WriteAck& ack) {
    return "attempt=" + std::to_string(ack.attempt) + " " + std::string(to_string(ack.status)) +
           " acked=" + std::to_string(ack.acked_wseq) + " message=" + ack.message;
}

std::string describe(const store::LeaseOutcome& lease) {
    return std::string(to_string(lease.status)) +
           " leased=" + (lease.leased ? contract::describe(*lease.leased) : "-");
}

// What a job change announces: state, attempt, worker, cancel flag.
std::string lifecycle(const Job& job) {
    return std::string(to_string(job.state)) + " attempt=" + std::to_string(job.attempt) +
           " worker=" + job.worker + " cancel_requested=" + (job.cancel_requested ? "1" : "0");
}

}  // namespace

std::string describe(const Job& job) {
    char progress[32];
    std::snprintf(progress, sizeof progress, "%.6g", job.progress);
    return "{id=" + job.id + " type=" + job.type + " owner=" + job.owner + " params=" + job.params +
           " priority=" + std::to_string(job.priority) +
           " state=" + std::string(to_string(job.state)) +
           " attempt=" + std::to_string(job.attempt) + "/" + std::to_string(job.max_attempts) +
           " worker=" + job.worker + " progress=" + progress +
           " last_seq=" + std::to_string(job.last_seq) +
           " checkpoint=" + printable(job.checkpoint) +
           " checkpoint_seq=" + std::to_string(job.checkpoint_seq) + " result=" + job.result +
           " error=" + job.error + " cancel_requested=" + (job.cancel_requested ? "1" : "0") +
           " created_at=" + std::to_string(job.created_at) +
           " started_at=" + std::to_string(job.started_at) +
           " finished_at=" + std::to_string(job.finished_at) + "}";
}

std::string describe(const Event& event) {
    return std::to_string(event.seq) + " " + std::string(to_string(event.kind)) + " " +
           std::to_string(event.ts) + " " + event.data;
}

std::string describe(const WriteResult& result) {
    return std::string(to_string(result.status)) + " message=" + result.message +
           " created=" + (result.created ? "1" : "0") +
           " acked=" + std::to_string(result.acked_wseq) +
           " job=" + (result.job ? describe(*result.job) : "-");
}

void check_same(const Transcript& actual, const Transcript& reference) {
    CHECK(actual.results == reference.results);
    CHECK(actual.reads == reference.reads);
    auto per_job = [](const char* what, const Transcript::PerJob& a, const Transcript::PerJob& b) {
        std::set<std::string> jobs;
        for (const auto& [job, _] : a)
            jobs.insert(job);
        for (const auto& [job, _] : b)
            jobs.insert(job);
        const std::vector<std::string> none;
        for (const std::string& job : jobs) {
            INFO(what << " of job " << job);
            const auto found_a = a.find(job);
            const auto found_b = b.find(job);
            CHECK((found_a == a.end() ? none : found_a->second) ==
                  (found_b == b.end() ? none : found_b->second));
        }
    };
    per_job("acks", actual.acks, reference.acks);
    per_job("lease outcomes", actual.leases, reference.leases);
    per_job("job changes", actual.job_changes, reference.job_changes);
    per_job("committed events", actual.events, reference.events);
    per_job("log", actual.logs, reference.logs);
}

// ---- Session ---------------------------------------------------------------

Session::Session(const StoreUnderTest& under_test) {
    store_ = under_test.open([this](CommittedBatch& batch) {
        std::lock_guard lock(mutex_);
        batches_.push_back(batch);
    });
    REQUIRE(store_);
}

Session::~Session() {
    store_.reset();
}

const std::string& Session::store_id(const std::string& id) const {
    auto found = store_ids_.find(id);
    return found == store_ids_.end() ? id : found->second;
}

const std::string& Session::proposed_id(const std::string& id) const {
    auto found = proposed_ids_.find(id);
    return found == proposed_ids_.end() ? id : found->second;
}

Job Session::renamed(Job job) const {
    job.id = proposed_id(job.id);
    return job;
}

void Session::to_store_ids(WriteOp& op) const {
    std::visit(
        [&](auto& o) {
            if constexpr (std::is_same_v<std::decay_t<decltype(o)>, CreateJob>) {
                o.job.id = store_id(o.job.id);
            } else {
                o.job = store_id(o.job);
            }
        },
        op);
}

WriteResult Session::run(WriteOp op) {
    to_store_ids(op);
    std::optional<CreateJob> keyed;
    if (auto* create = std::get_if<CreateJob>(&op); create && !create->idempotency_key.empty())
        keyed = *create;
    auto promise = std::make_shared<std::promise<WriteResult>>();
    std::future<WriteResult> future = promise->get_future();
    store_->submit(std::move(op), [promise](const WriteResult& r) { promise->set_value(r); });
    WriteResult result = future.get();
    if (keyed && result.created && result.job && result.job->id != keyed->job.id) {
        store_ids_[keyed->job.id] = result.job->id;
        proposed_ids_[result.job->id] = keyed->job.id;
    }
    if (result.job) result.job = renamed(*result.job);
    transcript_.results.push_back(describe(result));
    return result;
}

WriteResult Session::expect(WriteOp op, WriteStatus status) {
    WriteResult result = run(std::move(op));
    INFO("message: " << result.message);
    REQUIRE(to_string(result.status) == to_string(status));
    return result;
}

void Session::run_many(std::vector<WriteOp> ops) {
    for (WriteOp& op : ops)
        to_store_ids(op);
    store_->submit_many(std::move(ops));
    store_->flush();
}

std::optional<Job> Session::get(const std::string& id) {
    std::optional<Job> job = store_->jobs().get(store_id(id));
    if (job) job = renamed(*job);
    transcript_.reads.push_back("get " + id + ": " + (job ? describe(*job) : "-"));
    return job;
}

Job Session::require_job(const std::string& id) {
    std::optional<Job> job = get(id);
    INFO("job " << id);
    REQUIRE(job);
    return *job;
}

store::ListPage Session::list(const ListQuery& query) {
    store::ListPage page = store_->jobs().list(query);
    std::string line = "list owner=" + query.owner + ":";
    for (Job& job : page.jobs) {
        job.id = proposed_id(job.id);
        line += " " + job.id;
    }
    line += page.next.empty() ? " (last page)" : " (more)";
    transcript_.reads.push_back(std::move(line));
    return page;
}

std::vector<std::pair<JobState, std::int64_t>> Session::count_by_state() {
    auto counts = store_->jobs().count_by_state();
    std::string line = "count_by_state:";
    for (const auto& [state, count] : counts)
        line += " " + std::string(to_string(state)) + "=" + std::to_string(count);
    transcript_.reads.push_back(std::move(line));
    return counts;
}

std::vector<Event> Session::read(const std::string& job, std::uint64_t after, std::size_t limit,
                                 std::size_t max_bytes) {
    std::vector<Event> events = store_->events().read(store_id(job), after, limit, max_bytes);
    std::string line = "read " + job + " after=" + std::to_string(after) +
                       " limit=" + std::to_string(limit) +
                       " max_bytes=" + std::to_string(max_bytes) + ":";
    for (const Event& event : events)
        line += " " + std::to_string(event.seq);
    transcript_.reads.push_back(std::move(line));
    return events;
}

std::optional<std::uint64_t> Session::last_seq(const std::string& job) {
    auto seq = store_->events().last_seq(store_id(job));
    transcript_.reads.push_back("last_seq " + job + ": " + (seq ? std::to_string(*seq) : "-"));
    return seq;
}

std::vector<Event> Session::log(const std::string& job) {
    std::vector<Event> all;
    for (;;) {
        const std::uint64_t after = all.empty() ? 0 : all.back().seq;
        std::vector<Event> more = store_->events().read(store_id(job), after, 1000);
        if (more.empty()) return all;
        for (Event& event : more)
            all.push_back(std::move(event));
    }
}

std::vector<CommittedBatch> Session::batches() {
    if (!closed_) store_->flush();
    std::lock_guard lock(mutex_);
    return batches_;
}

std::vector<store::WriteAck> Session::acks_of(const std::string& job) {
    std::vector<store::WriteAck> acks;
    for (const CommittedBatch& batch : batches()) {
        for (const store::WriteAck& ack : batch.acks) {
            if (ack.job == store_id(job)) acks.push_back(ack);
        }
    }
    return acks;
}

std::vector<store::LeaseOutcome> Session::leases_of(const std::string& job) {
    std::vector<store::LeaseOutcome> leases;
    for (const CommittedBatch& batch : batches()) {
        for (const store::LeaseOutcome& lease : batch.leases) {
            if (lease.job == store_id(job)) leases.push_back(lease);
        }
    }
    return leases;
}

bool Session::listener_has(const std::string& job, std::uint64_t seq) {
    std::lock_guard lock(mutex_);
    for (const CommittedBatch& batch : batches_) {
        for (const store::JobEvents& job_events : batch.events) {
            if (job_events.job != store_id(job)) continue;
            for (const Event& event : job_events.events) {
                if (event.seq == seq) return true;
            }
        }
    }
    return false;
}

Job Session::create_running(const std::string& id, int max_attempts) {
    expect(create(id, "", "alice", max_attempts), WriteStatus::ok);
    const WriteResult leased = expect(lease(id), WriteStatus::ok);
    REQUIRE(leased.job);
    return *leased.job;
}

std::vector<Event> Session::events_of(const std::string& job) {
    std::vector<Event> events;
    for (const CommittedBatch& batch : batches()) {
        for (const store::JobEvents& job_events : batch.events) {
            if (job_events.job != store_id(job)) continue;
            events.insert(events.end(), job_events.events.begin(), job_events.events.end());
        }
    }
    return events;
}

void Session::close() {
    store_->close();
    closed_ = true;
}

Transcript Session::transcript() {
    Transcript out = transcript_;
    std::set<std::string> jobs;
    std::map<std::string, std::string> last_change;
    for (const CommittedBatch& batch : batches()) {
        CHECK(batch.committed);
        for (store::WriteAck ack : batch.acks) {
            ack.job = proposed_id(ack.job);
            out.acks[ack.job].push_back(describe(ack));
            jobs.insert(ack.job);
        }
        for (store::LeaseOutcome lease : batch.leases) {
            lease.job = proposed_id(lease.job);
            if (lease.leased) lease.leased = renamed(*lease.leased);
            out.leases[lease.job].push_back(describe(lease));
            jobs.insert(lease.job);
        }
        for (Job job : batch.job_changes) {
            job = renamed(std::move(job));
            last_change[job.id] = lifecycle(job);
            // Whether a change carries the (opaque, possibly large) checkpoint
            // is the store's choice: leases and reads must, changes need not.
            job.checkpoint.clear();
            out.job_changes[job.id].push_back(describe(job));
            jobs.insert(job.id);
        }
        for (const store::JobEvents& job_events : batch.events) {
            const std::string& job = proposed_id(job_events.job);
            for (const Event& event : job_events.events)
                out.events[job].push_back(describe(event));
            jobs.insert(job);
        }
    }
    if (closed_) return out;
    for (const std::string& job : jobs) {
        const std::vector<Event> log = this->log(job);
        std::vector<std::string>& described = out.logs[job];
        for (std::size_t i = 0; i < log.size(); ++i) {
            INFO("job " << job);
            CHECK(log[i].seq == i + 1);  // seqs start at 1 and have no holes
            described.push_back(describe(log[i]));
        }
        // The listener was given every event of the log, once, in order, and
        // nothing that is not in it.
        INFO("job " << job);
        CHECK(out.events[job] == described);
        if (!log.empty()) CHECK(store_->events().last_seq(store_id(job)) == log.back().seq);
        // The last change announced holds the job's lifecycle as it is stored.
        if (!last_change[job].empty()) {
            const std::optional<Job> stored = store_->jobs().get(store_id(job));
            REQUIRE(stored);
            CHECK(last_change[job] == lifecycle(*stored));
        }
    }
    return out;
}

}  // namespace jobcast::contract
