#include "redis/resp.hpp"

#include <hiredis.h>

#include <stdexcept>
#include <system_error>

#include "redis/error.hpp"

namespace jobcast::redis {

namespace {

class ErrorCategory final : public std::error_category {
  public:
    const char* name() const noexcept override { return "redis"; }
    std::string message(int value) const override {
        switch (static_cast<Errc>(value)) {
            case Errc::connect_failed:
                return "could not connect to the Redis node";
            case Errc::connect_timeout:
                return "timed out connecting to the Redis node";
            case Errc::connection_lost:
                return "connection to the Redis node lost";
            case Errc::reply_timeout:
                return "the Redis node did not reply in time";
            case Errc::protocol_error:
                return "the Redis node sent bytes that are not RESP";
            case Errc::closed:
                return "Redis client closed";
            case Errc::no_topology:
                return "no Redis node answered with the cluster topology";
            case Errc::retries_exhausted:
                return "Redis command still redirected or refused after the retry limit";
        }
        return "unknown Redis client error";
    }
};

Reply owned(const redisReply& r) {
    switch (r.type) {
        case REDIS_REPLY_INTEGER:
            return Reply::of_integer(r.integer);
        case REDIS_REPLY_STRING:
            return Reply::of_string(std::string(r.str, r.len));
        case REDIS_REPLY_STATUS:
            return Reply::of_status(std::string(r.str, r.len));
        case REDIS_REPLY_ERROR:
            return Reply::of_error(std::string(r.str, r.len));
        case REDIS_REPLY_ARRAY: {
            std::vector<Reply> elements;
            elements.reserve(r.elements);
            for (std::size_t i = 0; i < r.elements; ++i)
                elements.push_back(owned(*r.element[i]));
            return Reply::of_array(std::move(elements));
        }
        default:
            return Reply::nil();
    }
}

}  // namespace

const std::error_category& error_category() {
    static const ErrorCategory category;
    return category;
}

std::string encode_command(const Command& command) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    argv.reserve(command.size());
    lengths.reserve(command.size());
    for (const std::string& arg : command) {
        argv.push_back(arg.data());
        lengths.push_back(arg.size());
    }
    char* encoded = nullptr;
    int size = redisFormatCommandArgv(&encoded, static_cast<int>(argv.size()), argv.data(),
                                      lengths.data());
    if (size < 0) throw std::bad_alloc();
    std::string out(encoded, static_cast<std::size_t>(size));
    redisFreeCommand(encoded);
    return out;
}

struct RespReader::Impl {
    redisReader* reader = redisReaderCreate();
    ~Impl() { redisReaderFree(reader); }
};

RespReader::RespReader() : impl_(std::make_unique<Impl>()) {
    if (!impl_->reader) throw std::bad_alloc();
}

RespReader::~RespReader() = default;

void RespReader::feed(const char* data, std::size_t size) {
    if (redisReaderFeed(impl_->reader, data, size) != REDIS_OK)
        throw std::system_error(Errc::protocol_error, impl_->reader->errstr);
}

std::optional<Reply> RespReader::next() {
    void* raw = nullptr;
    if (redisReaderGetReply(impl_->reader, &raw) != REDIS_OK)
        throw std::system_error(Errc::protocol_error, impl_->reader->errstr);
    if (!raw) return std::nullopt;
    std::unique_ptr<redisReply, void (*)(void*)> reply(static_cast<redisReply*>(raw),
                                                       freeReplyObject);
    return owned(*reply);
}

}  // namespace jobcast::redis
