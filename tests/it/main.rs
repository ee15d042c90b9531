//! Black-box tests: the real gateway on an ephemeral port in front of a real upstream.

#![allow(unreachable_pub, missing_docs)]

mod allowlist;
mod async_delivery;
mod auth;
mod batch;
mod body;
mod cli;
mod conformance;
mod dedup;
mod delivery;
mod handshake;
mod jwt;
mod layering;
mod operability;
mod oracle;
mod ordering;
mod providers;
mod proxy_protocol;
mod regression;
mod replicas;
mod respond;
mod robustness;
mod routing;
mod schema;
mod shedding;
mod signature;
mod store_fault;
mod support;
mod tls;
