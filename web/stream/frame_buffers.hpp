// Buffers for the frames a catching-up reader is sent, given back when the
// last reference to a frame goes (after its write), so the next page is
// framed into memory the process has touched already.
//
// A page framed into fresh memory pays a page fault for every 4 KiB it
// writes (about 2.4 µs each on the machines of bench/compare, more than
// framing the events in them), and a frame grown by doubling touches about
// twice its size: in a 100,000-event resume on a freshly started broker the
// faults were most of the read thread's time. What is kept is bounded: at
// most `max_buffers` buffers of `min_capacity` to `max_capacity` bytes each;
// any other buffer is freed as before (a small one is cheap to allocate
// again, and kept it would only be grown again by the next large page). A
// connection's queue counts a frame's size, not its buffer's capacity: a
// small page framed into a large kept buffer holds more than it counts, at
// most max_buffers x max_capacity across the process (16 MiB as the broker
// sets them, StreamingContext).
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace jobcast::web {

class FrameBuffers : public std::enable_shared_from_this<FrameBuffers> {
  public:
    FrameBuffers(std::size_t max_buffers, std::size_t min_capacity, std::size_t max_capacity)
        : max_buffers_(max_buffers), min_capacity_(min_capacity), max_capacity_(max_capacity) {}
    FrameBuffers(const FrameBuffers&) = delete;
    FrameBuffers& operator=(const FrameBuffers&) = delete;

    // An empty string: one given back (its capacity kept) when there is one.
    std::string take();
    // `frame`, shared; its buffer comes back here when the last reference
    // goes (or is freed then, when these buffers are gone or full).
    std::shared_ptr<const std::string> share(std::string frame);

    // A buffer taken and not used for a frame (kept within the bounds above).
    void give_back(std::string&& buffer);

    // Buffers kept for take(), and their capacity in bytes.
    std::size_t kept() const;
    std::size_t kept_bytes() const;

  private:
    const std::size_t max_buffers_;
    const std::size_t min_capacity_;
    const std::size_t max_capacity_;
    mutable std::mutex mutex_;
    std::vector<std::string> free_;  // the most recently given back last
};

}  // namespace jobcast::web
