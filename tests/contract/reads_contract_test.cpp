// The read side every store serves: EventLog pages (by count and by bytes,
// exactly as store.hpp words the rule) and last_seq; JobStore get, list
// (owner isolation, filters, newest first, cursor paging) and count_by_state.
#include <cstdio>
#include <limits>
#include <map>

#include "contract_session.hpp"

namespace jobcast::contract {
namespace {

constexpr std::size_t kNoByteLimit = std::numeric_limits<std::size_t>::max();

// EventLog::read's rule over a whole log: seq > after, at most `limit`,
// stopping once the data adds up to max_bytes or more.
std::vector<std::uint64_t> expected_page(const std::vector<Event>& log, std::uint64_t after,
                                         std::size_t limit, std::size_t max_bytes) {
    std::vector<std::uint64_t> seqs;
    std::size_t bytes = 0;
    for (const Event& event : log) {
        if (event.seq <= after) continue;
        if (seqs.size() == limit || (!seqs.empty() && bytes >= max_bytes)) break;
        seqs.push_back(event.seq);
        bytes += event.data.size();
    }
    return seqs;
}

std::vector<std::uint64_t> seqs(const std::vector<Event>& events) {
    std::vector<std::uint64_t> out;
    for (const Event& event : events)
        out.push_back(event.seq);
    return out;
}

// A running job with 40 tokens of growing size: {"w":1} .. {"w":40}.
void fill(Session& s, const std::string& id) {
    s.create_running(id);
    std::vector<WriteOp> ops;
    for (std::uint64_t w = 1; w <= 40; ++w)
        ops.emplace_back(chunk(id, 1, w));
    s.run_many(std::move(ops));
}

std::string id_of(int n) {
    char id[16];
    std::snprintf(id, sizeof id, "job-%04d", n);
    return id;
}

std::vector<std::string> ids(const std::vector<Job>& jobs) {
    std::vector<std::string> out;
    for (const Job& job : jobs)
        out.push_back(job.id);
    return out;
}

ListQuery owned_by(std::string owner, std::size_t limit = 50) {
    ListQuery query;
    query.owner = std::move(owner);
    query.limit = limit;
    return query;
}

// Every page of `query`, following the cursor.
std::vector<std::string> all_pages(Session& s, ListQuery query) {
    std::vector<std::string> seen;
    for (;;) {
        const store::ListPage page = s.list(query);
        for (const Job& job : page.jobs)
            seen.push_back(job.id);
        if (page.next.empty()) return seen;
        REQUIRE(page.jobs.size() == query.limit);
        query.cursor = page.next;
    }
}

}  // namespace

TEST_CASE("EventLog::read pages by count and by bytes, last_seq", "[contract]") {
    for_each_store([](Session& s) {
        fill(s, "job-1");
        REQUIRE(s.last_seq("job-1") == 42);
        const std::vector<Event> log = s.log("job-1");
        REQUIRE(log.size() == 42);

        // Every start, several limits and byte budgets, against the rule.
        for (std::uint64_t after = 0; after <= 43; after += 3) {
            for (std::size_t limit : {std::size_t{1}, std::size_t{5}, std::size_t{1000}}) {
                for (std::size_t max_bytes : {std::size_t{1}, std::size_t{20}, std::size_t{64},
                                              std::size_t{1000}, kNoByteLimit}) {
                    INFO("after " << after << " limit " << limit << " max_bytes " << max_bytes);
                    CHECK(seqs(s.read("job-1", after, limit, max_bytes)) ==
                          expected_page(log, after, limit, max_bytes));
                }
            }
        }
        // The rule by hand: tokens 3..11 carry 7 bytes each.
        CHECK(seqs(s.read("job-1", 2, 1000, 20)) == std::vector<std::uint64_t>{3, 4, 5});
        CHECK(store::page_bytes(s.read("job-1", 2, 1000, 21)) == 21);
        CHECK(seqs(s.read("job-1", 2, 1000, 22)) == std::vector<std::uint64_t>{3, 4, 5, 6});
        CHECK(seqs(s.read("job-1", 5, 1000, 1)) == std::vector<std::uint64_t>{6});
        CHECK(seqs(s.read("job-1", 0, 2, kNoByteLimit)) == std::vector<std::uint64_t>{1, 2});
        CHECK(s.read("job-1", 0, 0, kNoByteLimit).empty());
        CHECK(s.read("job-1", 42, 10, kNoByteLimit).empty());
        CHECK(s.read("job-1", 1000, 10, kNoByteLimit).empty());

        // Paging by bytes reads every event once, in order.
        std::vector<std::uint64_t> paged;
        for (;;) {
            const auto page = s.read("job-1", paged.empty() ? 0 : paged.back(), 1000, 50);
            if (page.empty()) break;
            for (const Event& event : page)
                paged.push_back(event.seq);
        }
        CHECK(paged == seqs(log));

        // last_seq follows every commit, and knows no unknown job.
        s.expect(done("job-1", 1, 41), WriteStatus::ok);
        CHECK(s.last_seq("job-1") == 44);
        s.expect(create("job-2"), WriteStatus::ok);
        CHECK(s.last_seq("job-2") == 1);
        CHECK_FALSE(s.last_seq("nope"));
        CHECK(s.read("nope", 0, 10, kNoByteLimit).empty());
    });
}

TEST_CASE("EventLog::read of a long log: pages of any size, across the store's own pages",
          "[contract]") {
    for_each_store([](Session& s) {
        s.create_running("long");
        std::vector<WriteOp> ops;
        for (std::uint64_t w = 1; w <= 4998; ++w)
            ops.emplace_back(chunk("long", 1, w));
        s.run_many(std::move(ops));
        const std::vector<Event> log = s.log("long");
        REQUIRE(log.size() == 5000);
        for (std::uint64_t after : {0, 999, 1000, 1001, 4999, 5000}) {
            for (std::size_t limit : {std::size_t{1}, std::size_t{1000}, std::size_t{1001},
                                      std::size_t{3500}, std::size_t{10000}}) {
                for (std::size_t max_bytes : {std::size_t{10'000}, kNoByteLimit}) {
                    INFO("after " << after << " limit " << limit << " max_bytes " << max_bytes);
                    const auto page = s.read("long", after, limit, max_bytes);
                    CHECK(seqs(page) == expected_page(log, after, limit, max_bytes));
                }
            }
        }
        // Every event as it was written, in one read.
        const auto whole = s.read("long", 0, 10000, kNoByteLimit);
        REQUIRE(whole.size() == log.size());
        for (std::size_t i = 0; i < whole.size(); ++i)
            CHECK(describe(whole[i]) == describe(log[i]));
    });
}

TEST_CASE("JobStore::get returns the job as stored, or nothing", "[contract]") {
    for_each_store([](Session& s) {
        s.create_running("job-1");
        s.expect(chunk("job-1", 1, 1, EventKind::progress, R"({"fraction":0.5})"), WriteStatus::ok);
        const Job job = s.require_job("job-1");
        CHECK(job.id == "job-1");
        CHECK(job.state == JobState::running);
        CHECK(job.attempt == 1);
        CHECK(job.worker == "w1");
        CHECK(job.progress == Approx(0.5));
        CHECK(job.last_seq == 3);
        CHECK(job.started_at == kLeasedAt);
        CHECK_FALSE(s.get("job-2"));
    });
}

TEST_CASE("JobStore::list: the owner's jobs, newest first, filtered, paged without dupes or gaps",
          "[contract]") {
    for_each_store([](Session& s) {
        // job-0000 .. job-0024: even ones "llm", odd ones "exec"; every third leased.
        for (int i = 0; i < 25; ++i) {
            CreateJob op = create(id_of(i));
            op.job.type = i % 2 == 0 ? "llm" : "exec";
            s.expect(std::move(op), WriteStatus::ok);
            if (i % 3 == 0) s.expect(lease(id_of(i)), WriteStatus::ok);
        }
        s.expect(create("bob-1", "", "bob"), WriteStatus::ok);
        s.expect(create("bob-2", "", "bob"), WriteStatus::ok);

        std::vector<std::string> newest_first;
        for (int i = 24; i >= 0; --i)
            newest_first.push_back(id_of(i));
        for (std::size_t limit : {1, 7, 10, 25, 1000})
            CHECK(all_pages(s, owned_by("alice", limit)) == newest_first);
        CHECK(s.list(owned_by("alice", 25)).next.empty());  // an exact last page has no next

        CHECK(all_pages(s, owned_by("bob")) == std::vector<std::string>{"bob-2", "bob-1"});
        CHECK(s.list(owned_by("mallory")).jobs.empty());

        ListQuery running = owned_by("alice", 3);
        running.state = JobState::running;
        CHECK(all_pages(s, running) ==
              std::vector<std::string>{"job-0024", "job-0021", "job-0018", "job-0015", "job-0012",
                                       "job-0009", "job-0006", "job-0003", "job-0000"});
        running.type = "llm";
        CHECK(all_pages(s, running) ==
              std::vector<std::string>{"job-0024", "job-0018", "job-0012", "job-0006", "job-0000"});
        ListQuery exec = owned_by("alice", 4);
        exec.type = "exec";
        exec.state = JobState::queued;
        CHECK(ids(s.list(exec).jobs) ==
              std::vector<std::string>{"job-0023", "job-0019", "job-0017", "job-0013"});

        // Jobs created between two pages do not disturb the cursor.
        const store::ListPage first = s.list(owned_by("alice", 10));
        s.expect(create(id_of(99)), WriteStatus::ok);
        ListQuery rest = owned_by("alice", 10);
        rest.cursor = first.next;
        std::vector<std::string> seen = ids(first.jobs);
        for (const std::string& id : all_pages(s, rest))
            seen.push_back(id);
        CHECK(seen == newest_first);
    });
}

TEST_CASE("JobStore::count_by_state counts every state", "[contract]") {
    for_each_store([](Session& s) {
        auto counts = [&] {
            std::map<JobState, std::int64_t> by_state;
            const auto all = s.count_by_state();
            CHECK(all.size() == 5);
            for (const auto& [state, count] : all)
                by_state[state] = count;
            return by_state;
        };
        CHECK(counts() == std::map<JobState, std::int64_t>{{JobState::queued, 0},
                                                           {JobState::running, 0},
                                                           {JobState::succeeded, 0},
                                                           {JobState::failed, 0},
                                                           {JobState::cancelled, 0}});
        for (const char* id : {"a", "b", "c", "d", "e", "f"})
            s.expect(create(id), WriteStatus::ok);
        s.expect(create("g", "", "bob"), WriteStatus::ok);
        for (const char* id : {"b", "c", "d", "e"})
            s.expect(lease(id), WriteStatus::ok);
        s.expect(done("c", 1, 1), WriteStatus::ok);
        s.expect(fail("d", 1, 1, "x", false), WriteStatus::ok);
        s.expect(cancel("e", true), WriteStatus::ok);
        s.expect(cancel("f"), WriteStatus::ok);
        CHECK(counts() == std::map<JobState, std::int64_t>{{JobState::queued, 2},
                                                           {JobState::running, 1},
                                                           {JobState::succeeded, 1},
                                                           {JobState::failed, 1},
                                                           {JobState::cancelled, 2}});
    });
}

}  // namespace jobcast::contract
