// An HdrHistogram-like latency histogram of the load generators.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace jobcast::bench {

// Exact below 128 µs, then 64 sub-buckets per power of two (under 1.6 %
// relative error), up to 2^63 µs.
class Histogram {
  public:
    Histogram() : counts_(kBuckets, 0) {}

    void record(std::int64_t us) {
        if (us < 0) {
            ++negative_;
            us = 0;
        }
        const auto v = static_cast<std::uint64_t>(us);
        ++counts_[index(v)];
        ++count_;
        max_ = std::max(max_, v);
        sum_ += static_cast<double>(v);
    }
    void merge(const Histogram& o) {
        for (std::size_t i = 0; i < kBuckets; ++i)
            counts_[i] += o.counts_[i];
        count_ += o.count_;
        negative_ += o.negative_;
        max_ = std::max(max_, o.max_);
        sum_ += o.sum_;
    }
    std::uint64_t count() const { return count_; }
    std::uint64_t negative() const { return negative_; }
    // The value at quantile q (0..1) in ms: the upper bound of its bucket.
    double quantile_ms(double q) const {
        if (count_ == 0) return 0;
        const auto rank = std::max<std::uint64_t>(
            1, static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_))));
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < kBuckets; ++i) {
            seen += counts_[i];
            if (seen >= rank) return static_cast<double>(std::min(upper(i), max_)) / 1000.0;
        }
        return static_cast<double>(max_) / 1000.0;
    }
    double max_ms() const { return static_cast<double>(max_) / 1000.0; }
    double mean_ms() const { return count_ ? sum_ / static_cast<double>(count_) / 1000.0 : 0; }

  private:
    static constexpr std::size_t kBuckets = 128 + 57 * 64;
    static std::size_t index(std::uint64_t v) {
        if (v < 128) return static_cast<std::size_t>(v);
        const int msb = 63 - __builtin_clzll(v);
        const int shift = msb - 6;  // the top 7 bits, in [64, 127]
        return 128 + static_cast<std::size_t>(shift - 1) * 64 + ((v >> shift) - 64);
    }
    static std::uint64_t upper(std::size_t i) {
        if (i < 128) return i;
        const std::size_t k = i - 128;
        const int shift = static_cast<int>(k / 64) + 1;
        const std::uint64_t top = 64 + k % 64;
        return ((top + 1) << shift) - 1;
    }
    std::vector<std::uint64_t> counts_;
    std::uint64_t count_ = 0, negative_ = 0, max_ = 0;
    double sum_ = 0;
};

}  // namespace jobcast::bench
