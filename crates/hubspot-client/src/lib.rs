//! Typed HubSpot API client with retries and one rate budget per portal shared by every
//! process. Every hubscore service calls HubSpot through this crate and nothing else.
//!
//! It speaks HubSpot's wire format and keeps all of hubscore inside each portal's rate limits.
//! It must not interpret property values (they stay strings; the `domain` crate parses them),
//! store tokens (a [`TokenSource`] supplies them), or put a token into an error or a log line.
//! It depends on no service framework: the budget takes a plain diesel-async deadpool
//! ([`BudgetPool`]), so using the client pulls in no web server, AMQP client or CLI parser.
//!
//! # Using it
//!
//! ```no_run
//! # async fn demo(pool: hubspot_client::BudgetPool) -> Result<(), hubspot_client::HubSpotError> {
//! use std::sync::Arc;
//! use futures::TryStreamExt as _;
//! use hubspot_client::*;
//! let access = PortalAccess { portal_id: 9990001, auth: AuthKind::PrivateApp, tier: Tier::Professional,
//!     api_limit_increase: false, utc_offset_minutes: 0 };
//! let limiter = Arc::new(PortalLimiter::new(PgBudgetStore::new(pool), access, BudgetSettings::default()));
//! let client = HubSpotClient::builder(ClientConfig::default(), Arc::new(StaticToken::new("pat-na1-...")))
//!     .limiter(limiter)
//!     .build()?;
//! let contacts: Vec<CrmObject> = client.list_objects("contacts", ListOptions::default()).try_collect().await?;
//! # Ok(()) }
//! ```
//!
//! # The shared rate budget: design and why
//!
//! HubSpot counts a portal's requests by arrival time in **any** rolling 10-second window
//! (110 for OAuth apps; 100, 190 or 250 for private apps by tier), searches at 5 per second,
//! and private apps against a daily quota. Every hubscore process calling a portal draws from
//! one budget in PostgreSQL (schema `hubspot_budget`, migrations in [`MIGRATIONS`]).
//!
//! * **A sliding window of grants, not a token bucket.** A bucket of capacity `C` refilled at
//!   `r`/s lets `C + 10r` requests into some 10-s window, so staying under 190 means
//!   `C + 10r ≤ 190` and an average rate of `(190 - C)/10`: a burst allowance of `C` is paid for
//!   with `C/190` of the throughput. Instead each grant is recorded with the database clock's
//!   instant, and a lease succeeds only while the grants inside the last `W` sum to less than
//!   the limit. That is exactly HubSpot's own rule, so bursts and steady use both reach the
//!   limit.
//! * **Why `W` is longer than 10 s.** A process leases `k` tokens (8 by default; 1 for search)
//!   and may send them until `lease_ttl` (100 ms) after it *asked*, which is before the grant's
//!   timestamp; a request then takes up to `arrival_margin` (150 ms) to be counted by HubSpot.
//!   So requests arriving in any 10-s window come from grants within a span of
//!   `10 s + ttl + margin`; summing grants over `W` = 10,250 ms keeps every HubSpot window
//!   strictly under the limit while still granting `10/10.25` ≈ 97.6 % of it in steady state
//!   (search: `W` = 1,250 ms). Tokens a process did not spend before its lease expired are
//!   given back with its next lease, so idle leases waste nothing.
//! * **Paced, not bursty.** With only the window rule, a client that is always hungry gets a
//!   full burst of 190 at the start of each window and then nothing until those grants age
//!   out, forever. A second rule spreads the limit over ten slices of the window (at most
//!   `ceil(limit/10)` grants in any `W/10`), so steady demand is served at an even
//!   `limit / W` (18.5 requests/s for 190) and short bursts still get up to 19 at once.
//!   `BudgetSettings::pace_slices = 1` turns pacing off.
//! * **A reserve for bulk work.** A caller with `BudgetSettings::burst_reserve_percent` set
//!   (a sync run spending whole windows at once) is granted at most the limit minus that
//!   share in any window; callers without one can always take the rest. So reads of a
//!   webhook's changes wait until about a pace slice after a full sync's burst ends, not a
//!   whole window.
//! * **One transaction and one round trip per lease.** `lease_tokens()` (PL/pgSQL) locks the
//!   portal's row with `SELECT ... FOR UPDATE`, so concurrent processes grant one at a time,
//!   and answers either a grant or how long until the oldest grants leave the window; callers
//!   sleep that long plus a random fifth of it (10 to 250 ms), so that processes told to wait
//!   the same time do not all wake together and queue on the row lock again. At 190 requests
//!   per 10 s and leases of 8 that is about 3 round trips per second per portal.
//! * **Adapting to HubSpot.** Each response's `X-HubSpot-RateLimit-Max/Remaining` travels with
//!   the next lease; if HubSpot counted more than we could have granted (another integration
//!   spends the same app's budget) or reports a lower maximum, the row gets a `reduced_limit`
//!   for the next window. Any 429 records `paused_until` and a limit of 80 % for two windows in
//!   the shared row, so every process backs off, not only the one that was refused.
//! * **Daily quota** (private apps): a counter per portal reset at the portal's midnight,
//!   corrected downwards by `X-HubSpot-RateLimit-Daily-Remaining`; a `DAILY` 429 marks it used
//!   up until the reset, and callers get [`HubSpotError::DailyQuotaExhausted`] without a request.
//! * **Failing closed.** If PostgreSQL cannot be reached the call fails with
//!   [`HubSpotError::Budget`] (retryable) rather than spending budget nobody recorded.
//!
//! # Retries
//!
//! A call is retried only when sending it again cannot do anything twice. Backoff is
//! exponential with equal jitter ([`RetryPolicy::backoff`], computed by the `backon` crate),
//! and a `Retry-After` replaces it (one longer than [`RetryPolicy::max_retry_after_ms`] is
//! handed to the caller instead).
//!
//! * **Every call** is retried after answers that say HubSpot did nothing: burst and search
//!   429s, a refused connection, and a 401 once (after asking the token source for a fresh
//!   token; a second 401 means revoked, not expired). Daily-quota exhaustion is never retried.
//! * **Calls safe to send twice** (reads, search, updates, archives, upserts by a unique
//!   property, property and group creates, whose 409 answers with the existing definition)
//!   are also retried after 5xx, 423 and 477 (`Transient`), after a connection lost
//!   mid-request, and after an undecodable answer.
//! * **Calls not safe to send twice** (`create_object`, `batch_create`, `merge_objects`,
//!   `create_timeline_event`) are not: a 5xx can come after HubSpot acted on the request. They
//!   fail with [`HubSpotError::OutcomeUnknown`] so the caller looks the result up before
//!   deciding to send them again. A batch call stops there; its later inputs are reported as
//!   [`HubSpotError::NotSent`].
//!
//! # Tokens
//!
//! [`RefreshingToken`] replaces an OAuth access token ahead of its expiry
//! ([`ClientConfig::token_refresh_margin_ms`], 5 minutes by default, at most half the token's
//! life), so no request goes out with an expired token, and concurrent callers share one
//! refresh. The client asks its [`TokenSource`] for the token on every attempt.
//!
//! # The app's developer API
//!
//! [`DeveloperClient`] calls HubSpot as the OAuth app, with its developer API key, instead of
//! as a portal: today the app's timeline event templates ([`EventTemplate`],
//! [`NewEventTemplate`]), which the portals' [`TimelineEvent`]s name. HubSpot takes the key
//! only as the `hapikey` query parameter; the client never puts a URL into an error, a log
//! line or a metric, and prints `***` for the key. These calls draw nothing from a portal's
//! rate budget. They are retried by the rules above (`create_event_template` is not safe to
//! send twice); a 401 (a wrong key, or another app's) is not retried.
//!
//! # Walking a modified-since window
//!
//! [`HubSpotClient::search_modified_since`] returns every record that matches for the whole
//! walk exactly once, oldest first, however many there are, even while records are modified
//! or deleted: it never pages by HubSpot's offset cursor (which shifts when a record earlier
//! in the sorted list changes, skipping one record per page boundary) but restarts every page
//! from the last timestamp seen, drops ids already returned, and walks a timestamp shared by
//! half a page or more on its own, by id. A record modified during the walk after it was
//! returned is not returned again, so its new values are not in this walk: start the next
//! window at the instant this walk started, not at the newest timestamp it returned.

mod api;
mod budget;
mod client;
mod config;
mod developer;
mod error;
mod gateway;
mod metrics;
mod oauth;
mod token;
mod types;

pub use api::{
    ASSOCIATION_BATCH_SIZE, ListOptions, ModifiedSince, OBJECT_BATCH_SIZE, SEARCH_RESULT_CAP,
    TIMELINE_BATCH_SIZE, last_modified_property,
};
pub use budget::{
    AuthKind, BUDGET_SCHEMA, BudgetKind, BudgetPool, BudgetSettings, LeaseOutcome, LeaseRequest,
    MIGRATIONS, PgBudgetStore, PortalAccess, PortalLimiter, PortalLimits, Tier,
};
pub use client::{ClientBuilder, HubSpotClient};
pub use config::{ClientConfig, RetryPolicy};
pub use developer::DeveloperClient;
pub use error::{FailedChunk, FieldError, HubSpotError, RateLimitPolicy};
pub use gateway::{GatewayCredentials, GatewayTokenSource};
pub use metrics::ClientMetrics;
pub use oauth::{OAuthApp, OAuthClient, TokenInfo, TokenResponse};
pub use token::{AccessToken, RefreshingToken, StaticToken, TokenSource};
pub use types::*;
