//! The proofs: what `verify --swarm` and `bench` run to show the stack holds, apart from the
//! operations a person runs (`dev`, `deploy`, `db`, …), which never import this tree.
//! `cluster` (a throw-away Docker-in-Docker swarm), `load` (a steady load for the length of an
//! event), `html` (what a client holds of a page: its static files, its action forms), `swarm`
//! (`verify --swarm`), `bench` (timings and wrk under load).

pub mod bench;
pub mod cluster;
pub mod edge;
pub mod html;
pub mod load;
pub mod swarm;
