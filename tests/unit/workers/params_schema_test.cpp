// The shipped job types' params schemas say what their handlers read: params
// a schema accepts run, and params it refuses are ones the handler fails on
// its first attempt (so the broker refuses them at submit instead).
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "protocol/params_schema.hpp"
#include "workers/jobs/jobs.hpp"
#include "workers/testing.hpp"

using namespace jobcast;
using namespace jobcast::worker;

namespace {

proto::ParamsSchema::Ptr compiled(std::string_view text) {
    auto result = proto::ParamsSchema::compile(text);
    if (const auto* error = std::get_if<std::string>(&result)) FAIL("schema refused: " << *error);
    return std::get<proto::ParamsSchema::Ptr>(result);
}

// Whether the handler fails these params for what they are (not retryable).
bool handler_refuses(const Handler& handler, const std::string& type, const std::string& params) {
    RecordingSink sink;
    JobContext context(JobSpec{"j", 1, type, params, ""}, sink);
    const JobOutcome outcome = invoke_handler(handler, context);
    const auto* failure = std::get_if<Failure>(&outcome);
    return failure && !failure->retryable();
}

struct Case {
    std::string params;
    bool valid;
};

void check_agreement(std::string_view schema_text, const Handler& handler, const std::string& type,
                     const std::vector<Case>& cases) {
    const auto schema = compiled(schema_text);
    for (const Case& c : cases) {
        INFO(type << " " << c.params);
        const auto violation = schema->check(c.params);
        CHECK(!violation == c.valid);
        CHECK(handler_refuses(handler, type, c.params) == !c.valid);
    }
}

}  // namespace

TEST_CASE("llm.generate's schema matches what the handler reads") {
    check_agreement(jobs::llm_params_schema(), jobs::llm_handler(), "llm.generate",
                    {
                        {R"({})", true},
                        {R"({"prompt":"tides","max_tokens":3,"tokens_per_second":0})", true},
                        {R"({"prompt":null,"max_tokens":null,"seed":7,"backend":"sim"})", true},
                        {R"({"max_tokens":100001})", false},
                        {R"({"max_tokens":-1})", false},
                        {R"({"max_tokens":"3"})", false},
                        {R"({"tokens_per_second":-2})", false},
                        {R"({"prompt":5})", false},
                        {R"({"backend":"gpu","max_tokens":1})", false},
                    });
}

TEST_CASE("research's schema matches what the handler reads") {
    check_agreement(jobs::research_params_schema(), jobs::research_handler(), "research",
                    {
                        {R"({"topic":"tides","stage_ms":0})", true},
                        {R"({"topic":"tides","stages":["a"],"stage_ms":null})", true},
                        {R"({})", false},
                        {R"({"topic":""})", false},
                        {R"({"topic":"t","stages":[]})", false},
                        {R"({"topic":"t","stages":["a",""]})", false},
                        {R"({"topic":"t","stages":["a",1]})", false},
                        {R"({"topic":"t","stage_ms":3600001})", false},
                    });
}

TEST_CASE("exec's schema matches what the handler reads") {
    jobs::ExecOptions options;
    options.allow = {"true"};
    check_agreement(jobs::exec_params_schema(), jobs::exec_handler(options), "exec",
                    {
                        {R"({"command":"true"})", true},
                        {R"({"command":"true","args":["a","b"]})", true},
                        {R"({"command":"true","args":null})", true},
                        {R"({})", false},
                        {R"({"command":""})", false},
                        {R"({"command":"true","args":"a"})", false},
                        {R"({"command":"true","args":[1]})", false},
                    });
}
