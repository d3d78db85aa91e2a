//! The OpenStack provider (skeleton: being written).
