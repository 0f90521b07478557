// Cluster mode: a broker shows a job's log up to what it can confirm is on
// the replicas (Job::last_seq); the log may be written further, by a broker
// that could confirm it and may have shown it already. A store that knows
// it implements WrittenSeqs next to JobStore; one node shows what it writes.
#pragma once

#include <cstdint>
#include <string_view>

#include "persistence/store.hpp"

namespace jobcast::store {

class WrittenSeqs {
  public:
    virtual ~WrittenSeqs() = default;
    // The seq of the newest event written to the job's log, shown or not; 0
    // for an unknown job.
    virtual std::uint64_t written_seq(std::string_view job) = 0;
};

// `jobs`'s written_seq of the job when it is a WrittenSeqs, else 0 (one node:
// its last_seq is all there is).
inline std::uint64_t written_seq(JobStore& jobs, std::string_view job) {
    auto* written = dynamic_cast<WrittenSeqs*>(&jobs);
    return written ? written->written_seq(job) : 0;
}

}  // namespace jobcast::store
