// libFuzzer target for params schemas: a schema text (up to the first NUL)
// compiled as a worker's hello would have it, then the rest checked as params
// against it. Neither may crash, hang (the -timeout of scripts/fuzz.sh) or
// throw; a compiled schema serves back JSON, and a violation names a JSON
// pointer and a rule.
#include <boost/json.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "protocol/params_schema.hpp"

using namespace jobcast;

namespace {

[[noreturn]] void fail(const char* what, std::string_view text) {
    std::fprintf(stderr, "fuzz_params_schema: %s: %.*s\n", what, static_cast<int>(text.size()),
                 text.data());
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const auto split = input.find('\0');
    const std::string_view schema_text = input.substr(0, split);
    const std::string_view params =
        split == std::string_view::npos ? std::string_view("{}") : input.substr(split + 1);

    auto compiled = proto::ParamsSchema::compile(schema_text);
    if (const auto* error = std::get_if<std::string>(&compiled)) {
        if (error->empty()) fail("refused without a reason", schema_text);
        return 0;
    }
    const auto& schema = std::get<proto::ParamsSchema::Ptr>(compiled);
    boost::json::error_code ec;
    boost::json::parse(schema->json(), ec);
    if (ec) fail("served schema is not JSON", schema->json());

    if (const auto violation = schema->check(params)) {
        if (violation->rule.empty()) fail("violation without a rule", params);
        if (!violation->pointer.empty() && violation->pointer[0] != '/')
            fail("violation pointer is not a JSON pointer", violation->pointer);
    }
    return 0;
}
