// What request values look like in log lines (audit L1): bearer tokens in
// ?access_token= never appear, and a target cannot end its field or its line.
#include <catch2/catch.hpp>

#include "web/http/log.hpp"

using namespace jobcast::web;

TEST_CASE("access_token values are redacted from logged targets") {
    CHECK(redact_target("/v1/ws?access_token=eyJhbGciOi.abc.def") ==
          "/v1/ws?access_token=REDACTED");
    CHECK(redact_target("/v1/jobs/J/events?after=3&access_token=tok&limit=5") ==
          "/v1/jobs/J/events?after=3&access_token=REDACTED&limit=5");
    // Every occurrence, whatever the spelling of the name.
    CHECK(redact_target("/v1/ws?access_token=a&access_token=b") ==
          "/v1/ws?access_token=REDACTED&access_token=REDACTED");
    CHECK(redact_target("/v1/ws?Access_Token=a") == "/v1/ws?Access_Token=REDACTED");
    CHECK(redact_target("/v1/ws?access%5Ftoken=a") == "/v1/ws?access%5Ftoken=REDACTED");
    CHECK(redact_target("/v1/ws?x=1#access_token=a") == "/v1/ws?x=1#access_token=REDACTED");
    CHECK(redact_target("/v1/ws?x=1;access_token=a") == "/v1/ws?x=1;access_token=REDACTED");
    // Nothing else changes.
    CHECK(redact_target("/v1/jobs?after=1&limit=2") == "/v1/jobs?after=1&limit=2");
    CHECK(redact_target("/v1/jobs/access_token=x") == "/v1/jobs/access_token=x");
    CHECK(redact_target("/v1/ws?access_token") == "/v1/ws?access_token");
    CHECK(redact_target("/v1/ws?my_access_token=x") == "/v1/ws?my_access_token=x");
    CHECK(redact_target("") == "");
}

namespace {

// One key=value field: quoted, no control character, every inner quote escaped.
bool one_field(const std::string& value) {
    if (value.size() < 2 || value.front() != '"' || value.back() != '"') return false;
    for (std::size_t i = 1; i + 1 < value.size(); ++i) {
        if (static_cast<unsigned char>(value[i]) < 0x20) return false;
        if (value[i] == '\\') {
            if (i + 2 >= value.size()) return false;  // it would escape the closing quote
            ++i;                                      // the escaped character
            continue;
        }
        if (value[i] == '"') return false;
    }
    return true;
}

}  // namespace

TEST_CASE("a logged target is one quoted field, whatever it holds") {
    CHECK(log_target("/v1/jobs?after=1") == "\"/v1/jobs?after=1\"");
    for (const char* target : {"/v1/jobs/a\"b=c", "/v1/jobs/a b c=\"d\"", "/x\ny=1",
                               "/x\r\naudit event=forged", "/x\\\"", "/x\\"}) {
        INFO(target);
        CHECK(one_field(log_target(target)));
    }
    CHECK(log_target("/v1/ws?access_token=t\"k") == "\"/v1/ws?access_token=REDACTED\"");
}
