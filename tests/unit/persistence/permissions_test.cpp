// The database holds every job's params and results (audit L7): its file and
// the -wal and -shm files are the owner's only, whatever the umask. And the
// worker session key it keeps lasts as long as the database.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "store_test_support.hpp"

using namespace jobcast;
using namespace jobcast::store;
using namespace jobcast::store::testing;

namespace {

mode_t mode_of(const std::string& path) {
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return st.st_mode & 07777;
}

// Sets the process umask for one scope.
class Umask {
  public:
    explicit Umask(mode_t mask) : previous_(::umask(mask)) {}
    ~Umask() { ::umask(previous_); }

  private:
    mode_t previous_;
};

}  // namespace

TEST_CASE("a new database, its WAL and its shared memory file are created 0600") {
    TempDir dir;
    const StoreConfig config = test_config(dir);
    for (mode_t mask : {mode_t{022}, mode_t{0}}) {
        INFO("umask " << std::oct << mask);
        std::filesystem::remove(config.path);
        std::filesystem::remove(config.path + "-wal");
        std::filesystem::remove(config.path + "-shm");
        Umask umask(mask);
        auto store = Store::open(config);
        create_running(*store, "01J0000000000000000000000A");  // writes: the WAL exists
        REQUIRE(std::filesystem::exists(config.path + "-wal"));
        REQUIRE(std::filesystem::exists(config.path + "-shm"));
        CHECK(mode_of(config.path) == 0600);
        CHECK(mode_of(config.path + "-wal") == 0600);
        CHECK(mode_of(config.path + "-shm") == 0600);
        store->close();
    }
}

TEST_CASE("an existing world-readable database is tightened when opened") {
    TempDir dir;
    const StoreConfig config = test_config(dir);
    {
        Umask umask(022);
        auto store = Store::open(config);
        create_running(*store, "01J0000000000000000000000A");
        store->close();
    }
    // Left readable by an older build (or a careless copy).
    for (const std::string suffix : {"", "-wal", "-shm"}) {
        if (std::filesystem::exists(config.path + suffix)) {
            REQUIRE(::chmod((config.path + suffix).c_str(), 0644) == 0);
        }
    }
    auto store = Store::open(config);
    CHECK(mode_of(config.path) == 0600);
    CHECK(mode_of(config.path + "-wal") == 0600);
    CHECK(mode_of(config.path + "-shm") == 0600);
    // Its data is intact.
    CHECK(store->jobs().get("01J0000000000000000000000A").has_value());
}

TEST_CASE("the worker session key is made once and kept with the database") {
    TempDir dir;
    const StoreConfig config = test_config(dir);
    std::string first;
    {
        auto store = Store::open(config);
        first = store->worker_session_key();
        store->close();
    }
    CHECK(first.size() == 32);
    auto reopened = Store::open(config);
    CHECK(reopened->worker_session_key() == first);
    reopened->close();

    TempDir other_dir;
    auto other = Store::open(test_config(other_dir));
    CHECK(other->worker_session_key() != first);  // random per database
}
