//! The provider contract of acura-ha: the guide's tables ([`tables`]), the cluster file's model
//! ([`spec`]), the resource model ([`model`]), what each provider converges to ([`desired`]), the
//! [`Provider`](provider::Provider) trait, and the [`targets`]: one folder per target (its section,
//! checks, desired resources and inventory) behind one registry, including the `static` provider,
//! which needs no cloud; [`paths`] reads paths as users write them.

pub mod console;
pub mod desired;
pub mod hint;
pub mod inventory;
pub mod model;
pub mod paths;
pub mod provider;
pub mod spec;
pub mod tables;
pub mod targets;
pub mod verbose;
pub mod wait;

/// The `static` provider, at its former path; it lives in `targets/static/`.
pub mod static_provider {
    pub use crate::targets::r#static::StaticProvider;
}
