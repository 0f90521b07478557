#include "store_under_test.hpp"

#include <algorithm>

namespace jobcast::contract {

namespace {

// A function's static: registrations run during static initialisation, in any order.
std::vector<StoreUnderTest>& registry() {
    static std::vector<StoreUnderTest> stores;
    return stores;
}

}  // namespace

RegisterStore::RegisterStore(StoreUnderTest store) {
    registry().push_back(std::move(store));
}

std::vector<StoreUnderTest> stores_under_test() {
    std::vector<StoreUnderTest> stores = registry();
    std::sort(stores.begin(), stores.end(), [](const auto& a, const auto& b) {
        return std::pair(a.name != "sqlite", a.name) < std::pair(b.name != "sqlite", b.name);
    });
    return stores;
}

}  // namespace jobcast::contract
