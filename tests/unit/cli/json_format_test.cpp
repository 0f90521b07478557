#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "cli/json_format.hpp"

using namespace jobcast::cli;
namespace json = boost::json;

TEST_CASE("pretty JSON is indented by two and keeps the key order", "[cli][format]") {
    const auto value = json::parse(R"({"id":"J","params":{"a":[1,"x"],"e":{}},"r":null,"l":[]})");
    CHECK(pretty_json(value) ==
          "{\n"
          "  \"id\": \"J\",\n"
          "  \"params\": {\n"
          "    \"a\": [\n"
          "      1,\n"
          "      \"x\"\n"
          "    ],\n"
          "    \"e\": {}\n"
          "  },\n"
          "  \"r\": null,\n"
          "  \"l\": []\n"
          "}\n");
    CHECK(json::parse(pretty_json(value)) == value);
}

TEST_CASE("the job table aligns its columns", "[cli][format]") {
    const auto jobs = json::parse(R"([
        {"id":"01AAA","type":"llm.generate","state":"succeeded","progress":0,"created_at":1000},
        {"id":"01BBBBBB","type":"research","state":"running","progress":0.5,"created_at":2000},
        {"id":"01C","type":"exec","state":"queued","progress":null,"created_at":null}
    ])")
                          .as_array();
    const auto table =
        job_table(jobs, [](std::int64_t ms) { return "t" + std::to_string(ms / 1000); });
    CHECK(table ==
          "ID        TYPE          STATE      PROGRESS  CREATED\n"
          "01AAA     llm.generate  succeeded  100%      t1\n"
          "01BBBBBB  research      running    50%       t2\n"
          "01C       exec          queued     -         -\n");
}

TEST_CASE("HTTP errors show the server's message", "[cli][format]") {
    CHECK(http_error_message(404, R"({"error":{"code":"not_found","message":"no such job"}})") ==
          "no such job");
    CHECK(http_error_message(409, R"({"error":"job already finished"})") == "job already finished");
    CHECK(http_error_message(502, "<html>Bad Gateway</html>\nmore") == "<html>Bad Gateway</html>");
    CHECK(http_error_message(500, "") == "HTTP 500");
}
