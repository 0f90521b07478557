// RESP2 codec: commands out, replies in. hiredis 0.14 does the work
// (redisFormatCommandArgv, redisReader) and stays inside resp.cpp.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "redis/reply.hpp"

namespace jobcast::redis {

// A command and its arguments, e.g. {"SET", "key", "value"}; binary-safe.
using Command = std::vector<std::string>;

// The RESP encoding of a command (an array of bulk strings).
std::string encode_command(const Command& command);

// Turns a byte stream cut anywhere into whole replies.
class RespReader {
  public:
    RespReader();
    ~RespReader();
    RespReader(const RespReader&) = delete;
    RespReader& operator=(const RespReader&) = delete;

    void feed(const char* data, std::size_t size);
    // The next complete reply, or nothing until more bytes come. Throws
    // std::system_error(Errc::protocol_error) on bytes that are not RESP; the
    // reader is unusable afterwards (the connection must be dropped).
    std::optional<Reply> next();

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace jobcast::redis
