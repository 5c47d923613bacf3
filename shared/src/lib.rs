//! casebridge: AI agents that work email cases.
//!
//! This crate holds everything the Lambda functions, the HTTP API and the
//! CLI share: the agent protocol ([`protocol`]), the case model ([`model`]),
//! the decision table ([`decision`]), the ports with their adapters
//! ([`store`], [`mail`], [`agent_client`], [`raw_mail`]) and the three
//! pipeline steps ([`pipeline`]).

pub mod a2a;
pub mod address;
pub mod agent_auth;
pub mod agent_client;
pub mod aws;
pub mod config;
pub mod context;
pub mod daily;
pub mod decision;
pub mod direct;
pub mod ids;
pub mod inbound;
pub mod intent;
pub mod lifecycle;
pub mod mail;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod protocol;
pub mod raw_mail;
pub mod report;
pub mod secrets;
pub mod store;
pub mod stream;
pub mod telemetry;
pub mod triggers;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
