// The limits of worker protocol v1 that both sides hold to: what every shipped
// worker decodes (DecodeLimits' defaults), and so what the broker accepts at
// submit and sends in an assign. One place, so the broker never takes a job
// that no worker can read (a job that would hold a worker slot while the
// worker drops its assign).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace jobcast::proto {

// A frame (one msgpack message) a worker decodes: at most this many bytes.
inline constexpr std::size_t kMaxFrameBytes = std::size_t{1} << 20;  // 1 MiB
// Nesting of maps/arrays inside data, params and result: the object itself is
// level 1, so {"a":[[1]]} is 3 levels. The message envelope is not counted.
inline constexpr int kMaxDataDepth = 32;

// hello: the worker's name, its job types and its capacity.
inline constexpr std::size_t kMaxWorkerNameBytes = 128;
inline constexpr std::size_t kMaxHelloTypes = 64;
inline constexpr std::size_t kMaxTypeBytes = 128;
inline constexpr int kMaxCapacity = 1024;
// chunks: events in one message (its bytes are bounded by kMaxFrameBytes).
inline constexpr std::size_t kMaxChunksEvents = 1024;
// welcome.features: at most this many names, each at most this long.
inline constexpr std::size_t kMaxFeatures = 32;
inline constexpr std::size_t kMaxFeatureBytes = 64;
// hello/welcome: the worker session secret (see messages.hpp).
inline constexpr std::size_t kMaxSessionBytes = 128;
// The longest job id counted for when params are measured at submit (ids are
// 26-character ULIDs; the margin costs params a few bytes).
inline constexpr std::size_t kMaxJobIdBytes = 64;

// A name a peer chose that is printed and logged: 1..max_bytes bytes of valid
// UTF-8 without control characters (C0, DEL, C1) or line separators
// (U+2028/U+2029).
bool is_printable_name(std::string_view name, std::size_t max_bytes);

}  // namespace jobcast::proto
