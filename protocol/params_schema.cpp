#include "protocol/params_schema.hpp"

#include <pthread.h>
#include <re2/re2.h>

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <cstdio>
#include <unordered_map>
#include <unordered_set>
#include <valijson/adapters/boost_json_adapter.hpp>
#include <valijson/adapters/std_string_adapter.hpp>
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

// ---------------------------------------------------------------------------
// Patterns run on RE2, not std::regex
//
// valijson 1.0 matches `pattern`, `patternProperties` and the date/time
// formats with std::regex, whose ECMAScript matcher backtracks: a pattern can
// take exponential (or high polynomial) time on a short string, and it recurses
// once per character, so a long string overflows the stack. RE2 matches in time
// linear in the string, without recursion, in bounded memory. The visitor
// members that match are specialized for the two adapters valijson uses here
// (the params, and each key `propertyNames` checks); everything else is
// valijson's.

namespace jobcast::proto::patterns {
namespace {

// The RE2 programs of one schema's patterns, by their text.
using Compiled = std::unordered_map<std::string, std::unique_ptr<const re2::RE2>>;

// The patterns of the schema checking params on this thread (ParamsSchema::check).
thread_local const Compiled* current = nullptr;

// Memory one pattern's program and match caches may use; past it RE2 refuses
// the pattern when compiling, or falls back to its slower linear matcher.
constexpr std::int64_t kMaxPatternMemory = std::int64_t{256} << 10;

re2::RE2::Options options() {
    re2::RE2::Options o;
    o.set_log_errors(false);
    o.set_max_mem(kMaxPatternMemory);
    o.set_never_capture(true);
    return o;
}

// The code unit of a `\uXXXX` escape at `at`, or -1.
long unit_at(std::string_view pattern, std::size_t at) {
    if (at + 5 >= pattern.size() || pattern[at] != '\\' || pattern[at + 1] != 'u') return -1;
    const char* digits = pattern.data() + at + 2;
    long unit = 0;
    const auto [end, ec] = std::from_chars(digits, digits + 4, unit, 16);
    return ec == std::errc() && end == digits + 4 ? unit : -1;
}

// A schema's pattern (ECMA-262 syntax) in RE2's syntax: `\uXXXX` becomes
// `\x{XXXX}`, a surrogate pair `\uD83D\uDE00` the one code point
// `\x{1F600}`; everything else RE2 reads as ECMAScript does, or refuses.
std::string to_re2(std::string_view pattern) {
    std::string out;
    out.reserve(pattern.size());
    char hex[16];
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        if (pattern[i] == '\\' && i + 1 < pattern.size()) {
            if (long unit = unit_at(pattern, i); unit >= 0) {
                i += 5;
                const long low = unit_at(pattern, i + 1);
                if (unit >= 0xD800 && unit <= 0xDBFF && low >= 0xDC00 && low <= 0xDFFF) {
                    unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                    i += 6;
                }
                std::snprintf(hex, sizeof hex, "\\x{%lX}", unit);
                out += hex;
                continue;
            }
            out += pattern.substr(i, 2);
            ++i;
            continue;
        }
        out += pattern[i];
    }
    return out;
}

// Whether `subject` holds a match of `pattern` (JSON Schema's `pattern`: a
// search, not anchored). A pattern the schema did not compile matches nothing.
bool search(const std::string& pattern, std::string_view subject) {
    const re2::StringPiece text(subject.data(), subject.size());
    if (current) {
        if (const auto found = current->find(pattern); found != current->end())
            return re2::RE2::PartialMatch(text, *found->second);
    }
    const re2::RE2 once(to_re2(pattern), options());
    return once.ok() && re2::RE2::PartialMatch(text, once);
}

// What a `format` valijson checks (date, time, date-time) says of `s`;
// `dated`: the month and day still need valijson's range check.
struct FormatMatch {
    bool checked = false;  // a format valijson checks
    bool matched = false;
    bool dated = false;
    int month = 0;
    int day = 0;
};

FormatMatch match_format(const std::string& format, const std::string& s) {
    // valijson's expressions, in RE2's syntax (anchored by FullMatch).
    static const std::string kDate = "[0-9]+-(0[1-9]|1[012])-(0[1-9]|[12][0-9]|3[01])";
    static const std::string kTime =
        "([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\\.[0-9]+)?"
        "([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])";
    static const re2::RE2 date(kDate);
    static const re2::RE2 time(kTime);
    static const re2::RE2 date_time(kDate + "[Tt]" + kTime);
    FormatMatch m;
    if (format == "time") {
        m.checked = true;
        m.matched = re2::RE2::FullMatch(s, time);
    } else if (format == "date" || format == "date-time") {
        m.checked = m.dated = true;
        m.matched = re2::RE2::FullMatch(s, format == "date" ? date : date_time, &m.month, &m.day);
    }
    return m;
}

}  // namespace
}  // namespace jobcast::proto::patterns

namespace valijson {

// `pattern` and `format` for the params (BoostJsonAdapter) and for the
// property names `propertyNames` checks (valijson visits each key with a
// StdStringAdapter). Formats apply to strings only (valijson's own threw on
// a number).
#define JOBCAST_RE2_VISITS(Adapter)                                                            \
    template <>                                                                                \
    bool ValidationVisitor<Adapter>::visit(const constraints::PatternConstraint& constraint) { \
        if ((m_strictTypes && !m_target.isString()) || !m_target.maybeString()) return true;   \
        const std::string pattern(constraint.getPattern<std::string::allocator_type>());       \
        if (jobcast::proto::patterns::search(pattern, m_target.asString())) return true;       \
        if (m_results)                                                                         \
            m_results->pushError(m_context,                                                    \
                                 "Failed to match regex specified by 'pattern' constraint.");  \
        return false;                                                                          \
    }                                                                                          \
    template <>                                                                                \
    bool ValidationVisitor<Adapter>::visit(const constraints::FormatConstraint& constraint) {  \
        if ((m_strictTypes && !m_target.isString()) || !m_target.maybeString()) return true;   \
        const std::string format = constraint.getFormat();                                     \
        const auto f = jobcast::proto::patterns::match_format(format, m_target.asString());    \
        if (!f.checked || (f.matched && (!f.dated || validate_date_range(f.month, f.day))))    \
            return true;                                                                       \
        if (!f.matched && m_results)                                                           \
            m_results->pushError(m_context, "String should be a valid " + format);             \
        return false;                                                                          \
    }

JOBCAST_RE2_VISITS(adapters::BoostJsonAdapter)
JOBCAST_RE2_VISITS(adapters::StdStringAdapter)
#undef JOBCAST_RE2_VISITS

template <>
template <>
bool ValidationVisitor<adapters::BoostJsonAdapter>::ValidatePatternPropertySubschemas::operator()(
    const constraints::BasicConstraint<constraints::PropertiesConstraint>::String& patternProperty,
    const Subschema* subschema) const {
    const std::string pattern(patternProperty.data(), patternProperty.size());
    bool matchFound = false;
    for (const adapters::BoostJsonAdapter::ObjectMember m : m_object) {
        if (!jobcast::proto::patterns::search(pattern, m.first)) continue;
        matchFound = true;
        if (m_propertiesMatched) m_propertiesMatched->insert(m.first);
        std::vector<std::string> newContext = m_context;
        newContext.push_back("[" + m.first + "]");
        ValidationVisitor validator(m.second, newContext, m_strictTypes, m_results, m_regexesCache);
        if (validator.validateSchema(*subschema)) continue;
        if (m_results) {
            m_results->pushError(
                m_context,
                "Failed to validate against schema associated with pattern '" + pattern + "'.");
        }
        if (m_validated) *m_validated = false;
        if (!m_continueOnFailure) return false;
    }
    if (!matchFound && !m_continueIfUnmatched) return false;
    return m_continueOnSuccess;
}

}  // namespace valijson

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

// Compiles a schema's pattern for patterns::search, or refuses it: too long, a
// back-reference or lookaround (RE2 matches neither: they are what make
// backtracking matchers slow), too large a program, or not a regex.
std::unique_ptr<const re2::RE2> compile_pattern(const std::string& pattern,
                                                const std::string& where) {
    if (pattern.size() > kMaxPatternBytes) {
        throw Refused(where + ": pattern longer than " + std::to_string(kMaxPatternBytes) +
                      " bytes");
    }
    for (std::size_t i = 0; i + 1 < pattern.size(); ++i) {
        if (pattern[i] != '\\') continue;
        const char next = pattern[i + 1];
        if ((next >= '1' && next <= '9') || next == 'k')
            throw Refused(where + ": pattern has a back-reference");
        ++i;
    }
    auto compiled =
        std::make_unique<const re2::RE2>(patterns::to_re2(pattern), patterns::options());
    if (!compiled->ok()) throw Refused(where + ": pattern does not compile: " + compiled->error());
    return compiled;
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

    // The patterns compiled along the walk.
    patterns::Compiled take_patterns() { return std::move(patterns_); }

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
                for_members(member, at, [&](const value& v, std::string in, std::string_view name) {
                    add_pattern(std::string(name), at);
                    part(v, std::move(in));
                });
            } else if (key == "pattern") {
                if (!member.is_string()) throw Refused(at + ": must be a string");
                add_pattern(std::string(member.get_string()), at);
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
            if constexpr (std::is_invocable_v<F, const value&, std::string, std::string_view>) {
                f(v, std::move(in), std::string_view(name));
            } else {
                f(v, std::move(in));
            }
        }
    }

    void add_pattern(const std::string& pattern, const std::string& where) {
        if (patterns_.count(pattern)) return;
        if (patterns_.size() == kMaxPatterns) {
            throw Refused(where + ": more than " + std::to_string(kMaxPatterns) +
                          " different patterns in one schema");
        }
        patterns_.emplace(pattern, compile_pattern(pattern, where));
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
    patterns::Compiled patterns_;
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
    patterns::Compiled patterns;
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
        impl->patterns = walk.take_patterns();
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
        // patterns::search finds this schema's compiled patterns.
        struct Current {
            explicit Current(const patterns::Compiled* now) : before(patterns::current) {
                patterns::current = now;
            }
            ~Current() { patterns::current = before; }
            const patterns::Compiled* before;
        } current(&impl_->patterns);
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
