// The one clock of the project. Wall time (unix ms and µs) is what is stored
// and shown; monotonic time (steady) is what deadlines, timeouts and rates are
// measured in. Code that decides anything by time takes a `const Clock&`, so a
// unit test drives it with a ManualClock instead of sleeping; everything else
// uses Clock::system().
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace jobcast {

class Clock {
  public:
    using Steady = std::chrono::steady_clock::time_point;

    virtual ~Clock() = default;
    // Milliseconds and microseconds since the Unix epoch.
    virtual std::int64_t unix_ms() const = 0;
    virtual std::int64_t unix_us() const = 0;
    // Monotonic time: never jumps with the wall clock.
    virtual Steady steady() const = 0;

    static const Clock& system();
};

class SystemClock final : public Clock {
  public:
    std::int64_t unix_ms() const override {
        return std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
            .count();
    }
    std::int64_t unix_us() const override {
        return std::chrono::duration_cast<std::chrono::microseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
            .count();
    }
    Steady steady() const override { return std::chrono::steady_clock::now(); }
};

inline const Clock& Clock::system() {
    static const SystemClock clock;
    return clock;
}

// A clock that moves only when told to (unit tests). Wall and monotonic time
// advance together; it may be read from several threads.
class ManualClock final : public Clock {
  public:
    explicit ManualClock(std::int64_t start_unix_ms = 1'700'000'000'000)
        : unix_us_(start_unix_ms * 1000) {}

    std::int64_t unix_ms() const override { return unix_us_.load() / 1000; }
    std::int64_t unix_us() const override { return unix_us_.load(); }
    Steady steady() const override {
        return Steady{} + std::chrono::microseconds(steady_us_.load());
    }

    void advance(std::chrono::microseconds by) {
        unix_us_ += by.count();
        steady_us_ += by.count();
    }

  private:
    std::atomic<std::int64_t> unix_us_;
    std::atomic<std::int64_t> steady_us_{0};
};

}  // namespace jobcast
