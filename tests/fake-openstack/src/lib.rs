//! A stateful fake OpenStack cloud for tests (skeleton: being written).
