#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "workers/jobs/jobs.hpp"
#include "workers/jobs/llm_sim.hpp"
#include "workers/testing.hpp"

#include "handler_test_support.hpp"

using namespace jobcast::worker;
using jobcast::EventKind;
using testing::token_texts;

namespace {

std::string concat(const std::vector<std::string>& tokens) {
    std::string text;
    for (const auto& t : tokens)
        text += t;
    return text;
}

}  // namespace

TEST_CASE("sim tokens follow the documented algorithm (vectors shared with the Python port)") {
    CHECK(jobs::sim_tokens("hello", 0, 8) == std::vector<std::string>{"the", " write", " plan",
                                                                      " ordered", " fail", " is",
                                                                      " research", " with"});
    CHECK(concat(jobs::sim_tokens("Tell me a story", 42, 12)) ==
          "before model after in light the worker summary before reaches gather light");
    CHECK(concat(jobs::sim_tokens("", -1, 5)) == "it stream worker model bright");
}

TEST_CASE("sim is deterministic per prompt and seed") {
    const auto a = jobs::sim_tokens("a prompt", 7, 200);
    CHECK(a == jobs::sim_tokens("a prompt", 7, 200));
    CHECK(a != jobs::sim_tokens("a prompt", 8, 200));
    CHECK(a != jobs::sim_tokens("another prompt", 7, 200));
    // A prefix of a longer run: max_tokens only truncates.
    const auto longer = jobs::sim_tokens("a prompt", 7, 300);
    CHECK(std::equal(a.begin(), a.end(), longer.begin()));
    CHECK(jobs::sim_tokens("x", 0, 0).empty());
}

TEST_CASE("llm.generate sim streams tokens whose concatenation is the result text") {
    RecordingSink sink;
    JobContext context(
        JobSpec{"j", 1, "llm.generate",
                R"({"prompt":"hi there","max_tokens":40,"seed":3,"tokens_per_second":0})", ""},
        sink);
    auto outcome = invoke_handler(jobs::llm_handler(), context);
    REQUIRE(std::holds_alternative<std::string>(outcome));
    const auto result = boost::json::parse(std::get<std::string>(outcome)).as_object();
    const auto expected = jobs::sim_tokens("hi there", 3, 40);
    CHECK(token_texts(sink) == expected);
    CHECK(result.at("text").as_string() == concat(expected));
    CHECK(result.at("tokens").to_number<std::int64_t>() == 40);
    // Checkpoints every 16 tokens, not after the last one.
    CHECK(sink.checkpoints() == std::vector<std::string>{"16", "32"});
}

TEST_CASE("llm.generate sim resumes after its checkpoint with the same text") {
    RecordingSink sink;
    JobContext context(
        JobSpec{"j", 2, "llm.generate",
                R"({"prompt":"resume me","max_tokens":50,"tokens_per_second":0})", "32"},
        sink);
    auto outcome = invoke_handler(jobs::llm_handler(), context);
    REQUIRE(std::holds_alternative<std::string>(outcome));
    const auto all = jobs::sim_tokens("resume me", 0, 50);
    CHECK(token_texts(sink) == std::vector<std::string>(all.begin() + 32, all.end()));
    CHECK(boost::json::parse(std::get<std::string>(outcome)).at("text").as_string() == concat(all));
    CHECK(sink.checkpoints() == std::vector<std::string>{"48"});
}

TEST_CASE("llm.generate paces tokens and stops when cancelled") {
    RecordingSink sink;
    JobContext context(JobSpec{"j", 1, "llm.generate",
                               R"({"prompt":"slow","max_tokens":1000,"tokens_per_second":50})", ""},
                       sink);
    const auto started = std::chrono::steady_clock::now();
    auto outcome = testing::run_cancelled_after(jobs::llm_handler(), context, sink, 3);
    REQUIRE(std::holds_alternative<Failure>(outcome));
    CHECK(std::string(std::get<Failure>(outcome).what()) == "cancelled");
    const auto tokens = token_texts(sink).size();
    CHECK(tokens >= 3);
    CHECK(tokens < 1000);
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds{10});
}

TEST_CASE("llm.generate rejects bad params without retry") {
    const auto run = [](const std::string& params) {
        RecordingSink sink;
        JobContext context(JobSpec{"j", 1, "llm.generate", params, ""}, sink);
        return invoke_handler(jobs::llm_handler(), context);
    };
    for (const auto* params :
         {R"({"max_tokens":100001})", R"({"max_tokens":-1})", R"({"tokens_per_second":-2})",
          R"({"backend":"gpt"})", R"({"prompt":12})"}) {
        INFO(params);
        auto outcome = run(params);
        REQUIRE(std::holds_alternative<Failure>(outcome));
        CHECK_FALSE(std::get<Failure>(outcome).retryable());
    }
}
