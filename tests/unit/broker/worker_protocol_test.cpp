// The broker's worker-protocol machine, without sockets or sleeps: frames in,
// commit batches in, a ManualClock; frames out and store ops out.
#include "broker/worker_protocol.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <map>

#include "broker/memory_job_queue.hpp"

using namespace jobcast;
using namespace jobcast::broker;
using namespace std::chrono_literals;

namespace {

const std::string kSecret(32, 'k');

struct Rig {
    ManualClock clock;
    Rig() { clock.advance(1h); }
    std::shared_ptr<proto::SchemaRegistry> schemas = std::make_shared<proto::SchemaRegistry>();
    GatewayConfig config = [this] {
        GatewayConfig c;  // heartbeat 1 s, liveness 3, cancel grace 10 s
        c.schemas = schemas;
        return c;
    }();
    GatewayStats stats;
    MemoryJobQueue queue{clock, config.lease_timeout()};
    WorkerProtocol protocol{config, kSecret, clock, stats, queue};
    Outbox out;

    void say(const PeerId& peer, const proto::WorkerMessage& message) {
        protocol.on_frame(peer, proto::encode(message), "", out);
    }
    void commit(std::vector<store::WriteAck> acks, std::vector<store::LeaseOutcome> leases = {},
                std::vector<Job> changes = {}) {
        protocol.on_commit(acks, leases, changes, out);
    }
    // The messages sent to `peer` since the last call, in order.
    std::vector<proto::BrokerMessage> sent_to(const PeerId& peer) {
        std::vector<proto::BrokerMessage> messages;
        for (const auto& [to, frame] : out.frames) {
            if (to != peer) continue;
            auto decoded = proto::decode_broker_message(frame);
            REQUIRE(std::holds_alternative<proto::BrokerMessage>(decoded));
            messages.push_back(std::get<proto::BrokerMessage>(decoded));
        }
        out.clear_sends();
        return messages;
    }
    std::vector<store::WriteOp> take_ops() { return std::exchange(out.ops, {}); }

    // Hello from `peer` as worker `name`, then one job leased to it (attempt 1).
    // Returns the session its welcome carried.
    std::string run_one_job(const PeerId& peer, const std::string& name, const std::string& job) {
        say(peer, proto::Hello{name, {"llm"}, 1, {}});
        Job queued = make_job(job, JobState::queued, 0);
        commit({}, {}, {queued});
        protocol.dispatch(out);
        auto ops = take_ops();
        REQUIRE(ops.size() == 1);
        REQUIRE(std::get<store::LeaseJob>(ops[0]).job == job);
        Job leased = make_job(job, JobState::running, 1, name);
        commit({}, {{job, store::WriteStatus::ok, leased}}, {leased});
        auto sent = sent_to(peer);
        REQUIRE(sent.size() == 2);
        CHECK(std::holds_alternative<proto::Welcome>(sent[0]));
        CHECK(std::get<proto::Assign>(sent[1]).attempt == 1);
        return std::get<proto::Welcome>(sent[0]).session;
    }

    static Job make_job(const std::string& id, JobState state, int attempt,
                        const std::string& worker = "") {
        Job job;
        job.id = id;
        job.type = "llm";
        job.state = state;
        job.attempt = attempt;
        job.worker = worker;
        return job;
    }
};

template <class T>
const T& only(const std::vector<proto::BrokerMessage>& sent) {
    REQUIRE(sent.size() == 1);
    REQUIRE(std::holds_alternative<T>(sent[0]));
    return std::get<T>(sent[0]);
}

}  // namespace

TEST_CASE("hello after a restart keeps the leases its worker still runs and rejects the others") {
    Rig rig;
    rig.protocol.reload({Rig::make_job("J", JobState::running, 2, "w"),
                         Rig::make_job("K", JobState::running, 1, "w")});
    // The session its welcome gave it before the restart (same store secret).
    WorkerSessions before(kSecret);
    const auto session =
        before.welcome("", false, "", "w", [](const std::string&) { return false; });

    // Without the session, the name (held by the reloaded leases) is refused.
    rig.say("p1", proto::Hello{"w", {"llm"}, 2, {{"J", 2, 4}}});
    CHECK(only<proto::Reject>(rig.sent_to("p1")).reason == "identity");
    CHECK(rig.stats.rejected_identity == 1);

    // J at attempt 2 is its own; K at attempt 1 too, but it says attempt 3 for it.
    rig.say("p1", proto::Hello{"w", {"llm"}, 2, {{"J", 2, 4}, {"K", 3, 1}}, session});
    auto sent = rig.sent_to("p1");
    REQUIRE(sent.size() == 2);
    CHECK(std::get<proto::Welcome>(sent[0]).session == session);
    CHECK(std::get<proto::Reject>(sent[1]) == proto::Reject{"K", "lease", 3});

    // A chunk of the attempt it holds is written; one of a stale attempt is refused.
    rig.say("p1", proto::Chunk{"J", 2, 4, EventKind::token, R"({"text":"a"})", 1});
    auto ops = rig.take_ops();
    REQUIRE(ops.size() == 1);
    CHECK(std::get<store::AppendChunk>(ops[0]).wseq == 4);
    rig.say("p1", proto::Chunk{"J", 1, 9, EventKind::token, R"({"text":"b"})", 1});
    CHECK(only<proto::Reject>(rig.sent_to("p1")) == proto::Reject{"J", "lease", 1});
    CHECK(rig.take_ops().empty());
    CHECK(rig.stats.rejected_lease == 1);

    // K was not claimed: after one lease timeout and the allowance for a
    // worker still in its reconnect backoff, it is requeued.
    rig.clock.advance(2s);
    rig.say("p1", proto::Heartbeat{});
    rig.clock.advance(2s);
    rig.protocol.tick(rig.out);
    CHECK(rig.take_ops().empty());
    rig.clock.advance(kReloadReconnectAllowance);
    rig.say("p1", proto::Heartbeat{});
    rig.protocol.tick(rig.out);
    ops = rig.take_ops();
    REQUIRE(ops.size() == 1);
    CHECK(std::get<store::RequeueJob>(ops[0]).job == "K");
}

TEST_CASE("acks of one commit are coalesced per attempt, a gap is rejected") {
    Rig rig;
    rig.run_one_job("p1", "w", "J");
    rig.commit({{"J", 1, 3, store::WriteStatus::ok, ""},
                {"J", 1, 5, store::WriteStatus::duplicate, ""},
                {"J", 1, 4, store::WriteStatus::ok, ""}});
    CHECK(only<proto::Ack>(rig.sent_to("p1")) == proto::Ack{"J", 1, 5});
    CHECK(rig.stats.duplicates == 1);

    rig.commit({{"J", 1, 9, store::WriteStatus::gap, "expected 6"}});
    CHECK(only<proto::Reject>(rig.sent_to("p1")) == proto::Reject{"J", "gap", 1});

    // An ack for an attempt nobody holds goes nowhere.
    rig.commit({{"J", 2, 1, store::WriteStatus::ok, ""}});
    CHECK(rig.out.frames.empty());
}

TEST_CASE("a commit's acks merged by attempt send the workers what they would have got") {
    using store::WriteStatus;
    // Two workers, one job each, and one commit's acks (one per chunk op) as
    // the writer hands them over: runs of an attempt's oks, interleaved with
    // the other job's, a duplicate, a gap, an attempt nobody holds.
    const std::vector<store::WriteAck> acks = {
        {"J", 1, 1, WriteStatus::ok, ""},        {"J", 1, 2, WriteStatus::ok, ""},
        {"K", 1, 1, WriteStatus::ok, ""},        {"J", 1, 3, WriteStatus::ok, ""},
        {"J", 1, 3, WriteStatus::duplicate, ""}, {"J", 1, 4, WriteStatus::ok, ""},
        {"J", 1, 5, WriteStatus::ok, ""},        {"J", 2, 7, WriteStatus::ok, ""},
        {"K", 1, 2, WriteStatus::ok, ""},        {"K", 1, 9, WriteStatus::gap, "expected 3"},
        {"K", 1, 3, WriteStatus::ok, ""},
    };
    std::vector<store::WriteAck> merged = {{"J", 1, 0, WriteStatus::ok, ""}};  // owed from before
    append_acks(merged, acks);
    REQUIRE(merged.size() == 9);
    CHECK(merged[0].acked_wseq == 2);  // the one owed, with this commit's J 1..2
    CHECK(merged[2].acked_wseq == 3);  // J 3: K's ack came between
    CHECK(merged[3].status == WriteStatus::duplicate);
    CHECK(merged[4].acked_wseq == 5);  // J 4..5
    CHECK(merged[7].status == WriteStatus::gap);
    CHECK(merged[8].acked_wseq == 3);  // K 3, after the gap

    std::map<std::string, std::vector<proto::BrokerMessage>> sent[2];
    std::uint64_t duplicates[2] = {};
    for (int merge = 0; merge < 2; ++merge) {
        Rig rig;
        rig.run_one_job("p1", "w1", "J");
        rig.run_one_job("p2", "w2", "K");
        rig.commit(merge ? merged : acks);
        for (const auto& [peer, frame] : rig.out.frames) {  // sent_to() clears all peers'
            auto decoded = proto::decode_broker_message(frame);
            REQUIRE(std::holds_alternative<proto::BrokerMessage>(decoded));
            sent[merge][peer].push_back(std::get<proto::BrokerMessage>(decoded));
        }
        duplicates[merge] = rig.stats.duplicates;
    }
    CHECK(sent[1] == sent[0]);
    CHECK(duplicates[1] == duplicates[0]);
    CHECK(only<proto::Ack>(sent[1]["p1"]) == proto::Ack{"J", 1, 5});
    CHECK(duplicates[1] == 1);
    CHECK(sent[1]["p2"] ==
          std::vector<proto::BrokerMessage>{proto::Ack{"K", 1, 3}, proto::Reject{"K", "gap", 1}});
}

TEST_CASE("an unknown connection is told to say hello") {
    Rig rig;
    rig.say("p9", proto::Chunk{"J", 1, 1, EventKind::token, "{}", 1});
    CHECK(only<proto::Reject>(rig.sent_to("p9")).reason == "hello");
    CHECK(rig.take_ops().empty());
    CHECK(rig.stats.rejected_unknown_peer == 1);
}

TEST_CASE("a refused lease frees the slot, an outcome of a failed batch too") {
    Rig rig;
    rig.say("p1", proto::Hello{"w", {"llm"}, 1, {}});
    rig.commit({}, {}, {Rig::make_job("J", JobState::queued, 0)});
    rig.protocol.dispatch(rig.out);
    REQUIRE(rig.take_ops().size() == 1);
    rig.commit({}, {{"J", store::WriteStatus::conflict, std::nullopt}});
    rig.sent_to("p1");

    rig.commit({}, {}, {Rig::make_job("K", JobState::queued, 0)});
    rig.protocol.dispatch(rig.out);
    auto ops = rig.take_ops();
    REQUIRE(ops.size() == 1);
    CHECK(std::get<store::LeaseJob>(ops[0]).job == "K");
}

TEST_CASE("a cancel reaches the worker, and is forced once its grace is over") {
    Rig rig;
    rig.run_one_job("p1", "w", "J");
    Job cancelling = Rig::make_job("J", JobState::running, 1, "w");
    cancelling.cancel_requested = true;
    rig.commit({}, {}, {cancelling});
    CHECK(only<proto::Cancel>(rig.sent_to("p1")).job == "J");

    rig.clock.advance(9s);
    rig.say("p1", proto::Heartbeat{});
    rig.protocol.tick(rig.out);
    CHECK(rig.take_ops().empty());
    rig.sent_to("p1");

    rig.clock.advance(1s);
    rig.say("p1", proto::Heartbeat{});
    rig.protocol.tick(rig.out);
    auto ops = rig.take_ops();
    REQUIRE(ops.size() == 1);
    const auto& forced = std::get<store::CancelJob>(ops[0]);
    CHECK(forced.job == "J");
    CHECK(forced.force);
    CHECK(forced.now == rig.clock.unix_ms());

    rig.clock.advance(1s);
    rig.say("p1", proto::Heartbeat{});
    rig.protocol.tick(rig.out);
    CHECK(rig.take_ops().empty());  // once

    // The job ends cancelled: its worker is told to stop.
    rig.sent_to("p1");
    rig.commit({}, {}, {Rig::make_job("J", JobState::cancelled, 1, "w")});
    CHECK(only<proto::Cancel>(rig.sent_to("p1")).job == "J");
}

TEST_CASE("a silent worker loses its lease, heartbeats keep it") {
    Rig rig;
    rig.run_one_job("p1", "w", "J");
    for (int i = 0; i < 5; ++i) {
        rig.clock.advance(2s);
        rig.say("p1", proto::Heartbeat{std::vector<proto::InflightJob>{{"J", 1, 1}}, 1});
        rig.protocol.tick(rig.out);
        CHECK(rig.take_ops().empty());
    }
    CHECK(rig.protocol.worker_count() == 1);

    rig.clock.advance(3001ms);
    rig.protocol.tick(rig.out);
    auto ops = rig.take_ops();
    REQUIRE(ops.size() == 1);
    const auto& requeue = std::get<store::RequeueJob>(ops[0]);
    CHECK(requeue.job == "J");
    CHECK(requeue.attempt == 1);
    CHECK(requeue.reason == "worker w stopped heart-beating");
    CHECK(rig.stats.leases_lost == 1);
    CHECK(rig.protocol.worker_count() == 0);
    rig.sent_to("p1");  // the heartbeats
    // Its chunks are refused from now on: it must say hello again.
    rig.say("p1", proto::Chunk{"J", 1, 2, EventKind::token, "{}", 1});
    CHECK(only<proto::Reject>(rig.sent_to("p1")).reason == "hello");
}

TEST_CASE("a heartbeat that no longer lists a received assign loses that lease") {
    Rig rig;
    rig.run_one_job("p1", "w", "J");
    rig.say("p1", proto::Heartbeat{std::vector<proto::InflightJob>{}, 1});
    auto ops = rig.take_ops();
    REQUIRE(ops.size() == 1);
    CHECK(std::get<store::RequeueJob>(ops[0]).reason == "worker w is not running it");
}

TEST_CASE("time the broker itself was away does not count as silence") {
    Rig rig;
    rig.run_one_job("p1", "w", "J");
    rig.clock.advance(10s);
    rig.protocol.stalled(10s);
    rig.protocol.tick(rig.out);
    CHECK(rig.take_ops().empty());
    CHECK(rig.stats.stalls == 1);
}

TEST_CASE("jobs go to the workers of their type with the most free slots") {
    Rig rig;
    rig.say("a", proto::Hello{"a", {"llm"}, 4, {}});
    rig.say("b", proto::Hello{"b", {"llm", "research"}, 2, {}});
    std::vector<Job> queued;
    for (int i = 0; i < 5; ++i)
        queued.push_back(Rig::make_job("J" + std::to_string(i), JobState::queued, 0));
    Job research = Rig::make_job("R", JobState::queued, 0);
    research.type = "research";
    research.priority = 9;
    queued.push_back(research);
    rig.commit({}, {}, queued);
    rig.protocol.dispatch(rig.out);
    std::map<std::string, int> per_worker;
    std::vector<std::string> jobs;
    for (const auto& op : rig.take_ops()) {
        const auto& lease = std::get<store::LeaseJob>(op);
        ++per_worker[lease.worker];
        jobs.push_back(lease.job);
    }
    CHECK(per_worker == std::map<std::string, int>{{"a", 4}, {"b", 2}});
    CHECK(std::count(jobs.begin(), jobs.end(), "R") == 1);
    CHECK(rig.stats.queue_depth == 0);

    rig.protocol.dispatch(rig.out);  // no slot left
    CHECK(rig.take_ops().empty());
}

namespace {

std::vector<std::string> ids(const std::vector<QueuedJob>& jobs) {
    std::vector<std::string> out;
    for (const auto& job : jobs)
        out.push_back(job.job);
    return out;
}

}  // namespace

TEST_CASE("cluster: jobs no longer queued in the cluster leave the queue and its depth") {
    Rig rig;
    std::vector<Job> queued;
    for (const char* id : {"J1", "J2", "J3"})
        queued.push_back(Rig::make_job(id, JobState::queued, 0));
    rig.commit({}, {}, queued);  // submitted here: no worker here takes them
    rig.protocol.dispatch(rig.out);
    CHECK(rig.take_ops().empty());
    CHECK(rig.stats.queue_depth == 3);

    // Another broker leased J1 and J2 (or they ended there): nothing of it
    // reaches this broker's commits, the cluster's queue says so.
    auto check = rig.protocol.start_queue_check(100);
    CHECK(ids(check) == std::vector<std::string>{"J1", "J2", "J3"});
    CHECK(rig.protocol.start_queue_check(100).empty());  // one check at a time
    rig.protocol.on_not_queued({"J1", "J2"});
    CHECK(rig.stats.queue_depth == 1);
    CHECK(ids(rig.protocol.start_queue_check(100)) == std::vector<std::string>{"J3"});

    // J3, taken by a worker here before the answer came, stays its.
    rig.say("w", proto::Hello{"w", {"llm"}, 1, {}});
    rig.protocol.dispatch(rig.out);
    auto ops = rig.take_ops();
    REQUIRE(ops.size() == 1);
    CHECK(std::get<store::LeaseJob>(ops[0]).job == "J3");
    rig.protocol.on_not_queued({"J3"});
    CHECK(rig.stats.queue_depth == 0);
    Job leased = Rig::make_job("J3", JobState::running, 1, "w");
    rig.commit({}, {{"J3", store::WriteStatus::ok, leased}}, {leased});
    auto sent = rig.sent_to("w");
    REQUIRE(sent.size() == 2);
    CHECK(std::get<proto::Assign>(sent[1]).job == "J3");
    CHECK(rig.protocol.start_queue_check(100).empty());  // nothing waits here
}

TEST_CASE("cluster: a job queued here again while a queue check runs stays queued") {
    Rig rig;
    rig.commit({}, {}, {Rig::make_job("J1", JobState::queued, 0)});
    rig.protocol.on_offered({{"J2", "llm", 0}});
    CHECK(rig.stats.queue_depth == 2);
    REQUIRE(rig.protocol.start_queue_check(100).size() == 2);

    // Before the answer: J1 is leased here, fails and is retried (queued
    // again, here); J2 was leased elsewhere, and a reservation offers it
    // again after it came back to the cluster's queue. The lookup saw both
    // leased: the answer says neither is queued.
    rig.say("w", proto::Hello{"w", {"llm"}, 2, {}});
    rig.protocol.dispatch(rig.out);
    REQUIRE(rig.take_ops().size() == 2);
    Job leased = Rig::make_job("J1", JobState::running, 1, "w");
    rig.commit({}, {{"J1", store::WriteStatus::ok, leased}}, {leased});
    rig.commit({}, {{"J2", store::WriteStatus::conflict, std::nullopt}});
    rig.commit({}, {}, {Rig::make_job("J1", JobState::queued, 1)});
    rig.protocol.on_offered({{"J2", "llm", 0}});
    CHECK(rig.stats.queue_depth == 2);
    rig.protocol.on_not_queued({"J1", "J2"});
    CHECK(rig.stats.queue_depth == 2);

    // The next check looks them up afresh.
    CHECK(ids(rig.protocol.start_queue_check(100)) == std::vector<std::string>{"J1", "J2"});
    rig.protocol.on_not_queued({"J2"});
    CHECK(rig.stats.queue_depth == 1);
}

TEST_CASE("cluster: a long queue is checked in turns") {
    Rig rig;
    std::vector<Job> queued;
    for (const char* id : {"J1", "J2", "J3", "J4", "J5"})
        queued.push_back(Rig::make_job(id, JobState::queued, 0));
    rig.commit({}, {}, queued);
    std::vector<std::string> seen;
    for (int round = 0; round < 3; ++round) {
        auto check = ids(rig.protocol.start_queue_check(2));
        CHECK(check.size() == 2);
        seen.insert(seen.end(), check.begin(), check.end());
        rig.protocol.on_not_queued({});
    }
    CHECK(rig.stats.queue_depth == 5);  // every answer found them queued
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    CHECK(seen == std::vector<std::string>{"J1", "J2", "J3", "J4", "J5"});
}

TEST_CASE("a hello for a live worker's name without its session changes nothing") {
    Rig rig;
    rig.run_one_job("real", "w", "J");
    rig.say("imp", proto::Hello{"w", {"llm"}, 1, {{"J", 1, 1}}});
    CHECK(only<proto::Reject>(rig.sent_to("imp")).reason == "identity");
    CHECK(rig.out.replaced.empty());
    CHECK(rig.take_ops().empty());
    CHECK(rig.protocol.worker_count() == 1);
    rig.say("real", proto::Chunk{"J", 1, 1, EventKind::token, "{}", 1});
    CHECK(rig.take_ops().size() == 1);  // still the holder
    rig.say("imp", proto::Chunk{"J", 1, 1, EventKind::token, "{}", 1});
    CHECK(only<proto::Reject>(rig.sent_to("imp")).reason == "hello");
}

TEST_CASE("with CURVE the worker's own key takes its name back on a new connection") {
    Rig rig;
    rig.protocol.on_frame("p1", proto::encode(proto::Hello{"w", {"llm"}, 2, {}}), "KEY1", rig.out);
    rig.commit({}, {},
               {Rig::make_job("J", JobState::queued, 0), Rig::make_job("K", JobState::queued, 0)});
    rig.protocol.dispatch(rig.out);
    REQUIRE(rig.take_ops().size() == 2);
    rig.commit({}, {{"J", store::WriteStatus::ok, Rig::make_job("J", JobState::running, 1, "w")},
                    {"K", store::WriteStatus::ok, Rig::make_job("K", JobState::running, 1, "w")}});
    rig.sent_to("p1");

    // Another key is refused, whatever it presents.
    rig.protocol.on_frame("p2", proto::encode(proto::Hello{"w", {"llm"}, 2, {{"J", 1, 1}}}), "KEY2",
                          rig.out);
    CHECK(only<proto::Reject>(rig.sent_to("p2")).reason == "identity");

    // The same key, on a new connection, still running J only: K is requeued.
    rig.protocol.on_frame("p3", proto::encode(proto::Hello{"w", {"llm"}, 2, {{"J", 1, 1}}}), "KEY1",
                          rig.out);
    CHECK(rig.out.replaced == std::vector<PeerId>{"p1"});
    CHECK(std::holds_alternative<proto::Welcome>(rig.sent_to("p3").at(0)));
    auto ops = rig.take_ops();
    REQUIRE(ops.size() == 1);
    const auto& requeue = std::get<store::RequeueJob>(ops[0]);
    CHECK(requeue.job == "K");
    CHECK(requeue.reason == "worker w dropped the job");
    rig.say("p3", proto::Chunk{"J", 1, 1, EventKind::token, "{}", 1});
    CHECK(rig.take_ops().size() == 1);
}

TEST_CASE("a dropped connection's lease waits for the worker's hello on a new one") {
    Rig rig;
    const auto session = rig.run_one_job("p1", "w", "J");
    rig.protocol.disconnected("p1", "unreachable");
    CHECK(rig.protocol.worker_count() == 0);
    rig.clock.advance(2s);
    rig.protocol.tick(rig.out);
    CHECK(rig.take_ops().empty());
    rig.say("p2", proto::Hello{"w", {"llm"}, 1, {{"J", 1, 1}}, session});
    CHECK(std::get<proto::Welcome>(rig.sent_to("p2").at(0)).session == session);
    rig.clock.advance(2s);
    rig.protocol.tick(rig.out);
    CHECK(rig.take_ops().empty());  // claimed: not expired
    rig.say("p2", proto::Chunk{"J", 1, 1, EventKind::token, "{}", 1});
    CHECK(rig.take_ops().size() == 1);
}

TEST_CASE("shutdown tells every worker to reconnect") {
    Rig rig;
    rig.say("p1", proto::Hello{"a", {"llm"}, 1, {}});
    rig.say("p2", proto::Hello{"b", {"llm"}, 1, {}});
    rig.out.clear_sends();
    rig.protocol.goodbye(rig.out);
    CHECK(only<proto::Reject>(rig.sent_to("p1")).reason == "shutdown");
    rig.protocol.goodbye(rig.out);
    CHECK(only<proto::Reject>(rig.sent_to("p2")).reason == "shutdown");
}

TEST_CASE("schemas in a hello are kept for the worker's types while it is connected") {
    Rig rig;
    proto::Hello hello{"w", {"llm", "exec"}, 1, {}};
    hello.schemas = {{"llm", R"({"required":["prompt"]})"}};
    rig.say("p1", hello);
    const std::string session = only<proto::Welcome>(rig.sent_to("p1")).session;
    auto llm = rig.schemas->find("llm");
    REQUIRE(llm);
    CHECK(llm->check(R"({"prompt":"x"})") == std::nullopt);
    CHECK(llm->check(R"({})")->pointer == "/prompt");
    CHECK_FALSE(rig.schemas->find("exec"));
    CHECK(rig.schemas->types().size() == 2);

    SECTION("a disconnect takes them away") {
        rig.protocol.disconnected("p1", "unreachable");
        CHECK_FALSE(rig.schemas->find("llm"));
        CHECK(rig.schemas->types().empty());
    }
    SECTION("the same worker reconnecting replaces them") {
        proto::Hello again = hello;
        again.session = session;
        again.schemas = {{"exec", R"({"required":["command"]})"}};
        rig.say("p2", again);
        CHECK_FALSE(rig.schemas->find("llm"));
        CHECK(rig.schemas->find("exec"));
        CHECK(rig.schemas->types().at(0).workers == 1);
    }
    SECTION("a silent worker's go with it") {
        rig.clock.advance(rig.config.lease_timeout() + 1s);
        rig.protocol.tick(rig.out);
        CHECK_FALSE(rig.schemas->find("llm"));
    }
}

TEST_CASE("a schema that does not compile is refused alone, the worker is served") {
    Rig rig;
    proto::Hello hello{"w", {"llm", "exec", "research"}, 1, {}};
    hello.schemas = {{"llm", R"({"$ref":"#"})"},
                     {"exec", R"({"$ref":"http://127.0.0.1:9/remote.json"})"},
                     {"research", R"({"required":["topic"]})"},
                     {"not-mine", R"({"type":"object"})"}};
    rig.say("p1", hello);
    only<proto::Welcome>(rig.sent_to("p1"));
    CHECK_FALSE(rig.schemas->find("llm"));
    CHECK_FALSE(rig.schemas->find("exec"));
    CHECK_FALSE(rig.schemas->find("not-mine"));
    CHECK(rig.schemas->find("research"));
    CHECK(rig.protocol.worker_count() == 1);

    // And it is leased jobs of a type whose schema was refused.
    rig.commit({}, {}, {Rig::make_job("J", JobState::queued, 0)});
    rig.protocol.dispatch(rig.out);
    REQUIRE(rig.take_ops().size() == 1);
}

TEST_CASE("welcome announces chunks, and a chunks is the same AppendChunk ops as its chunks") {
    Rig rig;
    rig.say("p0", proto::Hello{"w0", {"llm"}, 1, {}});
    CHECK(only<proto::Welcome>(rig.sent_to("p0")).features == std::vector<std::string>{"chunks"});
    rig.run_one_job("p1", "w", "J");

    rig.say("p1", proto::Chunks{"J",
                                1,
                                5,
                                {{EventKind::token, R"({"text":"a"})", 1},
                                 {EventKind::log, R"({"level":"info","message":"m"})", 0}}});
    auto ops = rig.take_ops();
    REQUIRE(ops.size() == 2);
    CHECK(std::get<store::AppendChunk>(ops[0]).wseq == 5);
    CHECK(std::get<store::AppendChunk>(ops[0]).data == R"({"text":"a"})");
    CHECK(std::get<store::AppendChunk>(ops[1]).wseq == 6);
    CHECK(std::get<store::AppendChunk>(ops[1]).kind == EventKind::log);
    CHECK(std::get<store::AppendChunk>(ops[1]).job == "J");

    // One cumulative ack for the attempt per commit, whatever the number of chunks.
    rig.commit({{"J", 1, 5, store::WriteStatus::ok, ""}, {"J", 1, 6, store::WriteStatus::ok, ""}});
    CHECK(only<proto::Ack>(rig.sent_to("p1")) == proto::Ack{"J", 1, 6});

    // A chunks for an attempt the worker does not hold is refused whole.
    rig.say("p1", proto::Chunks{"J", 2, 1, {{EventKind::token, "{}", 1}}});
    CHECK(only<proto::Reject>(rig.sent_to("p1")) == proto::Reject{"J", "lease", 2});
    CHECK(rig.take_ops().empty());
}
