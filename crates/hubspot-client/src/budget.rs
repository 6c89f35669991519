//! The per-portal rate budget shared by every process through PostgreSQL (schema
//! `hubspot_budget`), and the in-process limiter that leases from it in small batches.
//! The design and the reasons for it are in the crate docs.

use std::sync::Mutex as SyncMutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Double, Integer, Nullable, Text, Timestamptz};
use diesel::{QueryableByName, sql_query};
use diesel_async::pooled_connection::deadpool::Pool as DeadPool;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use tokio::sync::Mutex;

use crate::error::{HubSpotError, RateLimitPolicy};
use crate::metrics::ClientMetrics;

/// This crate's migrations. Apply them with `search_path` set to [`BUDGET_SCHEMA`] (the
/// services do it in their `migrate` step, e.g. with `platform::db::run_migrations(url,
/// BUDGET_SCHEMA, [MIGRATIONS])`).
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!();

/// The schema the budget tables live in. The pool handed to [`PgBudgetStore::new`] must set
/// `search_path` to it on every connection (e.g. `platform::db::connect_pool(settings,
/// BUDGET_SCHEMA)`).
pub const BUDGET_SCHEMA: &str = "hubspot_budget";

/// A diesel-async deadpool pool of PostgreSQL connections, the type [`PgBudgetStore`] takes.
/// Any pool of this type works (it is the same type as `platform::db::Pool`); this crate
/// does not depend on `platform`, so that using the client does not pull in a web server,
/// an AMQP client and a CLI parser.
pub type BudgetPool = DeadPool<AsyncPgConnection>;

/// How the portal's token was issued; HubSpot's limits differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    /// A public (marketplace) OAuth app: 110 / 10 s, no daily cap.
    OAuth,
    /// A legacy private app: limits by tier, plus a daily quota.
    PrivateApp,
}

/// The portal's HubSpot subscription tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Free.
    Free,
    /// Starter.
    Starter,
    /// Professional.
    Professional,
    /// Enterprise.
    Enterprise,
}

/// Which portal a client calls, and with what kind of access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortalAccess {
    /// The HubSpot portal (hub) id; the budget's key.
    pub portal_id: i64,
    /// OAuth app or private app.
    pub auth: AuthKind,
    /// Subscription tier.
    pub tier: Tier,
    /// The API Limit Increase add-on.
    pub api_limit_increase: bool,
    /// Offset of the portal's time zone from UTC in minutes; the daily quota resets at its
    /// midnight.
    pub utc_offset_minutes: i32,
}

/// The limits HubSpot documents for a portal (its API usage guidelines and the search guide).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortalLimits {
    /// Requests per rolling 10 seconds.
    pub burst_per_10s: u32,
    /// Search requests per second.
    pub search_per_second: u32,
    /// Requests per day (private apps only).
    pub daily: Option<u64>,
}

impl PortalLimits {
    /// The documented limits for `access`.
    pub fn for_access(access: &PortalAccess) -> Self {
        let burst_per_10s = match (access.auth, access.tier, access.api_limit_increase) {
            (AuthKind::OAuth, _, _) => 110,
            (AuthKind::PrivateApp, _, true) => 250,
            (AuthKind::PrivateApp, Tier::Free | Tier::Starter, false) => 100,
            (AuthKind::PrivateApp, Tier::Professional | Tier::Enterprise, false) => 190,
        };
        let daily = match access.auth {
            AuthKind::OAuth => None,
            AuthKind::PrivateApp => {
                let base: u64 = match access.tier {
                    Tier::Free | Tier::Starter => 250_000,
                    Tier::Professional => 625_000,
                    Tier::Enterprise => 1_000_000,
                };
                Some(
                    base + if access.api_limit_increase {
                        1_000_000
                    } else {
                        0
                    },
                )
            }
        };
        Self {
            burst_per_10s,
            search_per_second: 5,
            daily,
        }
    }
}

/// Which of the portal's budgets a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetKind {
    /// The 10-second burst limit (every non-search call).
    Burst,
    /// The search limit (search calls only; HubSpot excludes them from the burst limit).
    Search,
}

impl BudgetKind {
    /// The row key and metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Burst => "burst",
            Self::Search => "search",
        }
    }
}

/// Tuning of the limiter; the defaults keep every 10-s window strictly under the limit.
#[derive(Debug, Clone)]
pub struct BudgetSettings {
    /// Tokens leased per round trip for burst calls.
    pub burst_lease_size: u32,
    /// Tokens leased per round trip for search calls.
    pub search_lease_size: u32,
    /// A leased token must be spent (the request sent) within this time, else it is given back.
    pub lease_ttl_ms: u32,
    /// Allowance for the time between sending a request and HubSpot counting it.
    pub arrival_margin_ms: u32,
    /// How far HubSpot's reported usage may exceed ours before we assume someone else is
    /// spending the portal's budget.
    pub observation_tolerance: u32,
    /// Spread grants evenly: at most `limit / pace_slices` (rounded up) in any
    /// `window / pace_slices`. 1 turns pacing off (whole-window bursts).
    pub pace_slices: u32,
    /// Per cent of the burst limit this limiter leaves unspent in every window for callers
    /// without a reserve (rounded up to whole tokens; 0 leaves nothing). Bulk work such as
    /// a full sync sets it, so that reads of a webhook's changes never wait a whole window
    /// behind it.
    pub burst_reserve_percent: u32,
}

impl Default for BudgetSettings {
    fn default() -> Self {
        Self {
            burst_lease_size: 8,
            search_lease_size: 1,
            lease_ttl_ms: 100,
            arrival_margin_ms: 150,
            observation_tolerance: 2,
            pace_slices: 10,
            burst_reserve_percent: 0,
        }
    }
}

impl BudgetSettings {
    /// The window grants are counted over: HubSpot's window plus the lease TTL plus the margin,
    /// so requests from grants in any HubSpot window always fit in one of ours.
    pub fn window_ms(&self, kind: BudgetKind) -> u32 {
        let hubspot_window = match kind {
            BudgetKind::Burst => 10_000,
            BudgetKind::Search => 1_000,
        };
        hubspot_window + self.lease_ttl_ms + self.arrival_margin_ms
    }

    /// The tokens of a window of `limit` that [`Self::burst_reserve_percent`] leaves to others.
    pub fn reserve_tokens(&self, limit: u32) -> u32 {
        let percent = u64::from(self.burst_reserve_percent.min(100));
        u32::try_from((u64::from(limit) * percent).div_ceil(100)).unwrap_or(limit)
    }
}

/// What the shared store answered to a lease request.
#[derive(Debug, Clone, PartialEq)]
pub enum LeaseOutcome {
    /// `tokens` may be spent until the lease's TTL runs out.
    Granted {
        /// Tokens granted (1..=wanted).
        tokens: u32,
        /// The grant's row, to give unused tokens back.
        grant_id: i64,
    },
    /// Nothing free; ask again after this long.
    Wait(Duration),
    /// The daily quota is used up until then.
    DailyExhausted(DateTime<Utc>),
}

/// HubSpot's rate-limit headers from one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Observation {
    pub max: u32,
    pub remaining: u32,
    pub at: Instant,
}

/// One lease call's inputs.
#[derive(Debug, Clone)]
pub struct LeaseRequest {
    /// Portal.
    pub portal_id: i64,
    /// Kind.
    pub kind: BudgetKind,
    /// Requests allowed per HubSpot window.
    pub limit: u32,
    /// Window grants are summed over.
    pub window_ms: u32,
    /// Tokens wanted.
    pub want: u32,
    /// Unused tokens of an earlier grant to give back: (grant id, tokens).
    pub give_back: Option<(i64, u32)>,
    /// Latest burst headers: (max, remaining, lookback ms, tolerance).
    pub observation: Option<(u32, u32, u32, u32)>,
    /// Daily quota, private apps only.
    pub daily_limit: Option<u64>,
    /// Latest `X-HubSpot-RateLimit-Daily-Remaining`.
    pub daily_remaining: Option<u64>,
    /// Portal time zone offset for the daily reset.
    pub utc_offset_minutes: i32,
    /// Pacing: grants in any `window_ms / pace_slices` stay within `limit / pace_slices`.
    pub pace_slices: u32,
    /// Tokens of every window this caller leaves to callers without a reserve.
    pub reserve: u32,
}

#[derive(QueryableByName)]
struct LeaseRow {
    #[diesel(sql_type = Integer)]
    granted: i32,
    #[diesel(sql_type = Nullable<BigInt>)]
    grant_id: Option<i64>,
    #[diesel(sql_type = Nullable<Integer>)]
    wait_ms: Option<i32>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    daily_until: Option<DateTime<Utc>>,
}

fn to_i32(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The budget rows in PostgreSQL, shared by every process calling HubSpot.
#[derive(Clone)]
pub struct PgBudgetStore {
    pool: BudgetPool,
}

impl PgBudgetStore {
    /// Uses `pool`, whose connections must have `search_path` = [`BUDGET_SCHEMA`].
    pub fn new(pool: BudgetPool) -> Self {
        Self { pool }
    }

    /// Grants up to `request.want` tokens in one transaction and one round trip.
    pub async fn lease(&self, request: &LeaseRequest) -> Result<LeaseOutcome, HubSpotError> {
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| HubSpotError::Budget(e.to_string()))?;
        let (obs_max, obs_remaining, obs_lookback, obs_tolerance) = match request.observation {
            Some((max, remaining, lookback, tolerance)) => (
                Some(to_i32(max)),
                Some(to_i32(remaining)),
                to_i32(lookback),
                to_i32(tolerance),
            ),
            None => (None, None, 0, 0),
        };
        let row: LeaseRow = sql_query(
            "SELECT granted, grant_id, wait_ms, daily_until \
             FROM lease_tokens($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind::<BigInt, _>(request.portal_id)
        .bind::<Text, _>(request.kind.as_str())
        .bind::<Integer, _>(to_i32(request.limit))
        .bind::<Integer, _>(to_i32(request.window_ms))
        .bind::<Integer, _>(to_i32(request.want))
        .bind::<Nullable<BigInt>, _>(request.give_back.map(|(id, _)| id))
        .bind::<Integer, _>(request.give_back.map_or(0, |(_, n)| to_i32(n)))
        .bind::<Nullable<Integer>, _>(obs_max)
        .bind::<Nullable<Integer>, _>(obs_remaining)
        .bind::<Integer, _>(obs_lookback)
        .bind::<Integer, _>(obs_tolerance)
        .bind::<Nullable<BigInt>, _>(request.daily_limit.map(to_i64))
        .bind::<Nullable<BigInt>, _>(request.daily_remaining.map(to_i64))
        .bind::<Integer, _>(request.utc_offset_minutes)
        .bind::<Integer, _>(to_i32(request.pace_slices.max(1)))
        .bind::<Integer, _>(to_i32(request.reserve))
        .get_result(&mut conn)
        .await
        .map_err(|e| HubSpotError::Budget(e.to_string()))?;
        Ok(match (row.granted, row.grant_id, row.daily_until) {
            (n, Some(id), _) if n > 0 => LeaseOutcome::Granted {
                tokens: n.unsigned_abs(),
                grant_id: id,
            },
            (_, _, Some(until)) => LeaseOutcome::DailyExhausted(until),
            _ => LeaseOutcome::Wait(Duration::from_millis(u64::from(
                row.wait_ms.unwrap_or(100).unsigned_abs(),
            ))),
        })
    }

    /// Slows the portal down for every process after a 429: no grants for `pause`, then at
    /// most `factor` × limit for `reduce_for`.
    pub async fn slow_down(
        &self,
        portal_id: i64,
        kind: BudgetKind,
        limit: u32,
        pause: Duration,
        factor: f64,
        reduce_for: Duration,
    ) -> Result<(), HubSpotError> {
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| HubSpotError::Budget(e.to_string()))?;
        sql_query("INSERT INTO budgets (portal_id, kind) VALUES ($1, $2) ON CONFLICT DO NOTHING; ")
            .bind::<BigInt, _>(portal_id)
            .bind::<Text, _>(kind.as_str())
            .execute(&mut conn)
            .await
            .map_err(|e| HubSpotError::Budget(e.to_string()))?;
        sql_query(
            "UPDATE budgets SET \
               paused_until = GREATEST(COALESCE(paused_until, clock_timestamp()), clock_timestamp() + make_interval(secs => $3 / 1000.0)), \
               reduced_limit = LEAST(CASE WHEN reduced_until > clock_timestamp() THEN reduced_limit ELSE $4 END, GREATEST(FLOOR($4 * $5)::INTEGER, 1)), \
               reduced_until = GREATEST(COALESCE(reduced_until, clock_timestamp()), clock_timestamp() + make_interval(secs => $6 / 1000.0)), \
               updated_at = clock_timestamp() \
             WHERE portal_id = $1 AND kind = $2",
        )
        .bind::<BigInt, _>(portal_id)
        .bind::<Text, _>(kind.as_str())
        .bind::<Double, _>(pause.as_secs_f64() * 1000.0)
        .bind::<Integer, _>(to_i32(limit))
        .bind::<Double, _>(factor)
        .bind::<Double, _>(reduce_for.as_secs_f64() * 1000.0)
        .execute(&mut conn)
        .await
        .map_err(|e| HubSpotError::Budget(e.to_string()))?;
        Ok(())
    }

    /// Marks the portal's daily quota used up until its next reset, for every process.
    pub async fn exhaust_daily(
        &self,
        portal_id: i64,
    ) -> Result<Option<DateTime<Utc>>, HubSpotError> {
        #[derive(QueryableByName)]
        struct Until {
            #[diesel(sql_type = Timestamptz)]
            period_ends_at: DateTime<Utc>,
        }
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| HubSpotError::Budget(e.to_string()))?;
        let rows: Vec<Until> = sql_query(
            "UPDATE daily_quotas SET used = daily_limit, exhausted_until = period_ends_at \
             WHERE portal_id = $1 RETURNING period_ends_at",
        )
        .bind::<BigInt, _>(portal_id)
        .load(&mut conn)
        .await
        .map_err(|e| HubSpotError::Budget(e.to_string()))?;
        Ok(rows.into_iter().next().map(|r| r.period_ends_at))
    }
}

/// The longest extra delay [`jittered`] adds.
const MAX_WAIT_JITTER: Duration = Duration::from_millis(250);
/// The extra delay [`jittered`] may add to even the shortest wait.
const MIN_WAIT_JITTER: Duration = Duration::from_millis(10);

/// `wait` plus a random extra of up to a fifth of it (at least 10 ms, at most 250 ms).
///
/// Every process told "wait 400 ms" by the store would otherwise wake at the same instant and
/// queue on the portal's row lock together, only for all but one to be told to wait again.
/// Never shorter than `wait`: asking before the store's answer can change is a wasted trip.
fn jittered(wait: Duration) -> Duration {
    let spread = (wait / 5).clamp(MIN_WAIT_JITTER, MAX_WAIT_JITTER);
    let spread_us = u64::try_from(spread.as_micros()).unwrap_or(u64::MAX);
    wait + Duration::from_micros(rand::random_range(0..=spread_us))
}

/// Tokens this process holds from its last lease of one kind.
#[derive(Debug, Default)]
struct LocalLease {
    grant_id: Option<i64>,
    remaining: u32,
    valid_until: Option<Instant>,
}

impl LocalLease {
    /// Gives up the tokens still held: they stay counted as spent in the store.
    fn forfeit(&mut self) {
        self.grant_id = None;
        self.remaining = 0;
    }
}

#[derive(Debug, Default)]
struct Pending {
    burst: Option<Observation>,
    daily_remaining: Option<u64>,
}

/// One client's limiter for one portal: takes tokens from a local lease and leases more from
/// the shared store when it runs out. Separate clients have separate limiters sharing the store.
pub struct PortalLimiter {
    store: PgBudgetStore,
    access: PortalAccess,
    limits: PortalLimits,
    settings: BudgetSettings,
    burst: Mutex<LocalLease>,
    search: Mutex<LocalLease>,
    pending: SyncMutex<Pending>,
}

impl PortalLimiter {
    /// A limiter for `access` drawing from `store`.
    pub fn new(store: PgBudgetStore, access: PortalAccess, settings: BudgetSettings) -> Self {
        Self {
            store,
            access,
            limits: PortalLimits::for_access(&access),
            settings,
            burst: Mutex::new(LocalLease::default()),
            search: Mutex::new(LocalLease::default()),
            pending: SyncMutex::new(Pending::default()),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> PortalLimits {
        self.limits
    }

    /// The portal this limiter guards.
    pub fn access(&self) -> PortalAccess {
        self.access
    }

    fn limit_of(&self, kind: BudgetKind) -> u32 {
        match kind {
            BudgetKind::Burst => self.limits.burst_per_10s,
            BudgetKind::Search => self.limits.search_per_second,
        }
    }

    /// Waits until one request of `kind` may be sent, and returns at once when a token is
    /// held locally. The request must be sent right away: the token expires with its lease.
    pub(crate) async fn acquire(
        &self,
        kind: BudgetKind,
        metrics: &ClientMetrics,
    ) -> Result<(), HubSpotError> {
        let lease = match kind {
            BudgetKind::Burst => &self.burst,
            BudgetKind::Search => &self.search,
        };
        let want = match kind {
            BudgetKind::Burst => self.settings.burst_lease_size,
            BudgetKind::Search => self.settings.search_lease_size,
        }
        .max(1);
        let ttl = Duration::from_millis(u64::from(self.settings.lease_ttl_ms));
        loop {
            let wait = {
                let mut local = lease.lock().await;
                let now = Instant::now();
                if local.remaining > 0 && local.valid_until.is_some_and(|until| now < until) {
                    local.remaining -= 1;
                    return Ok(());
                }
                let give_back = match (local.grant_id, local.remaining) {
                    (Some(id), n) if n > 0 => Some((id, n)),
                    _ => None,
                };
                let request = self.lease_request(kind, want, give_back);
                // The lease's life starts before the round trip: the database stamps the grant
                // later than this, so spending ends no later than grant time + TTL.
                let started = Instant::now();
                let outcome = self.store.lease(&request).await;
                // Whatever happened, the old lease's leftovers are no longer ours.
                local.forfeit();
                match outcome? {
                    LeaseOutcome::Granted { tokens, grant_id } => {
                        local.grant_id = Some(grant_id);
                        local.remaining = tokens - 1;
                        local.valid_until = Some(started + ttl);
                        return Ok(());
                    }
                    LeaseOutcome::DailyExhausted(until) => {
                        return Err(HubSpotError::DailyQuotaExhausted { until: Some(until) });
                    }
                    LeaseOutcome::Wait(wait) => wait,
                }
            };
            let started = Instant::now();
            tokio::time::sleep(jittered(wait)).await;
            metrics.waited(kind.as_str(), started.elapsed().as_secs_f64());
        }
    }

    fn lease_request(
        &self,
        kind: BudgetKind,
        want: u32,
        give_back: Option<(i64, u32)>,
    ) -> LeaseRequest {
        let window_ms = self.settings.window_ms(kind);
        let (observation, daily_remaining) = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let observation = if kind == BudgetKind::Burst {
                pending.burst.take().and_then(|o| {
                    let age = u32::try_from(o.at.elapsed().as_millis()).unwrap_or(u32::MAX);
                    // Old observations say nothing about the present window.
                    (age < 5_000).then(|| {
                        (
                            o.max,
                            o.remaining,
                            age + window_ms,
                            self.settings.observation_tolerance,
                        )
                    })
                })
            } else {
                None
            };
            (observation, pending.daily_remaining.take())
        };
        LeaseRequest {
            portal_id: self.access.portal_id,
            kind,
            limit: self.limit_of(kind),
            window_ms,
            want,
            give_back,
            observation,
            daily_limit: self.limits.daily,
            daily_remaining,
            utc_offset_minutes: self.access.utc_offset_minutes,
            pace_slices: self.settings.pace_slices.max(1),
            reserve: match kind {
                BudgetKind::Burst => self.settings.reserve_tokens(self.limit_of(kind)),
                BudgetKind::Search => 0,
            },
        }
    }

    /// Records HubSpot's rate-limit headers; they travel with the next lease.
    pub(crate) fn observe(
        &self,
        max: Option<u32>,
        remaining: Option<u32>,
        daily_remaining: Option<u64>,
    ) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some(max), Some(remaining)) = (max, remaining) {
            // Keep the most pessimistic reading since the last lease.
            let keep_old = pending
                .burst
                .is_some_and(|old| old.max - old.remaining.min(old.max) > max - remaining.min(max));
            if !keep_old {
                pending.burst = Some(Observation {
                    max,
                    remaining,
                    at: Instant::now(),
                });
            }
        }
        if let Some(daily) = daily_remaining {
            pending.daily_remaining =
                Some(pending.daily_remaining.map_or(daily, |old| old.min(daily)));
        }
    }

    /// A 429 arrived: every process pauses this kind and runs below the limit for a while.
    pub(crate) async fn rate_limited(
        &self,
        policy: &RateLimitPolicy,
        retry_after: Option<Duration>,
    ) -> Result<Option<DateTime<Utc>>, HubSpotError> {
        let (kind, pause) = match policy {
            RateLimitPolicy::Daily => {
                // Tokens still held locally would each send one more request into the same
                // DAILY 429; drop them so the next call learns of the exhaustion from the store.
                for lease in [&self.burst, &self.search] {
                    lease.lock().await.forfeit();
                }
                return self.store.exhaust_daily(self.access.portal_id).await;
            }
            RateLimitPolicy::Secondly => (
                BudgetKind::Search,
                retry_after.unwrap_or(Duration::from_secs(1)),
            ),
            RateLimitPolicy::TenSecondlyRolling | RateLimitPolicy::Other(_) => (
                BudgetKind::Burst,
                retry_after.unwrap_or(Duration::from_secs(2)),
            ),
        };
        // Tokens still held locally must not bypass the pause; they stay counted as spent.
        let lease = match kind {
            BudgetKind::Burst => &self.burst,
            BudgetKind::Search => &self.search,
        };
        lease.lock().await.forfeit();
        let reduce_for = Duration::from_millis(u64::from(self.settings.window_ms(kind)) * 2);
        self.store
            .slow_down(
                self.access.portal_id,
                kind,
                self.limit_of(kind),
                pause,
                0.8,
                reduce_for,
            )
            .await?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(auth: AuthKind, tier: Tier, increase: bool) -> PortalAccess {
        PortalAccess {
            portal_id: 1,
            auth,
            tier,
            api_limit_increase: increase,
            utc_offset_minutes: 0,
        }
    }

    #[test]
    fn limits_follow_auth_kind_and_tier() {
        let oauth = PortalLimits::for_access(&access(AuthKind::OAuth, Tier::Enterprise, true));
        assert_eq!((oauth.burst_per_10s, oauth.daily), (110, None));
        let free = PortalLimits::for_access(&access(AuthKind::PrivateApp, Tier::Free, false));
        assert_eq!((free.burst_per_10s, free.daily), (100, Some(250_000)));
        let pro =
            PortalLimits::for_access(&access(AuthKind::PrivateApp, Tier::Professional, false));
        assert_eq!((pro.burst_per_10s, pro.daily), (190, Some(625_000)));
        let boosted = PortalLimits::for_access(&access(AuthKind::PrivateApp, Tier::Starter, true));
        assert_eq!(
            (boosted.burst_per_10s, boosted.daily),
            (250, Some(1_250_000))
        );
        assert_eq!(pro.search_per_second, 5);
    }

    #[test]
    fn budget_waits_are_never_shortened_and_spread_by_at_most_a_fifth() {
        for (wait_ms, spread_ms) in [(0, 10), (30, 10), (400, 80), (2_000, 250), (10_400, 250)] {
            let wait = Duration::from_millis(wait_ms);
            let samples: Vec<Duration> = (0..200).map(|_| jittered(wait)).collect();
            for sample in &samples {
                assert!(*sample >= wait, "{sample:?} < {wait:?}");
                assert!(
                    *sample <= wait + Duration::from_millis(spread_ms),
                    "{sample:?} > {wait:?} + {spread_ms} ms"
                );
            }
            let distinct: std::collections::HashSet<_> = samples.iter().collect();
            assert!(distinct.len() > 10, "waits for {wait:?} are spread out");
        }
    }

    #[test]
    fn the_counting_window_covers_lease_lifetime_and_arrival_delay() {
        let settings = BudgetSettings::default();
        assert_eq!(settings.window_ms(BudgetKind::Burst), 10_250);
        assert_eq!(settings.window_ms(BudgetKind::Search), 1_250);
    }

    #[test]
    fn a_reserve_is_rounded_up_to_whole_tokens_of_the_limit() {
        let reserve = |percent| BudgetSettings {
            burst_reserve_percent: percent,
            ..BudgetSettings::default()
        };
        assert_eq!(reserve(0).reserve_tokens(190), 0);
        assert_eq!(reserve(10).reserve_tokens(190), 19);
        assert_eq!(reserve(10).reserve_tokens(110), 11);
        assert_eq!(reserve(5).reserve_tokens(190), 10);
        assert_eq!(reserve(250).reserve_tokens(100), 100);
    }
}
