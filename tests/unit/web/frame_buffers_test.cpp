// Replay frames' buffers: a frame's memory comes back for the next page once
// its last reference goes, and what is kept stays bounded.
#include "web/stream/frame_buffers.hpp"

#include <catch2/catch.hpp>
#include <thread>

using namespace jobcast::web;

TEST_CASE("a shared frame's buffer comes back with its capacity once the frame goes",
          "[web][stream][resume]") {
    auto buffers = std::make_shared<FrameBuffers>(4, 4096, 1 << 20);
    std::string page = buffers->take();
    CHECK(page.capacity() < 100'000);  // nothing given back yet
    page.assign(200'000, 'x');
    const char* memory = page.data();
    const std::size_t capacity = page.capacity();
    auto frame = buffers->share(std::move(page));
    CHECK(frame->size() == 200'000);  // the frame is what was framed
    auto second = frame;              // a frame written to two connections
    frame.reset();
    CHECK(buffers->kept() == 0);  // still referenced
    // The last reference goes on another thread (an I/O thread, after its write).
    std::thread([frame = std::move(second)]() mutable { frame.reset(); }).join();
    REQUIRE(buffers->kept() == 1);
    CHECK(buffers->kept_bytes() == capacity);

    std::string again = buffers->take();
    CHECK(again.empty());
    CHECK(again.capacity() == capacity);
    CHECK(again.data() == memory);  // the same memory, touched already
    CHECK(buffers->kept() == 0);
}

TEST_CASE("frame buffers keep at most their count, each within their capacities",
          "[web][stream][resume]") {
    auto buffers = std::make_shared<FrameBuffers>(2, 4096, 64 * 1024);
    std::vector<std::shared_ptr<const std::string>> frames;
    frames.push_back(buffers->share(std::string(100, 's')));      // smaller than kept
    frames.push_back(buffers->share(std::string(100'000, 'b')));  // larger than kept
    frames.clear();
    CHECK(buffers->kept() == 0);
    for (int i = 0; i < 5; ++i)
        frames.push_back(buffers->share(std::string(10'000, 'a')));
    frames.clear();
    CHECK(buffers->kept() == 2);
    CHECK(buffers->kept_bytes() <= 2 * 64 * 1024);
    CHECK(buffers->take().capacity() >= 10'000);
}

TEST_CASE("a frame outliving its buffers is freed with it", "[web][stream][resume]") {
    auto buffers = std::make_shared<FrameBuffers>(4, 4096, 1 << 20);
    auto frame = buffers->share(std::string(50'000, 'z'));
    buffers.reset();  // the server's context went first
    CHECK(frame->size() == 50'000);
    frame.reset();  // AddressSanitizer: no leak, no use after free
}
