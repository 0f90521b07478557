#include "cluster/redis_live_feed.hpp"

#include <algorithm>
#include <chrono>
#include <exception>
#include <utility>

#include "cluster/live_message.hpp"
#include "cluster/live_publisher.hpp"
#include "redis/pubsub.hpp"

namespace jobcast::cluster {

namespace {
// A catch-up reads the store in pages of at most this many events or bytes.
constexpr std::size_t kPageEvents = 1000;
constexpr std::size_t kPageBytes = 1 << 20;
// How long the catch-up thread waits before it retries after a store error.
constexpr auto kRetryDelay = std::chrono::milliseconds(200);

void count(std::atomic<std::uint64_t>& counter) {
    counter.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

RedisLiveFeed::RedisLiveFeed(redis::Cluster& cluster, const Partitions& partitions,
                             store::EventLog& log, store::WrittenSeqs& written, Deliver on_events,
                             Deliver on_job_changes)
    : partitions_(partitions),
      log_(log),
      written_(written),
      on_events_(std::move(on_events)),
      on_job_changes_(std::move(on_job_changes)),
      pubsub_(std::make_unique<redis::ShardedPubSub>(
          cluster,
          [this](const std::string& channel, const std::string& payload) {
              on_message(channel, payload);
          },
          [this](const std::string& channel) { on_subscribed(channel); })),
      catcher_([this] { run(); }) {}

RedisLiveFeed::~RedisLiveFeed() {
    stop();
}

void RedisLiveFeed::stop() {
    std::call_once(stopped_, [this] {
        std::unique_ptr<redis::ShardedPubSub> pubsub;
        {
            std::lock_guard lock(mutex_);  // watch() and the rest see it gone
            pubsub = std::move(pubsub_);
        }
        pubsub.reset();  // no message or confirmation after this
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_all();
        catcher_.join();
    });
}

void RedisLiveFeed::watch(const std::string& job, std::uint64_t last_seq) {
    std::lock_guard lock(mutex_);
    auto [it, added] = jobs_.try_emplace(job);
    if (!added) return;
    it->second.channel = partitions_.live_channel(job);
    it->second.handed = last_seq;
    job_of_[it->second.channel] = job;
    if (pubsub_) pubsub_->subscribe(it->second.channel);
}

void RedisLiveFeed::unwatch(const std::string& job) {
    std::lock_guard lock(mutex_);
    auto it = jobs_.find(job);
    if (it == jobs_.end()) return;
    if (pubsub_) pubsub_->unsubscribe(it->second.channel);
    job_of_.erase(it->second.channel);
    pending_.erase(job);
    jobs_.erase(it);
}

void RedisLiveFeed::watch_owner(const std::string& owner) {
    std::string channel = Partitions::owner_feed_channel(owner);
    std::lock_guard lock(mutex_);
    if (owner_of_.try_emplace(channel, owner).second && pubsub_)
        pubsub_->subscribe(std::move(channel));
}

void RedisLiveFeed::unwatch_owner(const std::string& owner) {
    std::string channel = Partitions::owner_feed_channel(owner);
    std::lock_guard lock(mutex_);
    if (owner_of_.erase(channel) != 0 && pubsub_) pubsub_->unsubscribe(std::move(channel));
}

void RedisLiveFeed::on_message(const std::string& channel, const std::string& payload) {
    std::string job, owner;
    {
        std::lock_guard lock(mutex_);
        if (auto it = job_of_.find(channel); it != job_of_.end()) {
            job = it->second;
        } else if (auto o = owner_of_.find(channel); o != owner_of_.end()) {
            owner = o->second;
        } else {
            return;  // unwatched while the message was on its way
        }
    }
    std::vector<store::JobEvents> batch;
    if (!job.empty()) {
        auto events = decode_live_message(payload);
        if (!events || events->job != job || events->events.empty())
            return count(counters_.decode_failures);
        {
            std::lock_guard lock(mutex_);
            if (auto it = jobs_.find(job); it != jobs_.end()) {
                it->second.handed = std::max(it->second.handed, events->events.back().seq);
                if (it->second.owner.empty()) it->second.owner = events->owner;
            }
        }
        count(counters_.remote_batches);
        batch.push_back(std::move(*events));
        on_events_(std::move(batch));
    } else {
        auto change = decode_job_change(payload);
        if (!change || change->owner != owner) return count(counters_.decode_failures);
        count(counters_.job_changes);
        batch.push_back(std::move(*change));
        on_job_changes_(std::move(batch));
    }
}

void RedisLiveFeed::on_subscribed(const std::string& channel) {
    std::lock_guard lock(mutex_);
    auto job = job_of_.find(channel);
    if (job == job_of_.end()) return;  // an owner's feed: at most once, nothing to catch up
    Watch& watch = jobs_.at(job->second);
    const bool first = !std::exchange(watch.confirmed, true);
    if (!first) count(counters_.resubscribes);
    watch.reach.reset();  // what the log holds now, not at an earlier try
    queue_catch_up(job->second, first);
    wake_.notify_one();
}

void RedisLiveFeed::queue_catch_up(const std::string& job, bool tail_only) {
    auto [it, added] = pending_.try_emplace(job, tail_only);
    if (!added) it->second = it->second && tail_only;  // a full catch-up covers a tail-only one
}

void RedisLiveFeed::run() {
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
        if (stopping_) return;
        // Round by round, so that a job whose reads fail does not hold up the others.
        auto round = std::exchange(pending_, {});
        lock.unlock();
        std::vector<std::pair<std::string, bool>> failed;
        for (auto& [job, tail_only] : round)
            if (!catch_up(job, tail_only)) failed.emplace_back(job, tail_only);
        lock.lock();
        if (failed.empty()) continue;
        for (const auto& [job, tail_only] : failed)
            if (jobs_.contains(job)) queue_catch_up(job, tail_only);
        // The store failed, or cannot show yet what the log holds: give it
        // a moment before the next round.
        wake_.wait_for(lock, kRetryDelay, [&] { return stopping_; });
    }
}

bool RedisLiveFeed::catch_up(const std::string& job, bool tail_only) {
    count(counters_.catch_ups);
    bool found = false;
    std::uint64_t reach = 0;
    try {
        // What the log holds, shown or not. A retry keeps the first try's
        // figure (what the job writes later comes live), lowered only if the
        // log is shorter now (a failover lost events nobody was shown).
        const std::uint64_t written = written_.written_seq(job);
        {
            std::lock_guard lock(mutex_);
            auto it = jobs_.find(job);
            if (it == jobs_.end() || stopping_) return true;
            Watch& watch = it->second;
            reach = std::min(watch.reach.value_or(written), written);
            watch.reach = reach;
            if (watch.handed >= reach) {
                watch.reach.reset();
                return true;  // nothing in the log past what was handed over
            }
        }
        for (;;) {
            std::uint64_t after = 0;
            std::string owner;
            {
                std::lock_guard lock(mutex_);
                auto it = jobs_.find(job);
                if (it == jobs_.end() || stopping_) break;
                after = it->second.handed;
                owner = it->second.owner;
            }
            if (tail_only) {
                const auto last = log_.last_seq(job);
                if (!last || *last <= after) break;
                after = *last - 1;
            }
            auto page = log_.read(job, after, kPageEvents, kPageBytes);
            if (page.empty()) break;
            const bool more = page.size() == kPageEvents || store::page_bytes(page) >= kPageBytes;
            const std::uint64_t last = page.back().seq;
            {
                std::lock_guard lock(mutex_);
                if (auto it = jobs_.find(job); it != jobs_.end())
                    it->second.handed = std::max(it->second.handed, last);
            }
            if (!std::exchange(found, true)) count(counters_.gap_fills);
            std::vector<store::JobEvents> batch;
            batch.push_back({job, std::move(owner), std::move(page)});
            on_events_(std::move(batch));
            // Short of what was written: read on, the store confirms what it
            // can when it has nothing more to show.
            if (tail_only || (!more && last >= reach)) break;
        }
    } catch (const std::exception&) {
        count(counters_.store_errors);
        return false;
    }
    std::lock_guard lock(mutex_);
    const auto it = jobs_.find(job);
    if (it == jobs_.end() || stopping_) return true;
    if (it->second.handed < reach) return false;  // not shown here yet: tried again
    it->second.reach.reset();
    return true;
}

RedisLiveFeedStats RedisLiveFeed::stats() const {
    auto load = [](const std::atomic<std::uint64_t>& c) {
        return c.load(std::memory_order_relaxed);
    };
    return {load(counters_.remote_batches),  load(counters_.job_changes),
            load(counters_.catch_ups),       load(counters_.gap_fills),
            load(counters_.decode_failures), load(counters_.resubscribes),
            load(counters_.store_errors)};
}

}  // namespace jobcast::cluster
