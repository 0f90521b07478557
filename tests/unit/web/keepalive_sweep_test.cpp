// The keepalive sweep: one timer for all its connections, each due at the
// tick it asked for, those that are gone dropped; the sweeps spread over the
// I/O threads and stop with the server.
#include "web/stream/keepalive_sweep.hpp"

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <catch2/catch.hpp>
#include <set>

using namespace jobcast::web;
namespace net = boost::asio;
using namespace std::chrono_literals;

namespace {

// Records the ticks it was due at; asks to be due again `again` more times.
class Recorder final : public KeepaliveMember, public std::enable_shared_from_this<Recorder> {
  public:
    Recorder(KeepaliveSweep& sweep, std::uint64_t every, int again)
        : sweep_(sweep), every_(every), again_(again) {}
    void keepalive_due(std::uint64_t tick) override {
        CHECK(tick == sweep_.tick());
        due.push_back(tick);
        if (again_-- > 0) sweep_.schedule(shared_from_this(), every_);
    }
    std::vector<std::uint64_t> due;

  private:
    KeepaliveSweep& sweep_;
    const std::uint64_t every_;
    int again_;
};

}  // namespace

TEST_CASE("a keepalive sweep visits each member at the tick it asked for", "[web][stream]") {
    net::io_context io;
    // Ticks of 10 ms: a member asking for 16 ticks is due 160 ms later.
    auto sweep = std::make_shared<KeepaliveSweep>(net::make_strand(io), 160ms);
    std::vector<std::shared_ptr<Recorder>> members;
    for (std::uint64_t i = 0; i < 200; ++i) {
        members.push_back(std::make_shared<Recorder>(*sweep, 1 + i % KeepaliveSweep::kSlots, 2));
        sweep->schedule(members.back(), 1 + i % KeepaliveSweep::kSlots);
    }
    // A member that is gone before it is due is dropped, not called.
    auto gone = std::make_shared<Recorder>(*sweep, 1, 0);
    sweep->schedule(gone, 3);
    gone.reset();
    // Asking for more than a whole interval is the same as asking for one.
    auto far = std::make_shared<Recorder>(*sweep, 1, 0);
    sweep->schedule(far, 1000);

    // The timer runs while the wheel holds members: io.run() returns when
    // every member has been visited for the last time.
    const auto started = std::chrono::steady_clock::now();
    io.run();
    const auto took = std::chrono::steady_clock::now() - started;
    for (std::uint64_t i = 0; i < members.size(); ++i) {
        const auto every = 1 + i % KeepaliveSweep::kSlots;
        CHECK(members[i]->due == std::vector<std::uint64_t>{every, 2 * every, 3 * every});
    }
    CHECK(far->due == std::vector<std::uint64_t>{KeepaliveSweep::kSlots});
    CHECK(sweep->tick() == 3 * KeepaliveSweep::kSlots);
    // 48 ticks of 10 ms, one timer for all (not one wake-up per member).
    CHECK(took >= 480ms);

    // Stopped: nothing is scheduled any more.
    sweep->stop();
    sweep->schedule(members.front(), 1);
    io.restart();
    CHECK(io.run() == 0);
}

TEST_CASE("keepalive sweeps: one per I/O thread's io_context, none after release",
          "[web][stream]") {
    std::array<net::io_context, 3> io;
    net::io_context other;
    KeepaliveSweeps sweeps(45s, 150s);
    sweeps.attach({io[0].get_executor(), io[1].get_executor(), io[2].get_executor()});
    // A connection on io_context k gets sweep k, whichever strand it has.
    std::array<KeepaliveSweep*, 3> sweep_of{};
    for (std::size_t k = 0; k < io.size(); ++k) {
        sweep_of[k] = sweeps.pick(net::make_strand(io[k])).get();
        REQUIRE(sweep_of[k] != nullptr);
    }
    CHECK(std::set<KeepaliveSweep*>(sweep_of.begin(), sweep_of.end()).size() == 3);
    for (int i = 0; i < 9; ++i) {
        const auto k = static_cast<std::size_t>(i) % io.size();
        CHECK(sweeps.pick(net::make_strand(io[k])).get() == sweep_of[k]);
    }
    // Attaching an io_context again makes no second sweep on it.
    sweeps.attach({io[1].get_executor()});
    CHECK(sweeps.pick(net::make_strand(io[1])).get() == sweep_of[1]);
    // A strand of an io_context not attached, or not an io_context strand: none.
    CHECK(sweeps.pick(net::make_strand(other)) == nullptr);
    CHECK(sweeps.pick(io[0].get_executor()) == nullptr);
    sweeps.release();
    CHECK(sweeps.pick(net::make_strand(io[0])) == nullptr);
    // Nothing is attached after release (the io_contexts are going).
    sweeps.attach({other.get_executor()});
    CHECK(sweeps.pick(net::make_strand(other)) == nullptr);
}

TEST_CASE("a keepalive sweep takes waits up to its horizon; a sooner schedule replaces a later one",
          "[web][stream]") {
    net::io_context io;
    // Ticks of 5 ms, waits of up to 40 ticks.
    auto sweep = std::make_shared<KeepaliveSweep>(net::make_strand(io), 80ms, 40);
    CHECK(sweep->ticks_for(80ms) == 16);
    CHECK(sweep->ticks_for(0ms) == 1);
    CHECK(sweep->ticks_for(24h) == 40);
    auto far = std::make_shared<Recorder>(*sweep, 1, 0);
    sweep->schedule(far, 1000);  // the horizon
    // A connection whose write starts after its check was set far ahead
    // asks to be checked sooner: it is visited then, and not again at the
    // tick it first asked for.
    auto moved = std::make_shared<Recorder>(*sweep, 1, 0);
    sweep->schedule(moved, 30);
    sweep->schedule(moved, 5);
    io.run();
    CHECK(far->due == std::vector<std::uint64_t>{40});
    CHECK(moved->due == std::vector<std::uint64_t>{5});
    CHECK(sweep->tick() == 40);
}

TEST_CASE("keepalive sweeps tick at a sixteenth of the shorter of keepalive and ping interval",
          "[web][stream]") {
    net::io_context io;
    // The sweep a connection on `io` gets.
    auto sweep_on_io = [&io](KeepaliveSweeps& sweeps) {
        sweeps.attach({io.get_executor()});
        auto sweep = sweeps.pick(net::make_strand(io));
        REQUIRE(sweep);
        return sweep;
    };
    KeepaliveSweeps sweeps(45s, 150s);
    auto sweep = sweep_on_io(sweeps);
    CHECK(sweep->ticks_for(45s) == 16);
    CHECK(sweep->ticks_for(150s) == 53);  // 150 s in ticks of 2.8 s
    // Pings more often than keepalive: ticks of the ping interval's sixteenth.
    KeepaliveSweeps often(45s, 1s);
    auto fine = sweep_on_io(often);
    CHECK(fine->ticks_for(1s) == 16);
    CHECK(fine->ticks_for(45s) == 720);
    // Far apart (24 h against 100 ms): the wheel stays small, the ticks longer.
    KeepaliveSweeps apart(100ms, 24h);
    auto coarse = sweep_on_io(apart);
    CHECK(coarse->ticks_for(24h) == 4096);
    CHECK(coarse->ticks_for(100ms) == 1);
    sweeps.release();
    often.release();
    apart.release();
}
