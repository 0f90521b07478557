// The Redis store: open (topology, library, partition generations, session
// key), the engine's commit rounds on the loop thread, and the reads.
#include "cluster/redis_store.hpp"

#include <sys/random.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <condition_variable>
#include <deque>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "cluster/event_entries.hpp"
#include "cluster/library.hpp"
#include "cluster/retry.hpp"
#include "common/clock.hpp"
#include "common/logging.hpp"
#include "persistence/job_commands.hpp"
#include "persistence/written_seqs.hpp"
#include "protocol/json.hpp"
#include "redis/cluster.hpp"
#include "redis/loop.hpp"
#include "redis/loop_impl.hpp"

namespace jobcast::cluster {

namespace {

using store::CommittedBatch;
using store::Completion;
using store::StoreError;
using store::WriteOp;
using store::WriteResult;
using store::WriteStatus;

spdlog::logger& logger() {
    static const std::shared_ptr<spdlog::logger> instance = module_logger("store");
    return *instance;
}

std::string random_bytes(std::size_t n) {
    std::string out(n, '\0');
    std::size_t filled = 0;
    while (filled < n) {
        const ssize_t got = ::getrandom(out.data() + filled, n - filled, 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            throw StoreError("getrandom failed");
        }
        filled += static_cast<std::size_t>(got);
    }
    return out;
}

std::string hex(std::string_view bytes) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : bytes) {
        out += kDigits[c >> 4];
        out += kDigits[c & 15];
    }
    return out;
}

std::string text(const redis::Reply& reply) {
    if (reply.is_integer()) return std::to_string(reply.integer);
    return reply.is_text() ? reply.str : std::string();
}

template <class Int>
Int to_int(std::string_view text) {
    Int value{};
    std::from_chars(text.data(), text.data() + text.size(), value);
    return value;
}

std::int64_t integer(const redis::Reply& reply) {
    if (reply.is_integer()) return reply.integer;
    return to_int<std::int64_t>(text(reply));
}

std::optional<WriteStatus> parse_status(std::string_view text) {
    for (WriteStatus s : {WriteStatus::ok, WriteStatus::duplicate, WriteStatus::gap,
                          WriteStatus::not_found, WriteStatus::conflict})
        if (store::to_string(s) == text) return s;
    return std::nullopt;
}

WriteResult failure(std::string message) {
    WriteResult result;
    result.status = WriteStatus::conflict;
    result.message = std::move(message);
    return result;
}

// A job as the library keeps it: the HGETALL fields, flat.
struct StoredJob {
    Job job;
    std::uint64_t seq = 0;
    std::uint64_t cseq = 0;
    std::uint64_t wseq = 0;
    // This broker's confirmed floor for the job, taken before cseq was
    // asked for (RedisStore::locally_confirmed): the floor is let go once a
    // confirm has raised cseq, so one read after the answer came may find it
    // gone while the answer still holds the cseq from before.
    std::uint64_t floor = 0;

    // What may be shown without confirming anything: cseq, or this broker's
    // floor as far as the log is written.
    std::uint64_t shown() const { return std::max(cseq, std::min(floor, seq)); }
};

std::optional<StoredJob> parse_job(const redis::Reply& flat) {
    if (!flat.is_array() || flat.elements.empty()) return std::nullopt;
    StoredJob stored;
    Job& job = stored.job;
    for (std::size_t i = 0; i + 1 < flat.elements.size(); i += 2) {
        const std::string& name = flat.elements[i].str;
        const std::string value = text(flat.elements[i + 1]);
        if (name == "id")
            job.id = value;
        else if (name == "type")
            job.type = value;
        else if (name == "owner")
            job.owner = value;
        else if (name == "params")
            job.params = value;
        else if (name == "priority")
            job.priority = to_int<int>(value);
        else if (name == "state")
            job.state = parse_job_state(value).value_or(JobState::queued);
        else if (name == "attempt")
            job.attempt = to_int<int>(value);
        else if (name == "max_attempts")
            job.max_attempts = to_int<int>(value);
        else if (name == "worker")
            job.worker = value;
        else if (name == "progress") {
            double progress = 0;
            std::from_chars(value.data(), value.data() + value.size(), progress);
            job.progress = progress;
        } else if (name == "seq")
            stored.seq = to_int<std::uint64_t>(value);
        else if (name == "cseq")
            stored.cseq = to_int<std::uint64_t>(value);
        else if (name == "wseq")
            stored.wseq = to_int<std::uint64_t>(value);
        else if (name == "cancel")
            job.cancel_requested = value == "1";
        else if (name == "result")
            job.result = value;
        else if (name == "error")
            job.error = value;
        else if (name == "created")
            job.created_at = to_int<UnixMs>(value);
        else if (name == "started")
            job.started_at = to_int<UnixMs>(value);
        else if (name == "finished")
            job.finished_at = to_int<UnixMs>(value);
        else if (name == "checkpoint")
            job.checkpoint = value;
        else if (name == "ckseq")
            job.checkpoint_seq = to_int<std::uint64_t>(value);
    }
    if (job.id.empty()) return std::nullopt;
    job.last_seq = stored.seq;
    return stored;
}

// [kind, ts, data, ...] numbered from `first`.
std::vector<Event> parse_events(const redis::Reply& flat, std::uint64_t first) {
    std::vector<Event> events;
    if (!flat.is_array()) return events;
    for (std::size_t i = 0; i + 2 < flat.elements.size(); i += 3) {
        Event& event = events.emplace_back();
        event.seq = first + events.size() - 1;
        event.kind = parse_event_kind(text(flat.elements[i])).value_or(EventKind::log);
        event.ts = integer(flat.elements[i + 1]);
        event.data = text(flat.elements[i + 2]);
    }
    return events;
}

std::string quoted(std::string_view text) {
    std::string out;
    json::append_quoted(out, text);
    return out;
}

std::string fmt_double(double value) {
    char buffer[32];
    const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
    return std::string(buffer, ec == std::errc() ? end : buffer);
}

const std::string& job_id_of(const WriteOp& op) {
    return std::visit(
        [](const auto& o) -> const std::string& {
            if constexpr (std::is_same_v<std::decay_t<decltype(o)>, store::CreateJob>)
                return o.job.id;
            else
                return o.job;
        },
        op);
}

int attempt_of(const WriteOp& op) {
    if (const auto* o = std::get_if<store::AppendChunk>(&op)) return o->attempt;
    if (const auto* o = std::get_if<store::SaveCheckpoint>(&op)) return o->attempt;
    if (const auto* o = std::get_if<store::FinishJob>(&op)) return o->attempt;
    return 0;
}

bool is_worker_op(const WriteOp& op) {
    return std::holds_alternative<store::AppendChunk>(op) ||
           std::holds_alternative<store::SaveCheckpoint>(op) ||
           std::holds_alternative<store::FinishJob>(op);
}

// ---- the engine's queue entries and rounds ---------------------------------

struct Entry {
    WriteOp op;
    Completion done;
    std::string op_id;  // lifecycle ops: what the job remembers
    std::uint32_t partition = 0;
    bool resent = false;    // sent before, outcome unknown
    bool answered = false;  // refused for memory and answered: not sent again
};

// One FCALL of a round: a lifecycle op, or a job's worker ops in order.
struct Call {
    std::string job;
    std::vector<std::size_t> entries;  // into Round::entries
    redis::Command command;            // without the op list of jc_apply
    std::vector<std::string> op_args;  // jc_apply's ops
    std::size_t op_count = 0;
    // The job changed earlier in the round: the batch's job change is the
    // job as this call leaves it.
    bool final_job = false;
};

struct Round {
    std::vector<Entry> entries;
    std::vector<Call> calls;
    std::vector<std::pair<std::string, std::uint64_t>> confirms;  // job, seq
    std::vector<std::uint32_t> partitions;
    std::vector<redis::Reply> replies;  // confirms, then calls
    // The connection that carried the round's writes: WAIT covers only the
    // writes of the connection it is sent on.
    std::shared_ptr<redis::Connection> connection;
    Clock::Steady started{};
    bool failed = false;
};

struct Node {
    std::shared_ptr<redis::Connection> connection;
    bool busy = false;  // a round in flight, or backing off
    bool degraded = false;
    std::chrono::milliseconds backoff{0};
};

class RedisStoreImpl final : public RedisStore,
                             public store::JobStore,
                             public store::EventLog,
                             public store::WrittenSeqs {
  public:
    RedisStoreImpl(const RedisStoreConfig& config, CommitListener listener, const Clock& clock,
                   std::stop_token keep_trying,
                   const std::function<void(const std::string&)>& on_unreachable)
        : config_(config),
          clock_(clock),
          partitions_(config.partitions),
          listener_(std::move(listener)),
          loop_(std::make_unique<redis::Loop>()),
          cluster_(std::make_unique<redis::Cluster>(*loop_, cluster_options(config))),
          queues_(partitions_.count()),
          confirms_(partitions_.count()),
          busy_(partitions_.count(), false),
          op_prefix_(hex(random_bytes(8))) {
        try {
            connect(keep_trying, on_unreachable);
            load_library();
            load_generations();
            load_session_key();
        } catch (...) {
            cluster_.reset();
            loop_.reset();
            throw;
        }
        schedule_sweep();
        logger().info(
            "store open engine=redis-cluster seeds={} partitions={} wait={} "
            "wait_timeout_ms={} primaries={}",
            seed_list(config_.seeds), partitions_.count(), config_.wait_replicas,
            config_.wait_timeout.count(), cluster_primaries().size());
    }

    ~RedisStoreImpl() override {
        close();
        cluster_.reset();
        loop_.reset();
    }

    // ---- Store ---------------------------------------------------------------

    void submit(WriteOp op, Completion done) override {
        Entry entry = prepare(std::move(op));
        entry.done = std::move(done);
        if (!enqueue({std::move(entry)})) return;
    }

    void submit_many(std::vector<WriteOp>&& ops) override {
        if (ops.empty()) return;
        std::vector<Entry> entries;
        entries.reserve(ops.size());
        for (WriteOp& op : ops)
            entries.push_back(prepare(std::move(op)));
        ops.clear();  // the ops are moved out; the caller keeps the capacity
        enqueue(std::move(entries));
    }

    void flush() override {
        if (loop_->in_loop_thread()) return;
        std::unique_lock lock(mutex_);
        const std::uint64_t target = submitted_;
        progress_.wait(lock, [&] { return completed_ >= target || stopped_; });
    }

    void close() override {
        std::call_once(closed_, [this] {
            if (loop_->in_loop_thread())
                throw std::logic_error("the store cannot be closed from its callbacks");
            {
                // What is queued still commits, for a while: a cluster that
                // stays away must not hold the process forever.
                std::unique_lock lock(mutex_);
                closing_ = true;
                const std::uint64_t target = submitted_;
                progress_.wait_for(lock, config_.open_timeout,
                                   [&] { return completed_ >= target; });
                stopped_ = true;
            }
            space_.notify_all();
            std::promise<void> done;
            loop_->post([&] {
                shutdown();
                done.set_value();
            });
            done.get_future().wait();
            // The cluster client stays until the store goes: a read that comes
            // after close (a late catch-up, a gap fill) still gets an answer
            // or an error, never a client that is gone.
            progress_.notify_all();
            logger().info("store closed engine=redis-cluster");
        });
    }

    store::JobStore& jobs() override { return *this; }
    store::EventLog& events() override { return *this; }
    const std::string& worker_session_key() const override { return session_key_; }

    std::size_t run_retention(UnixMs now) override {
        std::size_t swept = 0;
        for (std::uint32_t p = 0; p < partitions_.count(); ++p) {
            for (;;) {
                const std::string prefix = partitions_.prefix(p);
                redis::Reply reply = exec({"FCALL", "jc_sweep", "1", prefix + "done", prefix,
                                           std::to_string(now), std::to_string(kSweepBatch)});
                if (reply.is_error()) {
                    logger().warn("retention sweep failed partition={} error=\"{}\"", prefix,
                                  reply.str);
                    break;
                }
                swept += static_cast<std::size_t>(reply.integer);
                if (reply.integer < static_cast<std::int64_t>(kSweepBatch)) break;
            }
        }
        return swept;
    }

    RedisStoreStats stats() const override {
        std::lock_guard lock(mutex_);
        RedisStoreStats out = stats_;
        out.queued_ops = submitted_ - completed_;
        const redis::ClusterStats reads = cluster_->stats();
        out.retries.moved += reads.moved;
        out.retries.ask += reads.ask;
        out.retries.tryagain += reads.tryagain;
        out.retries.clusterdown += reads.clusterdown;
        out.retries.connection += reads.connection;
        return out;
    }

    // ---- JobStore ------------------------------------------------------------

    std::optional<Job> get(std::string_view id) override {
        auto stored = fetch_job(id);
        if (!stored) return std::nullopt;
        Job job = std::move(stored->job);
        job.last_seq = visible(id, *stored);
        return job;
    }

    store::ListPage list(const store::ListQuery& query) override {
        constexpr std::size_t kMaxLimit = 1000;
        const std::size_t limit = std::clamp<std::size_t>(query.limit, 1, kMaxLimit);
        // Each partition gives its newest `limit + 1` matches below the
        // cursor; the newest of all of them make the page.
        std::vector<Job> found;
        for (std::uint32_t p = 0; p < partitions_.count(); ++p) {
            const std::string index = partitions_.prefix(p) + "own:" + query.owner;
            std::string below = query.cursor.empty() ? "+" : "(" + query.cursor;
            std::size_t matches = 0;
            while (matches <= limit) {
                redis::Reply ids = exec(
                    {"ZREVRANGEBYLEX", index, below, "-", "LIMIT", "0", std::to_string(limit + 1)});
                if (!ids.is_array() || ids.elements.empty()) break;
                for (const redis::Reply& id : ids.elements) {
                    auto stored = fetch_job(id.str);
                    if (!stored) continue;  // expired, the sweep has not passed yet
                    if (query.state && stored->job.state != *query.state) continue;
                    if (query.type && stored->job.type != *query.type) continue;
                    stored->job.last_seq = visible(id.str, *stored);
                    found.push_back(std::move(stored->job));
                    ++matches;
                }
                if (ids.elements.size() <= limit) break;
                below = "(" + ids.elements.back().str;
            }
        }
        std::sort(found.begin(), found.end(),
                  [](const Job& a, const Job& b) { return a.id > b.id; });
        store::ListPage page;
        const bool more = found.size() > limit;
        if (more) found.resize(limit);
        page.jobs = std::move(found);
        if (more) page.next = page.jobs.back().id;
        return page;
    }

    // In cluster mode: the queued jobs (per-partition queues of every type
    // seen) and the running ones (the lease index), oldest first. A broker
    // does not reload them at start; they are what the cluster holds now.
    std::vector<Job> unfinished() override {
        std::vector<Job> jobs;
        for (std::uint32_t p = 0; p < partitions_.count(); ++p) {
            const std::string prefix = partitions_.prefix(p);
            std::vector<std::string> indexes = {prefix + "leases"};
            redis::Reply types = exec({"SMEMBERS", prefix + "types"});
            for (const redis::Reply& type : types.elements)
                indexes.push_back(prefix + "q:" + type.str);
            for (const std::string& index : indexes) {
                redis::Reply ids = exec({"ZRANGE", index, "0", "-1"});
                for (const redis::Reply& id : ids.elements) {
                    auto stored = fetch_job(id.str);
                    if (!stored) continue;
                    stored->job.last_seq = visible(id.str, *stored);
                    jobs.push_back(std::move(stored->job));
                }
            }
        }
        std::sort(jobs.begin(), jobs.end(), [](const Job& a, const Job& b) { return a.id < b.id; });
        return jobs;
    }

    std::vector<std::pair<JobState, std::int64_t>> count_by_state() override {
        std::vector<std::pair<JobState, std::int64_t>> counts;
        for (JobState state : {JobState::queued, JobState::running, JobState::succeeded,
                               JobState::failed, JobState::cancelled})
            counts.emplace_back(state, 0);
        for (std::uint32_t p = 0; p < partitions_.count(); ++p) {
            redis::Reply stats = exec({"HGETALL", partitions_.prefix(p) + "stats"});
            for (std::size_t i = 0; i + 1 < stats.elements.size(); i += 2) {
                if (auto state = parse_job_state(stats.elements[i].str))
                    counts[static_cast<std::size_t>(*state)].second +=
                        integer(stats.elements[i + 1]);
            }
        }
        return counts;
    }

    // ---- EventLog ------------------------------------------------------------

    // Straight from the stream, pipelined on the job's node: the partition's
    // generation and the job's watermark first, then the entry holding
    // `after` and XRANGE pages (see ask_pages and read_pages). A full page of
    // a page or more sends the read of the next one at once: a replay asks
    // for it next, and finds it on its way or in.
    std::vector<Event> read(std::string_view job, std::uint64_t after, std::size_t limit,
                            std::size_t max_bytes) override {
        std::vector<Event> events;
        read_into(job, after, limit, max_bytes, [&](std::span<const EventView> views) {
            events.reserve(views.size());
            for (const EventView& view : views)
                events.push_back({view.seq, view.kind, view.ts, std::string(view.data)});
        });
        return events;
    }

    // The same, handed over as views into the replies (no copy of an event).
    store::ReadTotals read_into(std::string_view job, std::uint64_t after, std::size_t limit,
                                std::size_t max_bytes, const store::EventVisitor& visit) override {
        if (limit == 0) return {};
        std::optional<PagesAsked> ahead = take_read_ahead(job, after, limit);
        bool confirmed = false;
        for (;;) {
            const bool fresh = !ahead;
            PagesAsked asked = fresh ? ask_pages(job, after, limit) : std::move(*ahead);
            ahead.reset();
            std::optional<PagesRead> page;
            try {
                page = read_pages(job, after, limit, max_bytes, asked, confirmed);
            } catch (const StoreError&) {
                if (fresh) throw;
                continue;  // what failed then may not now
            }
            if (!page) continue;  // confirmed further: read again
            const std::vector<EventView>& events = page->events;
            const bool full = events.size() == limit || page->budget.used >= max_bytes;
            // Read ahead when the log ended sooner: it may have grown since.
            if (!full && !fresh) continue;
            if (events.size() == limit && limit >= kReadPage) {
                // The next reads while pages are full by count (seqs have no
                // holes): kReadAheadDepth. Not after a page full by bytes:
                // large events would have each read ahead hold up to `limit`
                // of them for a page that takes a few.
                for (std::size_t i = 0; i < kReadAheadDepth; ++i)
                    read_ahead(job, events.back().seq + i * limit, limit);
            }
            if (!events.empty()) visit(events);
            return {events.size(), page->budget.used};
        }
    }

    std::optional<std::uint64_t> last_seq(std::string_view job) override {
        const std::uint64_t floor = locally_confirmed(job);
        redis::Reply reply = exec({"HMGET", partitions_.job_key(job), "cseq", "seq"});
        if (!reply.is_array() || reply.elements.size() < 2 || reply.elements[0].is_nil())
            return std::nullopt;
        StoredJob stored;
        stored.floor = floor;
        stored.cseq = to_int<std::uint64_t>(reply.elements[0].str);
        stored.seq = to_int<std::uint64_t>(reply.elements[1].str);
        return visible(job, stored);
    }

    // ---- WrittenSeqs ----------------------------------------------------------

    std::uint64_t written_seq(std::string_view job) override {
        redis::Reply seq = exec({"HGET", partitions_.job_key(job), "seq"});
        return seq.is_nil() || seq.is_error() ? 0 : to_int<std::uint64_t>(text(seq));
    }

  private:
    static constexpr std::size_t kSweepBatch = 500;
    static constexpr std::size_t kReadPage = 1000;         // seqs an XRANGE page starts in
    static constexpr std::uint64_t kMaxReserve = 1 << 17;  // events reserved at most
    static constexpr std::size_t kReadAheadDepth = 2;      // reads ahead of a replay
    static constexpr std::size_t kReadAheads = 64;         // reads ahead kept, the newest
    static constexpr std::chrono::milliseconds kReadAheadAge{1000};  // and for so long
    static constexpr std::chrono::milliseconds kFirstBackoff{10};
    static constexpr std::chrono::milliseconds kMaxBackoff{1000};

    static redis::ClusterOptions cluster_options(const RedisStoreConfig& config) {
        redis::ClusterOptions options;
        options.seeds = config.seeds;
        options.connection.connect_timeout = config.connect_timeout;
        options.connection.reply_timeout =
            std::max<std::chrono::milliseconds>(std::chrono::seconds(10), config.wait_timeout * 4);
        return options;
    }

    // The job as stored, checkpoint included.
    std::optional<StoredJob> fetch_job(std::string_view id) {
        const std::uint64_t floor = locally_confirmed(id);
        auto stored = parse_job(exec({"FCALL_RO", "jc_get", "1", partitions_.job_key(id)}));
        if (stored) stored->floor = floor;
        return stored;
    }

    redis::Reply exec(redis::Command command) {
        try {
            return cluster_->exec(std::move(command));
        } catch (const std::system_error& error) {
            throw EngineUnreachable(std::string("redis: ") + error.what());
        }
    }

    redis::Reply exec_at(const redis::Endpoint& node, redis::Command command) {
        try {
            return cluster_->exec_at(node, std::move(command));
        } catch (const std::system_error& error) {
            throw EngineUnreachable("redis " + node.str() + ": " + error.what());
        }
    }

    // Commands to the node of `slot`, posted to the loop in order: queued on
    // its connection together, answered in order. Each answer comes through
    // its future (see answer()).
    std::vector<std::future<redis::Reply>> send(std::uint16_t slot,
                                                std::vector<redis::Command> commands) {
        std::vector<std::future<redis::Reply>> futures;
        futures.reserve(commands.size());
        for (redis::Command& command : commands) {
            auto promise = std::make_shared<std::promise<redis::Reply>>();
            futures.push_back(promise->get_future());
            cluster_->async_exec(
                slot, std::move(command), [promise](std::error_code ec, redis::Reply reply) {
                    if (ec)
                        promise->set_exception(std::make_exception_ptr(std::system_error(ec)));
                    else
                        promise->set_value(std::move(reply));
                });
        }
        return futures;
    }

    static redis::Reply answer(std::future<redis::Reply>& future) {
        try {
            return future.get();
        } catch (const std::system_error& error) {
            throw EngineUnreachable(std::string("redis: ") + error.what());
        } catch (const std::future_error&) {
            throw StoreError("store is closed");  // the loop went with the command queued
        }
    }

    // The answers to a read's first pipeline: the partition's generation, the
    // job's watermark, the entry holding `after` (when after > 0), then the
    // first pages (ends: the last first seq each asks for).
    struct PagesAsked {
        std::vector<std::future<redis::Reply>> replies;
        std::uint64_t floor = 0;  // StoredJob::floor, before the watermark was asked
        bool head = false;
        std::vector<std::uint64_t> ends;
    };

    // What read_pages gives: the events, views into the replies it keeps.
    struct PagesRead {
        std::deque<redis::Reply> replies;
        std::vector<EventView> events;
        store::ByteBudget budget;
    };

    // XRANGE of the entries whose first seq is in (after, to]: entries hold
    // consecutive seqs (cluster/event_entries.hpp), so pages of consecutive
    // ranges hold every event once, the last one of a page perhaps past `to`.
    redis::Command page_command(std::string_view job, std::uint64_t after, std::uint64_t to) const {
        return {"XRANGE", partitions_.events_key(job), std::to_string(after + 1),
                std::to_string(to)};
    }

    // The last seq a read of `limit` events after `after` may give (a client's
    // `after` near the top of the range does not wrap).
    static std::uint64_t last_of(std::uint64_t after, std::size_t limit) {
        return after +
               std::min<std::uint64_t>(limit, std::numeric_limits<std::uint64_t>::max() - after);
    }

    // The end of the page that starts after `from`, in a read up to `last`.
    static std::uint64_t page_end(std::uint64_t from, std::uint64_t last) {
        return from + std::min<std::uint64_t>(kReadPage, last - from);
    }

    // Seqs have no holes, so page k of a read is the entries that start in
    // (after + k·kReadPage, after + (k+1)·kReadPage]: the first two go with
    // the watermark, and the entry that starts at or before `after` (its
    // tail may be past it).
    PagesAsked ask_pages(std::string_view job, std::uint64_t after, std::size_t limit) {
        const std::uint32_t partition = partitions_.of(job);
        std::vector<redis::Command> commands = {{"GET", partitions_.prefix(partition) + "gen"},
                                                {"HMGET", partitions_.job_key(job), "cseq", "seq"}};
        PagesAsked asked;
        asked.floor = locally_confirmed(job);
        const std::uint64_t last = last_of(after, limit);
        if (after > 0 && after < last) {
            asked.head = true;
            commands.push_back({"XREVRANGE", partitions_.events_key(job), std::to_string(after),
                                "-", "COUNT", "1"});
        }
        for (std::uint64_t from = after; from < last && asked.ends.size() < 2;) {
            asked.ends.push_back(page_end(from, last));
            commands.push_back(page_command(job, from, asked.ends.back()));
            from = asked.ends.back();
        }
        asked.replies = send(partitions_.slot(partition), std::move(commands));
        return asked;
    }

    // The events of a read from what ask_pages asked. One connection answers
    // in order, so the watermark is never older than the entries it cuts:
    // what is shown is at most cseq (or this broker's own confirmed floor),
    // and the rest of an entry past it is left out. Each further page is
    // asked for before the page before it is decoded. Nothing when the read
    // must start again (it confirmed what may be shown further).
    std::optional<PagesRead> read_pages(std::string_view job, std::uint64_t after,
                                        std::size_t limit, std::size_t max_bytes, PagesAsked& asked,
                                        bool& confirmed) {
        const std::uint32_t partition = partitions_.of(job);
        check_generation(partition, answer(asked.replies[0]));
        const redis::Reply watermark = answer(asked.replies[1]);
        if (watermark.is_error()) throw StoreError("event read failed: " + watermark.str);
        PagesRead read;
        read.budget.max = max_bytes;
        std::vector<EventView>& events = read.events;
        if (!watermark.is_array() || watermark.elements.size() < 2 ||
            watermark.elements[0].is_nil())
            return read;  // an unknown job
        StoredJob stored;
        stored.cseq = to_int<std::uint64_t>(watermark.elements[0].str);
        stored.seq = to_int<std::uint64_t>(watermark.elements[1].str);
        stored.floor = std::max(asked.floor, locally_confirmed(job));
        const std::uint64_t cap = stored.shown();
        if (after >= cap) {
            // Nothing to show past `after`, but the log may be written
            // further (a reader here may know of it: another broker showed
            // it): confirmed now if this broker may (visible()), then read
            // again (the pages may come from a node since demoted).
            if (stored.seq > cap && !std::exchange(confirmed, true) && visible(job, stored) > cap)
                return std::nullopt;
            return read;
        }
        if (asked.ends.empty()) return read;
        const std::uint64_t last = last_of(after, limit);
        const EntryCut cut{after, cap, limit};
        events.reserve(std::min<std::uint64_t>({limit, cap - after, kMaxReserve}));
        // Whether the read is done: it has what it may take.
        auto done = [&] {
            return events.size() == limit || (!events.empty() && read.budget.used >= max_bytes) ||
                   (!events.empty() && events.back().seq >= cap);
        };
        // Decodes a reply of entries, kept for the views into it.
        auto take = [&](redis::Reply reply) {
            if (reply.is_error()) throw StoreError("event read failed: " + reply.str);
            const redis::Reply& kept = read.replies.emplace_back(std::move(reply));
            for (const redis::Reply& entry : kept.elements) {
                if (done()) break;
                append_entry(entry, cut, read.budget, events);
            }
        };
        std::size_t next_reply = 2;
        if (asked.head) take(answer(asked.replies[next_reply++]));
        std::deque<std::pair<std::future<redis::Reply>, std::uint64_t>> pages;  // and their ends
        for (std::size_t i = 0; i < asked.ends.size(); ++i)
            pages.emplace_back(std::move(asked.replies[next_reply + i]), asked.ends[i]);
        std::uint64_t next = asked.ends.back();  // where the next page starts
        while (!pages.empty() && !done()) {
            redis::Reply reply = answer(pages.front().first);
            const std::uint64_t end = pages.front().second;
            pages.pop_front();
            if (next < cap && next < last) {
                const std::uint64_t to = page_end(next, last);
                pages.emplace_back(
                    std::move(send(partitions_.slot(partition), {page_command(job, next, to)})[0]),
                    to);
                next = to;
            }
            take(std::move(reply));
            // Short of its range: the log ends there (an entry that starts in
            // a page's range holds its end, or an earlier one does).
            if (events.empty() || events.back().seq < std::min(end, cap)) break;
        }
        return read;
    }

    // Reads ahead, from `after` on, what a read(job, after, limit) asks,
    // unless that is asked already.
    void read_ahead(std::string_view job, std::uint64_t after, std::size_t limit) {
        {
            std::lock_guard lock(ahead_mutex_);
            for (const ReadAhead& ahead : ahead_)
                if (ahead.job == job && ahead.after == after && ahead.limit == limit) return;
        }
        ReadAhead ahead{std::string(job), after, limit, ask_pages(job, after, limit),
                        clock_.steady()};
        std::lock_guard lock(ahead_mutex_);
        if (ahead_.size() == kReadAheads) ahead_.pop_front();
        ahead_.push_back(std::move(ahead));
    }

    // The read ahead of exactly this read, if one was made lately: it is a
    // read made then (a full page of it is what a read now gives).
    std::optional<PagesAsked> take_read_ahead(std::string_view job, std::uint64_t after,
                                              std::size_t limit) {
        const Clock::Steady now = clock_.steady();
        std::lock_guard lock(ahead_mutex_);
        while (!ahead_.empty() && now - ahead_.front().at > kReadAheadAge)
            ahead_.pop_front();
        for (auto it = ahead_.begin(); it != ahead_.end(); ++it) {
            if (it->job != job || it->after != after || it->limit != limit) continue;
            PagesAsked asked = std::move(it->asked);
            ahead_.erase(it);
            return asked;
        }
        return std::nullopt;
    }

    // A partition whose generation is not the one this store opened with was
    // lost and re-initialized: its jobs are refused (as jobcast_v1's writes
    // refuse them), never shown from a log that starts over.
    void check_generation(std::uint32_t partition, const redis::Reply& generation) const {
        if (generation.is_text() && generation.str == generations_[partition]) return;
        if (generation.is_error()) throw StoreError("event read failed: " + generation.str);
        throw StoreError("partition " + partitions_.prefix(partition) + " generation is " +
                         (generation.is_text() ? generation.str : std::string("missing")) +
                         ", expected " + generations_[partition] +
                         ": its data was lost or re-initialized; its jobs are refused");
    }

    // An error answer while opening: the cluster not (yet) able to serve is
    // worth another try; anything else is not.
    [[noreturn]] static void open_failed(const std::string& what, const redis::Reply& reply) {
        if (retry_kind(reply) != Retry::none) throw EngineUnreachable(what + ": " + reply.str);
        throw StoreError(what + ": " + reply.str);
    }

    // ---- open ------------------------------------------------------------------

    std::vector<redis::Endpoint> cluster_primaries() {
        std::promise<std::vector<redis::Endpoint>> primaries;
        loop_->post([&] { primaries.set_value(cluster_->primaries()); });
        return primaries.get_future().get();
    }

    void connect(std::stop_token keep_trying,
                 const std::function<void(const std::string&)>& on_unreachable) {
        constexpr std::chrono::milliseconds kFirstDelay{200};
        constexpr std::chrono::milliseconds kMaxDelay{5000};
        const bool until_stopped = keep_trying.stop_possible();
        const auto deadline = std::chrono::steady_clock::now() + config_.open_timeout;
        std::chrono::milliseconds delay = kFirstDelay;
        std::mutex mutex;
        std::condition_variable_any stopped;
        for (int attempt = 1;; ++attempt) {
            std::promise<std::error_code> refreshed;
            loop_->post([&] {
                cluster_->refresh_topology([&](std::error_code ec) { refreshed.set_value(ec); });
            });
            const std::error_code ec = refreshed.get_future().get();
            if (!ec) return;
            const std::string error = "no node of the Redis cluster answers (" + ec.message() + ")";
            if (!until_stopped && std::chrono::steady_clock::now() + delay >= deadline)
                throw EngineUnreachable("cannot reach the Redis cluster at " +
                                        seed_list(config_.seeds) + ": " + error);
            logger().warn(
                "event=engine_unreachable seeds={} attempt={} error=\"{}\" next_attempt_ms={}",
                seed_list(config_.seeds), attempt, error, delay.count());
            if (on_unreachable) on_unreachable(error);
            std::unique_lock lock(mutex);
            stopped.wait_for(lock, keep_trying, delay, [] { return false; });
            if (keep_trying.stop_requested())
                throw EngineUnreachable("stopped while waiting for the Redis cluster");
            delay = std::min(kMaxDelay, delay * 2);
        }
    }

    // On every primary: the library if missing; a library of another version
    // (or the same name with other code) is never replaced here.
    void load_library() {
        const std::string code(library_code());
        for (const redis::Endpoint& node : cluster_primaries()) {
            for (int tries = 0;; ++tries) {
                redis::Reply listed =
                    exec_at(node, {"FUNCTION", "LIST", "LIBRARYNAME", "jobcast_*", "WITHCODE"});
                if (listed.is_error())
                    open_failed("redis " + node.str() + ": FUNCTION LIST", listed);
                bool ours = false;
                for (const redis::Reply& library : listed.elements) {
                    std::string name;
                    std::string found_code;
                    for (std::size_t i = 0; i + 1 < library.elements.size(); i += 2) {
                        if (library.elements[i].str == "library_name")
                            name = library.elements[i + 1].str;
                        if (library.elements[i].str == "library_code")
                            found_code = library.elements[i + 1].str;
                    }
                    if (!name.starts_with("jobcast_v")) continue;
                    if (name != kLibraryName || found_code != code) {
                        // The same name with other code: say which version it claims.
                        std::string other;
                        if (name == kLibraryName) {
                            redis::Reply version = exec_at(node, {"FCALL_RO", "jc_version", "0"});
                            other = " with other code (version " +
                                    (version.is_text() ? version.str : std::string("unknown")) +
                                    ", this broker's is " + std::string(kLibraryVersion) + ")";
                        }
                        throw StoreError(
                            "redis " + node.str() + " holds the Function library " + name + other +
                            ", this broker needs " + std::string(kLibraryName) +
                            " as it was built: drain the brokers of the other version, then run "
                            "FUNCTION DELETE " +
                            name + " on every primary (or upgrade every broker) and start again");
                    }
                    ours = true;
                }
                if (ours) break;
                redis::Reply loaded = exec_at(node, {"FUNCTION", "LOAD", code});
                if (!loaded.is_error()) {
                    logger().info("function library loaded node={} library={}", node.str(),
                                  kLibraryName);
                    break;
                }
                // Another broker may have loaded it meanwhile: look again, once.
                if (tries > 0 || loaded.str.find("already exists") == std::string::npos)
                    throw StoreError("redis " + node.str() + ": FUNCTION LOAD " +
                                     std::string(kLibraryName) + ": " + loaded.str);
            }
        }
    }

    // Each partition's generation: made by the first broker, read by the others.
    void load_generations() {
        generations_.resize(partitions_.count());
        for (std::uint32_t p = 0; p < partitions_.count(); ++p) {
            const std::string key = partitions_.prefix(p) + "gen";
            redis::Reply set = exec({"SET", key, hex(random_bytes(8)), "NX"});
            if (set.is_error()) open_failed("redis: SET " + key, set);
            redis::Reply got = exec({"GET", key});
            if (!got.is_text()) throw StoreError("redis: GET " + key + " gave no generation");
            generations_[p] = got.str;
        }
    }

    void load_session_key() {
        constexpr std::size_t kSessionKeyBytes = 32;
        const std::string key = "jc:session_key";
        redis::Reply set = exec({"SET", key, random_bytes(kSessionKeyBytes), "NX"});
        if (set.is_error()) open_failed("redis: SET " + key, set);
        redis::Reply got = exec({"GET", key});
        if (!got.is_text() || got.str.size() < kSessionKeyBytes)
            throw StoreError("the worker session key in the cluster (" + key + ") is damaged");
        session_key_ = got.str;
    }

    // ---- submitting --------------------------------------------------------------

    // Fixes everything a re-sent call must repeat (times, ids), picks the partition.
    Entry prepare(WriteOp op) {
        Entry entry;
        std::visit(
            [&](auto& o) {
                using Op = std::decay_t<decltype(o)>;
                if constexpr (std::is_same_v<Op, store::CreateJob>) {
                    if (o.job.created_at == 0) o.job.created_at = clock_.unix_ms();
                    if (o.job.id.empty()) o.job.id = new_job_id(o.job.created_at);
                    if (!o.idempotency_key.empty()) {
                        // The key's partition: its check is atomic with the creation.
                        const std::uint32_t p =
                            partitions_.of(o.job.owner + '\n' + o.idempotency_key);
                        while (partitions_.of(o.job.id) != p)
                            o.job.id = new_job_id(o.job.created_at);
                    }
                } else if constexpr (std::is_same_v<Op, store::AppendChunk>) {
                    if (o.ts == 0) o.ts = clock_.unix_us();
                } else if constexpr (std::is_same_v<Op, store::SaveCheckpoint>) {
                } else {
                    if (o.now == 0) o.now = clock_.unix_ms();
                }
            },
            op);
        entry.partition = partitions_.of(job_id_of(op));
        if (!is_worker_op(op)) {
            entry.op_id = op_prefix_ + std::to_string(next_op_.fetch_add(1));
        }
        entry.op = std::move(op);
        return entry;
    }

    // False when the store is closed (the completions were told).
    bool enqueue(std::vector<Entry> entries) {
        std::unique_lock lock(mutex_);
        if (!loop_->in_loop_thread()) {
            space_.wait(
                lock, [&] { return submitted_ - completed_ < config_.max_queue_ops || closing_; });
        }
        if (closing_) {
            lock.unlock();
            for (Entry& entry : entries)
                if (entry.done) entry.done(failure("store is closed"));
            return false;
        }
        for (Entry& entry : entries) {
            ++writing_[job_id_of(entry.op)];
            queues_[entry.partition].push_back(std::move(entry));
        }
        submitted_ += entries.size();
        const bool kick = !kick_pending_;
        kick_pending_ = true;
        lock.unlock();
        if (kick) loop_->post([this] { pump(); });
        return true;
    }

    // ---- the engine (loop thread) -----------------------------------------------

    void pump() {
        if (shut_down_) return;
        std::map<redis::Endpoint, Round> rounds;
        bool unrouted = false;
        {
            std::lock_guard lock(mutex_);
            kick_pending_ = false;
            // From a rotating start: a full round cap is no partition's privilege.
            const std::uint32_t count = partitions_.count();
            first_partition_ = (first_partition_ + 1) % count;
            for (std::uint32_t i = 0; i < count; ++i) {
                const std::uint32_t p = (first_partition_ + i) % count;
                if (busy_[p] || (queues_[p].empty() && confirms_[p].empty())) continue;
                auto owner = cluster_->primary_of(partitions_.slot(p));
                if (!owner) {
                    unrouted = true;
                    continue;
                }
                Node& node = nodes_[*owner];
                if (node.busy) continue;
                Round& round = rounds[*owner];
                auto& queue = queues_[p];
                bool took = false;
                while (!queue.empty() && round.entries.size() < config_.max_batch_ops) {
                    round.entries.push_back(std::move(queue.front()));
                    queue.pop_front();
                    took = true;
                }
                for (auto& confirm : confirms_[p])
                    round.confirms.push_back(std::move(confirm));
                took = took || !confirms_[p].empty();
                confirms_[p].clear();
                if (took) {
                    busy_[p] = true;
                    round.partitions.push_back(p);
                }
            }
        }
        if (unrouted) {
            cluster_->refresh_topology([this](std::error_code) { retry_soon(); });
        }
        for (auto& [node, round] : rounds)
            start(node, std::make_shared<Round>(std::move(round)));
    }

    void retry_soon() {
        if (shut_down_) return;
        after(kFirstBackoff * 5, [this] { pump(); });
    }

    void after(std::chrono::milliseconds delay, std::function<void()> fn) {
        auto timer = std::make_shared<boost::asio::steady_timer>(redis::io_of(*loop_), delay);
        timers_.insert(timer);
        timer->async_wait([this, timer, fn = std::move(fn)](boost::system::error_code ec) {
            timers_.erase(timer);
            if (!ec && !shut_down_) fn();
        });
    }

    redis::Command call_head(const char* function, const std::string& job, std::uint32_t partition,
                             const std::string& op_id) const {
        return {"FCALL",
                function,
                "1",
                partitions_.job_key(job),
                partitions_.prefix(partition),
                job,
                generations_[partition],
                std::to_string(config_.retention.count()),
                op_id};
    }

    // Groups the round's ops into calls: a lifecycle op per call, a job's
    // worker ops together (in order) until its next lifecycle op.
    void build_calls(Round& round) {
        std::unordered_map<std::string, std::size_t> last_call;
        std::unordered_set<std::string> lifecycle_jobs;  // a lifecycle op earlier in the round
        for (std::size_t i = 0; i < round.entries.size(); ++i) {
            Entry& entry = round.entries[i];
            const std::string& job = job_id_of(entry.op);
            if (is_worker_op(entry.op)) {
                auto it = last_call.find(job);
                if (it == last_call.end() || round.calls[it->second].command[1] != "jc_apply") {
                    Call& call = round.calls.emplace_back();
                    call.job = job;
                    call.command = call_head("jc_apply", job, entry.partition, "");
                    call.final_job = lifecycle_jobs.contains(job);
                    last_call[job] = round.calls.size() - 1;
                    it = last_call.find(job);
                }
                Call& call = round.calls[it->second];
                call.entries.push_back(i);
                add_worker_op(call, entry.op, static_cast<bool>(entry.done));
                continue;
            }
            Call& call = round.calls.emplace_back();
            call.job = job;
            call.entries.push_back(i);
            last_call[job] = round.calls.size() - 1;
            lifecycle_jobs.insert(job);
            std::visit(
                [&](const auto& o) {
                    using Op = std::decay_t<decltype(o)>;
                    if constexpr (std::is_same_v<Op, store::CreateJob>) {
                        call.command = call_head("jc_create", job, entry.partition, entry.op_id);
                        const Job& j = o.job;
                        for (std::string arg :
                             {j.type, j.owner, j.params, std::to_string(j.priority),
                              std::to_string(j.max_attempts), std::to_string(j.created_at),
                              o.idempotency_key})
                            call.command.push_back(std::move(arg));
                    } else if constexpr (std::is_same_v<Op, store::LeaseJob>) {
                        call.command = call_head("jc_lease", job, entry.partition, entry.op_id);
                        for (std::string arg : {o.worker, quoted(o.worker), std::to_string(o.now)})
                            call.command.push_back(std::move(arg));
                    } else if constexpr (std::is_same_v<Op, store::RequeueJob>) {
                        const bool expiry = o.unrenewed_for.count() > 0;
                        call.command = call_head(expiry ? "jc_expire" : "jc_requeue", job,
                                                 entry.partition, entry.op_id);
                        const std::string reason = o.reason.empty() ? "lease lost" : o.reason;
                        for (std::string arg : {std::to_string(o.attempt), reason, quoted(reason),
                                                std::to_string(o.now)})
                            call.command.push_back(std::move(arg));
                        if (expiry) call.command.push_back(std::to_string(o.unrenewed_for.count()));
                    } else if constexpr (std::is_same_v<Op, store::CancelJob>) {
                        call.command = call_head("jc_cancel", job, entry.partition, entry.op_id);
                        call.command.push_back(o.force ? "1" : "0");
                        call.command.push_back(std::to_string(o.now));
                    }
                },
                entry.op);
        }
        for (Call& call : round.calls) {
            if (call.command[1] != "jc_apply") continue;
            // The op id slot: the count, '+' for the job as the call leaves it.
            call.command.back() = std::to_string(call.op_count) + (call.final_job ? "+" : "");
            for (std::string& arg : call.op_args)
                call.command.push_back(std::move(arg));
            call.op_args.clear();
        }
    }

    // An op's letter in upper case: its answer brings the job after it.
    static void add_worker_op(Call& call, const WriteOp& op, bool want_job) {
        auto& a = call.op_args;
        auto letter = [&](char c) { return std::string(1, want_job ? char(c - 'a' + 'A') : c); };
        ++call.op_count;
        if (const auto* chunk = std::get_if<store::AppendChunk>(&op)) {
            std::string fraction;
            if (chunk->kind == EventKind::progress) {
                if (auto f = domain::find_fraction(chunk->data)) fraction = fmt_double(*f);
            }
            for (std::string arg :
                 {letter('c'), std::to_string(chunk->attempt), std::to_string(chunk->wseq),
                  std::string(to_string(chunk->kind)), std::to_string(chunk->ts), chunk->data,
                  fraction})
                a.push_back(std::move(arg));
        } else if (const auto* ckpt = std::get_if<store::SaveCheckpoint>(&op)) {
            for (std::string arg : {letter('k'), std::to_string(ckpt->attempt),
                                    std::to_string(ckpt->wseq), ckpt->bytes})
                a.push_back(std::move(arg));
        } else if (const auto* finish = std::get_if<store::FinishJob>(&op)) {
            if (finish->success) {
                for (std::string arg :
                     {letter('d'), std::to_string(finish->attempt), std::to_string(finish->wseq),
                      finish->result.empty() ? std::string("{}") : finish->result,
                      std::to_string(finish->now)})
                    a.push_back(std::move(arg));
            } else {
                const std::string error_json = quoted(finish->error);
                for (std::string arg :
                     {letter('f'), std::to_string(finish->attempt), std::to_string(finish->wseq),
                      "{\"message\":" + error_json + "}", finish->error, error_json,
                      std::string(finish->retryable ? "1" : "0"), std::to_string(finish->now)})
                    a.push_back(std::move(arg));
            }
        }
    }

    std::shared_ptr<redis::Connection> connection(const redis::Endpoint& endpoint) {
        Node& node = nodes_[endpoint];
        if (!node.connection || !node.connection->is_open())
            node.connection =
                redis::Connection::create(*loop_, endpoint, cluster_options(config_).connection);
        return node.connection;
    }

    void start(const redis::Endpoint& endpoint, std::shared_ptr<Round> round) {
        nodes_[endpoint].busy = true;
        inflight_.emplace(round.get(), round);
        round->started = clock_.steady();
        build_calls(*round);
        auto conn = connection(endpoint);
        round->connection = conn;
        const std::size_t expected = round->confirms.size() + round->calls.size();
        round->replies.assign(expected, redis::Reply());
        auto on_reply = [this, endpoint, round](std::size_t index) {
            return [this, endpoint, round, index](std::error_code ec, redis::Reply reply) {
                if (round->failed || shut_down_) return;
                if (ec) return fail(endpoint, round, Retry::connection, ec.message());
                round->replies[index] = std::move(reply);
            };
        };
        std::size_t index = 0;
        for (const auto& [job, seq] : round->confirms)
            conn->send({"FCALL", "jc_confirm", "1", partitions_.job_key(job), std::to_string(seq)},
                       on_reply(index++));
        for (const Call& call : round->calls)
            conn->send(call.command, on_reply(index++));
        if (round->entries.empty()) {
            // Confirms only: nothing waits for them (a lost one is redone by readers).
            conn->send({"PING"}, [this, endpoint, round](std::error_code ec, redis::Reply) {
                if (round->failed || shut_down_) return;
                if (ec) return fail(endpoint, round, Retry::connection, ec.message());
                confirmed(*round);
                finish_round(endpoint, *round);
            });
            return;
        }
        // A re-sent round may be all duplicates, which replicate nothing: a
        // write of its own makes WAIT (which waits for this connection's last
        // write) cover whatever the first sending wrote.
        const bool resent = std::any_of(round->entries.begin(), round->entries.end(),
                                        [](const Entry& e) { return e.resent; });
        if (resent)
            conn->send({"SET", partitions_.prefix(round->partitions.front()) + "fence", op_prefix_},
                       [](std::error_code, redis::Reply) {});
        send_wait(endpoint, round);
    }

    void send_wait(const redis::Endpoint& endpoint, std::shared_ptr<Round> round) {
        // A connection lost between two WAITs (while a degraded primary's
        // round backs off): a WAIT on a new one would cover none of the
        // round's writes, so the round is sent again instead.
        if (!round->connection->is_open())
            return fail(endpoint, round, Retry::connection, "connection to the Redis node lost");
        round->connection->send({"WAIT", std::to_string(config_.wait_replicas),
                                 std::to_string(config_.wait_timeout.count())},
                                [this, endpoint, round](std::error_code ec, redis::Reply reply) {
                                    if (round->failed || shut_down_) return;
                                    if (ec)
                                        return fail(endpoint, round, Retry::connection,
                                                    ec.message());
                                    on_wait(endpoint, round, reply);
                                });
    }

    void on_wait(const redis::Endpoint& endpoint, const std::shared_ptr<Round>& round,
                 const redis::Reply& reply) {
        answer_refused_for_memory(*round);
        for (const redis::Reply& r : round->replies) {
            if (!r.is_error()) continue;
            const Retry kind = retry_kind(r);
            if (kind != Retry::none) return fail(endpoint, round, kind, r.str);
        }
        if (!reply.is_integer()) {
            // WAIT refused: the node was demoted to a replica (its unreplicated
            // writes are discarded) or it went away. The round goes to the
            // slots' current primary; its ops are idempotent.
            return fail(endpoint, round, Retry::refused, "WAIT: " + reply.str);
        }
        if (!still_primary(endpoint, *round)) {
            // The slots moved while the writes waited: the promoted replica
            // may not have them, and this node discards them once it learns.
            return fail(endpoint, round, Retry::moved,
                        "WAIT reached " + std::to_string(reply.integer) +
                            " replicas on a node that no longer owns the round's slots");
        }
        if (reply.integer < config_.wait_replicas) {
            // Not on the replicas yet: nothing is acknowledged or shown. The
            // same WAIT again later covers the same writes.
            Node& node = nodes_[endpoint];
            {
                std::lock_guard lock(mutex_);
                ++stats_.wait_timeouts;
                if (!node.degraded) stats_.degraded.push_back(endpoint);
            }
            if (!node.degraded)
                logger().warn(
                    "event=primary_degraded node={} replicas_acknowledging={} needed={} "
                    "reason=\"WAIT timed out: writes to its slots wait, nothing is acknowledged "
                    "or shown\"",
                    endpoint.str(), reply.is_integer() ? reply.integer : 0, config_.wait_replicas);
            node.degraded = true;
            node.backoff = std::min(kMaxBackoff, std::max(kFirstBackoff, node.backoff * 2));
            // A primary that cannot replicate may be failing over: the slot
            // map is reloaded before the next WAIT, which checks it.
            cluster_->refresh_topology([this, endpoint, round](std::error_code) {
                after(nodes_[endpoint].backoff, [this, endpoint, round] {
                    if (round->failed || shut_down_) return;
                    send_wait(endpoint, round);
                });
            });
            return;
        }
        Node& node = nodes_[endpoint];
        if (node.degraded) {
            logger().info("event=primary_replicated node={}", endpoint.str());
            std::lock_guard lock(mutex_);
            std::erase(stats_.degraded, endpoint);
        }
        node.degraded = false;
        node.backoff = std::chrono::milliseconds(0);
        commit(*round);
        confirmed(*round);
        finish_round(endpoint, *round);
    }

    // Memory full (OOM: maxmemory reached, noeviction): a client's create or
    // cancel that the node refused on its first sending wrote nothing, and is
    // answered now (store::kEngineFull, so the client tries again later)
    // rather than held until memory frees. Every other op of the round waits
    // and is sent again: workers' messages stay unacknowledged (they resend),
    // the broker's own ops keep their order.
    void answer_refused_for_memory(Round& round) {
        const std::size_t offset = round.confirms.size();
        std::vector<Entry*> refused;
        for (std::size_t c = 0; c < round.calls.size(); ++c) {
            if (round.replies[offset + c].error_code() != "OOM") continue;
            Entry& entry = round.entries[round.calls[c].entries.front()];
            const bool request = std::holds_alternative<store::CreateJob>(entry.op) ||
                                 std::holds_alternative<store::CancelJob>(entry.op);
            if (!request || !entry.done || entry.resent || entry.answered) continue;
            entry.answered = true;
            refused.push_back(&entry);
        }
        if (refused.empty()) return;
        logger().warn(
            "event=engine_memory_full requests_refused={} reason=\"the cluster refused writes "
            "(OOM): clients are told to retry, workers' messages wait\"",
            refused.size());
        const WriteResult result = failure(std::string(store::kEngineFull));
        for (Entry* entry : refused) {
            try {
                entry->done(result);
            } catch (const std::exception& error) {
                logger().error("completion threw error=\"{}\"", error.what());
            }
        }
        {
            std::lock_guard lock(mutex_);
            for (Entry* entry : refused) {
                auto it = writing_.find(job_id_of(entry->op));
                if (it != writing_.end() && --it->second == 0) writing_.erase(it);
            }
            completed_ += refused.size();
        }
        space_.notify_all();
        progress_.notify_all();
    }

    // Whether the slot map still has `endpoint` as the primary of every
    // partition of the round.
    bool still_primary(const redis::Endpoint& endpoint, const Round& round) const {
        return std::all_of(round.partitions.begin(), round.partitions.end(), [&](std::uint32_t p) {
            const auto owner = cluster_->primary_of(partitions_.slot(p));
            return owner && *owner == endpoint;
        });
    }

    // The round's outcome is unknown (connection lost) or refused for now:
    // its ops go back to the front of their queues, to be sent again.
    void fail(const redis::Endpoint& endpoint, const std::shared_ptr<Round>& round, Retry kind,
              const std::string& why) {
        round->failed = true;
        inflight_.erase(round.get());
        Node& node = nodes_[endpoint];
        if (node.connection) node.connection->close();
        node.connection.reset();
        {
            std::lock_guard lock(mutex_);
            switch (kind) {
                case Retry::moved:
                    ++stats_.retries.moved;
                    break;
                case Retry::ask:
                    ++stats_.retries.ask;
                    break;
                case Retry::tryagain:
                    ++stats_.retries.tryagain;
                    break;
                case Retry::clusterdown:
                    ++stats_.retries.clusterdown;
                    break;
                case Retry::refused:
                    ++stats_.retries_refused;
                    break;
                case Retry::connection:
                case Retry::none:
                    ++stats_.retries.connection;
                    break;
            }
            for (auto it = round->entries.rbegin(); it != round->entries.rend(); ++it) {
                if (it->answered) continue;
                it->resent = true;
                queues_[it->partition].push_front(std::move(*it));
            }
            for (auto& [job, seq] : round->confirms)
                confirms_[partitions_.of(job)].emplace_back(job, seq);
            for (std::uint32_t p : round->partitions)
                busy_[p] = false;
        }
        logger().warn("redis round re-sent node={} ops={} why=\"{}\"", endpoint.str(),
                      round->entries.size(), why);
        node.backoff = std::min(kMaxBackoff, std::max(kFirstBackoff, node.backoff * 2));
        const auto delay = node.backoff;
        cluster_->refresh_topology([this, endpoint, delay](std::error_code) {
            after(delay, [this, endpoint] {
                nodes_[endpoint].busy = false;
                pump();
            });
        });
    }

    void finish_round(const redis::Endpoint& endpoint, const Round& round) {
        nodes_[endpoint].busy = false;
        inflight_.erase(&round);
        {
            std::lock_guard lock(mutex_);
            for (std::uint32_t p : round.partitions)
                busy_[p] = false;
        }
        pump();
    }

    // The confirms of a round are in: readers no longer need the local floor.
    void confirmed(const Round& round) {
        std::lock_guard lock(mutex_);
        for (std::size_t i = 0; i < round.confirms.size(); ++i) {
            if (round.replies[i].is_error()) continue;
            auto it = local_confirmed_.find(round.confirms[i].first);
            if (it != local_confirmed_.end() && it->second <= round.confirms[i].second)
                local_confirmed_.erase(it);
        }
    }

    // WAIT reached the replicas: the CommittedBatch, as the SQLite writer
    // makes it; the listener, then the completions.
    void commit(Round& round) {
        CommittedBatch batch;
        std::vector<WriteResult> results(round.entries.size());
        // Per job: its events this round and its snapshot if its lifecycle moved.
        std::map<std::string, std::size_t> events_of;
        std::vector<std::pair<std::string, Job>> changes;
        auto add_events = [&](const std::string& job, const std::string& owner,
                              std::vector<Event> events) {
            if (events.empty()) return;
            auto [it, fresh] = events_of.try_emplace(job, batch.events.size());
            if (fresh) {
                store::JobEvents& e = batch.events.emplace_back();
                e.job = job;
                e.owner = owner;
            }
            auto& list = batch.events[it->second].events;
            batch.event_count += events.size();
            for (Event& event : events)
                list.push_back(std::move(event));
        };
        // A job whose lifecycle moved in the round, as the round leaves it
        // (`moved` false: a later snapshot of a job that moved before).
        auto add_change = [&](const Job& job, bool moved) {
            Job snapshot = job;
            snapshot.checkpoint.clear();
            for (auto& [id, existing] : changes)
                if (id == job.id) {
                    existing = std::move(snapshot);
                    return;
                }
            if (moved) changes.emplace_back(job.id, std::move(snapshot));
        };

        const std::size_t offset = round.confirms.size();
        for (std::size_t c = 0; c < round.calls.size(); ++c) {
            const Call& call = round.calls[c];
            const redis::Reply& reply = round.replies[offset + c];
            if (reply.is_error() || !reply.is_array()) {
                const std::string why =
                    reply.is_error() ? reply.str : std::string("unexpected reply");
                logger().error("redis call failed job={} error=\"{}\"", call.job, why);
                for (std::size_t i : call.entries)
                    results[i] = failure("store write failed: " + why);
                continue;
            }
            if (call.command[1] == "jc_apply") {
                decode_apply(round, call, reply, results, add_events, add_change);
            } else {
                decode_lifecycle(reply, results[call.entries.front()], add_events, add_change);
            }
        }

        for (std::size_t i = 0; i < round.entries.size(); ++i) {
            const Entry& entry = round.entries[i];
            WriteResult& result = results[i];
            if (const auto* lease = std::get_if<store::LeaseJob>(&entry.op)) {
                store::LeaseOutcome& outcome = batch.leases.emplace_back();
                outcome.job = lease->job;
                outcome.status = result.status;
                if (result.status == WriteStatus::ok) outcome.leased = result.job;
            } else if (is_worker_op(entry.op)) {
                store::WriteAck& ack = batch.acks.emplace_back();
                ack.job = job_id_of(entry.op);
                ack.attempt = attempt_of(entry.op);
                ack.acked_wseq = result.acked_wseq;
                ack.status = result.status;
                ack.message = result.message;
            }
        }
        for (auto& [id, job] : changes)
            batch.job_changes.push_back(std::move(job));
        batch.ops = round.entries.size();
        batch.commit_seconds =
            std::chrono::duration<double>(clock_.steady() - round.started).count();

        // What readers may now show, and what the next round confirms.
        {
            std::lock_guard lock(mutex_);
            ++stats_.rounds;
            stats_.round_seconds_total += batch.commit_seconds;
            stats_.round_seconds_max = std::max(stats_.round_seconds_max, batch.commit_seconds);
            for (const store::JobEvents& e : batch.events) {
                const std::uint64_t seq = e.events.back().seq;
                auto& floor = local_confirmed_[e.job];
                floor = std::max(floor, seq);
                confirms_[partitions_.of(e.job)].emplace_back(e.job, seq);
            }
        }

        if (listener_) {
            try {
                listener_(batch);
            } catch (const std::exception& error) {
                logger().error("commit listener threw error=\"{}\"", error.what());
            }
        }
        for (std::size_t i = 0; i < round.entries.size(); ++i) {
            if (!round.entries[i].done) continue;
            try {
                round.entries[i].done(results[i]);
            } catch (const std::exception& error) {
                logger().error("completion threw error=\"{}\"", error.what());
            }
        }
        {
            std::lock_guard lock(mutex_);
            for (const Entry& entry : round.entries) {
                auto it = writing_.find(job_id_of(entry.op));
                if (it != writing_.end() && --it->second == 0) writing_.erase(it);
            }
            completed_ += round.entries.size();
        }
        space_.notify_all();
        progress_.notify_all();
    }

    template <class AddEvents, class AddChange>
    void decode_lifecycle(const redis::Reply& reply, WriteResult& result, AddEvents& add_events,
                          AddChange& add_change) {
        // [status, message, created, first seq, events, job, changed]
        if (reply.elements.size() < 7) {
            result = failure("store write failed: unexpected reply");
            return;
        }
        const auto& e = reply.elements;
        result.status = parse_status(text(e[0])).value_or(WriteStatus::conflict);
        result.message = text(e[1]);
        if (result.status != WriteStatus::ok) return;
        result.created = integer(e[2]) == 1;
        auto stored = parse_job(e[5]);
        if (!stored) return;
        result.acked_wseq = stored->wseq;
        std::vector<Event> events = parse_events(e[4], static_cast<std::uint64_t>(integer(e[3])));
        add_events(stored->job.id, stored->job.owner, std::move(events));
        add_change(stored->job, integer(e[6]) == 1);
        result.job = std::move(stored->job);
    }

    template <class AddEvents, class AddChange>
    void decode_apply(const Round& round, const Call& call, const redis::Reply& reply,
                      std::vector<WriteResult>& results, AddEvents& add_events,
                      AddChange& add_change) {
        // [changed, job, owner, [status, acked, message, first seq, events]...]
        const auto& e = reply.elements;
        std::optional<StoredJob> stored;
        if (e.size() >= 3) stored = parse_job(e[1]);
        const bool changed = e.size() >= 3 && integer(e[0]) == 1;
        const std::string owner = e.size() >= 3 ? text(e[2]) : std::string();
        for (std::size_t k = 0; k < call.entries.size(); ++k) {
            WriteResult& result = results[call.entries[k]];
            if (k + 3 >= e.size() || e[k + 3].elements.size() < 5) {
                result = failure("store write failed: unexpected reply");
                continue;
            }
            const auto& r = e[k + 3].elements;
            result.status = parse_status(text(r[0])).value_or(WriteStatus::conflict);
            result.acked_wseq = static_cast<std::uint64_t>(integer(r[1]));
            result.message = text(r[2]);
            if (result.status != WriteStatus::ok) continue;
            if (r.size() >= 6) {
                if (auto after = parse_job(r[5])) result.job = std::move(after->job);
            }
            const auto first = static_cast<std::uint64_t>(integer(r[3]));
            std::vector<Event> events;
            const WriteOp& op = round.entries[call.entries[k]].op;
            if (const auto* chunk = std::get_if<store::AppendChunk>(&op)) {
                events.push_back(Event{first, chunk->kind, chunk->ts, chunk->data});
            } else {
                events = parse_events(r[4], first);
            }
            add_events(call.job, owner, std::move(events));
        }
        if (stored) add_change(stored->job, changed);
    }

    void schedule_sweep() {
        loop_->post([this] { sweep_later(); });
    }

    void sweep_later() {
        after(config_.retention_interval, [this] {
            for (std::uint32_t p = 0; p < partitions_.count(); ++p) {
                const std::string prefix = partitions_.prefix(p);
                cluster_->async_exec(
                    {"FCALL", "jc_sweep", "1", prefix + "done", prefix,
                     std::to_string(clock_.unix_ms()), std::to_string(kSweepBatch)},
                    [](std::error_code, redis::Reply) {});
            }
            sweep_later();
        });
    }

    void shutdown() {
        shut_down_ = true;
        for (const auto& timer : timers_)
            timer->cancel();
        timers_.clear();
        for (auto& [endpoint, node] : nodes_)
            if (node.connection) node.connection->close();
        nodes_.clear();
        for (auto& [endpoint, conn] : confirmers_)
            if (conn) conn->close();
        confirmers_.clear();
        // Whatever never committed is told so.
        std::vector<Entry> left;
        for (auto& [raw, round] : inflight_) {
            round->failed = true;
            for (Entry& entry : round->entries)
                left.push_back(std::move(entry));
        }
        inflight_.clear();
        {
            std::lock_guard lock(mutex_);
            for (auto& queue : queues_) {
                for (Entry& entry : queue)
                    left.push_back(std::move(entry));
                queue.clear();
            }
            completed_ += left.size();
        }
        for (Entry& entry : left)
            if (entry.done) entry.done(failure("store is closed"));
    }

    // The seq readers may see: the confirmed cseq, or what this engine saw
    // WAIT cover. A job nobody here writes whose seq is past its cseq (its
    // writer died after WAIT, or the confirm was lost) is confirmed now, up
    // to what its primary holds on the replicas (confirm_replicated).
    std::uint64_t visible(std::string_view id, const StoredJob& stored) {
        std::uint64_t seen = stored.shown();
        bool ours = false;
        {
            std::lock_guard lock(mutex_);
            if (auto it = local_confirmed_.find(std::string(id)); it != local_confirmed_.end())
                seen = std::max(seen, std::min(it->second, stored.seq));
            ours = writing_.contains(std::string(id));
        }
        if (seen >= stored.seq || ours) return seen;
        if (auto confirmed = confirm_replicated(id, stored.seq))
            return std::max(seen, std::min(stored.seq, *confirmed));
        return seen;
    }

    // Confirms a job's events up to `seq` on its primary once they are on the
    // replicas: a fence write, WAIT (which covers it and so every earlier
    // write of that primary), then jc_confirm — all on one connection, so a
    // WAIT never stands for a write made on another connection or node.
    // cseq is raised only after that: a reader must never be shown an event
    // a failover can still discard. The cseq the primary answered; nothing
    // if any step failed.
    std::optional<std::uint64_t> confirm_replicated(std::string_view id, std::uint64_t seq) {
        auto answer = std::make_shared<std::promise<std::optional<std::uint64_t>>>();
        auto future = answer->get_future();
        const std::uint32_t partition = partitions_.of(id);
        loop_->post([this, answer, partition, key = partitions_.job_key(id), seq] {
            const auto owner = cluster_->primary_of(partitions_.slot(partition));
            if (shut_down_ || !owner) return answer->set_value(std::nullopt);
            auto& conn = confirmers_[*owner];
            if (!conn || !conn->is_open())
                conn =
                    redis::Connection::create(*loop_, *owner, cluster_options(config_).connection);
            conn->send(
                {"SET", partitions_.prefix(partition) + "fence", op_prefix_},
                [this, answer, conn, key, seq](std::error_code ec, redis::Reply fenced) {
                    // Refused (a replica, no replicas to write to): no WAIT.
                    if (ec || fenced.is_error()) return answer->set_value(std::nullopt);
                    conn->send(
                        {"WAIT", std::to_string(config_.wait_replicas),
                         std::to_string(config_.wait_timeout.count())},
                        [this, answer, conn, key, seq](std::error_code ec, redis::Reply wait) {
                            if (ec || !wait.is_integer() || wait.integer < config_.wait_replicas)
                                return answer->set_value(std::nullopt);
                            conn->send(
                                {"FCALL", "jc_confirm", "1", key, std::to_string(seq)},
                                [answer](std::error_code ec, redis::Reply confirm) {
                                    if (ec || !confirm.is_integer() || confirm.integer < 0)
                                        return answer->set_value(std::nullopt);
                                    answer->set_value(static_cast<std::uint64_t>(confirm.integer));
                                });
                        });
                });
        });
        try {
            return future.get();
        } catch (const std::future_error&) {
            return std::nullopt;  // the store shut down with the call queued
        }
    }

    std::uint64_t locally_confirmed(std::string_view job) {
        std::lock_guard lock(mutex_);
        auto it = local_confirmed_.find(std::string(job));
        return it == local_confirmed_.end() ? 0 : it->second;
    }

    const RedisStoreConfig config_;
    const Clock& clock_;
    const Partitions partitions_;
    CommitListener listener_;
    std::unique_ptr<redis::Loop> loop_;
    std::unique_ptr<redis::Cluster> cluster_;
    std::vector<std::string> generations_;
    std::string session_key_;

    // Shared with submitters and readers.
    mutable std::mutex mutex_;
    std::condition_variable space_;
    std::condition_variable progress_;
    std::vector<std::deque<Entry>> queues_;  // per partition
    std::vector<std::vector<std::pair<std::string, std::uint64_t>>> confirms_;
    std::vector<bool> busy_;  // partition in a round
    std::unordered_map<std::string, std::uint64_t> local_confirmed_;
    std::unordered_map<std::string, int> writing_;  // jobs with ops not yet completed
    std::uint64_t submitted_ = 0;
    std::uint64_t completed_ = 0;
    bool kick_pending_ = false;
    bool closing_ = false;
    bool stopped_ = false;
    RedisStoreStats stats_;

    struct ReadAhead {
        std::string job;
        std::uint64_t after = 0;
        std::size_t limit = 0;
        PagesAsked asked;
        Clock::Steady at{};
    };
    std::mutex ahead_mutex_;
    std::deque<ReadAhead> ahead_;  // oldest first

    // Loop thread only.
    std::map<redis::Endpoint, Node> nodes_;
    std::map<redis::Endpoint, std::shared_ptr<redis::Connection>> confirmers_;  // readers' confirms
    std::uint32_t first_partition_ = 0;                        // where the next round starts taking
    std::map<const Round*, std::shared_ptr<Round>> inflight_;  // sent, not yet answered
    std::set<std::shared_ptr<boost::asio::steady_timer>> timers_;
    bool shut_down_ = false;

    const std::string op_prefix_;
    std::atomic<std::uint64_t> next_op_{0};
    std::once_flag closed_;
};

}  // namespace

std::unique_ptr<RedisStore> open_redis_store(
    const RedisStoreConfig& config, store::Store::CommitListener on_commit, const Clock& clock,
    std::stop_token keep_trying, std::function<void(const std::string& error)> on_unreachable) {
    if (config.seeds.empty()) throw StoreError("redis store: no seed node given");
    if (config.partitions < 1 || config.partitions > kMaxPartitions)
        throw StoreError("redis store: partitions must be between 1 and " +
                         std::to_string(kMaxPartitions));
    if (config.max_batch_ops == 0 || config.max_queue_ops == 0)
        throw StoreError("redis store: max_batch_ops and max_queue_ops must be > 0");
    if (config.wait_replicas < 0) throw StoreError("redis store: wait must be >= 0");
    if (config.wait_timeout.count() <= 0) throw StoreError("redis store: wait_timeout must be > 0");
    if (config.retention.count() <= 0)
        throw StoreError(
            "redis store: cluster mode keeps history in RAM and needs a retention > 0 "
            "(finished jobs' keys expire after it)");
    if (config.retention_interval.count() <= 0)
        throw StoreError("redis store: retention_interval must be > 0");
    return std::make_unique<RedisStoreImpl>(config, std::move(on_commit), clock,
                                            std::move(keep_trying), on_unreachable);
}

}  // namespace jobcast::cluster
