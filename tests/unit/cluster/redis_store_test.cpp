// The Redis store against a real one-shard cluster (a primary and its
// replica, started by the test): the ops and their answers, as the lifecycle
// rules give them; nothing acknowledged or readable while the replica is
// away, everything once it is back; a round whose connection is lost is sent
// again and gives duplicates, not second events; a library of another
// version on the nodes refuses the open; a broker reading a job it does not
// write never confirms what WAIT has not covered (and tells how far the log
// is written), confirms on a read past what it shows what WAIT does cover, and
// a round waiting on a primary demoted under it goes to the new primary; a
// primary out of memory refuses clients' creates and cancels for now
// (store::engine_full) while workers' ops wait for it. And the store URL.
#include <catch2/catch.hpp>

#include <signal.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <sstream>
#include <thread>

#include "../redis/redis_nodes.hpp"
#include "cluster/library.hpp"
#include "cluster/partitions.hpp"
#include "cluster/redis_store.hpp"
#include "common/clock.hpp"
#include "persistence/job_commands.hpp"
#include "persistence/written_seqs.hpp"

namespace jobcast::cluster {

namespace {

using namespace std::chrono_literals;
using store::WriteStatus;

// Every batch the listener got, copied.
class Batches {
  public:
    store::Store::CommitListener listener() {
        return [this](store::CommittedBatch& batch) {
            std::lock_guard lock(mutex_);
            batches_.push_back(batch);
            changed_.notify_all();
        };
    }
    std::size_t size() {
        std::lock_guard lock(mutex_);
        return batches_.size();
    }
    std::vector<store::CommittedBatch> since(std::size_t first) {
        std::lock_guard lock(mutex_);
        return {batches_.begin() + static_cast<std::ptrdiff_t>(first), batches_.end()};
    }

  private:
    std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<store::CommittedBatch> batches_;
};

// Submits and waits for the answer.
store::WriteResult run(store::Store& store, store::WriteOp op) {
    auto promise = std::make_shared<std::promise<store::WriteResult>>();
    auto answer = promise->get_future();
    store.submit(std::move(op), [promise](const store::WriteResult& r) { promise->set_value(r); });
    REQUIRE(answer.wait_for(20s) == std::future_status::ready);
    return answer.get();
}

store::CreateJob new_job(std::string type = "test", std::string key = "") {
    store::CreateJob op;
    op.job.id = new_job_id(1'700'000'000'000);
    op.job.type = std::move(type);
    op.job.owner = "alice";
    op.job.params = R"({"n":1})";
    op.job.max_attempts = 2;
    op.job.created_at = 1'700'000'000'000;
    op.idempotency_key = std::move(key);
    return op;
}

store::AppendChunk chunk(const std::string& job, int attempt, std::uint64_t wseq,
                         std::string data = R"({"text":"hi"})") {
    return {job,
            attempt,
            wseq,
            EventKind::token,
            static_cast<UnixUs>(1'700'000'000'000'000 + wseq),
            std::move(data)};
}

RedisStoreConfig config_for(const redis::testing::RedisNodes& nodes) {
    RedisStoreConfig config;
    config.seeds = {nodes.endpoint(0)};
    config.partitions = 8;
    config.wait_timeout = 200ms;
    config.open_timeout = 5s;
    return config;
}

}  // namespace

TEST_CASE("the store URL", "[redis_store]") {
    const RedisStoreConfig config =
        parse_store_url("redis-cluster://a:7000,10.0.0.2:7001?partitions=16&wait_timeout=2s");
    REQUIRE(config.seeds.size() == 2);
    CHECK(config.seeds[0].str() == "a:7000");
    CHECK(config.seeds[1].str() == "10.0.0.2:7001");
    CHECK(config.partitions == 16);
    CHECK(config.wait_timeout == 2000ms);
    CHECK(parse_store_url("redis-cluster://h:1?wait=2&wait_timeout=150").wait_replicas == 2);
    CHECK(parse_store_url("redis-cluster://h:1?wait_timeout=150ms").wait_timeout == 150ms);
    CHECK(parse_store_url("redis-cluster://h:1").partitions == kDefaultPartitions);
    for (const char* bad :
         {"redis://h:1", "redis-cluster://", "redis-cluster://h", "redis-cluster://h:0",
          "redis-cluster://h:70000", "redis-cluster://h:1,", "redis-cluster://h:1?partitions=0",
          "redis-cluster://h:1?partitions=99999999999999999999999",
          "redis-cluster://h:1?partitions=-1", "redis-cluster://h:1?wait_timeout=1h",
          "redis-cluster://h:1?wait_timeout=99999999999999999s", "redis-cluster://h:1?what=1",
          "redis-cluster://h:1?partitions", "redis-cluster://:1"}) {
        INFO(bad);
        CHECK_THROWS_AS(parse_store_url(bad), store::StoreError);
    }
    CHECK_THROWS_WITH(parse_store_url("redis-cluster://h:1?partitions=x"),
                      Catch::Contains("partitions must be a whole number"));
}

TEST_CASE("the embedded library is jobcast_v1", "[redis_store]") {
    CHECK(library_code().starts_with("#!lua name=" + std::string(kLibraryName) + "\n"));
    CHECK(library_code().find("local VERSION = '" + std::string(kLibraryVersion) + "'") !=
          std::string_view::npos);
}

TEST_CASE("the Redis store on a primary and its replica", "[redis_store]") {
    if (redis::testing::skip_without_redis()) return;
    redis::testing::RedisNodes nodes(2, true);
    nodes.create_single_shard();
    RedisStoreConfig config = config_for(nodes);
    Batches batches;
    auto store = open_redis_store(config, batches.listener());

    // ---- ops and their answers ----
    store::CreateJob create = new_job();
    const std::string id = create.job.id;
    store::WriteResult created = run(*store, create);
    REQUIRE(created.status == WriteStatus::ok);
    CHECK(created.created);
    REQUIRE(created.job);
    CHECK(created.job->state == JobState::queued);
    CHECK(created.job->params == R"({"n":1})");
    CHECK_FALSE(run(*store, create).created);  // the same submission again: the job
    store::CreateJob other_params = create;
    other_params.job.params = "{}";
    CHECK(run(*store, other_params).message == "job id " + id + " already exists");

    // An idempotency key: the second create answers the first job.
    store::WriteResult keyed = run(*store, new_job("test", "k1"));
    store::WriteResult again = run(*store, new_job("test", "k1"));
    REQUIRE(keyed.job);
    REQUIRE(again.job);
    CHECK(keyed.created);
    CHECK_FALSE(again.created);
    CHECK(again.job->id == keyed.job->id);

    store::WriteResult leased = run(*store, store::LeaseJob{id, "w1", 1'700'000'000'100});
    REQUIRE(leased.status == WriteStatus::ok);
    CHECK(leased.job->state == JobState::running);
    CHECK(leased.job->attempt == 1);
    CHECK(leased.job->worker == "w1");
    CHECK(run(*store, store::LeaseJob{id, "w2", 0}).message == "job is running, not queued");

    CHECK(run(*store, chunk(id, 1, 1)).status == WriteStatus::ok);
    store::WriteResult dup = run(*store, chunk(id, 1, 1));
    CHECK(dup.status == WriteStatus::duplicate);
    CHECK(dup.acked_wseq == 1);
    store::WriteResult gap = run(*store, chunk(id, 1, 5));
    CHECK(gap.status == WriteStatus::gap);
    CHECK(gap.message == "expected wseq 2, got 5");
    CHECK(run(*store, chunk(id, 2, 2)).message ==
          "lease lost: attempt 2 is not the current attempt 1");
    CHECK(run(*store, store::AppendChunk{id, 1, 2, EventKind::progress, 0, R"({"fraction":0.25})"})
              .status == WriteStatus::ok);
    CHECK(run(*store, store::SaveCheckpoint{id, 1, 3, "ckpt-bytes"}).status == WriteStatus::ok);

    // A batch of ops of one job in one round: answers and acks in op order.
    const std::size_t before = batches.size();
    store->submit_many({chunk(id, 1, 4), chunk(id, 1, 5), chunk(id, 1, 4)});
    store->flush();
    {
        std::vector<store::WriteAck> acks;
        std::vector<Event> events;
        for (auto& batch : batches.since(before)) {
            CHECK(batch.committed);
            for (auto& ack : batch.acks)
                acks.push_back(ack);
            for (auto& job : batch.events)
                for (auto& event : job.events)
                    events.push_back(event);
        }
        REQUIRE(acks.size() == 3);
        CHECK(acks[0].status == WriteStatus::ok);
        CHECK(acks[1].acked_wseq == 5);
        CHECK(acks[2].status == WriteStatus::duplicate);
        REQUIRE(events.size() == 2);
        CHECK(events[0].seq == 5);  // state queued, state running, 2 chunks, then these
        CHECK(events[1].seq == 6);
    }

    // The lease is lost: queued again, and the next lease brings the checkpoint.
    store::WriteResult requeued = run(*store, store::RequeueJob{id, 1, "", 0});
    REQUIRE(requeued.status == WriteStatus::ok);
    CHECK(requeued.job->state == JobState::queued);
    store::WriteResult second = run(*store, store::LeaseJob{id, "w2", 0});
    REQUIRE(second.job);
    CHECK(second.job->attempt == 2);
    CHECK(second.job->checkpoint == "ckpt-bytes");
    CHECK(second.job->progress == Approx(0.25));
    // The last attempt fails, retryable or not: failed.
    store::WriteResult failed =
        run(*store, store::FinishJob{id, 2, 1, false, "", "bo\"om", true, 0});
    CHECK(failed.status == WriteStatus::ok);

    auto events = store->events().read(id, 0, 100);
    REQUIRE(events.size() == 10);
    for (std::size_t i = 0; i < events.size(); ++i)
        CHECK(events[i].seq == i + 1);
    CHECK(events[0].data == R"({"state":"queued","attempt":0})");
    CHECK(events[1].data == R"({"state":"running","attempt":1,"worker":"w1"})");
    CHECK(events[2].data == R"({"text":"hi"})");
    CHECK(events[6].data == R"({"state":"queued","attempt":1,"reason":"lease lost"})");
    CHECK(events[8].kind == EventKind::error);
    CHECK(events[8].data == R"({"message":"bo\"om"})");
    CHECK(events[9].data == R"({"state":"failed","attempt":2,"reason":"bo\"om"})");
    CHECK(store->events().read(id, 3, 2).front().seq == 4);
    CHECK(store->events().read(id, 0, 100, 1).size() == 1);  // max_bytes: at least one
    CHECK(store->events().last_seq(id) == 10u);
    auto job = store->jobs().get(id);
    REQUIRE(job);
    CHECK(job->state == JobState::failed);
    CHECK(job->error == "bo\"om");
    CHECK(job->last_seq == 10);
    CHECK_FALSE(store->jobs().get("nope"));

    // Cancel: queued now; running asks the worker; forced ends it.
    store::CreateJob queued = new_job("other");
    run(*store, queued);
    store::WriteResult cancelled = run(*store, store::CancelJob{queued.job.id, false, 0});
    CHECK(cancelled.job->state == JobState::cancelled);
    CHECK(run(*store, store::CancelJob{queued.job.id, false, 0}).message == "already finished");
    store::CreateJob running = new_job();
    run(*store, running);
    run(*store, store::LeaseJob{running.job.id, "w1", 0});
    store::WriteResult asked = run(*store, store::CancelJob{running.job.id, false, 0});
    CHECK(asked.job->state == JobState::running);
    CHECK(asked.job->cancel_requested);
    CHECK(run(*store, store::CancelJob{running.job.id, true, 0}).job->state == JobState::cancelled);

    auto page = store->jobs().list({"alice", std::nullopt, std::nullopt, 2, ""});
    CHECK(page.jobs.size() == 2);
    CHECK_FALSE(page.next.empty());
    CHECK(page.jobs[0].id > page.jobs[1].id);
    auto rest = store->jobs().list({"alice", std::nullopt, std::nullopt, 10, page.next});
    CHECK(rest.jobs.size() == 2);
    CHECK(rest.next.empty());
    auto counts = store->jobs().count_by_state();
    CHECK(counts[static_cast<int>(JobState::queued)].second == 1);
    CHECK(counts[static_cast<int>(JobState::failed)].second == 1);
    CHECK(counts[static_cast<int>(JobState::cancelled)].second == 2);
    CHECK(store->jobs().unfinished().size() == 1);
    CHECK(store->worker_session_key().size() == 32);

    // ---- the replica away: nothing acknowledged or readable ----
    store::CreateJob streamed = new_job();
    const std::string sid = streamed.job.id;
    run(*store, streamed);
    run(*store, store::LeaseJob{sid, "w1", 0});
    const std::uint64_t last = *store->events().last_seq(sid);
    nodes.signal(1, SIGSTOP);
    const std::size_t paused_at = batches.size();
    store->submit(chunk(sid, 1, 1));
    store->submit(chunk(sid, 1, 2));
    std::this_thread::sleep_for(700ms);
    CHECK(batches.size() == paused_at);
    CHECK(store->events().last_seq(sid) == last);
    CHECK(store->events().read(sid, last, 10).empty());
    CHECK(store->stats().degraded.size() == 1);
    CHECK(store->stats().wait_timeouts >= 1);

    // ... and the connection lost meanwhile: the round is sent again, its
    // ops come back as duplicates (the primary had them), no event twice.
    nodes.cli(0, {"CLIENT", "KILL", "TYPE", "normal"});
    std::this_thread::sleep_for(300ms);
    nodes.signal(1, SIGCONT);
    store->flush();
    CHECK(store->stats().degraded.empty());
    CHECK(store->stats().retries.connection >= 1);
    std::vector<store::WriteAck> acks;
    for (auto& batch : batches.since(paused_at))
        for (auto& ack : batch.acks)
            acks.push_back(ack);
    REQUIRE(acks.size() == 2);
    CHECK(acks[1].acked_wseq == 2);
    CHECK(store->events().last_seq(sid) == last + 2);
    auto resumed = store->events().read(sid, 0, 100);
    REQUIRE(resumed.size() == last + 2);
    for (std::size_t i = 0; i < resumed.size(); ++i)
        CHECK(resumed[i].seq == i + 1);

    // A lifecycle op re-sent answers as the first did; a worker's finish
    // re-sent is a duplicate: its events are written once.
    store::CreateJob to_lease = new_job();
    run(*store, to_lease);
    nodes.signal(1, SIGSTOP);
    auto promise = std::make_shared<std::promise<store::WriteResult>>();
    auto answer = promise->get_future();
    store->submit(store::LeaseJob{to_lease.job.id, "w9", 0},
                  [promise](const store::WriteResult& r) { promise->set_value(r); });
    store->submit(store::FinishJob{sid, 1, 3, true, R"({"ok":true})", "", false, 0});
    std::this_thread::sleep_for(400ms);
    nodes.cli(0, {"CLIENT", "KILL", "TYPE", "normal"});
    std::this_thread::sleep_for(200ms);
    nodes.signal(1, SIGCONT);
    REQUIRE(answer.wait_for(20s) == std::future_status::ready);
    store::WriteResult lease_answer = answer.get();
    CHECK(lease_answer.status == WriteStatus::ok);
    REQUIRE(lease_answer.job);
    CHECK(lease_answer.job->attempt == 1);
    CHECK(lease_answer.job->worker == "w9");
    store->flush();
    CHECK(store->events().read(to_lease.job.id, 0, 100).size() == 2);
    auto finished = store->jobs().get(sid);
    REQUIRE(finished);
    CHECK(finished->state == JobState::succeeded);
    CHECK(store->events().read(sid, 0, 100).size() == last + 4);  // + result + state, once

    store->close();

    // ---- a library of another version: refused, with what to do ----
    nodes.cli(0, {"FUNCTION", "DELETE", std::string(kLibraryName)});
    nodes.cli(0, {"FUNCTION", "LOAD",
                  "#!lua name=jobcast_v0\nredis.register_function(\"jc_old\", function() "
                  "return 1 end)"});
    CHECK_THROWS_WITH(open_redis_store(config), Catch::Contains("FUNCTION DELETE jobcast_v0"));
    nodes.cli(0, {"FUNCTION", "DELETE", "jobcast_v0"});
    nodes.cli(0, {"FUNCTION", "LOAD",
                  "#!lua name=jobcast_v1\nredis.register_function(\"jc_apply\", function() "
                  "return 1 end)"});
    CHECK_THROWS_WITH(open_redis_store(config),
                      Catch::Contains("with other code (version unknown"));
}

}  // namespace jobcast::cluster

namespace jobcast::cluster {

TEST_CASE("the Redis store: retention and partition generations", "[redis_store]") {
    if (redis::testing::skip_without_redis()) return;
    redis::testing::RedisNodes nodes(2, true);
    nodes.create_single_shard();
    RedisStoreConfig config = config_for(nodes);
    config.retention = 300ms;
    auto store = open_redis_store(config);

    // A finished job's keys expire; the sweep takes it out of the owner
    // index and the counts. An unfinished one stays.
    store::CreateJob finished = new_job();
    run(*store, finished);
    run(*store, store::CancelJob{finished.job.id, false, 0});
    store::CreateJob waiting = new_job();
    run(*store, waiting);
    CHECK(store->jobs().list({"alice", std::nullopt, std::nullopt, 10, ""}).jobs.size() == 2);
    redis::testing::wait_until("the finished job to expire",
                               [&] { return !store->jobs().get(finished.job.id); });
    CHECK(store->events().read(finished.job.id, 0, 10).empty());
    CHECK(store->run_retention(Clock::system().unix_ms() + 1000) == 1);
    CHECK(store->jobs().list({"alice", std::nullopt, std::nullopt, 10, ""}).jobs.size() == 1);
    CHECK(store->jobs().count_by_state()[static_cast<int>(JobState::cancelled)].second == 0);
    CHECK(store->jobs().get(waiting.job.id));

    // The partition of a job re-initialized behind the store's back: its
    // ops are refused, its seqs never start over.
    const Partitions partitions(config.partitions);
    const std::string gen = partitions.prefix_of(waiting.job.id) + "gen";
    nodes.cli(0, {"SET", gen, "another"});
    store::WriteResult refused = run(*store, store::LeaseJob{waiting.job.id, "w1", 0});
    CHECK(refused.status == WriteStatus::conflict);
    CHECK_THAT(refused.message, Catch::Contains("lost or re-initialized"));
    CHECK_THROWS_WITH(store->events().read(waiting.job.id, 0, 10),
                      Catch::Contains("lost or re-initialized"));
    nodes.cli(0, {"DEL", gen});
    CHECK_THAT(run(*store, store::LeaseJob{waiting.job.id, "w1", 0}).message,
               Catch::Contains("generation is missing"));
    CHECK_THROWS_WITH(store->events().read(waiting.job.id, 0, 10),
                      Catch::Contains("generation is missing"));

    // A failover (the replica takes over) while a worker streams: the ops
    // follow the slots to the new primary, every one acked, the log whole.
    store::CreateJob streamed = new_job();
    const std::string sid = streamed.job.id;
    run(*store, streamed);
    run(*store, store::LeaseJob{sid, "w1", 0});
    std::atomic<std::uint64_t> acked{0};
    auto submit_chunks = [&](std::uint64_t from, std::uint64_t to) {
        for (std::uint64_t w = from; w <= to; ++w)
            store->submit(chunk(sid, 1, w), [&](const store::WriteResult& r) {
                if (r.status == WriteStatus::ok || r.status == WriteStatus::duplicate) ++acked;
            });
    };
    submit_chunks(1, 50);
    REQUIRE(nodes.cli(1, {"CLUSTER", "FAILOVER"}) == "OK\n");
    submit_chunks(51, 100);
    redis::testing::wait_until("node 1 to be the primary",
                               [&] { return nodes.role(1) == "master"; });
    nodes.wait_cluster_ok();
    submit_chunks(101, 150);
    store->flush();
    CHECK(acked == 150);
    auto log = store->events().read(sid, 0, 1000);
    REQUIRE(log.size() == 152);  // queued, running, 150 chunks
    for (std::size_t i = 0; i < log.size(); ++i)
        CHECK(log[i].seq == i + 1);
    store->close();

    // Backpressure: with the replica away nothing completes, and submit()
    // blocks once max_queue_ops ops wait; all goes through when it is back.
    RedisStoreConfig small = config;
    small.max_queue_ops = 4;
    auto bounded = open_redis_store(small);
    nodes.signal(0, SIGSTOP);  // node 0 is the replica since the failover
    std::atomic<int> submitted{0};
    std::thread submitter([&] {
        for (std::uint64_t w = 151; w <= 160; ++w) {
            bounded->submit(chunk(sid, 1, w));
            ++submitted;
        }
    });
    std::this_thread::sleep_for(500ms);
    CHECK(submitted == 4);
    nodes.signal(0, SIGCONT);
    submitter.join();
    bounded->flush();
    CHECK(bounded->events().last_seq(sid) == 162u);
    bounded->close();

    CHECK_THROWS_WITH(
        [&] {
            RedisStoreConfig none = config;
            none.retention = 0ms;
            open_redis_store(none);
        }(),
        Catch::Contains("needs a retention"));
}

}  // namespace jobcast::cluster

namespace jobcast::cluster {

namespace {

// A one-shard cluster (a primary and its replica) and two brokers' stores on
// it: the writer writes the jobs, the reader reads what it does not write.
struct WriterAndReader {
    redis::testing::RedisNodes nodes{2, true};
    RedisStoreConfig config = (nodes.create_single_shard(), config_for(nodes));
    std::unique_ptr<RedisStore> writer = open_redis_store(config);
    std::unique_ptr<RedisStore> reader = open_redis_store(config);

    // A job created and leased by worker w1 through the writer: its id.
    std::string running_job() {
        store::CreateJob job = new_job();
        run(*writer, job);
        run(*writer, store::LeaseJob{job.job.id, "w1", 0});
        return job.job.id;
    }
};

}  // namespace

TEST_CASE("the Redis store: a read stops at the confirmed watermark, on a page or across pages",
          "[redis_store]") {
    if (redis::testing::skip_without_redis()) return;
    WriterAndReader brokers;
    auto& [nodes, config, writer, reader] = brokers;
    const std::string sid = brokers.running_job();
    std::vector<store::WriteOp> chunks;
    for (std::uint64_t w = 1; w <= 2998; ++w)
        chunks.emplace_back(chunk(sid, 1, w));
    writer->submit_many(std::move(chunks));
    writer->flush();
    REQUIRE(reader->events().last_seq(sid) == 3000);
    // How many events from the start a byte budget of 1,200 tokens' data takes.
    const std::size_t budget = 1200 * std::string(R"({"text":"hi"})").size();
    std::size_t by_budget = 0;
    for (std::size_t bytes = 0; bytes < budget; ++by_budget)
        bytes += writer->events().read(sid, by_budget, 1)[0].data.size();

    // The watermark set back by hand (as a lost confirm leaves it): a reader
    // that does not write the job shows up to it and not one event further,
    // whether it falls inside a page of the read, at its end or past it.
    const Partitions partitions(config.partitions);
    for (std::uint64_t cseq : {1u, 999u, 1000u, 1001u, 1999u, 2000u, 2001u, 2500u}) {
        INFO("cseq " << cseq);
        REQUIRE(nodes.cli(0, {"HSET", partitions.job_key(sid), "cseq", std::to_string(cseq)}) ==
                "0\n");
        for (std::uint64_t after : {std::uint64_t{0}, cseq - 1, cseq > 500 ? cseq - 500 : 0}) {
            INFO("after " << after);
            const auto page = reader->events().read(sid, after, 5000);
            REQUIRE(page.size() == cseq - after);
            for (std::size_t i = 0; i < page.size(); ++i)
                CHECK(page[i].seq == after + i + 1);
        }
        // A byte budget met on the second page: as many as it takes.
        CHECK(reader->events().read(sid, 0, 5000, budget).size() ==
              std::min<std::uint64_t>(cseq, by_budget));
    }
    // Nothing left to show: a reader confirms what WAIT covers, then reads on.
    const auto tail = reader->events().read(sid, 2500, 5000);
    REQUIRE(tail.size() == 500);
    CHECK(tail.front().seq == 2501);
    CHECK(tail.back().seq == 3000);
    CHECK(tail.back().data == R"({"text":"hi"})");
    CHECK(tail.back().kind == EventKind::token);
    CHECK(tail.back().ts == 1'700'000'000'000'000 + 2998);

    // A replay's next page read ahead while less was confirmed: the page it
    // asks for later holds what is confirmed then, not what was then.
    const std::string job_key = partitions.job_key(sid);
    REQUIRE(nodes.cli(0, {"HSET", job_key, "cseq", "1500"}) == "0\n");
    REQUIRE(reader->events().read(sid, 0, 1000).size() == 1000);  // reads 1001.. ahead
    REQUIRE(nodes.cli(0, {"HSET", job_key, "cseq", "3000"}) == "0\n");
    const auto next = reader->events().read(sid, 1000, 1000);
    REQUIRE(next.size() == 1000);
    CHECK(next.front().seq == 1001);
    CHECK(next.back().seq == 2000);
    reader->close();
    writer->close();
}

namespace {

// The IDs of the entries of a job's log, as the primary holds them.
std::vector<std::string> entry_ids(const redis::testing::RedisNodes& nodes,
                                   const Partitions& partitions, const std::string& job) {
    std::istringstream lines(
        nodes.cli(0, {"EVAL",
                      "local o = {} for _, e in ipairs(redis.call(\"XRANGE\", KEYS[1], \"-\", "
                      "\"+\")) do o[#o + 1] = e[1] end return o",
                      "1", partitions.events_key(job)}));
    std::vector<std::string> ids;
    for (std::string line; std::getline(lines, line);)
        if (!line.empty()) ids.push_back(line);
    return ids;
}

// "<first>-<last>" of a packed entry.
std::string packed(std::uint64_t first, std::uint64_t last) {
    return std::to_string(first) + "-" + std::to_string(last);
}

}  // namespace

TEST_CASE("the Redis store: a call's events are one packed entry, read back cut anywhere",
          "[redis_store]") {
    if (redis::testing::skip_without_redis()) return;
    WriterAndReader brokers;
    auto& [nodes, config, writer, reader] = brokers;
    const Partitions partitions(config.partitions);
    const std::string sid = brokers.running_job();
    const std::string job_key = partitions.job_key(sid);
    // Created and leased: a call each, an entry each.
    CHECK(entry_ids(nodes, partitions, sid) == std::vector<std::string>{"1-1", "2-2"});

    // A round of one event: an entry of one event.
    REQUIRE(run(*writer, chunk(sid, 1, 1)).status == WriteStatus::ok);
    // A round of 600 (one call): entries of 256 events at most.
    std::vector<store::WriteOp> chunks;
    for (std::uint64_t w = 2; w <= 601; ++w)
        chunks.emplace_back(chunk(sid, 1, w, R"({"text":")" + std::to_string(w) + R"("})"));
    writer->submit_many(std::move(chunks));
    writer->flush();
    // Large events: 64 KiB of data an entry, but for one larger event.
    const std::string big = R"({"text":")" + std::string(20'000, 'x') + R"("})";
    const std::string huge = R"({"text":")" + std::string(70'000, 'y') + R"("})";
    chunks.clear();
    for (std::uint64_t w = 602; w <= 608; ++w)
        chunks.emplace_back(chunk(sid, 1, w, w == 606 ? huge : big));
    writer->submit_many(std::move(chunks));
    writer->flush();
    // Timestamps a Lua number does not hold exactly go in an entry of their
    // own, exact; the events around them are packed.
    chunks.clear();
    const UnixUs odd_ts[] = {-5, (UnixUs{1} << 52) + 1, INT64_MAX};
    for (std::uint64_t w = 609; w <= 614; ++w) {
        store::AppendChunk c = chunk(sid, 1, w);
        if (w % 2 == 0) c.ts = odd_ts[(w - 610) / 2];
        chunks.emplace_back(std::move(c));
    }
    writer->submit_many(std::move(chunks));
    writer->flush();
    const std::uint64_t last = 616;
    REQUIRE(reader->events().last_seq(sid) == last);
    CHECK(entry_ids(nodes, partitions, sid) ==
          std::vector<std::string>{"1-1", "2-2", packed(3, 3), packed(4, 259), packed(260, 515),
                                   packed(516, 603), packed(604, 606), packed(607, 607),
                                   packed(608, 608), packed(609, 610), packed(611, 611), "612-0",
                                   packed(613, 613), "614-0", packed(615, 615), "616-0"});

    // What a log of one event per entry gives: each event read alone.
    std::vector<Event> all;
    for (std::uint64_t seq = 0; seq < last; ++seq) {
        auto one = writer->events().read(sid, seq, 1);
        REQUIRE(one.size() == 1);
        REQUIRE(one[0].seq == seq + 1);
        all.push_back(std::move(one[0]));
    }
    CHECK(all[2].data == R"({"text":"hi"})");
    CHECK(all[3].data == R"({"text":"2"})");
    CHECK(all[602].data == R"({"text":"601"})");
    CHECK(all[607].data == huge);
    CHECK(all[611].ts == -5);
    CHECK(all[613].ts == (UnixUs{1} << 52) + 1);
    CHECK(all[615].ts == INT64_MAX);
    CHECK(all[614].ts == 1'700'000'000'000'000 + 613);
    CHECK(all[614].kind == EventKind::token);
    auto same = [&](const std::vector<Event>& page, std::uint64_t after, std::size_t count) {
        REQUIRE(page.size() == count);
        for (std::size_t i = 0; i < count; ++i) {
            const Event& want = all[after + i];
            CHECK(page[i].seq == want.seq);
            CHECK(page[i].kind == want.kind);
            CHECK(page[i].ts == want.ts);
            CHECK(page[i].data == want.data);
        }
    };
    // `after` and the watermark anywhere: at an entry's first or last seq,
    // inside it, at the log's ends; limits that end inside an entry.
    const std::vector<std::uint64_t> cuts = {0,   1,   2,   3,   4,   5,   100, 258, 259,
                                             260, 261, 515, 516, 600, 603, 604, 605, 606,
                                             607, 609, 611, 612, 613, 614, 615, 616};
    for (std::uint64_t cseq : cuts) {
        if (cseq == 0) continue;
        INFO("cseq " << cseq);
        REQUIRE(nodes.cli(0, {"HSET", job_key, "cseq", std::to_string(cseq)}) == "0\n");
        for (std::uint64_t after : cuts) {
            if (after >= cseq) continue;
            INFO("after " << after);
            same(reader->events().read(sid, after, 5000), after, cseq - after);
            for (std::size_t limit : {std::size_t{1}, std::size_t{2}, std::size_t{300}}) {
                INFO("limit " << limit);
                same(reader->events().read(sid, after, limit), after,
                     std::min<std::uint64_t>(limit, cseq - after));
            }
        }
    }
    // A byte budget met inside an entry: the event that meets it is the last.
    CHECK(reader->events().read(sid, 603, 100, 30'000).size() == 2);
    CHECK(reader->events().read(sid, 603, 100, 20'000).size() == 1);
    CHECK(reader->events().read(sid, 0, 1000, 10).size() == 1);

    // A log of library version 4 (an entry per event, ID <seq>-0): read as
    // it was, and written on in packed entries.
    REQUIRE(nodes.cli(0, {"XADD", partitions.events_key(sid), "617-0", "k", "log", "t", "42", "d",
                          R"({"v":4})"}) == "617-0\n");
    REQUIRE(nodes.cli(0, {"HSET", job_key, "seq", "617", "cseq", "617"}) == "0\n");
    REQUIRE(run(*writer, chunk(sid, 1, 615)).status == WriteStatus::ok);
    writer->flush();
    REQUIRE(reader->events().last_seq(sid) == 618);
    const auto tail = reader->events().read(sid, 615, 10);
    REQUIRE(tail.size() == 3);
    CHECK(tail[1].seq == 617);
    CHECK(tail[1].kind == EventKind::log);
    CHECK(tail[1].ts == 42);
    CHECK(tail[1].data == R"({"v":4})");
    CHECK(tail[2].seq == 618);
    CHECK(tail[2].ts == 1'700'000'000'000'000 + 615);
    CHECK(entry_ids(nodes, partitions, sid).back() == packed(618, 618));

    // A lifecycle call sent again answers its events read back from the log.
    const std::string gen = nodes.cli(0, {"GET", partitions.prefix_of(sid) + "gen"});
    const std::vector<std::string> cancel = {"FCALL",
                                             "jc_cancel",
                                             "1",
                                             job_key,
                                             partitions.prefix_of(sid),
                                             sid,
                                             gen.substr(0, gen.size() - 1),
                                             "60000",
                                             "op-resent",
                                             "1",
                                             "1700000009999"};
    const std::string first = nodes.cli(0, cancel);
    CHECK(first.find("cancelled") != std::string::npos);
    CHECK(nodes.cli(0, cancel) == first);
    CHECK(entry_ids(nodes, partitions, sid).back() == packed(619, 619));
    // A corrupt entry is an error, not a wrong event.
    REQUIRE(nodes.cli(0, {"XADD", partitions.events_key(sid), "620-620", "b", "junk"}) ==
            "620-620\n");
    REQUIRE(nodes.cli(0, {"HSET", job_key, "seq", "620", "cseq", "620"}) == "0\n");
    CHECK_THROWS_AS(reader->events().read(sid, 619, 10), store::StoreError);
    reader->close();
    writer->close();
}

TEST_CASE("the Redis store: confirms on read and rounds across a demotion", "[redis_store]") {
    if (redis::testing::skip_without_redis()) return;
    WriterAndReader brokers;
    auto& [nodes, config, writer, reader] = brokers;
    const std::string sid = brokers.running_job();
    REQUIRE(run(*writer, chunk(sid, 1, 1)).status == WriteStatus::ok);
    writer->flush();
    const std::uint64_t last = *writer->events().last_seq(sid);

    // The replica away: the primary holds a write WAIT does not cover. A
    // broker that does not write the job reads it: it must not confirm (and
    // so show, to itself or anyone) what a failover can still discard.
    nodes.signal(1, SIGSTOP);
    auto promise = std::make_shared<std::promise<store::WriteResult>>();
    auto answer = promise->get_future();
    writer->submit(chunk(sid, 1, 2),
                   [promise](const store::WriteResult& r) { promise->set_value(r); });
    redis::testing::wait_until("the write to wait for the replica",
                               [&] { return writer->stats().degraded.size() == 1; });
    CHECK(reader->events().last_seq(sid) == last);
    CHECK(reader->events().read(sid, last, 10).empty());
    CHECK(reader->jobs().get(sid)->last_seq == last);
    // Written, not shown.
    CHECK(dynamic_cast<store::WrittenSeqs&>(reader->jobs()).written_seq(sid) == last + 1);
    CHECK(reader->events().read(sid, last, 10).empty());

    // The replica takes over while the round waits on the old primary,
    // which is demoted: WAIT there is refused from then on, and the round
    // is sent again to the new primary (its ops are idempotent).
    std::this_thread::sleep_for(1500ms);
    nodes.signal(1, SIGCONT);
    REQUIRE(nodes.cli(1, {"CLUSTER", "FAILOVER", "TAKEOVER"}) == "OK\n");
    REQUIRE(answer.wait_for(20s) == std::future_status::ready);
    const store::WriteResult written = answer.get();
    CHECK((written.status == WriteStatus::ok || written.status == WriteStatus::duplicate));
    CHECK(written.acked_wseq == 2);
    redis::testing::wait_until("node 0 to be a replica", [&] { return nodes.role(0) == "slave"; });
    REQUIRE(run(*writer, chunk(sid, 1, 3)).status == WriteStatus::ok);
    writer->flush();
    for (store::Store* store : {writer.get(), reader.get()}) {
        CHECK(store->events().last_seq(sid) == last + 2);
        auto log = store->events().read(sid, 0, 100);
        REQUIRE(log.size() == last + 2);
        for (std::size_t i = 0; i < log.size(); ++i)
            CHECK(log[i].seq == i + 1);
        CHECK(dynamic_cast<store::WrittenSeqs&>(store->jobs()).written_seq(sid) == last + 2);
    }

    // The writer's confirm lost (as a failover can lose it): a read past
    // what the reader shows confirms the tail (WAIT covers it) and gets it.
    const Partitions partitions(config.partitions);
    REQUIRE(nodes.cli(1, {"HSET", partitions.job_key(sid), "cseq", std::to_string(last)}) == "0\n");
    const auto tail = reader->events().read(sid, last, 10);
    REQUIRE(tail.size() == 2);
    CHECK(tail.back().seq == last + 2);
    reader->close();
    writer->close();
}

TEST_CASE("the Redis store: memory full refuses clients' writes for now, workers' wait",
          "[redis_store]") {
    if (redis::testing::skip_without_redis()) return;
    redis::testing::RedisNodes nodes(2, true);
    nodes.create_single_shard();
    const RedisStoreConfig config = config_for(nodes);
    auto store = open_redis_store(config);
    store::CreateJob running = new_job();
    const std::string id = running.job.id;
    run(*store, running);
    REQUIRE(run(*store, store::LeaseJob{id, "w1", 0}).status == WriteStatus::ok);
    store::CreateJob waiting = new_job();
    run(*store, waiting);

    // maxmemory below what the node holds (noeviction): every write is refused with OOM.
    REQUIRE(nodes.cli(0, {"CONFIG", "SET", "maxmemory", "1"}) == "OK\n");
    // A client's create and cancel are answered at once, and wrote nothing.
    store::CreateJob refused = new_job();
    CHECK(store::engine_full(run(*store, refused)));
    CHECK(store::engine_full(run(*store, store::CancelJob{waiting.job.id, false, 0})));
    // A worker's chunk waits, unacknowledged; reads go on.
    auto promise = std::make_shared<std::promise<store::WriteResult>>();
    auto acked = promise->get_future();
    store->submit(chunk(id, 1, 1),
                  [promise](const store::WriteResult& r) { promise->set_value(r); });
    CHECK(acked.wait_for(1s) == std::future_status::timeout);
    CHECK(store->events().last_seq(id) == 2u);  // queued, running
    // Leases are still renewed: a renewal adds no data.
    const Partitions partitions(config.partitions);
    const std::string prefix = partitions.prefix_of(id);
    CHECK(nodes.cli(0, {"FCALL", "jc_renew", "1", prefix + "leases", prefix, "b1", id, "1"})
              .find("OOM") == std::string::npos);

    // Memory frees: the chunk goes through, nothing was lost or written twice.
    REQUIRE(nodes.cli(0, {"CONFIG", "SET", "maxmemory", "0"}) == "OK\n");
    REQUIRE(acked.wait_for(20s) == std::future_status::ready);
    const store::WriteResult written = acked.get();
    CHECK(written.status == WriteStatus::ok);
    CHECK(written.acked_wseq == 1);
    auto log = store->events().read(id, 0, 10);
    REQUIRE(log.size() == 3);
    for (std::size_t i = 0; i < log.size(); ++i)
        CHECK(log[i].seq == i + 1);
    CHECK_FALSE(store->jobs().get(refused.job.id));
    CHECK(store->jobs().get(waiting.job.id)->state == JobState::queued);
    CHECK(run(*store, refused).status == WriteStatus::ok);  // the client's retry
    store->close();
}

}  // namespace jobcast::cluster
