//! `-v/--verbose`: the command line sets it once; a provider prints what it keeps otherwise to
//! itself (the AWS SDK's own error structure) only when it is on.

use std::sync::atomic::{AtomicBool, Ordering};

static VERBOSE: AtomicBool = AtomicBool::new(false);

/// Turns the verbose output on (or off) for the whole process.
pub fn set(on: bool) {
    VERBOSE.store(on, Ordering::Relaxed);
}

/// Whether `-v` was given.
pub fn on() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}
