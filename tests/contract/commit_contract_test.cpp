// What the commit listener is told (CommittedBatch), and when: events once
// they are committed, one ack per worker op and one outcome per lease in op
// order, each job's order kept when many jobs share one submit_many; what
// flush() and close() promise; the worker session key.
#include <atomic>
#include <future>
#include <limits>

#include "contract_session.hpp"

namespace jobcast::contract {
namespace {

std::vector<std::string> acks(Session& s, const std::string& job) {
    std::vector<std::string> out;
    for (const store::WriteAck& ack : s.acks_of(job)) {
        out.push_back(std::to_string(ack.attempt) + " " + std::string(to_string(ack.status)) + " " +
                      std::to_string(ack.acked_wseq));
    }
    return out;
}

std::vector<std::string> lease_statuses(Session& s, const std::string& job) {
    std::vector<std::string> out;
    for (const store::LeaseOutcome& lease : s.leases_of(job)) {
        out.push_back(std::string(to_string(lease.status)) + (lease.leased ? " leased" : ""));
    }
    return out;
}

std::optional<Job> last_change(Session& s, const std::string& job) {
    std::optional<Job> last;
    for (const CommittedBatch& batch : s.batches()) {
        for (const Job& changed : batch.job_changes) {
            if (changed.id == job) last = changed;
        }
    }
    return last;
}

}  // namespace

TEST_CASE("one submit_many: acks and lease outcomes in op order, events once committed",
          "[contract]") {
    for_each_store([](Session& s) {
        std::vector<WriteOp> ops;
        ops.emplace_back(create("a"));
        ops.emplace_back(create("b"));
        ops.emplace_back(lease("a"));
        ops.emplace_back(lease("b", "w2"));
        ops.emplace_back(lease("a", "w3", kLeasedAt + 1));  // taken
        ops.emplace_back(chunk("a", 1, 1));
        ops.emplace_back(chunk("b", 1, 1));
        ops.emplace_back(chunk("a", 1, 2));
        ops.emplace_back(chunk("a", 1, 2));  // duplicate
        ops.emplace_back(checkpoint("a", 1, 3, "ck"));
        ops.emplace_back(done("a", 1, 4));
        ops.emplace_back(chunk("b", 1, 3));  // gap
        ops.emplace_back(lease("nope"));
        s.run_many(std::move(ops));

        for (const CommittedBatch& batch : s.batches())
            CHECK(batch.committed);
        CHECK(acks(s, "a") ==
              std::vector<std::string>{"1 ok 1", "1 ok 2", "1 duplicate 2", "1 ok 3", "1 ok 4"});
        CHECK(acks(s, "b") == std::vector<std::string>{"1 ok 1", "1 gap 1"});
        CHECK(lease_statuses(s, "a") == std::vector<std::string>{"ok leased", "conflict"});
        CHECK(lease_statuses(s, "b") == std::vector<std::string>{"ok leased"});
        CHECK(lease_statuses(s, "nope") == std::vector<std::string>{"not_found"});

        // The events the listener got, per job, are the log (checked for every
        // job by the transcript): here, what they are.
        std::vector<std::string> kinds;
        for (const Event& event : s.events_of("a"))
            kinds.push_back(std::to_string(event.seq) + " " + std::string(to_string(event.kind)));
        CHECK(kinds == std::vector<std::string>{"1 state", "2 state", "3 token", "4 token",
                                                "5 result", "6 state"});
        CHECK(s.events_of("b").size() == 3);

        // Each job's last announced change is where it ended.
        const auto a = last_change(s, "a");
        REQUIRE(a);
        CHECK(a->state == JobState::succeeded);
        const auto b = last_change(s, "b");
        REQUIRE(b);
        CHECK(b->state == JobState::running);
        CHECK(b->worker == "w2");
    });
}

TEST_CASE("many jobs interleaved in one submit_many keep each job's order", "[contract]") {
    constexpr int kJobs = 16;
    constexpr std::uint64_t kChunks = 12;
    for_each_store([&](Session& s) {
        auto id = [](int j) { return "job-" + std::to_string(j); };
        std::vector<WriteOp> ops;
        for (int j = 0; j < kJobs; ++j) {
            ops.emplace_back(create(id(j)));
            ops.emplace_back(lease(id(j)));
        }
        for (std::uint64_t w = 1; w <= kChunks; ++w) {
            for (int j = 0; j < kJobs; ++j)
                ops.emplace_back(chunk(id(j), 1, w));
        }
        for (int j = 0; j < kJobs; ++j)
            ops.emplace_back(done(id(j), 1, kChunks + 1));
        s.run_many(std::move(ops));

        for (int j = 0; j < kJobs; ++j) {
            INFO("job " << id(j));
            const std::vector<Event> log = s.log(id(j));
            REQUIRE(log.size() == kChunks + 4);
            for (std::uint64_t w = 1; w <= kChunks; ++w)
                CHECK(log[w + 1].data == "{\"w\":" + std::to_string(w) + "}");
            CHECK(log.back().data == R"({"state":"succeeded","attempt":1})");
            const auto job_acks = s.acks_of(id(j));
            REQUIRE(job_acks.size() == kChunks + 1);
            for (std::size_t i = 0; i < job_acks.size(); ++i) {
                CHECK(job_acks[i].status == WriteStatus::ok);
                CHECK(job_acks[i].acked_wseq == i + 1);
            }
            CHECK(lease_statuses(s, id(j)) == std::vector<std::string>{"ok leased"});
        }
    });
}

TEST_CASE("the listener hears of a commit before the op's completion runs", "[contract]") {
    for_each_store([](Session& s) {
        s.create_running("job-1");
        std::promise<bool> heard;
        std::future<bool> answer = heard.get_future();
        s.store().submit(chunk("job-1", 1, 1), [&](const WriteResult& result) {
            heard.set_value(result.status == WriteStatus::ok && s.listener_has("job-1", 3));
        });
        CHECK(answer.get());
    });
}

TEST_CASE("flush returns once everything submitted before it is committed and readable",
          "[contract]") {
    for_each_store([](Session& s) {
        s.store().flush();  // nothing pending: returns
        s.create_running("job-1");
        // Only chunks until the done, so that however the store groups them
        // into commits, the job's announced changes are the same.
        std::atomic<int> completed{0};
        for (std::uint64_t w = 1; w <= 30; ++w) {
            s.store().submit(chunk("job-1", 1, w), [&](const WriteResult&) { ++completed; });
        }
        std::vector<WriteOp> more;
        for (std::uint64_t w = 31; w <= 60; ++w)
            more.emplace_back(chunk("job-1", 1, w));
        s.store().submit_many(std::move(more));
        s.store().submit(done("job-1", 1, 61), [&](const WriteResult&) { ++completed; });
        s.store().flush();

        CHECK(completed == 31);
        CHECK(s.last_seq("job-1") == 64);
        CHECK(s.require_job("job-1").state == JobState::succeeded);
        CHECK(s.read("job-1", 60, 100, std::numeric_limits<std::size_t>::max()).size() == 4);
        CHECK(s.acks_of("job-1").size() == 61);
    });
}

TEST_CASE("close commits what is queued before it stops", "[contract]") {
    for_each_store([](Session& s) {
        s.create_running("job-1");
        std::vector<WriteOp> ops;
        for (std::uint64_t w = 1; w <= 100; ++w)
            ops.emplace_back(chunk("job-1", 1, w));
        s.store().submit_many(std::move(ops));
        s.store().submit(done("job-1", 1, 101), {});
        s.close();
        const auto job_acks = s.acks_of("job-1");
        REQUIRE(job_acks.size() == 101);
        CHECK(job_acks.back().status == WriteStatus::ok);
        CHECK(job_acks.back().acked_wseq == 101);
        CHECK(s.events_of("job-1").size() == 104);
    });
}

TEST_CASE("the worker session key: 32 bytes or more, the same every time", "[contract]") {
    for (const StoreUnderTest& under_test : stores_under_test()) {
        INFO("store: " << under_test.name);
        Session s(under_test);
        const std::string key = s.store().worker_session_key();
        CHECK(key.size() >= 32);
        CHECK(s.store().worker_session_key() == key);
    }
}

}  // namespace jobcast::contract
