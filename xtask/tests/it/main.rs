//! Integration tests: one binary (link time). `faults` drives the xtask against a scripted fake
//! `docker` for failures a real engine cannot produce on demand; `real_engine` runs the real
//! commands against the real engine, PostgreSQL, Redis and app.

mod fault_table;
mod fault_table_fake;
mod faults;
mod grown_app;
mod hostile;
mod plain_compose;
mod real_engine;
mod support;
mod swarm;
