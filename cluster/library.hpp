// The Redis Function library of the Redis store (cluster/jobcast_v1.lua),
// embedded at build time. Its name carries its version: a broker loads it on
// every primary and refuses to run beside a library of another version.
// Internal to cluster/.
#pragma once

#include <string_view>

namespace jobcast::cluster {

inline constexpr std::string_view kLibraryName = "jobcast_v1";
inline constexpr std::string_view kLibraryVersion = "5";  // what jc_version answers

// The library's code, as FUNCTION LOAD takes it ("#!lua name=jobcast_v1" first).
std::string_view library_code();

}  // namespace jobcast::cluster
