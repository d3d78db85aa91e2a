//! The remote backends' runtime. The store's callers are synchronous (the journal writes
//! ahead from inside the engine's async code), so each call runs on a small runtime of its own
//! and the caller waits for it: blocking the caller's runtime on its own task would deadlock a
//! current-thread runtime. The runtime is never dropped (dropping a runtime inside async code
//! panics).

use std::future::Future;
use std::sync::OnceLock;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("acura-ha-state")
            .enable_all()
            .build()
            .expect("the state backend's runtime starts")
    })
}

/// Runs `f` on the backends' runtime and waits for its output.
pub fn block<F>(f: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    runtime().spawn(async move {
        let _ = tx.send(f.await);
    });
    rx.recv().expect("the state backend's task finishes")
}
