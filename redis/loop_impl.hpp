// Private to redis/*.cpp: the Asio io_context behind a Loop (its Impl). Not installed
// with the public headers, which stay free of Boost.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <thread>

#include "redis/loop.hpp"

namespace jobcast::redis {

namespace asio = boost::asio;

struct Loop::Impl {
    asio::io_context io{1};
    asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
    std::thread thread;
};

inline asio::io_context& io_of(Loop& loop) {
    return loop.impl().io;
}

}  // namespace jobcast::redis
