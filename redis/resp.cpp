#include "redis/resp.hpp"

#include <hiredis.h>

#include <memory>
#include <new>
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

// hiredis builds each reply through these, straight into a Reply tree (no
// redisReply in between, no second copy): a reply's root is allocated, every
// element is constructed in place in its parent's elements, which are sized
// when the array is made. A null answer is hiredis' out-of-memory.
Reply* place(const redisReadTask* task) {
    if (!task->parent) return new (std::nothrow) Reply();
    return &static_cast<Reply*>(task->parent->obj)->elements[static_cast<std::size_t>(task->idx)];
}

void* create_string(const redisReadTask* task, char* str, std::size_t len) {
    try {
        Reply* reply = place(task);
        if (!reply) return nullptr;
        reply->type = task->type == REDIS_REPLY_ERROR    ? Reply::Type::error
                      : task->type == REDIS_REPLY_STATUS ? Reply::Type::status
                                                         : Reply::Type::string;
        reply->str.assign(str, len);
        return reply;
    } catch (const std::bad_alloc&) {
        return nullptr;
    }
}

void* create_array(const redisReadTask* task, int elements) {
    try {
        Reply* reply = place(task);
        if (!reply) return nullptr;
        reply->type = Reply::Type::array;
        reply->elements.resize(static_cast<std::size_t>(elements));
        return reply;
    } catch (const std::bad_alloc&) {
        return nullptr;
    }
}

void* create_integer(const redisReadTask* task, long long value) {
    Reply* reply = place(task);
    if (!reply) return nullptr;
    reply->type = Reply::Type::integer;
    reply->integer = value;
    return reply;
}

void* create_nil(const redisReadTask* task) {
    return place(task);
}

// Only ever given a root (hiredis frees what it built after an error).
void free_reply(void* reply) {
    delete static_cast<Reply*>(reply);
}

redisReplyObjectFunctions kReplyFunctions = {create_string, create_array, create_integer,
                                             create_nil, free_reply};

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
    redisReader* reader = redisReaderCreateWithFunctions(&kReplyFunctions);
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
    std::unique_ptr<Reply> reply(static_cast<Reply*>(raw));
    return std::move(*reply);
}

}  // namespace jobcast::redis
