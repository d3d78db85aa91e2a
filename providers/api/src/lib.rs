//! The provider contract of acura-ha: the guide's tables ([`tables`]), the cluster file's model
//! ([`spec`]), the resource model ([`model`]), what each provider converges to ([`desired`]), the
//! [`Provider`](provider::Provider) trait, and the `static` provider, which needs no cloud.

pub mod desired;
pub mod inventory;
pub mod model;
pub mod provider;
pub mod spec;
pub mod static_provider;
pub mod tables;
pub mod wait;
