// Client API v1's REST endpoints, driven through RestApi against a real store.
#include <catch2/catch.hpp>
#include <set>

#include "test_support.hpp"

using namespace jobcast;
using namespace jobcast::web;
using namespace jobcast::web::test;
namespace bj = boost::json;

TEST_CASE("POST /v1/jobs creates a queued job", "[web][rest]") {
    RestFixture f;
    auto response = f.call("POST", "/v1/jobs",
                           R"({"type":"llm.generate","params":{"prompt":"hi"},"priority":5,)"
                           R"("max_attempts":2})");
    REQUIRE(response.status == 201);
    CHECK(response.content_type == "application/json");
    auto job = parse(response);
    std::string id(job.at("id").as_string());
    CHECK(id.size() == 26);
    CHECK(job.at("type") == "llm.generate");
    CHECK(job.at("owner") == "anonymous");
    CHECK(job.at("state") == "queued");
    CHECK(job.at("priority") == 5);
    CHECK(job.at("max_attempts") == 2);
    CHECK(job.at("params").at("prompt") == "hi");
    CHECK(job.at("created_at") == f.clock.unix_ms());
    CHECK(header(response, "Location") == "/v1/jobs/" + id);

    // Durable: a later read finds it.
    auto read = f.call("GET", "/v1/jobs/" + id);
    REQUIRE(read.status == 200);
    CHECK(parse(read).at("id").as_string() == id);
}

TEST_CASE("an unknown job type is accepted and waits for a worker", "[web][rest]") {
    RestFixture f;
    auto response = f.call("POST", "/v1/jobs", R"({"type":"nobody.runs.this"})");
    REQUIRE(response.status == 201);
    CHECK(parse(response).at("state") == "queued");
}

TEST_CASE("Idempotency-Key replays the original job", "[web][rest]") {
    RestFixture f;
    HeaderMap headers{{"idempotency-key", "order-42"}};  // header names are case-insensitive
    auto first = f.call("POST", "/v1/jobs", R"({"type":"research"})", headers);
    REQUIRE(first.status == 201);
    f.clock.advance(std::chrono::seconds(1));
    auto second = f.call("POST", "/v1/jobs", R"({"type":"research"})",
                         HeaderMap{{"Idempotency-Key", "order-42"}});
    REQUIRE(second.status == 200);
    CHECK(parse(second).at("id") == parse(first).at("id"));
    CHECK(header(second, "Idempotent-Replayed") == "true");

    SECTION("the same key with a different request is refused") {
        auto other = f.call("POST", "/v1/jobs", R"({"type":"exec"})", headers);
        CHECK(other.status == 422);
        CHECK(error_code(other) == "idempotency_key_reused");
    }
    SECTION("keys are per owner") {
        auto theirs = f.call("POST", "/v1/jobs", R"({"type":"research"})", headers, "alice");
        REQUIRE(theirs.status == 201);
        CHECK(parse(theirs).at("id") != parse(first).at("id"));
    }
    SECTION("a key over 200 characters is refused") {
        auto too_long = f.call("POST", "/v1/jobs", R"({"type":"research"})",
                               HeaderMap{{"Idempotency-Key", std::string(201, 'k')}});
        CHECK(too_long.status == 400);
        CHECK_THAT(error_message(too_long), Catch::Contains("Idempotency-Key"));
        auto at_limit = f.call("POST", "/v1/jobs", R"({"type":"research"})",
                               HeaderMap{{"Idempotency-Key", std::string(200, 'k')}});
        CHECK(at_limit.status == 201);
    }
}

TEST_CASE("POST /v1/jobs rejects bad bodies with a message naming the problem", "[web][rest]") {
    RestFixture f;
    auto not_json = f.call("POST", "/v1/jobs", "{type: research");
    CHECK(not_json.status == 400);
    CHECK(error_code(not_json) == "invalid_request");
    CHECK_THAT(error_message(not_json), Catch::Contains("JSON"));

    auto no_type = f.call("POST", "/v1/jobs", R"({"params":{}})");
    CHECK(no_type.status == 400);
    CHECK_THAT(error_message(no_type), Catch::Contains("type"));

    auto bad_priority = f.call("POST", "/v1/jobs", R"({"type":"exec","priority":"high"})");
    CHECK(bad_priority.status == 400);
    CHECK_THAT(error_message(bad_priority), Catch::Contains("priority"));

    auto empty = f.call("POST", "/v1/jobs", "");
    CHECK(empty.status == 400);

    // Content-Type is not checked: a JSON body sent as text/plain still works.
    auto plain =
        f.call("POST", "/v1/jobs", R"({"type":"exec"})", HeaderMap{{"Content-Type", "text/plain"}});
    CHECK(plain.status == 201);
}

TEST_CASE("GET /v1/jobs/{id} hides unknown and other owners' jobs alike", "[web][rest]") {
    RestFixture f;
    auto unknown = f.call("GET", "/v1/jobs/01HZZZZZZZZZZZZZZZZZZZZZZZ");
    CHECK(unknown.status == 404);
    CHECK(error_code(unknown) == "not_found");

    std::string id = f.create(R"({"type":"research"})", "alice");
    auto as_alice = f.call("GET", "/v1/jobs/" + id, {}, {}, "alice");
    CHECK(as_alice.status == 200);
    auto as_bob = f.call("GET", "/v1/jobs/" + id, {}, {}, "bob");
    CHECK(as_bob.status == 404);
    CHECK(as_bob.body == unknown.body);
}

TEST_CASE("GET /v1/jobs pages with a cursor, newest first, without duplicates", "[web][rest]") {
    RestFixture f;
    std::set<std::string> created;
    for (int i = 0; i < 25; ++i)
        created.insert(f.create());
    f.create(R"({"type":"research"})", "someone-else");

    std::set<std::string> seen;
    std::vector<std::size_t> page_sizes;
    std::string target = "/v1/jobs?limit=10";
    std::string previous_last;
    for (int guard = 0; guard < 10; ++guard) {
        auto response = f.call("GET", target);
        REQUIRE(response.status == 200);
        auto body = parse(response);
        const auto& jobs = body.at("jobs").as_array();
        page_sizes.push_back(jobs.size());
        for (const auto& job : jobs) {
            std::string id(job.at("id").as_string());
            CHECK(job.at("owner") == "anonymous");
            CHECK(seen.insert(id).second);                          // no duplicates across pages
            if (!previous_last.empty()) CHECK(id < previous_last);  // newest first
            previous_last = id;
        }
        if (body.at("next").is_null()) break;
        target = "/v1/jobs?limit=10&cursor=" + std::string(body.at("next").as_string());
    }
    CHECK(page_sizes == std::vector<std::size_t>{10, 10, 5});
    CHECK(seen == created);
}

TEST_CASE("GET /v1/jobs filters by state and type", "[web][rest]") {
    RestFixture f;
    std::string research = f.create(R"({"type":"research"})");
    std::string llm = f.create(R"({"type":"llm.generate"})");
    std::string cancelled = f.create(R"({"type":"llm.generate"})");
    REQUIRE(f.call("POST", "/v1/jobs/" + cancelled + "/cancel").status == 202);

    auto ids = [&](const std::string& target) {
        auto response = f.call("GET", target);
        REQUIRE(response.status == 200);
        std::set<std::string> out;
        auto body = parse(response);
        for (const auto& job : body.at("jobs").as_array()) {
            out.insert(std::string(job.at("id").as_string()));
        }
        return out;
    };
    CHECK(ids("/v1/jobs?type=research") == std::set<std::string>{research});
    CHECK(ids("/v1/jobs?type=llm.generate") == std::set<std::string>{llm, cancelled});
    CHECK(ids("/v1/jobs?state=cancelled") == std::set<std::string>{cancelled});
    CHECK(ids("/v1/jobs?state=queued&type=llm.generate") == std::set<std::string>{llm});
    CHECK(ids("/v1/jobs?state=") == std::set<std::string>{research, llm, cancelled});
    // Percent-encoded parameters are decoded before use.
    CHECK(ids("/v1/jobs?type=llm%2Egenerate&%73tate=%71ueued") == std::set<std::string>{llm});
}

TEST_CASE("GET /v1/jobs rejects a bad state or limit", "[web][rest]") {
    RestFixture f;
    auto bad_state = f.call("GET", "/v1/jobs?state=done");
    CHECK(bad_state.status == 400);
    CHECK_THAT(error_message(bad_state), Catch::Contains("state"));
    for (std::string limit : {"0", "1001", "ten", "-1", "5x", "99999999999999999999999"}) {
        auto response = f.call("GET", "/v1/jobs?limit=" + limit);
        CHECK(response.status == 400);
        CHECK_THAT(error_message(response), Catch::Contains("limit"));
    }
    CHECK(f.call("GET", "/v1/jobs?limit=1000").status == 200);
    auto bad_escape = f.call("GET", "/v1/jobs?type=%zz");
    CHECK(bad_escape.status == 400);
}

TEST_CASE("POST /v1/jobs/{id}/cancel cancels a queued job once", "[web][rest]") {
    RestFixture f;
    std::string id = f.create();
    auto cancel = f.call("POST", "/v1/jobs/" + id + "/cancel");
    REQUIRE(cancel.status == 202);
    CHECK(parse(cancel).at("state") == "cancelled");
    CHECK(parse(f.call("GET", "/v1/jobs/" + id)).at("state") == "cancelled");

    auto again = f.call("POST", "/v1/jobs/" + id + "/cancel");
    CHECK(again.status == 409);
    CHECK(error_code(again) == "conflict");
    CHECK(error_message(again) == "job already finished");

    CHECK(f.call("POST", "/v1/jobs/01HZZZZZZZZZZZZZZZZZZZZZZZ/cancel").status == 404);
    std::string theirs = f.create(R"({"type":"research"})", "alice");
    CHECK(f.call("POST", "/v1/jobs/" + theirs + "/cancel").status == 404);
    CHECK(parse(f.call("GET", "/v1/jobs/" + theirs, {}, {}, "alice")).at("state") == "queued");
}

TEST_CASE("GET /v1/jobs/{id}/events pages the job's log", "[web][rest]") {
    RestFixture f;
    std::string id = f.create();

    auto first = f.call("GET", "/v1/jobs/" + id + "/events");
    REQUIRE(first.status == 200);
    auto page = parse(first);
    const auto& events = page.at("events").as_array();
    REQUIRE(events.size() == 1);
    CHECK(events[0].at("seq") == 1);
    CHECK(events[0].at("kind") == "state");
    CHECK(events[0].at("data").at("state") == "queued");
    CHECK(events[0].as_object().contains("ts"));
    CHECK(page.at("last_seq") == 1);
    CHECK(page.at("done") == false);

    auto beyond = parse(f.call("GET", "/v1/jobs/" + id + "/events?after=100"));
    CHECK(beyond.at("events").as_array().empty());
    CHECK(beyond.at("last_seq") == 1);
    CHECK(
        parse(f.call("GET", "/v1/jobs/" + id + "/events?after=1")).at("events").as_array().empty());

    // Cancelling appends the terminal state event; the page that reaches it is done.
    REQUIRE(f.call("POST", "/v1/jobs/" + id + "/cancel").status == 202);
    auto all = parse(f.call("GET", "/v1/jobs/" + id + "/events?after=0"));
    const auto& log = all.at("events").as_array();
    REQUIRE(log.size() == 2);
    CHECK(log[1].at("seq") == 2);
    CHECK(log[1].at("data").at("state") == "cancelled");
    CHECK(all.at("last_seq") == 2);
    CHECK(all.at("done") == true);

    auto partial = parse(f.call("GET", "/v1/jobs/" + id + "/events?after=0&limit=1"));
    CHECK(partial.at("events").as_array().size() == 1);
    CHECK(partial.at("done") == false);  // terminal, but this page stops short of last_seq

    CHECK(f.call("GET", "/v1/jobs/01HZZZZZZZZZZZZZZZZZZZZZZZ/events").status == 404);
    CHECK(f.call("GET", "/v1/jobs/" + id + "/events", {}, {}, "bob").status == 404);
}

TEST_CASE("GET /v1/jobs/{id}/snapshot folds the log at the job's last seq", "[web][rest]") {
    RestFixture f;
    std::string id = f.create(R"({"type":"research"})", "alice");
    auto queued = f.call("GET", "/v1/jobs/" + id + "/snapshot", {}, {}, "alice");
    REQUIRE(queued.status == 200);
    auto snapshot = parse(queued);
    CHECK(snapshot.at("job").at("id").as_string() == id);
    CHECK(snapshot.at("seq") == 1);
    CHECK(snapshot.at("state") == "queued");
    CHECK(snapshot.at("text") == "");
    CHECK(snapshot.at("logs").as_array().empty());

    REQUIRE(f.call("POST", "/v1/jobs/" + id + "/cancel", {}, {}, "alice").status == 202);
    auto cancelled = parse(f.call("GET", "/v1/jobs/" + id + "/snapshot", {}, {}, "alice"));
    CHECK(cancelled.at("seq") == 2);
    CHECK(cancelled.at("state") == "cancelled");
    CHECK(cancelled.at("job").at("last_seq") == 2);

    // Only the owner sees it; another owner's job answers like an unknown one.
    auto unknown = f.call("GET", "/v1/jobs/01HZZZZZZZZZZZZZZZZZZZZZZZ/snapshot");
    CHECK(unknown.status == 404);
    auto as_bob = f.call("GET", "/v1/jobs/" + id + "/snapshot", {}, {}, "bob");
    CHECK(as_bob.status == 404);
    CHECK(as_bob.body == unknown.body);
    CHECK(f.call("POST", "/v1/jobs/" + id + "/snapshot", {}, {}, "alice").status == 405);
}

TEST_CASE("GET /v1/jobs/{id}/events rejects bad after and limit", "[web][rest]") {
    RestFixture f;
    std::string id = f.create();
    for (std::string after : {"-1", "abc", "1.5", "", "99999999999999999999999", "+1"}) {
        auto response = f.call("GET", "/v1/jobs/" + id + "/events?after=" + after);
        CHECK(response.status == 400);
        CHECK_THAT(error_message(response), Catch::Contains("after"));
    }
    for (std::string limit : {"0", "10001", "-5", "x"}) {
        auto response = f.call("GET", "/v1/jobs/" + id + "/events?limit=" + limit);
        CHECK(response.status == 400);
        CHECK_THAT(error_message(response), Catch::Contains("limit"));
    }
    CHECK(
        f.call("GET", "/v1/jobs/" + id + "/events?after=18446744073709551615&limit=10000").status ==
        200);
}

TEST_CASE("paths with percent-escapes reach the job", "[web][rest]") {
    RestFixture f;
    std::string id = f.create();
    char first = id[0];
    char escaped[4];
    std::snprintf(escaped, sizeof escaped, "%%%02X", static_cast<unsigned char>(first));
    auto response = f.call("GET", "/v1/jobs/" + std::string(escaped) + id.substr(1));
    REQUIRE(response.status == 200);
    CHECK(parse(response).at("id").as_string() == id);
}

TEST_CASE("unknown paths are 404, wrong methods 405 with Allow", "[web][rest]") {
    RestFixture f;
    auto unknown = f.call("GET", "/v1/nothing");
    CHECK(unknown.status == 404);
    CHECK(error_code(unknown) == "not_found");

    auto del = f.call("DELETE", "/v1/jobs");
    CHECK(del.status == 405);
    CHECK(header(del, "Allow") == "GET, POST");
    CHECK(error_code(del) == "method_not_allowed");

    auto get_cancel = f.call("GET", "/v1/jobs/abc/cancel");
    CHECK(get_cancel.status == 405);
    CHECK(header(get_cancel, "Allow") == "POST");

    auto post_job = f.call("POST", "/v1/jobs/abc");
    CHECK(post_job.status == 405);
    CHECK(header(post_job, "Allow") == "GET");
}

TEST_CASE("health and readiness", "[web][rest]") {
    RestFixture f;
    auto health = f.call("GET", "/healthz");
    CHECK(health.status == 200);
    CHECK(parse(health).at("status") == "ok");
    CHECK(f.call("GET", "/readyz").status == 200);
    f.ready = false;
    CHECK(f.call("GET", "/readyz").status == 503);
}

TEST_CASE("a full blocking pool answers 503 instead of queueing without bound", "[web][rest]") {
    TempDir dir;
    auto store = open_store(dir);
    store::StoreCommands commands(*store);
    RestApi api(store->jobs(), store->events(), commands, RestConfig{},
                [](std::function<void()>) { return false; });
    HttpRequest request;
    request.method = "GET";
    request.target = "/v1/jobs";
    ReplyWaiter waiter;
    api.handle(request, waiter.reply());
    auto response = waiter.wait();
    CHECK(response.status == 503);
    CHECK(header(response, "Retry-After") == "1");
    store->close();
}

namespace {

// Commands of an engine that refuses every write for now (cluster mode: out of memory).
class RefusingCommands final : public store::JobCommands {
  public:
    void create(store::CreateJob, store::Completion done) override { done(refused()); }
    void cancel(store::CancelJob, store::Completion done) override { done(refused()); }

  private:
    static store::WriteResult refused() {
        store::WriteResult result;
        result.status = store::WriteStatus::conflict;
        result.message = store::kEngineFull;
        return result;
    }
};

}  // namespace

namespace {

// Jobs of an engine that cannot be reached for now (cluster mode: mid-failover).
class UnreachableJobs final : public store::JobStore {
  public:
    std::optional<Job> get(std::string_view) override { throw unreachable(); }
    store::ListPage list(const store::ListQuery&) override { throw unreachable(); }
    std::vector<Job> unfinished() override { throw unreachable(); }
    std::vector<std::pair<JobState, std::int64_t>> count_by_state() override {
        throw unreachable();
    }

  private:
    static store::EngineUnavailable unreachable() {
        return store::EngineUnavailable("redis: could not connect to the Redis node");
    }
};

}  // namespace

TEST_CASE("a read the store cannot reach for now is 503 with Retry-After, not 500", "[web][rest]") {
    TempDir dir;
    auto store = open_store(dir);
    BlockingPool pool{1};
    UnreachableJobs jobs;
    store::StoreCommands commands(*store);
    RestApi api(jobs, store->events(), commands, RestConfig{},
                [&](std::function<void()> task) { return pool.post(std::move(task)); });
    for (const char* target : {"/v1/jobs/01J0000000000000000000000A", "/v1/jobs"}) {
        HttpRequest request;
        request.method = "GET";
        request.target = target;
        request.owner = "anonymous";
        ReplyWaiter waiter;
        api.handle(std::move(request), waiter.reply());
        auto response = waiter.wait();
        CHECK(response.status == 503);
        CHECK(header(response, "Retry-After") == "1");
        CHECK(error_code(response) == "unavailable");
    }
    store->close();
}

TEST_CASE("a write the engine refuses for now is 503 with Retry-After", "[web][rest]") {
    TempDir dir;
    auto store = open_store(dir);
    BlockingPool pool{1};
    RefusingCommands commands;
    RestApi api(store->jobs(), store->events(), commands, RestConfig{},
                [&](std::function<void()> task) { return pool.post(std::move(task)); });
    auto call = [&](std::string method, std::string target, std::string body) {
        HttpRequest request;
        request.method = std::move(method);
        request.target = std::move(target);
        request.body = std::move(body);
        request.owner = "anonymous";
        ReplyWaiter waiter;
        api.handle(std::move(request), waiter.reply());
        return waiter.wait();
    };
    auto submitted = call("POST", "/v1/jobs", R"({"type":"research"})");
    CHECK(submitted.status == 503);
    CHECK(header(submitted, "Retry-After") == "1");
    CHECK(error_code(submitted) == "unavailable");
    CHECK(error_message(submitted) == "the engine's memory is full; retry shortly");

    // A cancel of a job the store has, refused the same way.
    store::StoreCommands real(*store);
    std::promise<store::WriteResult> created;
    store::CreateJob op;
    op.job.id = new_job_id(1'700'000'000'000);
    op.job.type = "research";
    op.job.owner = "anonymous";
    op.job.created_at = 1'700'000'000'000;
    real.create(op, [&](const store::WriteResult& r) { created.set_value(r); });
    REQUIRE(created.get_future().get().status == store::WriteStatus::ok);
    auto cancelled = call("POST", "/v1/jobs/" + op.job.id + "/cancel", "");
    CHECK(cancelled.status == 503);
    CHECK(header(cancelled, "Retry-After") == "1");
    pool.stop();
    store->close();
}

// ---- params schemas ---------------------------------------------------------

namespace {

void announce(RestFixture& f, const std::string& worker, const std::string& type,
              std::string_view schema) {
    auto compiled = proto::ParamsSchema::compile(schema);
    REQUIRE(std::holds_alternative<proto::ParamsSchema::Ptr>(compiled));
    f.schemas->announce(worker, {type}, {{type, std::get<proto::ParamsSchema::Ptr>(compiled)}});
}

constexpr std::string_view kResearchSchema =
    R"({"type":"object","required":["topic"],"properties":{"topic":{"type":"string","minLength":1},)"
    R"("stage_ms":{"type":"integer","minimum":0}}})";

}  // namespace

TEST_CASE("POST /v1/jobs answers 422 naming the field when params break the type's schema",
          "[web][rest][schema]") {
    RestFixture f;
    announce(f, "w1", "research", kResearchSchema);

    auto missing = f.call("POST", "/v1/jobs", R"({"type":"research","params":{"stage_ms":5}})");
    REQUIRE(missing.status == 422);
    auto body = parse(missing);
    CHECK(body.at("error").at("code") == "invalid_params");
    CHECK(body.at("error").at("field") == "/topic");
    CHECK(body.at("error").at("rule") == "required");
    CHECK_THAT(error_message(missing), Catch::Contains("params/topic"));

    auto wrong =
        f.call("POST", "/v1/jobs", R"({"type":"research","params":{"topic":"t","stage_ms":-1}})");
    REQUIRE(wrong.status == 422);
    CHECK(parse(wrong).at("error").at("field") == "/stage_ms");
    CHECK(parse(wrong).at("error").at("rule") == "minimum");

    // With an Idempotency-Key too: nothing is queued either way.
    auto keyed = f.call("POST", "/v1/jobs", R"({"type":"research","params":{}})",
                        HeaderMap{{"Idempotency-Key", "k1"}});
    CHECK(keyed.status == 422);
    auto list = f.call("GET", "/v1/jobs");
    CHECK(parse(list).at("jobs").as_array().empty());
    CHECK(f.schemas->refusals() == std::map<std::string, std::uint64_t>{{"research", 3}});

    auto ok = f.call("POST", "/v1/jobs", R"({"type":"research","params":{"topic":"tides"}})",
                     HeaderMap{{"Idempotency-Key", "k1"}});
    CHECK(ok.status == 201);

    // Once no connected worker announces it, the type takes any params again.
    f.schemas->forget("w1");
    CHECK(f.call("POST", "/v1/jobs", R"({"type":"research","params":{}})").status == 201);
}

TEST_CASE("a type without a schema is accepted as before", "[web][rest][schema]") {
    RestFixture f;
    announce(f, "w1", "research", kResearchSchema);
    f.schemas->announce("w2", {"exec"}, {});
    CHECK(f.call("POST", "/v1/jobs", R"({"type":"exec","params":{"anything":[1]}})").status == 201);
    CHECK(f.call("POST", "/v1/jobs", R"({"type":"llm.generate"})").status == 201);
}

TEST_CASE("GET /v1/types lists the connected workers' types with their schemas",
          "[web][rest][schema]") {
    RestFixture f;
    auto empty = f.call("GET", "/v1/types");
    REQUIRE(empty.status == 200);
    CHECK(parse(empty).at("types").as_array().empty());

    announce(f, "w1", "research", kResearchSchema);
    f.schemas->announce("w2", {"exec", "research"}, {});
    auto response = f.call("GET", "/v1/types");
    REQUIRE(response.status == 200);
    const auto body = parse(response);
    const auto& types = body.at("types").as_array();
    REQUIRE(types.size() == 2);
    CHECK(types[0].at("type") == "exec");
    CHECK(types[0].at("schema").is_null());
    CHECK(types[0].at("workers") == 1);
    CHECK(types[1].at("type") == "research");
    CHECK(types[1].at("workers") == 2);
    CHECK(types[1].at("schema").at("required").at(0) == "topic");

    CHECK(f.call("POST", "/v1/types").status == 405);
}
