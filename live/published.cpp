#include "live/published.hpp"

#include <string_view>

namespace jobcast::live {

bool is_terminal_event(const EventView& event) {
    if (event.kind != EventKind::state) return false;
    // The broker writes state events itself, always starting with the state.
    std::string_view data = event.data;
    for (std::string_view state : {"succeeded", "failed", "cancelled"}) {
        std::string prefix = "{\"state\":\"";
        prefix.append(state).push_back('"');
        if (data.substr(0, prefix.size()) == prefix) return true;
    }
    return false;
}

}  // namespace jobcast::live
