//! Redis: the schema ([`schema`]: every key name, Lua script and TTL in one place), where
//! Redis is and the one way to connect ([`target`]: one server or Sentinel's master), the
//! request path's gate ([`gate`]), and what is stored there — idempotency claims
//! ([`idempotency`]) and call records and recording owners ([`call_store`]). The
//! notifications' push (`crate::notify`) uses the same schema and connection.

pub mod call_store;
pub mod gate;
pub mod idempotency;
pub mod schema;
pub mod target;
