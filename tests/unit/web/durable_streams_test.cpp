// The Durable Streams reader of a job's log, below HTTP: a live SSE reader
// that has read to the tail subscribes to the hub for the next commit, and a
// commit handed out between its read and that subscription must still wake
// it (the watch looks at the store once more), not leave it waiting for the
// long-poll timeout.
#include "web/streams/durable_streams.hpp"

#include <future>
#include <mutex>
#include <vector>

#include "live/hub.hpp"
#include "live/live_feed.hpp"
#include "test_support.hpp"
#include "web/http/blocking_pool.hpp"
#include "web/rest/rest_api.hpp"

using namespace jobcast;
using namespace jobcast::web;
using namespace jobcast::web::test;
using jobcast::web::streams::DurableStreams;
using jobcast::web::streams::DurableStreamsConfig;
using jobcast::web::streams::SsePlan;

TEST_CASE("a job's live reader is woken by a commit it missed between its read and its wait",
          "[web][streams]") {
    TempDir dir;
    auto store = open_store(dir);
    store::StoreCommands commands(*store);
    BlockingPool pool(1);
    auto run_blocking = [&pool](std::function<void()> task) { return pool.post(std::move(task)); };
    RestApi api(store->jobs(), store->events(), commands, RestConfig{}, run_blocking);
    // The store's commits never reach this hub: every commit is one the
    // reader missed, as when it lands between the read and the subscription.
    live::LocalFeed feed;
    live::Hub hub(feed, live::fill_from(store->events()));
    // The long-poll timeout never fires: only the look at the store can wake.
    std::mutex timeouts_mutex;
    std::vector<std::function<void()>> timeouts;
    DurableStreams streams(
        nullptr, api, hub, DurableStreamsConfig{}, run_blocking,
        [&](std::chrono::milliseconds, std::function<void()> fire) {
            std::lock_guard lock(timeouts_mutex);
            timeouts.push_back(std::move(fire));
        },
        nullptr);

    started_job(*store, "D");
    REQUIRE(store->events().last_seq("D") == 2u);  // queued, running

    SsePlan plan;
    plan.owner = "alice";
    plan.job = "D";
    plan.last_seq = 1;

    // At the tail: nothing wakes it.
    auto idle = std::make_shared<std::promise<bool>>();
    auto at_tail = streams.watch(plan, 2, [idle](bool timed_out) { idle->set_value(timed_out); });
    CHECK(idle->get_future().wait_for(std::chrono::milliseconds(300)) ==
          std::future_status::timeout);
    streams.cancel_watch(at_tail);

    // Read up to 1 while 2 is committed: woken at once, not timed out.
    auto woke = std::make_shared<std::promise<bool>>();
    auto behind = streams.watch(plan, 1, [woke](bool timed_out) { woke->set_value(timed_out); });
    auto answer = woke->get_future();
    REQUIRE(answer.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    CHECK_FALSE(answer.get());
    CHECK(hub.subscriptions() == 0);  // the woken wait left the hub

    streams.release_waits();
    hub.stop();
    pool.stop();
    store->close();
}
