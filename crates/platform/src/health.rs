//! Liveness and readiness.
//!
//! `/healthz` answers 200 whenever the process can serve HTTP. `/readyz` runs every
//! registered check (database, broker, ...) and answers 503 naming the ones that fail, so
//! an orchestrator stops routing to a replica that cannot do its work.

use std::sync::Arc;

use futures::FutureExt as _;
use futures::future::BoxFuture;
use serde::Serialize;

use crate::db::Pool;

type CheckFn = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The set of dependencies a service needs before it is ready.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, CheckFn)>,
}

/// One check's result, as reported by `/readyz`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CheckResult {
    /// The dependency checked, e.g. `database`.
    pub name: &'static str,
    /// Whether it answered.
    pub ok: bool,
    /// Why not, when it did not. Never carries credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Readiness {
    /// No checks yet: ready by default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a named check.
    pub fn with_check<F>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync + 'static,
    {
        self.checks.push((name, Arc::new(check)));
        self
    }

    /// Adds the `database` check: a connection answers `SELECT 1`.
    pub fn with_database(self, pool: Pool) -> Self {
        self.with_check("database", move || {
            let pool = pool.clone();
            async move { crate::db::ping(&pool).await.map_err(|e| format!("{e:#}")) }.boxed()
        })
    }

    /// Runs every check concurrently.
    pub async fn check(&self) -> Vec<CheckResult> {
        let runs = self.checks.iter().map(|(name, check)| {
            let check = check.clone();
            async move {
                let outcome =
                    tokio::time::timeout(std::time::Duration::from_secs(3), check()).await;
                let error = match outcome {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e),
                    Err(_) => Some("timed out after 3 s".to_owned()),
                };
                CheckResult {
                    name,
                    ok: error.is_none(),
                    error,
                }
            }
        });
        futures::future::join_all(runs).await
    }
}
