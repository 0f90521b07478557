// A job type's params as a JSON Schema (draft 7, checked by valijson): what a
// worker announces in its hello and the broker checks a submission against
// before it queues the job. Schemas come from workers and params from clients,
// so both are bounded before valijson sees them: a schema that could crash,
// hang or fetch is refused when it is compiled, never at submit.
//
// Refused schemas: over kMaxSchemaBytes, nested deeper than kMaxSchemaDepth, a
// `$ref` that is not a local JSON pointer ("#" or "#/..."; nothing is ever
// fetched) or that points nowhere, `$ref`/`allOf`/`anyOf`/`oneOf`/`not`/`if`
// chains that loop on the same value or fan out past kMaxSchemaApplications,
// more than kMaxPatterns different patterns, and a `pattern` (or
// `patternProperties` key) over kMaxPatternBytes, with a back-reference or a
// lookaround, or that RE2 does not compile. Patterns and the date/time formats
// are matched by RE2 (linear in the string, no recursion), never std::regex.
//
// Compiling starts a short-lived thread (see params_schema.cpp: valijson
// recurses along $ref chains). Thread-safe: one compiled schema may check params on many threads at
// once. Boost.JSON and valijson stay inside params_schema.cpp.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace jobcast::proto {

inline constexpr std::size_t kMaxSchemaBytes = 64 * 1024;
inline constexpr std::size_t kMaxSchemaDepth = 32;
inline constexpr std::size_t kMaxSchemaApplications = 10'000;
inline constexpr std::size_t kMaxPatternBytes = 256;
inline constexpr std::size_t kMaxPatterns = 100;

// Why params do not conform: where, which keyword, and the validator's words.
struct SchemaViolation {
    std::string pointer;  // JSON pointer into the params ("" is the whole object)
    std::string rule;     // the schema keyword that failed ("required", "type", ...)
    std::string message;
    bool operator==(const SchemaViolation&) const = default;
};

class ParamsSchema {
  public:
    using Ptr = std::shared_ptr<const ParamsSchema>;
    // The compiled schema, or why `text` (a JSON Schema document) is refused.
    static std::variant<Ptr, std::string> compile(std::string_view text);

    ~ParamsSchema();
    ParamsSchema(const ParamsSchema&) = delete;
    ParamsSchema& operator=(const ParamsSchema&) = delete;

    // Checks `params` (JSON text; a submission's params object): nothing when
    // they conform, else the first violation (the most specific one valijson
    // reports). Never throws for any input.
    std::optional<SchemaViolation> check(std::string_view params) const;

    // The schema as JSON text, re-serialized compactly (GET /v1/types).
    const std::string& json() const;

  private:
    struct Impl;
    explicit ParamsSchema(std::unique_ptr<Impl> impl);
    // compile() runs this on a thread with a stack deep enough for any schema.
    static std::variant<Ptr, std::string> compile_here(std::string_view text);
    std::unique_ptr<Impl> impl_;
};

}  // namespace jobcast::proto
