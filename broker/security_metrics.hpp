// jobcast_auth_failures_total{reason} and jobcast_limit_hits_total{limit},
// built at scrape time from the web module's SecurityStats atomics.
#pragma once

#include <prometheus/metric_family.h>

#include <vector>

#include "web/security/security_stats.hpp"

namespace jobcast::broker {

void add_security_families(std::vector<prometheus::MetricFamily>& out,
                           const web::SecurityStats& stats);

}  // namespace jobcast::broker
