// Shared by the web unit tests: a real store on a temporary file, a RestApi
// over it with a controllable clock, and a blocking call helper.
#pragma once

#include <atomic>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <random>
#include <string>

#include <spdlog/spdlog.h>

#include "common/clock.hpp"
#include "persistence/job_commands.hpp"
#include "protocol/schema_registry.hpp"
#include "web/http/blocking_pool.hpp"
#include "web/rest/rest_api.hpp"

namespace jobcast::web::test {

// JOBCAST_TEST_LOG=debug shows the web module's connection-level logs.
inline const bool log_level_from_env = [] {
    if (const char* level = std::getenv("JOBCAST_TEST_LOG")) {
        spdlog::set_level(spdlog::level::from_str(level));
    }
    return true;
}();

class TempDir {
  public:
    TempDir() {
        std::random_device random;
        path_ = std::filesystem::temp_directory_path() /
                ("jobcast-web-test-" + std::to_string(random()) + std::to_string(random()));
        std::filesystem::create_directories(path_);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::filesystem::path& path() const { return path_; }

  private:
    std::filesystem::path path_;
};

inline std::unique_ptr<store::Store> open_store(const TempDir& dir) {
    store::StoreConfig config;
    config.path = (dir.path() / "jobcast.db").string();
    return store::Store::open(config);
}

// Submits one op to the store and waits for its result.
inline store::WriteResult submit_sync(store::Store& store, store::WriteOp op) {
    auto promise = std::make_shared<std::promise<store::WriteResult>>();
    auto result = promise->get_future();
    store.submit(std::move(op), [promise](const store::WriteResult& r) { promise->set_value(r); });
    return result.get();
}

// A job of alice's, created and leased to worker w1: its log holds queued
// (seq 1) and running (seq 2).
inline void started_job(store::Store& store, const std::string& id) {
    Job job;
    job.id = id;
    job.type = "test";
    job.owner = "alice";
    job.created_at = 1'700'000'000'000;
    REQUIRE(submit_sync(store, store::CreateJob{job, ""}).status == store::WriteStatus::ok);
    REQUIRE(submit_sync(store, store::LeaseJob{id, "w1", 1'700'000'001'000}).status ==
            store::WriteStatus::ok);
}

// Waits for a Reply that may come from another thread.
class ReplyWaiter {
  public:
    Reply reply() {
        return [promise = promise_](HttpResponse response) {
            promise->set_value(std::move(response));
        };
    }
    HttpResponse wait() {
        auto future = promise_->get_future();
        REQUIRE(future.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
        return future.get();
    }

  private:
    std::shared_ptr<std::promise<HttpResponse>> promise_ =
        std::make_shared<std::promise<HttpResponse>>();
};

struct RestFixture {
    TempDir dir;
    std::unique_ptr<store::Store> store = open_store(dir);
    BlockingPool pool{2};
    ManualClock clock{1'700'000'000'000};
    std::atomic<bool> ready{true};
    store::StoreCommands commands{*store};
    // Empty until a test announces a worker's schemas.
    std::shared_ptr<proto::SchemaRegistry> schemas = std::make_shared<proto::SchemaRegistry>();
    RestApi api{store->jobs(),
                store->events(),
                commands,
                make_config(),
                [this](std::function<void()> task) { return pool.post(std::move(task)); },
                clock};

    ~RestFixture() {
        pool.stop();
        store->close();
    }

    RestConfig make_config() {
        RestConfig config;
        config.ready = [this] { return ready.load(); };
        config.schemas = schemas;
        return config;
    }

    HttpResponse call(std::string method, std::string target, std::string body = {},
                      HeaderMap headers = {}, std::string owner = "anonymous") {
        HttpRequest request;
        request.method = std::move(method);
        request.target = std::move(target);
        request.body = std::move(body);
        request.headers = std::move(headers);
        request.owner = std::move(owner);
        ReplyWaiter waiter;
        api.handle(std::move(request), waiter.reply());
        return waiter.wait();
    }

    // Creates a job and returns its id; each call advances the clock so ids sort.
    std::string create(std::string body = R"({"type":"research"})",
                       std::string owner = "anonymous") {
        clock.advance(std::chrono::milliseconds(1));
        auto response = call("POST", "/v1/jobs", std::move(body), {}, std::move(owner));
        REQUIRE(response.status == 201);
        return std::string(boost::json::parse(response.body).at("id").as_string());
    }
};

inline boost::json::value parse(const HttpResponse& response) {
    return boost::json::parse(response.body);
}

inline std::string error_message(const HttpResponse& response) {
    return std::string(parse(response).at("error").at("message").as_string());
}

inline std::string error_code(const HttpResponse& response) {
    return std::string(parse(response).at("error").at("code").as_string());
}

inline std::string header(const HttpResponse& response, std::string_view name) {
    for (const auto& [key, value] : response.headers) {
        if (key == name) return value;
    }
    return {};
}

}  // namespace jobcast::web::test
