#include "protocol/params_schema.hpp"

#include <pthread.h>

#include <algorithm>
#include <boost/json.hpp>
#include <regex>
#include <unordered_map>
#include <unordered_set>
#include <valijson/adapters/boost_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>
#include <vector>

#include "protocol/limits.hpp"

// Without it valijson prints a bad schema's error and aborts (protocol/CMakeLists.txt).
#if !VALIJSON_USE_EXCEPTIONS
#error "valijson must be built with VALIJSON_USE_EXCEPTIONS=1"
#endif

namespace jobcast::proto {

namespace {

using boost::json::value;

// Longest chain of $ref/allOf/anyOf/oneOf/not/if hops followed on one value.
// Checking a value recurses once per hop and once per level of the value:
// params nested kMaxDataDepth deep and chains this long stay well inside a
// thread's default stack (8 MiB), sanitizers included.
constexpr std::size_t kMaxApplicationChain = 16;
// valijson builds a schema recursively, once per subschema along a path that
// follows $refs too: a chain of a few hundred definitions, each reached by a
// $ref from the one before, goes deeper than a default stack. Compiling runs
// on a thread whose stack holds the deepest chain a kMaxSchemaBytes document
// can hold (a few thousand subschemas of a few KiB of stack each). Only its
// touched pages are ever committed.
constexpr std::size_t kCompileStackBytes = std::size_t{512} << 20;

class Refused : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

void append_pointer_token(std::string& pointer, std::string_view token) {
    pointer += '/';
    for (char c : token) {
        if (c == '~') {
            pointer += "~0";
        } else if (c == '/') {
            pointer += "~1";
        } else {
            pointer += c;
        }
    }
}

// ---------------------------------------------------------------------------
// Patterns

// Refuses a pattern std::regex could spend exponential time or unbounded
// stack on, or that it cannot compile.
constexpr std::size_t kMaxRepeatDigits = 3;  // {m,n} bounds up to 999

void check_pattern(const std::string& pattern, const std::string& where) {
    if (pattern.size() > kMaxPatternBytes) {
        throw Refused(where + ": pattern longer than " + std::to_string(kMaxPatternBytes) +
                      " bytes");
    }
    struct Group {
        bool repeats = false;     // holds a quantifier
        bool alternates = false;  // holds a '|'
    };
    std::vector<Group> groups(1);
    auto is_quantifier = [&](std::size_t i) {
        if (i >= pattern.size()) return false;
        const char c = pattern[i];
        return c == '*' || c == '+' || c == '?' ||
               (c == '{' && i + 1 < pattern.size() && pattern[i + 1] >= '0' &&
                pattern[i + 1] <= '9');
    };
    bool after_quantifier = false;  // a '?' there makes it lazy, not another quantifier
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        const char c = pattern[i];
        const bool lazy_mark = c == '?' && after_quantifier;
        after_quantifier = false;
        if (c == '\\') {
            if (i + 1 < pattern.size() &&
                ((pattern[i + 1] >= '1' && pattern[i + 1] <= '9') || pattern[i + 1] == 'k')) {
                throw Refused(where + ": pattern has a back-reference");
            }
            ++i;
        } else if (c == '[') {
            // A class: up to its first unescaped ']' (ECMAScript: "[]" is empty).
            std::size_t j = i + 1;
            while (j < pattern.size() && pattern[j] != ']')
                j += pattern[j] == '\\' ? 2 : 1;
            i = j;
        } else if (c == '(') {
            groups.emplace_back();
            if (i + 1 < pattern.size() && pattern[i + 1] == '?') ++i;  // (?: (?= (?!
        } else if (c == ')' && groups.size() > 1) {
            const Group inner = groups.back();
            groups.pop_back();
            // '?' makes a group optional, not repeated.
            const bool repeated = is_quantifier(i + 1) && pattern[i + 1] != '?';
            if (repeated && (inner.repeats || inner.alternates)) {
                throw Refused(where +
                              ": pattern repeats a group that holds a repetition or an "
                              "alternation (exponential backtracking)");
            }
            groups.back().repeats |= inner.repeats || is_quantifier(i + 1);
            groups.back().alternates |= inner.alternates;
            if (is_quantifier(i + 1)) {
                ++i;  // the group's quantifier, counted above
                after_quantifier = true;
            }
        } else if (c == '|') {
            groups.back().alternates = true;
        } else if (is_quantifier(i) && !lazy_mark) {
            groups.back().repeats = true;
            after_quantifier = true;
        }
    }
    // Repetition bounds: std::regex reads them into a long without an
    // overflow check, and expands {m,n} into n copies.
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        if (pattern[i] == '\\') {
            ++i;
        } else if (pattern[i] == '[') {
            while (i + 1 < pattern.size() && pattern[i + 1] != ']')
                i += pattern[i + 1] == '\\' ? 2 : 1;
            ++i;
        } else if (is_quantifier(i) && pattern[i] == '{') {
            std::size_t digits = 0;
            for (std::size_t j = i + 1; j < pattern.size() && pattern[j] != '}'; ++j) {
                digits = pattern[j] >= '0' && pattern[j] <= '9' ? digits + 1 : 0;
                if (digits > kMaxRepeatDigits) {
                    throw Refused(where + ": pattern repeats something more than " +
                                  std::string(kMaxRepeatDigits, '9') + " times");
                }
            }
        }
    }
    try {
        std::regex compiled(pattern);
    } catch (const std::regex_error& e) {
        throw Refused(where + ": pattern does not compile: " + e.what());
    }
}

// ---------------------------------------------------------------------------
// The walk over a schema before valijson sees it

class SchemaWalk {
  public:
    explicit SchemaWalk(const value& root) : root_(root) {}

    // Walks every schema reachable from the root; throws Refused.
    void run() {
        pending_.push_back({&root_, ""});
        while (!pending_.empty()) {
            auto [node, where] = pending_.back();
            pending_.pop_back();
            if (walked_.insert(node).second) schema(*node, where);
        }
        // From every schema, not only the root: one reached through a
        // descending keyword (properties, items) applies to a part of the value.
        for (const value* node : walked_)
            count_applications(node);
    }

    bool has_patterns() const { return has_patterns_; }

  private:
    struct Pending {
        const value* node;
        std::string where;
    };

    // Another schema applied to the same value as `from`.
    void same_value(const value* from, const value& to, std::string where) {
        edges_[from].push_back(&to);
        pending_.push_back({&to, std::move(where)});
    }
    // A schema applied to a part of the value (a member, an item, a key).
    void part(const value& to, std::string where) { pending_.push_back({&to, std::move(where)}); }

    void schema(const value& node, const std::string& where) {
        if (node.is_bool()) return;
        const boost::json::object* object = node.if_object();
        if (!object)
            throw Refused((where.empty() ? "/" : where) +
                          ": a schema must be an object or a boolean");
        for (const auto& [key, member] : *object) {
            std::string at = where;
            append_pointer_token(at, key);
            if (key == "$ref") {
                if (!member.is_string()) throw Refused(at + ": $ref must be a string");
                same_value(&node, resolve(member.get_string(), at), at);
            } else if (key == "not" || key == "if" || key == "then" || key == "else") {
                same_value(&node, member, at);
            } else if (key == "allOf" || key == "anyOf" || key == "oneOf") {
                const auto* list = member.if_array();
                if (!list) throw Refused(at + ": must be an array of schemas");
                for (std::size_t i = 0; i < list->size(); ++i)
                    same_value(&node, (*list)[i], at + "/" + std::to_string(i));
            } else if (key == "dependencies") {
                for_members(member, at, [&](const value& v, std::string in) {
                    if (!v.is_array()) same_value(&node, v, std::move(in));
                });
            } else if (key == "items") {
                if (const auto* list = member.if_array()) {
                    for (std::size_t i = 0; i < list->size(); ++i)
                        part((*list)[i], at + "/" + std::to_string(i));
                } else {
                    part(member, at);
                }
            } else if (key == "additionalItems" || key == "additionalProperties" ||
                       key == "contains" || key == "propertyNames") {
                part(member, at);
            } else if (key == "properties" || key == "definitions") {
                for_members(member, at,
                            [&](const value& v, std::string in) { part(v, std::move(in)); });
            } else if (key == "patternProperties") {
                has_patterns_ = true;
                for_members(member, at, [&](const value& v, std::string in) {
                    check_pattern(std::string(in.substr(at.size() + 1)), at);
                    part(v, std::move(in));
                });
            } else if (key == "pattern") {
                has_patterns_ = true;
                if (!member.is_string()) throw Refused(at + ": must be a string");
                check_pattern(std::string(member.get_string()), at);
            }
        }
    }

    template <class F>
    void for_members(const value& member, const std::string& at, F&& f) {
        const auto* object = member.if_object();
        if (!object) throw Refused(at + ": must be an object");
        for (const auto& [name, v] : *object) {
            std::string in = at;
            append_pointer_token(in, name);
            f(v, std::move(in));
        }
    }

    // The schema a local $ref ("#" or "#/a/b", percent-encoded) points to.
    const value& resolve(std::string_view ref, const std::string& at) {
        if (ref.empty() || ref[0] != '#') {
            throw Refused(at + ": $ref \"" + std::string(ref.substr(0, 64)) +
                          "\" is not local; only \"#/...\" pointers are followed, nothing is "
                          "fetched");
        }
        std::string pointer;
        for (std::size_t i = 1; i < ref.size(); ++i) {
            const int high = i + 2 < ref.size() ? hex_digit(ref[i + 1]) : -1;
            const int low = i + 2 < ref.size() ? hex_digit(ref[i + 2]) : -1;
            if (ref[i] == '%' && high >= 0 && low >= 0) {
                pointer += static_cast<char>(high * 16 + low);
                i += 2;
            } else {
                pointer += ref[i];
            }
        }
        if (!pointer.empty() && pointer[0] != '/') {
            throw Refused(at + ": $ref \"" + std::string(ref.substr(0, 64)) +
                          "\" is not a JSON pointer");
        }
        boost::system::error_code ec;
        const value* target = root_.find_pointer(pointer, ec);
        if (!target)
            throw Refused(at + ": $ref \"" + std::string(ref.substr(0, 64)) + "\" points nowhere");
        return *target;
    }

    // How many schemas apply to one value through `node`; refuses loops and
    // fan-outs past the limit.
    static std::string chain_too_long() {
        return "a chain of $ref/allOf/anyOf/oneOf/not/if longer than " +
               std::to_string(kMaxApplicationChain) + " hops on one value";
    }

    struct Applications {
        std::size_t schemas = 0;  // applied to one value through the node, itself included
        std::size_t chain = 0;    // the longest chain of hops below it
    };

    // What applies to one value through `node`; refuses loops, chains longer
    // than kMaxApplicationChain and more than kMaxSchemaApplications schemas.
    // `depth`: hops from where the count started (a chain at least that long).
    Applications count_applications(const value* node, std::size_t depth = 0) {
        if (depth > kMaxApplicationChain) throw Refused(chain_too_long());
        auto [it, fresh] = counts_.try_emplace(node);
        if (!fresh) {
            if (it->second.schemas == 0) {
                throw Refused("$ref loop: a schema applies itself to the same value forever");
            }
            return it->second;
        }
        Applications total{1, 0};
        for (const value* next : edges_[node]) {
            const Applications below = count_applications(next, depth + 1);
            total.schemas += below.schemas;
            total.chain = std::max(total.chain, below.chain + 1);
            if (total.chain > kMaxApplicationChain) throw Refused(chain_too_long());
            if (total.schemas > kMaxSchemaApplications) {
                throw Refused("the schema applies more than " +
                              std::to_string(kMaxSchemaApplications) +
                              " schemas to one value (through $ref/allOf/anyOf/oneOf)");
            }
        }
        counts_[node] = total;
        return total;
    }

    const value& root_;
    std::vector<Pending> pending_;
    std::unordered_set<const value*> walked_;
    std::unordered_map<const value*, std::vector<const value*>> edges_;
    std::unordered_map<const value*, Applications> counts_;  // schemas 0: being counted
    bool has_patterns_ = false;
};

// ---------------------------------------------------------------------------
// Violations

// The keyword behind one of valijson 1.0's messages (it reports text only).
std::string rule_of(const std::string& message) {
    struct Rule {
        std::string_view text;
        std::string_view rule;
    };
    static constexpr Rule kRules[] = {
        {"Missing required property", "required"},
        {"'type' constraint", "type"},
        {"enum values", "enum"},
        {"'const' constraint", "const"},
        {"less than or equal to", "maximum"},
        {"less than", "exclusiveMaximum"},
        {"greater than or equal to", "minimum"},
        {"greater than", "exclusiveMinimum"},
        {"String should be no fewer than", "minLength"},
        {"String should be no more than", "maxLength"},
        {"String should be a valid", "format"},
        {"Array should contain no fewer than", "minItems"},
        {"Array should contain no more than", "maxItems"},
        {"Object should have no fewer than", "minProperties"},
        {"Object should have no more than", "maxProperties"},
        {"multiple of", "multipleOf"},
        {"'pattern' constraint", "pattern"},
        {"uniqueness constraint", "uniqueItems"},
        {"additional properties", "additionalProperties"},
        {"'additionalProperties' constraint", "additionalProperties"},
        {"additional items", "additionalItems"},
        {"more items than allowed", "additionalItems"},
        {"Missing dependency", "dependencies"},
        {"dependent schema", "dependencies"},
        {"anyOf", "anyOf"},
        {"oneOf", "oneOf"},
        {"exactly one child schema", "oneOf"},
        {"'not' constraint", "not"},
        {"if-then-else", "if"},
        {"'contains' constraint", "contains"},
        {"property name", "propertyNames"},
        {"Failed to validate against child schema", "allOf"},
    };
    for (const Rule& r : kRules) {
        if (message.find(r.text) != std::string::npos) return std::string(r.rule);
    }
    return "schema";
}

SchemaViolation violation_of(const valijson::ValidationResults::Error& error) {
    SchemaViolation v;
    for (const std::string& step : error.context) {
        if (step == "<root>") continue;
        // "[name]" or "[index]"
        append_pointer_token(v.pointer,
                             step.size() >= 2 && step.front() == '[' && step.back() == ']'
                                 ? std::string_view(step).substr(1, step.size() - 2)
                                 : std::string_view(step));
    }
    v.message = error.description;
    v.rule = rule_of(error.description);
    if (v.rule == "required" || v.rule == "dependencies") {
        // "Missing required property 'name'." names the member that is absent.
        const auto open = v.message.find('\'');
        const auto close = v.message.rfind('\'');
        if (open != std::string::npos && close > open) {
            append_pointer_token(v.pointer,
                                 std::string_view(v.message).substr(open + 1, close - open - 1));
        }
    }
    return v;
}

// The first string (value or key) too long for a pattern to be checked against.
std::optional<SchemaViolation> long_string(const value& v, const std::string& at) {
    auto too_long = [&](std::size_t size) {
        return SchemaViolation{at, "pattern",
                               "a string of " + std::to_string(size) +
                                   " bytes is longer than the " +
                                   std::to_string(kMaxPatternSubjectBytes) +
                                   " bytes this type's schema checks patterns on"};
    };
    if (const auto* s = v.if_string()) {
        if (s->size() > kMaxPatternSubjectBytes) return too_long(s->size());
    } else if (const auto* object = v.if_object()) {
        for (const auto& [key, member] : *object) {
            std::string in = at;
            append_pointer_token(in, key);
            if (key.size() > kMaxPatternSubjectBytes)
                return SchemaViolation{in, "pattern", too_long(key.size()).message};
            if (auto found = long_string(member, in)) return found;
        }
    } else if (const auto* list = v.if_array()) {
        for (std::size_t i = 0; i < list->size(); ++i) {
            if (auto found = long_string((*list)[i], at + "/" + std::to_string(i))) return found;
        }
    }
    return std::nullopt;
}

// Runs `work` to its end on a thread with a stack of `stack_bytes`.
template <class F>
void run_with_stack(std::size_t stack_bytes, F& work) {
    pthread_attr_t attributes;
    if (pthread_attr_init(&attributes) != 0) throw std::runtime_error("pthread_attr_init failed");
    const int sized = pthread_attr_setstacksize(&attributes, stack_bytes);
    pthread_t thread;
    const int started = sized != 0 ? sized
                                   : pthread_create(
                                         &thread, &attributes,
                                         [](void* argument) -> void* {
                                             (*static_cast<F*>(argument))();
                                             return nullptr;
                                         },
                                         &work);
    pthread_attr_destroy(&attributes);
    if (started != 0) throw std::runtime_error("could not start the schema compiler thread");
    pthread_join(thread, nullptr);
}

}  // namespace

struct ParamsSchema::Impl {
    value document;
    valijson::Schema schema;
    std::string json;
    bool has_patterns = false;
};

ParamsSchema::ParamsSchema(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ParamsSchema::~ParamsSchema() = default;

std::variant<ParamsSchema::Ptr, std::string> ParamsSchema::compile(std::string_view text) {
    std::variant<Ptr, std::string> result = std::string("schema was not compiled");
    auto work = [&]() noexcept { result = compile_here(text); };
    try {
        run_with_stack(kCompileStackBytes, work);
    } catch (const std::exception& e) {
        return std::string("schema was not compiled: ") + e.what();
    }
    return result;
}

std::variant<ParamsSchema::Ptr, std::string> ParamsSchema::compile_here(std::string_view text) {
    try {
        if (text.size() > kMaxSchemaBytes) {
            return "schema of " + std::to_string(text.size()) + " bytes is over the limit of " +
                   std::to_string(kMaxSchemaBytes);
        }
        auto impl = std::make_unique<Impl>();
        boost::json::parse_options options;
        options.max_depth = kMaxSchemaDepth;
        boost::system::error_code ec;
        impl->document = boost::json::parse(text, ec, {}, options);
        if (ec)
            return "schema is not JSON (or nested deeper than " + std::to_string(kMaxSchemaDepth) +
                   "): " + ec.message();
        SchemaWalk walk(impl->document);
        walk.run();
        impl->has_patterns = walk.has_patterns();
        valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
        valijson::adapters::BoostJsonAdapter adapter(impl->document);
        parser.populateSchema(adapter, impl->schema);
        impl->json = boost::json::serialize(impl->document);
        return Ptr(new ParamsSchema(std::move(impl)));
    } catch (const Refused& e) {
        return std::string(e.what());
    } catch (const std::exception& e) {
        return std::string("schema does not compile: ") + e.what();
    } catch (...) {
        return std::string("schema does not compile");
    }
}

std::optional<SchemaViolation> ParamsSchema::check(std::string_view params) const {
    try {
        boost::json::parse_options options;
        options.max_depth = kMaxDataDepth;  // what submit takes
        boost::system::error_code ec;
        const value document = boost::json::parse(params, ec, {}, options);
        if (ec) return SchemaViolation{"", "type", "params are not JSON: " + ec.message()};
        if (impl_->has_patterns) {
            if (auto found = long_string(document, "")) return found;
        }
        valijson::Validator validator(valijson::Validator::kStrongTypes);
        valijson::ValidationResults results;
        valijson::adapters::BoostJsonAdapter adapter(document);
        if (validator.validate(impl_->schema, adapter, &results)) return std::nullopt;
        // The most specific report: the deepest one, the first of those.
        const valijson::ValidationResults::Error* best = nullptr;
        for (const auto& error : results) {
            if (!best || error.context.size() > best->context.size()) best = &error;
        }
        if (!best) return SchemaViolation{"", "schema", "params do not match the schema"};
        return violation_of(*best);
    } catch (const std::exception& e) {
        return SchemaViolation{"", "schema",
                               std::string("params could not be checked: ") + e.what()};
    }
}

const std::string& ParamsSchema::json() const {
    return impl_->json;
}

}  // namespace jobcast::proto
