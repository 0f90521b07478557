// The params schema wrapper (valijson, draft 7): what it refuses when it
// compiles a schema, how it names a violation, the official JSON Schema test
// suite's draft-7 tests, and the registry of announced schemas.
#include "protocol/params_schema.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>

#include "frame_builder.hpp"
#include "protocol/codec.hpp"
#include "protocol/limits.hpp"
#include "protocol/schema_registry.hpp"

using namespace jobcast;
using namespace jobcast::proto;
using namespace jobcast::test;

namespace {

ParamsSchema::Ptr compiled(std::string_view text) {
    auto result = ParamsSchema::compile(text);
    if (auto* error = std::get_if<std::string>(&result)) FAIL("schema refused: " << *error);
    return std::get<ParamsSchema::Ptr>(result);
}

std::string refusal(std::string_view text) {
    auto result = ParamsSchema::compile(text);
    REQUIRE(std::holds_alternative<std::string>(result));
    return std::get<std::string>(result);
}

const char* kJob = R"({
  "type": "object",
  "required": ["prompt"],
  "properties": {
    "prompt": {"type": "string", "minLength": 1},
    "max_tokens": {"type": "integer", "minimum": 0, "maximum": 100},
    "backend": {"enum": ["sim", "openai"]},
    "stages": {"type": "array", "items": {"type": "string"}},
    "options": {"type": "object", "properties": {"a/b~c": {"type": "boolean"}}}
  }
})";

}  // namespace

TEST_CASE("conforming params pass, and a violation names the field and the rule", "[schema]") {
    const auto schema = compiled(kJob);
    CHECK_FALSE(schema->check(R"({"prompt":"hi","max_tokens":5,"backend":"sim"})"));
    CHECK_FALSE(schema->check(R"({"prompt":"hi","unknown":[1,2]})"));

    auto v = schema->check(R"({"max_tokens":5})");
    REQUIRE(v);
    CHECK(v->pointer == "/prompt");
    CHECK(v->rule == "required");

    v = schema->check(R"({"prompt":"hi","max_tokens":500})");
    REQUIRE(v);
    CHECK(v->pointer == "/max_tokens");
    CHECK(v->rule == "maximum");

    v = schema->check(R"({"prompt":"hi","max_tokens":"5"})");
    REQUIRE(v);
    CHECK(v->pointer == "/max_tokens");
    CHECK(v->rule == "type");

    v = schema->check(R"({"prompt":""})");
    REQUIRE(v);
    CHECK(v->pointer == "/prompt");
    CHECK(v->rule == "minLength");

    v = schema->check(R"({"prompt":"x","backend":"gpu"})");
    REQUIRE(v);
    CHECK(v->pointer == "/backend");
    CHECK(v->rule == "enum");

    v = schema->check(R"({"prompt":"x","stages":["a",2]})");
    REQUIRE(v);
    CHECK(v->pointer == "/stages/1");
    CHECK(v->rule == "type");

    // Pointer tokens are escaped (RFC 6901).
    v = schema->check(R"({"prompt":"x","options":{"a/b~c":1}})");
    REQUIRE(v);
    CHECK(v->pointer == "/options/a~1b~0c");
    CHECK(v->rule == "type");
    CHECK_FALSE(v->message.empty());
}

TEST_CASE("the compiled schema is served back as compact JSON", "[schema]") {
    const auto schema = compiled(R"({ "type" : "object" })");
    CHECK(schema->json() == R"({"type":"object"})");
    CHECK(compiled("true")->json() == "true");
}

TEST_CASE("schemas that could crash, hang or fetch are refused when compiled", "[schema]") {
    // Not JSON, not a schema, too big, too deep.
    CHECK_THAT(refusal("{"), Catch::Contains("not JSON"));
    CHECK_THAT(refusal("42"), Catch::Contains("object or a boolean"));
    CHECK_THAT(
        refusal(R"({"type":"object","description":")" + std::string(kMaxSchemaBytes, 'x') + "\"}"),
        Catch::Contains("over the limit"));
    std::string deep;
    for (int i = 0; i < 40; ++i)
        deep += R"({"items":)";
    deep += "true";
    for (int i = 0; i < 40; ++i)
        deep += "}";
    CHECK_THAT(refusal(deep), Catch::Contains("deeper"));

    // $ref: never fetched, loops refused, dangling refused.
    CHECK_THAT(refusal(R"({"$ref":"http://127.0.0.1:1/schema.json"})"),
               Catch::Contains("not local"));
    CHECK_THAT(refusal(R"({"properties":{"a":{"$ref":"other.json#/x"}}})"),
               Catch::Contains("not local"));
    CHECK_THAT(refusal(R"({"$ref":"#"})"), Catch::Contains("loop"));
    CHECK_THAT(
        refusal(
            R"({"definitions":{"a":{"$ref":"#/definitions/b"},"b":{"$ref":"#/definitions/a"}},"$ref":"#/definitions/a"})"),
        Catch::Contains("loop"));
    CHECK_THAT(refusal(R"({"allOf":[{"$ref":"#"}]})"), Catch::Contains("loop"));
    CHECK_THAT(refusal(R"({"not":{"anyOf":[{"$ref":"#"}]}})"), Catch::Contains("loop"));
    CHECK_THAT(refusal(R"({"$ref":"#/definitions/missing"})"), Catch::Contains("points nowhere"));
    CHECK_THAT(refusal(R"({"$ref":"#foo"})"), Catch::Contains("not a JSON pointer"));

    // Fan-out: each level applies the next one 12 times to the same value (12^5).
    std::string fan = R"({"definitions":{)";
    for (int i = 0; i < 5; ++i) {
        fan += "\"d" + std::to_string(i) + R"(":{"allOf":[)";
        for (int j = 0; j < 12; ++j)
            fan += std::string(j ? "," : "") + R"({"$ref":"#/definitions/d)" +
                   std::to_string(i + 1) + "\"}";
        fan += "]},";
    }
    fan += R"("d5":{"type":"string"}},"$ref":"#/definitions/d0"})";
    CHECK_THAT(refusal(fan), Catch::Contains("more than"));

    // Patterns RE2 cannot take, or that are too long or too many.
    CHECK_THAT(refusal(R"({"pattern":"(a)\\1"})"), Catch::Contains("back-reference"));
    CHECK_THAT(refusal(R"({"pattern":"[unclosed"})"), Catch::Contains("does not compile"));
    CHECK_THAT(refusal(R"({"pattern":"^(?=a)b"})"), Catch::Contains("does not compile"));
    CHECK_THAT(refusal(R"({"pattern":")" + std::string(kMaxPatternBytes + 1, 'a') + "\"}"),
               Catch::Contains("longer than"));
    // Repetition bounds past RE2's 1000 (a bound no integer holds is text, as
    // in ECMAScript).
    compiled(R"({"pattern":"^[a-z]+(?:-[0-9]{1,4444444444444444444444})?$"})");
    CHECK_THAT(refusal(R"({"pattern":"a{1001}"})"), Catch::Contains("does not compile"));
    CHECK_THAT(refusal(R"({"patternProperties":{"(x{1000}){1000}":true}})"),
               Catch::Contains("does not compile"));
    std::string many = R"({"properties":{)";
    for (std::size_t i = 0; i <= kMaxPatterns; ++i)
        many += (i ? ",\"p" : "\"p") + std::to_string(i) + R"(":{"pattern":"^)" +
                std::to_string(i) + "$\"}";
    CHECK_THAT(refusal(many + "}}"), Catch::Contains("different patterns"));
    compiled(R"({"pattern":"^[0-9]{1,1000}$","patternProperties":{"^[{]12345":{}}})");
    compiled(R"({"pattern":"^a+?b*?(cd)+?$"})");
    compiled(R"({"pattern":"^[a-z0-9_.-]+(?:@[a-z]+)?$"})");
    compiled(R"({"pattern":"^(ab)+$","patternProperties":{"^x-[a-z]*$":{}}})");

    // A property named like a keyword is a property, not the keyword.
    compiled(R"({"properties":{"$ref":{"type":"string"},"pattern":{"type":"integer"}}})");
    // Data keywords are not schemas.
    compiled(R"({"const":{"$ref":"http://x"},"enum":[{"$ref":"#"}],"default":{"$ref":"#"}})");
}

TEST_CASE("the deepest $ref chains a schema can hold compile, and check deep params", "[schema]") {
    // Each definition's property refers to the next one: valijson recurses
    // through all of them when it builds the schema.
    std::string defs;
    int n = 0;
    while (defs.size() < kMaxSchemaBytes - 200) {
        defs += "\"d" + std::to_string(n) +
                R"(":{"type":"object","properties":{"a":{"$ref":"#/definitions/d)" +
                std::to_string(n + 1) + "\"}}},";
        ++n;
    }
    const std::string chain = R"({"definitions":{)" + defs + "\"d" + std::to_string(n) +
                              R"(":{"type":"string"}},"$ref":"#/definitions/d0"})";
    REQUIRE(chain.size() <= kMaxSchemaBytes);
    const auto schema = compiled(chain);
    CHECK_FALSE(schema->check(R"({"a":{"a":{"a":{}}}})"));
    const auto violation = schema->check(R"({"a":{"a":{"a":5}}})");
    REQUIRE(violation);
    CHECK(violation->pointer == "/a/a/a");

    // The longest same-value chain ($ref to $ref, 16 hops) on every level of
    // the deepest params.
    auto hops = [](int k) {
        std::string text = R"({"definitions":{)";
        for (int i = 0; i < k; ++i) {
            text += "\"c" + std::to_string(i) + R"(":{"$ref":"#/definitions/c)" +
                    std::to_string(i + 1) + "\"},";
        }
        return text + "\"c" + std::to_string(k) +
               R"(":{"type":"array","items":{"$ref":"#"}}},"$ref":"#/definitions/c0"})";
    };
    // items -> # -> c0 -> ... -> c14: 16 hops
    const auto deep = compiled(hops(14));
    std::string nested(kMaxDataDepth, '[');
    nested += std::string(kMaxDataDepth, ']');
    CHECK_FALSE(deep->check(nested));
    CHECK(deep->check("[[[1]]]")->rule == "type");
    // One hop more is refused.
    CHECK_THAT(refusal(hops(15)), Catch::Contains("chain"));
}

TEST_CASE("recursive schemas that descend into the value are fine", "[schema]") {
    const auto tree = compiled(R"({"type":"object","properties":{
        "name":{"type":"string"},"children":{"type":"array","items":{"$ref":"#"}}}})");
    CHECK_FALSE(tree->check(R"({"name":"a","children":[{"name":"b","children":[]}]})"));
    auto v = tree->check(R"({"name":"a","children":[{"name":"b","children":[{"name":3}]}]})");
    REQUIRE(v);
    CHECK(v->pointer == "/children/0/children/0/name");
}

TEST_CASE("patterns are read as a schema writes them", "[schema]") {
    // \\uXXXX escapes, a code point for '.', a '/' and a '~' in a
    // patternProperties name (the name, not its JSON pointer token).
    const auto s = compiled(R"({
        "properties": {"a": {"pattern": "^\\u0041+$"}, "b": {"pattern": "^.$"}},
        "patternProperties": {"^x/y~z$": {"type": "integer"}}
    })");
    CHECK_FALSE(s->check(R"({"a":"AAA","b":"é","x/y~z":1})"));
    // A surrogate pair is one code point.
    const auto emoji = compiled(R"({"pattern":"^\\uD83D\\uDE00+$"})");
    CHECK_FALSE(emoji->check(R"("😀😀")"));
    CHECK(emoji->check(R"("😀x")"));
    CHECK(s->check(R"({"a":"AAa"})")->rule == "pattern");
    CHECK(s->check(R"({"b":"ab"})")->rule == "pattern");
    const auto v = s->check(R"({"x/y~z":"one"})");
    REQUIRE(v);
    CHECK(v->rule == "type");
    CHECK(v->pointer == "/x~1y~0z");
}

TEST_CASE("hostile params against a fine schema neither crash nor hang", "[schema]") {
    const auto patterned = compiled(R"({"properties":{"id":{"pattern":"^[a-z]+$"}}})");
    CHECK_FALSE(patterned->check(R"({"id":"abc"})"));
    CHECK(patterned->check(R"({"id":"ABC"})")->rule == "pattern");
    // A long string is matched, not refused.
    const std::string long_id = R"({"id":")" + std::string(200'000, 'a') + "\"}";
    CHECK_FALSE(patterned->check(long_id));
    auto v = patterned->check(R"({"id":")" + std::string(200'000, 'a') + "A\"}");
    REQUIRE(v);
    CHECK(v->pointer == "/id");
    CHECK(v->rule == "pattern");

    // Without patterns, long strings are only as limited as the schema says.
    const auto plain = compiled(R"({"properties":{"id":{"type":"string","maxLength":10}}})");
    CHECK(plain->check(long_id)->rule == "maxLength");

    // Patterns a backtracking matcher (std::regex, as valijson has it) takes
    // exponential or high polynomial time on, or overflows its stack with:
    // answered right, in time linear in the string.
    const std::string as(100'000, 'a');
    std::string ab;
    for (int i = 0; i < 50'000; ++i)
        ab += "ab";
    struct Case {
        const char* pattern;
        std::string subject;
        bool matches;
    };
    const Case cases[] = {
        {"^(a+)+$", as + "b", false},     {"^(a+)+$", as, true},
        {"(a|aa)*b", as, false},          {"^((ab)*c)+$", ab + "b", false},
        {"^(\\\\+?)*$", as, false},       {"a*a*a*a*a*a*a*a*a*c", as, false},
        {"^(.*a){20}$", as + "b", false}, {"(x+x+)+y", std::string(100'000, 'x'), false},
    };
    for (const Case& c : cases) {
        boost::json::object schema{{"properties", {{"s", {{"pattern", c.pattern}}}}}};
        const auto checked = compiled(boost::json::serialize(schema));
        const auto found =
            checked->check(boost::json::serialize(boost::json::object{{"s", c.subject}}));
        INFO(c.pattern);
        CHECK(found.has_value() == !c.matches);
    }
    // propertyNames checks each key with valijson's string adapter: its
    // patterns and formats run on RE2 too.
    const auto keyed = compiled(R"({"propertyNames":{"pattern":"^(a+)+$","maxLength":200000}})");
    v = keyed->check("{\"" + std::string(30, 'a') + "!\":1}");
    REQUIRE(v);  // valijson names no rule for propertyNames: "schema"
    CHECK(v->pointer.empty());
    CHECK_FALSE(keyed->check("{\"" + as + "\":1}"));
    const auto dated_keys = compiled(R"({"propertyNames":{"format":"date"}})");
    CHECK_FALSE(dated_keys->check(R"({"2026-12-06":1})"));
    CHECK(dated_keys->check("{\"" + std::string(1'000'000, '1') + "\":1}"));
    // The same for patternProperties names.
    const auto names = compiled(R"({"patternProperties":{"^(a+)+$":{"type":"integer"}}})");
    v = names->check("{\"" + as + "\":\"text\"}");
    REQUIRE(v);
    CHECK(v->rule == "type");
    CHECK_FALSE(names->check("{\"" + as + "b\":\"text\"}"));

    // The date/time formats: a long string is refused, a number is no date.
    const auto dated =
        compiled(R"({"properties":{"d":{"format":"date"},"t":{"format":"date-time"}}})");
    CHECK_FALSE(dated->check(R"({"d":"2026-12-06","t":"2026-12-06T02:18:12.5+01:00"})"));
    v = dated->check(R"({"d":")" + std::string(1'000'000, '1') + "\"}");
    REQUIRE(v);
    CHECK(v->rule == "format");
    CHECK(v->pointer == "/d");
    CHECK(dated->check(R"({"d":"2026-02-30"})")->rule == "format");
    CHECK(dated->check(R"({"t":"2026-12-06T25:00:00Z"})")->rule == "format");
    CHECK_FALSE(dated->check(R"({"d":20261206})"));

    // Deep nesting, wide arrays and garbage: answered, quickly.
    std::string deep;
    for (int i = 0; i < 200; ++i)
        deep += "[";
    for (int i = 0; i < 200; ++i)
        deep += "]";
    CHECK(plain->check(deep));
    CHECK(plain->check("{\"id\":"));
    CHECK(plain->check(""));
    CHECK(plain->check("\xff\xfe"));
    std::string wide = R"({"id":"a","list":[)";
    for (int i = 0; i < 100'000; ++i)
        wide += "1,";
    wide += "1]}";
    const auto start = std::chrono::steady_clock::now();
    const auto items = compiled(R"({"properties":{"list":{"items":{"type":"integer"}}}})");
    CHECK_FALSE(items->check(wide));
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));
}

// ---- the official JSON Schema test suite (Debian's json-schema-test-suite) ----

namespace {

std::filesystem::path suite_dir() {
    if (const char* dir = std::getenv("JOBCAST_JSON_SCHEMA_TEST_SUITE")) return dir;
    return "/usr/share/json-schema-test-suite";
}

// Groups ("file: group") whose schema we refuse on purpose, with the reason.
const std::map<std::string, std::string> kRefusedGroups = {
    {"ref.json: remote ref, containing refs itself",
     "$ref to the draft-7 meta-schema's URL: nothing is fetched"},
    {"ref.json: Recursive references between schemas",
     "$ref to relative URIs (\"node\", \"tree\"): only #/ pointers are followed"},
    {"definitions.json: valid definition",
     "$ref to the draft-7 meta-schema's URL: nothing is fetched"},
    {"definitions.json: invalid definition",
     "$ref to the draft-7 meta-schema's URL: nothing is fetched"},
    {"optional/bignum.json: integer comparison",
     "a bound beyond 64 bits: valijson cannot read it as a number"},
};

// Tests ("file: group / test") valijson 1.0 answers differently, with the reason.
const std::map<std::string, std::string> kKnownDifferences = {
    {"optional/bignum.json: integer / a bignum is an integer",
     "Boost.JSON reads an integer beyond 64 bits as a double, and valijson's strong types take "
     "no double for an integer"},
    {"optional/bignum.json: integer / a negative bignum is an integer",
     "Boost.JSON reads an integer beyond 64 bits as a double, and valijson's strong types take "
     "no double for an integer"},
    {"optional/zeroTerminatedFloats.json: some languages do not distinguish between different "
     "types of numeric value / a float without fractional part is an integer",
     "valijson's strong types take no double (1.0) for an integer"},
    {"optional/ecmascript-regex.json: ECMA 262 regex non-compliance / ECMA 262 has no support "
     "for \\Z anchor from .NET",
     "valijson 1.0 does not check format \"regex\""},
};

// Files left out whole.
const std::map<std::string, std::string> kSkippedFiles = {
    {"refRemote.json", "every schema in it refers to remote documents: nothing is fetched"},
    {"optional/format/email.json", "valijson 1.0 checks no format but date, time and date-time"},
    {"optional/format/hostname.json", "valijson 1.0 checks no format but date, time and date-time"},
    {"optional/format/idn-email.json",
     "valijson 1.0 checks no format but date, time and date-time"},
    {"optional/format/idn-hostname.json",
     "valijson 1.0 checks no format but date, time and date-time"},
    {"optional/format/ipv4.json", "valijson 1.0 checks no format but date, time and date-time"},
    {"optional/format/ipv6.json", "valijson 1.0 checks no format but date, time and date-time"},
    {"optional/format/iri-reference.json",
     "valijson 1.0 checks no format but date, time and date-time"},
    {"optional/format/iri.json", "valijson 1.0 checks no format but date, time and date-time"},
    {"optional/format/json-pointer.json",
     "valijson 1.0 checks no format but date, time and date-time"},
    {"optional/format/regex.json", "valijson 1.0 checks no format but date, time and date-time"},
    {"optional/format/relative-json-pointer.json",
     "valijson 1.0 checks no format but date, time and date-time"},
    {"optional/format/uri-reference.json",
     "valijson 1.0 checks no format but date, time and date-time"},
    {"optional/format/uri-template.json",
     "valijson 1.0 checks no format but date, time and date-time"},
    {"optional/format/uri.json", "valijson 1.0 checks no format but date, time and date-time"},
    {"optional/content.json", "valijson 1.0 does not check contentMediaType/contentEncoding"},
};

}  // namespace

TEST_CASE("the official draft-7 tests pass through the wrapper", "[schema][suite]") {
    const auto dir = suite_dir() / "tests" / "draft7";
    if (!std::filesystem::is_directory(dir)) {
        WARN("no JSON Schema test suite at " << dir << " (apt-get install json-schema-test-suite)");
        return;
    }
    std::set<std::string> files;  // relative to dir
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
        if (entry.is_regular_file() && entry.path().extension() == ".json")
            files.insert(std::filesystem::relative(entry.path(), dir).string());
    }
    REQUIRE(files.size() > 20);
    std::vector<std::string> unexpected;
    std::size_t passed = 0;
    std::set<std::string> seen_refused, seen_different, seen_skipped;
    for (const auto& file : files) {
        if (kSkippedFiles.contains(file)) {
            seen_skipped.insert(file);
            continue;
        }
        std::ifstream in(dir / file);
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        const boost::json::value groups = boost::json::parse(text);
        for (const auto& group_value : groups.as_array()) {
            const auto& group = group_value.as_object();
            const std::string group_name =
                file + ": " + std::string(group.at("description").as_string());
            auto result = ParamsSchema::compile(boost::json::serialize(group.at("schema")));
            if (auto* error = std::get_if<std::string>(&result)) {
                if (kRefusedGroups.contains(group_name)) {
                    seen_refused.insert(group_name);
                } else {
                    unexpected.push_back(group_name + ": refused: " + *error);
                }
                continue;
            }
            const auto& schema = std::get<ParamsSchema::Ptr>(result);
            for (const auto& test_value : group.at("tests").as_array()) {
                const auto& test = test_value.as_object();
                const std::string test_name =
                    group_name + " / " + std::string(test.at("description").as_string());
                const bool valid = test.at("valid").as_bool();
                const bool passes = !schema->check(boost::json::serialize(test.at("data")));
                if (passes == valid) {
                    ++passed;
                } else if (kKnownDifferences.contains(test_name)) {
                    seen_different.insert(test_name);
                } else {
                    unexpected.push_back(test_name + ": expected " + (valid ? "valid" : "invalid"));
                }
            }
        }
    }
    std::ostringstream list;
    for (const auto& line : unexpected)
        list << "\n  " << line;
    INFO("unexpected results:" << list.str());
    CHECK(unexpected.empty());
    // The lists stay exact: an entry that no longer applies is removed.
    CHECK(seen_refused.size() == kRefusedGroups.size());
    CHECK(seen_different.size() == kKnownDifferences.size());
    CHECK(seen_skipped.size() == kSkippedFiles.size());
    CHECK(passed > 400);
}

// ---- the hello field --------------------------------------------------------

TEST_CASE("hello carries schemas by type, absent when none", "[schema][codec]") {
    Hello hello;
    hello.worker = "w";
    hello.types = {"llm.generate", "exec"};
    hello.schemas = {{"exec", R"({"required":["command"]})"}};
    const auto decoded = decode_worker_message(encode(WorkerMessage{hello}));
    REQUIRE(std::holds_alternative<WorkerMessage>(decoded));
    CHECK(std::get<Hello>(std::get<WorkerMessage>(decoded)) == hello);
    hello.schemas.clear();
    CHECK(encode(WorkerMessage{hello}).find("schemas") == std::string::npos);
}

TEST_CASE("hello schemas must map type names to strings", "[schema][codec]") {
    auto hello_with = [](Value schemas) {
        return frame({{"v", uint64(1)},
                      {"t", str("hello")},
                      {"worker", str("w")},
                      {"types", array({str("exec")})},
                      {"capacity", uint64(1)},
                      {"schemas", std::move(schemas)}});
    };
    CHECK(std::holds_alternative<WorkerMessage>(
        decode_worker_message(hello_with(map({{"exec", str("{}")}})))));
    for (const auto& bad : {hello_with(str("{}")), hello_with(map({{"exec", uint64(1)}})),
                            hello_with(map({{"", str("{}")}})),
                            hello_with(map({{std::string(129, 't'), str("{}")}}))}) {
        auto decoded = decode_worker_message(bad);
        REQUIRE(std::holds_alternative<DecodeError>(decoded));
        CHECK(std::get<DecodeError>(decoded).code == DecodeErrorCode::wrong_type);
    }
}

// ---- the registry -------------------------------------------------------------

TEST_CASE("the registry keeps the latest schema announced by a connected worker", "[schema]") {
    SchemaRegistry registry;
    const auto a = compiled(R"({"required":["a"]})");
    const auto b = compiled(R"({"required":["b"]})");
    CHECK_FALSE(registry.find("t"));

    registry.announce("p1", {"t", "u"}, {{"t", a}});
    CHECK(registry.find("t") == a);
    CHECK_FALSE(registry.find("u"));
    registry.announce("p2", {"t"}, {{"t", b}});
    CHECK(registry.find("t") == b);
    // An old worker without a schema for t does not take it away.
    registry.announce("p3", {"t"}, {});
    CHECK(registry.find("t") == b);

    auto types = registry.types();
    REQUIRE(types.size() == 2);
    CHECK(types[0].type == "t");
    CHECK(types[0].workers == 3);
    CHECK(types[0].schema == b);
    CHECK(types[1].type == "u");
    CHECK_FALSE(types[1].schema);

    registry.forget("p2");
    CHECK(registry.find("t") == a);
    registry.forget("p1");
    CHECK_FALSE(registry.find("t"));
    CHECK(registry.types().size() == 1);
    registry.forget("p3");
    CHECK(registry.types().empty());

    registry.refused("t");
    registry.refused("t");
    CHECK(registry.refusals() == std::map<std::string, std::uint64_t>{{"t", 2}});
}
