// Request-target parsing for the REST routes: split path and query, decode
// percent-escapes, read query parameters. Pure functions, no I/O.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace jobcast::web {

// Decodes %XX escapes; with `plus_as_space` (query strings, form encoding) a '+'
// decodes to a space. nullopt when an escape is malformed ("%4", "%zz").
std::optional<std::string> percent_decode(std::string_view text, bool plus_as_space);

// "/a/b?x=1#frag" -> path "/a/b", query "x=1" (the fragment is dropped; clients
// should not send one, but it must not leak into a parameter).
struct TargetParts {
    std::string_view path;
    std::string_view query;
};
TargetParts split_target(std::string_view target);

// The parameters of a query string, decoded, in order. "a=1&b&c=" gives
// a="1", b="", c=""; empty pieces ("a=1&&b=2") are skipped.
class QueryParams {
  public:
    // nullopt when a name or value has a malformed escape.
    static std::optional<QueryParams> parse(std::string_view query);

    // The first value given for `name`.
    std::optional<std::string_view> get(std::string_view name) const;
    const std::vector<std::pair<std::string, std::string>>& all() const { return params_; }

  private:
    std::vector<std::pair<std::string, std::string>> params_;
};

}  // namespace jobcast::web
