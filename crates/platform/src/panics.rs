//! A panic inside one unit of a worker's work (one connection's flush, one sync run) must not
//! leave that unit marked busy for the rest of the process's life: the loop that started it
//! would never start it again. [`caught`] turns such a panic into an error the loop logs and
//! handles like any other failure.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt as _;

/// Runs `future`; a panic inside it becomes `Err` with the panic's message.
///
/// The future is taken as unwind-safe: what it changed in memory is dropped with it, and
/// what it committed to the database was committed whole. Callers keep no state the future
/// could have left half-changed.
pub async fn caught<F: Future>(future: F) -> Result<F::Output, String> {
    AssertUnwindSafe(future)
        .catch_unwind()
        .await
        .map_err(|payload| message(payload.as_ref()))
}

fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_an_error_with_its_message_and_a_value_passes_through() {
        assert_eq!(caught(async { 7 }).await, Ok(7));
        let id = 42;
        let failed = caught(async move {
            if id == 42 {
                panic!("flush of {id} broke");
            }
            id
        })
        .await;
        assert_eq!(failed, Err("flush of 42 broke".to_owned()));
        let plain: Result<(), String> = caught(async {
            std::panic::panic_any(3_u8);
        })
        .await;
        assert_eq!(plain, Err("a panic without a message".to_owned()));
    }
}
