#pragma once
// Names the calling thread as `top -H`, `perf` and /proc/PID/task/*/comm show
// it, so a profile or a thread's CPU can be told apart (Linux keeps 15 bytes).

#include <pthread.h>

#include <string>

namespace jobcast {

inline void name_this_thread(const std::string& name) {
    ::pthread_setname_np(::pthread_self(), name.substr(0, 15).c_str());
}

}  // namespace jobcast
