//! acura-ha: turns an OpenStack or AWS account, a set of existing hosts, or this machine into a
//! running Hystax Acura HA cluster. The binary is a thin shell over this library: [`cli`] parses
//! and dispatches, the modules below do the work. From the bottom up: [`config`], [`files`],
//! [`state`], [`output`], [`events`] and [`progress`]; [`targets`] (the provider of a cluster file);
//! [`bootstrap`] (SSH to Ansible); [`plan`]; [`day2`] and [`engine`]; [`error`] aggregates.

pub mod bootstrap;
pub mod cli;
pub mod config;
pub mod day2;
pub mod engine;
pub mod error;
pub mod events;
pub mod files;
pub mod output;
pub mod plan;
pub mod progress;
pub mod refresh;
pub mod state;
pub mod targets;
pub mod timings;
