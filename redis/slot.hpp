// Redis Cluster key → hash slot: CRC16 (XMODEM) of the key, or of its hash tag
// (the text between the first '{' and the next '}', when not empty), mod 16384.
#pragma once

#include <cstdint>
#include <string_view>

namespace jobcast::redis {

inline constexpr std::uint16_t kSlots = 16384;

std::uint16_t key_slot(std::string_view key);

}  // namespace jobcast::redis
