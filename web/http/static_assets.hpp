// The web UI (web/ui, served at /) and the JS client (web/client, served at
// /client/), compiled into the broker so that it serves them wherever it runs.
#pragma once

#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "web/http/http_message.hpp"

namespace jobcast::web {

// (URL path, bytes), generated at build time.
const std::vector<std::pair<std::string_view, std::string_view>>& embedded_assets();

// GET/HEAD of a UI path ("/" is index.html): the file with its content type,
// or nullopt when the path is not an asset.
std::optional<HttpResponse> static_asset(std::string_view method, std::string_view target);

}  // namespace jobcast::web
