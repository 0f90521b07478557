// Key → hash slot, against values the Redis documentation and CLUSTER KEYSLOT give.
#include <catch2/catch.hpp>

#include "redis/cluster.hpp"
#include "redis/slot.hpp"

namespace jobcast::redis {

TEST_CASE("key_slot is CRC16-XMODEM mod 16384", "[slot]") {
    CHECK(key_slot("123456789") == 0x31C3);  // the CRC16-XMODEM check value
    CHECK(key_slot("foo") == 12182);
    CHECK(key_slot("bar") == 5061);
    CHECK(key_slot("somekey") == 11058);
    CHECK(key_slot("") == 0);
}

TEST_CASE("key_slot hashes only the hash tag when there is one", "[slot]") {
    CHECK(key_slot("{user1000}.following") == key_slot("user1000"));
    CHECK(key_slot("{user1000}.followers") == key_slot("{user1000}.following"));
    CHECK(key_slot("foo{hash_tag}") == 2515);
    CHECK(key_slot("foo{bar}{zap}") == key_slot("bar"));   // the first tag only
    CHECK(key_slot("foo{{bar}}zap") == key_slot("{bar"));  // '{' up to the first '}'
    CHECK(key_slot("foo{}{bar}") == key_slot("foo{}{bar}"));
    CHECK(key_slot("foo{}{bar}") != key_slot("bar"));  // an empty tag: the whole key
    CHECK(key_slot("foo{bar") != key_slot("bar"));     // no closing brace: the whole key
}

}  // namespace jobcast::redis

TEST_CASE("a command is routed by its first key, after the key count for functions and scripts") {
    using jobcast::redis::command_slot;
    using jobcast::redis::key_slot;
    CHECK(command_slot({"GET", "{user1000}.following"}) == key_slot("user1000"));
    CHECK(command_slot({"FCALL", "jc_read", "2", "jc:{p3.1}:job:J", "jc:{p3.1}:ev:J"}) ==
          key_slot("p3.1"));
    CHECK(command_slot({"fcall_ro", "jc_get", "1", "a-key"}) == key_slot("a-key"));
    CHECK(command_slot({"EVAL", "return 1", "1", "k"}) == key_slot("k"));
    CHECK(command_slot({"PING"}) == 0);
}
