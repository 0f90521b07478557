// The schema and its versions. A `meta` table records the schema version; at
// open, the MigrateToVersionN steps above the recorded version run in one
// transaction. A database written by a newer jobcast is refused. Internal.
#pragma once

#include <string_view>

#include "persistence/database.hpp"

namespace jobcast::store {

// The schema version this build writes.
inline constexpr int kSchemaVersion = 6;

// The version recorded in `meta`; 0 for a database jobcast never touched.
int schema_version(db::Connection& connection);

// Brings the database to kSchemaVersion and returns the version it had before.
// Throws StoreError when the database is newer than this build (the message
// names both versions and `path`).
int migrate(db::Connection& connection, std::string_view path);

}  // namespace jobcast::store
