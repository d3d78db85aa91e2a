//! The local target (`[local]`): every cluster host is a network namespace on this machine.
