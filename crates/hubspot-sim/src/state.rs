//! The simulator's shared state: portals (each behind its own locks), the OAuth apps they
//! belong to (developer API key, timeline event templates), tokens, authorization codes,
//! faults and the per-portal rate-limit windows and counters.
//!
//! No lock here is ever held across an `.await`; handlers take a portal's lock,
//! do their work on plain data and drop it before any I/O.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use rand::Rng as _;

use crate::SimConfig;
use crate::model::{ObjectStore, ObjectType, Owner, Pipeline, Schema};
use crate::webhooks::HookState;

/// A HubSpot account tier; it sets the private-app limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Free.
    Free,
    /// Starter.
    #[default]
    Starter,
    /// Professional.
    Professional,
    /// Enterprise.
    Enterprise,
}

impl Tier {
    /// Parses `free|starter|professional|enterprise`.
    pub fn parse(name: &str) -> Option<Tier> {
        match name.to_ascii_lowercase().as_str() {
            "free" => Some(Tier::Free),
            "starter" => Some(Tier::Starter),
            "professional" => Some(Tier::Professional),
            "enterprise" => Some(Tier::Enterprise),
            _ => None,
        }
    }
}

/// Requests per 10-second rolling window for one OAuth app in one portal (§8.1).
pub const OAUTH_BURST_PER_10S: usize = 110;
/// Search requests per second per portal (§3.5).
pub const SEARCH_PER_SECOND: usize = 5;

/// What kind of credential authorized a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A `pat-na1-...` private-app token.
    PrivateApp,
    /// An OAuth access token from the code or refresh grant.
    OAuth,
    /// An OAuth token from the client-credentials grant.
    ClientCredentials,
}

/// An access token (private-app or OAuth).
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// The portal it works in.
    pub portal_id: u64,
    /// Its kind.
    pub kind: TokenKind,
    /// Granted scopes.
    pub scopes: Arc<HashSet<String>>,
    /// Expiry (ms); `None` for private-app tokens.
    pub expires_at_ms: Option<i64>,
    /// The user who installed the app.
    pub user_id: u64,
}

/// A refresh token.
#[derive(Debug, Clone)]
pub struct RefreshToken {
    /// The portal it works in.
    pub portal_id: u64,
    /// Granted scopes.
    pub scopes: Arc<HashSet<String>>,
    /// The user who installed the app.
    pub user_id: u64,
}

/// An authorization code waiting to be exchanged.
#[derive(Debug, Clone)]
pub struct AuthCode {
    /// The portal that granted access.
    pub portal_id: u64,
    /// The redirect URI it was issued for.
    pub redirect_uri: String,
    /// Granted scopes.
    pub scopes: Arc<HashSet<String>>,
    /// Issue instant (ms).
    pub issued_ms: i64,
    /// Already exchanged once.
    pub used: bool,
}

/// How long an authorization code can be exchanged.
pub const AUTH_CODE_TTL_MS: i64 = 10 * 60 * 1000;

/// A fault injected on matching API requests.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(default)]
pub struct Fault {
    /// Requests whose path starts with this are affected (`""` matches all).
    pub path_prefix: String,
    /// Added latency before the answer.
    pub latency_ms: u64,
    /// Probability (0..1) of answering `error_status` instead.
    pub error_rate: f64,
    /// The next this many matching requests answer `error_status`, whatever
    /// `error_rate` says: a fault a test can count on meeting.
    pub error_first: u64,
    /// The status used for injected errors (500, 502, 503 or 504).
    pub error_status: u16,
    /// Answer every matching request with a ten-secondly 429.
    pub rate_limit_storm: bool,
    /// Cut the response body in half (invalid JSON with a consistent length).
    pub truncate_body: bool,
    /// Send the first half of the body, wait this long, then the rest.
    pub slow_body_ms: u64,
    /// Only requests for this portal; `None` for all.
    pub portal_id: Option<u64>,
}

impl Default for Fault {
    fn default() -> Self {
        Fault {
            path_prefix: String::new(),
            latency_ms: 0,
            error_rate: 0.0,
            error_first: 0,
            error_status: 503,
            rate_limit_storm: false,
            truncate_body: false,
            slow_body_ms: 0,
            portal_id: None,
        }
    }
}

/// Direction-specific association edges: from (type, id) to (type, id) with a primary flag.
pub type AssocMap = HashMap<(ObjectType, u64), BTreeMap<(ObjectType, u64), bool>>;

/// A portal's CRM data.
#[derive(Debug)]
pub struct PortalData {
    /// Records per object type, indexed by [`type_index`].
    pub stores: [ObjectStore; 3],
    /// Schemas per object type.
    pub schemas: [Schema; 3],
    /// Association edges, stored in both directions.
    pub assocs: AssocMap,
    /// Owners by id.
    pub owners: BTreeMap<u64, Owner>,
    /// Deal pipelines.
    pub pipelines: Vec<Pipeline>,
    /// Stored timeline events, in arrival order.
    pub timeline: Vec<serde_json::Value>,
    /// Lower-cased contact email to the first contact id that has it.
    pub email_index: HashMap<String, u64>,
}

/// The index of a type in [`PortalData::stores`] and [`PortalData::schemas`].
pub fn type_index(ot: ObjectType) -> usize {
    match ot {
        ObjectType::Contacts => 0,
        ObjectType::Companies => 1,
        ObjectType::Deals => 2,
    }
}

impl PortalData {
    fn new(now_ms: i64) -> PortalData {
        let mut stores: [ObjectStore; 3] = Default::default();
        stores[0].next_id = 1001;
        stores[1].next_id = 5_000_001;
        stores[2].next_id = 9_000_001;
        PortalData {
            stores,
            schemas: [
                crate::catalogue::schema(ObjectType::Contacts, now_ms),
                crate::catalogue::schema(ObjectType::Companies, now_ms),
                crate::catalogue::schema(ObjectType::Deals, now_ms),
            ],
            assocs: HashMap::new(),
            owners: BTreeMap::new(),
            pipelines: crate::catalogue::pipelines(now_ms),
            timeline: Vec::new(),
            email_index: HashMap::new(),
        }
    }

    /// The store of a type.
    pub fn store(&self, ot: ObjectType) -> &ObjectStore {
        &self.stores[type_index(ot)]
    }

    /// The store of a type, mutable.
    pub fn store_mut(&mut self, ot: ObjectType) -> &mut ObjectStore {
        &mut self.stores[type_index(ot)]
    }

    /// The schema of a type.
    pub fn schema(&self, ot: ObjectType) -> &Schema {
        &self.schemas[type_index(ot)]
    }

    /// The schema of a type, mutable.
    pub fn schema_mut(&mut self, ot: ObjectType) -> &mut Schema {
        &mut self.schemas[type_index(ot)]
    }
}

/// Rate-limit windows and request counters of one portal.
#[derive(Debug, Default)]
pub struct Limits {
    /// Requests that counted against the private app's burst limit.
    pub private_burst: VecDeque<Instant>,
    /// Requests that counted against the OAuth app's burst limit.
    pub oauth_burst: VecDeque<Instant>,
    /// All non-search requests of the last 10 s (for the max-in-any-window figure).
    pub all_window: VecDeque<Instant>,
    /// The largest `all_window` ever seen.
    pub max_in_10s: usize,
    /// Search requests of the last second.
    pub search_window: VecDeque<Instant>,
    /// Private-app calls today.
    pub daily_used: u64,
    /// The day `daily_used` counts (in the portal's day numbering).
    pub daily_day: i64,
    /// All API requests of the portal, whatever answered them (the rate limiter, an
    /// injected fault, the endpoint): always the sum of `by_status`.
    pub requests_total: u64,
    /// Requests by response status.
    pub by_status: BTreeMap<u16, u64>,
    /// 429s by policy name.
    pub rate_limited: BTreeMap<&'static str, u64>,
    /// Search requests.
    pub search_requests: u64,
}

fn prune(window: &mut VecDeque<Instant>, now: Instant, span: Duration) {
    while let Some(front) = window.front() {
        if now.duration_since(*front) >= span {
            window.pop_front();
        } else {
            break;
        }
    }
}

/// What the rate limiter decided for one request.
#[derive(Debug)]
pub enum LimitDecision {
    /// Allowed; send these headers.
    Allowed(Vec<(&'static str, String)>),
    /// Rejected with this policy; send these headers.
    Rejected(&'static str, Vec<(&'static str, String)>),
}

impl Limits {
    /// Counts one API request and decides whether it passes (hubspot-api.md §8).
    pub fn admit(
        &mut self,
        portal: &Portal,
        kind: TokenKind,
        search: bool,
        day: i64,
    ) -> LimitDecision {
        let now = Instant::now();
        let ten = Duration::from_secs(10);
        if self.daily_day != day {
            self.daily_day = day;
            self.daily_used = 0;
        }
        if search {
            self.search_requests += 1;
            prune(&mut self.search_window, now, Duration::from_secs(1));
            if self.search_window.len() >= SEARCH_PER_SECOND {
                return LimitDecision::Rejected("SECONDLY", Vec::new());
            }
            self.search_window.push_back(now);
            if kind == TokenKind::PrivateApp {
                self.daily_used += 1;
            }
            // Search responses carry no rate-limit headers at all.
            return LimitDecision::Allowed(Vec::new());
        }
        prune(&mut self.all_window, now, ten);
        self.all_window.push_back(now);
        self.max_in_10s = self.max_in_10s.max(self.all_window.len());
        let (window, max) = match kind {
            TokenKind::PrivateApp => (&mut self.private_burst, portal.burst_limit()),
            _ => (&mut self.oauth_burst, OAUTH_BURST_PER_10S),
        };
        prune(window, now, ten);
        let secondly_used = window
            .iter()
            .filter(|t| now.duration_since(**t) < Duration::from_secs(1))
            .count();
        let mut headers = vec![
            (
                "X-HubSpot-RateLimit-Interval-Milliseconds",
                "10000".to_owned(),
            ),
            ("X-HubSpot-RateLimit-Max", max.to_string()),
        ];
        let secondly_max = max / 10;
        let rejected = if window.len() >= max {
            Some("TEN_SECONDLY_ROLLING")
        } else if kind == TokenKind::PrivateApp && self.daily_used >= portal.daily_limit() {
            Some("DAILY")
        } else {
            window.push_back(now);
            if kind == TokenKind::PrivateApp {
                self.daily_used += 1;
            }
            None
        };
        headers.push((
            "X-HubSpot-RateLimit-Remaining",
            max.saturating_sub(window.len()).to_string(),
        ));
        headers.push(("X-HubSpot-RateLimit-Secondly", secondly_max.to_string()));
        headers.push((
            "X-HubSpot-RateLimit-Secondly-Remaining",
            secondly_max
                .saturating_sub(secondly_used + usize::from(rejected.is_none()))
                .to_string(),
        ));
        if kind == TokenKind::PrivateApp {
            // Daily headers only for private apps: never on OAuth requests (§8.2).
            let daily = portal.daily_limit();
            headers.push(("X-HubSpot-RateLimit-Daily", daily.to_string()));
            headers.push((
                "X-HubSpot-RateLimit-Daily-Remaining",
                daily.saturating_sub(self.daily_used).to_string(),
            ));
        }
        match rejected {
            Some(policy) => LimitDecision::Rejected(policy, headers),
            None => LimitDecision::Allowed(headers),
        }
    }

    /// The `/_sim/.../stats` JSON.
    pub fn stats_json(&self) -> serde_json::Value {
        let by_status: serde_json::Map<String, serde_json::Value> = self
            .by_status
            .iter()
            .map(|(k, v)| (k.to_string(), (*v).into()))
            .collect();
        let mut rate_limited = serde_json::Map::new();
        for policy in ["TEN_SECONDLY_ROLLING", "SECONDLY", "DAILY"] {
            rate_limited.insert(
                policy.to_owned(),
                self.rate_limited.get(policy).copied().unwrap_or(0).into(),
            );
        }
        serde_json::json!({
            "requests_total": self.requests_total,
            "by_status": by_status,
            "rate_limited": rate_limited,
            "max_requests_in_any_10s_window": self.max_in_10s,
            "search_requests": self.search_requests,
            "daily_used": self.daily_used,
        })
    }
}

/// One simulated HubSpot account with its private app and its OAuth app.
#[derive(Debug)]
pub struct Portal {
    /// Portal (hub) id.
    pub id: u64,
    /// Account tier.
    pub tier: Tier,
    /// Whether the API Limit Increase was bought.
    pub api_limit_increase: bool,
    /// Account time zone (IANA-ish name as HubSpot shows it).
    pub time_zone: String,
    /// UTC offset of that zone in ms (fixed; the simulator ignores DST).
    pub utc_offset_ms: i64,
    /// The OAuth app's client id.
    pub client_id: String,
    /// The OAuth app's client secret; it also signs webhooks.
    pub client_secret: String,
    /// The app id in webhook payloads.
    pub app_id: u64,
    /// The private-app token.
    pub private_app_token: String,
    /// Scopes the OAuth app may be granted (default for the shortcut authorize).
    pub oauth_scopes: Vec<String>,
    /// Creation instant (ms).
    pub created_ms: i64,
    /// CRM data.
    pub data: RwLock<PortalData>,
    /// Rate-limit windows and counters.
    pub limits: Mutex<Limits>,
    /// Webhook configuration, queue and counters.
    pub hooks: Mutex<HookState>,
    /// At most 10 deliveries in flight.
    pub delivery_slots: Arc<tokio::sync::Semaphore>,
    /// The running change stream, if any.
    pub changes: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Portal {
    /// Requests per 10 s for the private app (§8.1).
    pub fn burst_limit(&self) -> usize {
        if self.api_limit_increase {
            return 250;
        }
        match self.tier {
            Tier::Free | Tier::Starter => 100,
            Tier::Professional | Tier::Enterprise => 190,
        }
    }

    /// Private-app calls per day, shared by the account's private apps (§8.1).
    pub fn daily_limit(&self) -> u64 {
        let base = match self.tier {
            Tier::Free | Tier::Starter => 250_000,
            Tier::Professional => 625_000,
            Tier::Enterprise => 1_000_000,
        };
        if self.api_limit_increase {
            base + 1_000_000
        } else {
            base
        }
    }

    /// Today's day number in the portal's time zone (the daily quota resets at its midnight).
    pub fn day_number(&self, now_ms: i64) -> i64 {
        (now_ms + self.utc_offset_ms).div_euclid(86_400_000)
    }

    /// When the daily quota resets next (ms).
    pub fn next_reset_ms(&self, now_ms: i64) -> i64 {
        (self.day_number(now_ms) + 1) * 86_400_000 - self.utc_offset_ms
    }
}

/// Every CRM scope a private app gets by default.
pub fn all_crm_scopes() -> Vec<String> {
    let mut scopes = Vec::new();
    for ot in ObjectType::ALL {
        scopes.push(ot.read_scope().to_owned());
        scopes.push(ot.write_scope().to_owned());
        scopes.push(ot.schema_read_scope().to_owned());
        scopes.push(ot.schema_write_scope().to_owned());
    }
    scopes.push("crm.objects.owners.read".to_owned());
    scopes.push(crate::api::schemas::READ_SCOPE.to_owned());
    scopes.push("timeline".to_owned());
    scopes
}

/// Timeline event templates one app may have (HubSpot's documented limit).
pub const MAX_EVENT_TEMPLATES: usize = 750;

/// The type of a timeline event template token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    /// Free text.
    String,
    /// A number.
    Number,
    /// A date (ms timestamp).
    Date,
    /// One of `options`.
    Enumeration,
}

impl TokenType {
    /// Parses `string|number|date|enumeration`.
    pub fn parse(name: &str) -> Option<TokenType> {
        match name {
            "string" => Some(TokenType::String),
            "number" => Some(TokenType::Number),
            "date" => Some(TokenType::Date),
            "enumeration" => Some(TokenType::Enumeration),
            _ => None,
        }
    }
}

/// One option of an enumeration token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenOption {
    /// Shown to users.
    pub label: String,
    /// Sent in events.
    pub value: String,
}

/// A token an event template declares; events fill it in.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateToken {
    /// The name events use in `tokens`.
    pub name: String,
    /// Shown to users.
    pub label: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: TokenType,
    /// The choices of an enumeration token.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<TokenOption>,
    /// A CRM property the token's value is copied to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_property_name: Option<String>,
}

/// A timeline event template of an app (`/integrators/timeline/v3/{appId}/event-templates`).
#[derive(Debug, Clone, PartialEq)]
pub struct EventTemplate {
    /// Its id: digits, unique in the simulator.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The type of record its events go on.
    pub object_type: ObjectType,
    /// Markdown/Handlebars header.
    pub header_template: Option<String>,
    /// Markdown/Handlebars body.
    pub detail_template: Option<String>,
    /// Declared tokens.
    pub tokens: Vec<TemplateToken>,
    /// Creation instant (ms).
    pub created_ms: i64,
    /// Last update instant (ms).
    pub updated_ms: i64,
}

impl EventTemplate {
    /// The JSON HubSpot answers for a template.
    pub fn to_json(&self) -> serde_json::Value {
        let mut out = serde_json::json!({
            "id": self.id,
            "name": self.name,
            "objectType": self.object_type.plural(),
            "tokens": self.tokens,
            "createdAt": crate::model::iso(self.created_ms),
            "updatedAt": crate::model::iso(self.updated_ms),
        });
        if let Some(h) = &self.header_template {
            out["headerTemplate"] = h.clone().into();
        }
        if let Some(d) = &self.detail_template {
            out["detailTemplate"] = d.clone().into();
        }
        out
    }

    /// Whether the template declares a token of that name.
    pub fn declares(&self, token: &str) -> bool {
        self.tokens.iter().any(|t| t.name == token)
    }
}

/// An OAuth app: the developer API key that manages it and its timeline event templates.
/// Several portals may install the same app (the same `app_id`).
#[derive(Debug, Clone)]
pub struct App {
    /// App id.
    pub id: u64,
    /// The developer API key (`hapikey`) of the app's developer account.
    pub developer_api_key: String,
    /// Event templates by id, in creation order.
    pub event_templates: BTreeMap<u64, EventTemplate>,
}

/// Everything the simulator knows.
pub struct Sim {
    /// Configuration it was started with.
    pub config: SimConfig,
    /// Portals by id.
    pub portals: RwLock<HashMap<u64, Arc<Portal>>>,
    /// OAuth client id to portal id.
    pub clients: RwLock<HashMap<String, u64>>,
    /// OAuth apps by app id (registered by the first portal that names them).
    pub apps: RwLock<HashMap<u64, App>>,
    /// The next event template id.
    pub next_template_id: AtomicU64,
    /// Access tokens (private-app and OAuth).
    pub tokens: RwLock<HashMap<String, AccessToken>>,
    /// Refresh tokens.
    pub refresh_tokens: RwLock<HashMap<String, RefreshToken>>,
    /// Authorization codes.
    pub codes: Mutex<HashMap<String, AuthCode>>,
    /// Active faults.
    pub faults: RwLock<Vec<Fault>>,
    /// The next portal id handed out when none is asked for.
    pub next_portal_id: AtomicU64,
    /// The runtime background work (deliveries, change streams) runs on.
    pub runtime: tokio::runtime::Handle,
    /// The HTTP client for webhook deliveries.
    pub http: reqwest::Client,
    /// The base URL (set once bound).
    pub base_url: RwLock<String>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("base_url", &*self.base_url.read())
            .finish_non_exhaustive()
    }
}

/// A random string of `len` characters from `alphabet`.
pub fn random_string(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const HEX: &[u8] = b"0123456789abcdef";

/// A fresh private-app token in HubSpot's `pat-na1-8-4-4-4-12` shape.
pub fn new_private_app_token() -> String {
    format!(
        "pat-na1-{}-{}-{}-{}-{}",
        random_string(8, ALNUM),
        random_string(4, ALNUM),
        random_string(4, ALNUM),
        random_string(4, ALNUM),
        random_string(12, ALNUM)
    )
}

/// A fresh OAuth access token (opaque, base64url-looking, under 512 characters).
pub fn new_access_token() -> String {
    format!(
        "C{}",
        random_string(
            160,
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        )
    )
}

/// A fresh refresh token (`na1-` and a uuid-like body).
pub fn new_refresh_token() -> String {
    format!(
        "na1-{}-{}-{}-{}-{}",
        random_string(4, HEX),
        random_string(4, HEX),
        random_string(4, HEX),
        random_string(4, HEX),
        random_string(12, HEX)
    )
}

/// A fresh uuid-shaped secret or id.
pub fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Fixed UTC offsets for the time zones the simulator knows (no DST).
pub fn utc_offset_ms(time_zone: &str) -> i64 {
    let hours = match time_zone {
        "US/Eastern" | "America/New_York" => -5,
        "US/Central" | "America/Chicago" => -6,
        "US/Mountain" | "America/Denver" => -7,
        "US/Pacific" | "America/Los_Angeles" => -8,
        "Europe/London" | "UTC" | "Etc/UTC" => 0,
        "Europe/Berlin" | "Europe/Paris" | "Europe/Amsterdam" => 1,
        "Asia/Tokyo" => 9,
        "Australia/Sydney" => 10,
        _ => 0,
    };
    hours * 3_600_000
}

/// How a portal is created (`POST /_sim/portals`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct NewPortal {
    /// Portal id; the next free one when absent.
    pub portal_id: Option<u64>,
    /// Tier; `starter` by default.
    pub tier: Option<String>,
    /// API Limit Increase bought.
    pub api_limit_increase: bool,
    /// Time zone; `US/Eastern` by default.
    pub time_zone: Option<String>,
    /// Webhook target.
    pub webhook_target_url: Option<String>,
    /// Scopes the OAuth app may be granted.
    pub oauth_scopes: Option<Vec<String>>,
    /// Narrowed private-app scopes.
    pub private_app_scopes: Option<Vec<String>>,
    /// A known private-app token instead of a random one.
    pub private_app_token: Option<String>,
    /// A known client id.
    pub client_id: Option<String>,
    /// A known client secret.
    pub client_secret: Option<String>,
    /// A known app id; several portals may share one app.
    pub app_id: Option<u64>,
    /// A known developer API key for the app; random when the app is new and none is given.
    /// For an app that exists already it must be absent or equal to the app's key.
    pub developer_api_key: Option<String>,
}

/// Why a portal could not be created.
#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    /// The id is taken.
    #[error("portal {0} already exists")]
    Exists(u64),
    /// Unknown tier name.
    #[error("unknown tier {0:?}")]
    UnknownTier(String),
    /// The app exists already with another developer API key.
    #[error("app {0} already exists with another developer API key")]
    DeveloperKeyMismatch(u64),
}

impl Sim {
    /// A new, empty simulator.
    pub fn new(config: SimConfig, runtime: tokio::runtime::Handle) -> Sim {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.webhook_timeout_ms))
            .build()
            .unwrap_or_default();
        Sim {
            config,
            portals: RwLock::new(HashMap::new()),
            clients: RwLock::new(HashMap::new()),
            apps: RwLock::new(HashMap::new()),
            next_template_id: AtomicU64::new(1_001_001),
            tokens: RwLock::new(HashMap::new()),
            refresh_tokens: RwLock::new(HashMap::new()),
            codes: Mutex::new(HashMap::new()),
            faults: RwLock::new(Vec::new()),
            next_portal_id: AtomicU64::new(9_990_001),
            runtime,
            http,
            base_url: RwLock::new(String::new()),
        }
    }

    /// A portal by id.
    pub fn portal(&self, id: u64) -> Option<Arc<Portal>> {
        self.portals.read().get(&id).cloned()
    }

    /// The developer API key of an app.
    pub fn developer_api_key(&self, app_id: u64) -> Option<String> {
        self.apps
            .read()
            .get(&app_id)
            .map(|a| a.developer_api_key.clone())
    }

    /// The app whose developer API key this is.
    pub fn app_of_key(&self, key: &str) -> Option<u64> {
        self.apps
            .read()
            .values()
            .find(|a| a.developer_api_key == key)
            .map(|a| a.id)
    }

    /// An event template of an app.
    pub fn event_template(&self, app_id: u64, template_id: &str) -> Option<EventTemplate> {
        let id: u64 = template_id.parse().ok()?;
        self.apps
            .read()
            .get(&app_id)?
            .event_templates
            .get(&id)
            .cloned()
    }

    /// Creates a portal with its private app and OAuth app.
    pub fn create_portal(&self, req: NewPortal) -> Result<(Arc<Portal>, Vec<String>), PortalError> {
        let tier = match &req.tier {
            Some(name) => {
                Tier::parse(name).ok_or_else(|| PortalError::UnknownTier(name.clone()))?
            }
            None => Tier::default(),
        };
        let id = match req.portal_id {
            Some(id) => id,
            None => loop {
                let id = self.next_portal_id.fetch_add(1, Ordering::Relaxed);
                if !self.portals.read().contains_key(&id) {
                    break id;
                }
            },
        };
        let now = crate::model::now_ms();
        let time_zone = req.time_zone.unwrap_or_else(|| "US/Eastern".to_owned());
        let pat_scopes = req.private_app_scopes.unwrap_or_else(all_crm_scopes);
        let mut oauth_scopes = req.oauth_scopes.unwrap_or_else(all_crm_scopes);
        if !oauth_scopes.iter().any(|s| s == "oauth") {
            oauth_scopes.insert(0, "oauth".to_owned());
        }
        let hooks = HookState {
            target_url: req.webhook_target_url,
            ..HookState::default()
        };
        let portal = Arc::new(Portal {
            id,
            tier,
            api_limit_increase: req.api_limit_increase,
            utc_offset_ms: utc_offset_ms(&time_zone),
            time_zone,
            client_id: req.client_id.unwrap_or_else(new_uuid),
            client_secret: req.client_secret.unwrap_or_else(new_uuid),
            app_id: req.app_id.unwrap_or(30_000 + id % 10_000),
            private_app_token: req.private_app_token.unwrap_or_else(new_private_app_token),
            oauth_scopes,
            created_ms: now,
            data: RwLock::new(PortalData::new(now)),
            limits: Mutex::new(Limits::default()),
            hooks: Mutex::new(hooks),
            delivery_slots: Arc::new(tokio::sync::Semaphore::new(
                crate::webhooks::MAX_CONCURRENT_DELIVERIES,
            )),
            changes: Mutex::new(None),
        });
        {
            // Lock order: apps, then portals (nothing takes them the other way round).
            let mut apps = self.apps.write();
            let key = match (apps.get(&portal.app_id), req.developer_api_key) {
                (Some(app), Some(key)) if app.developer_api_key != key => {
                    return Err(PortalError::DeveloperKeyMismatch(portal.app_id));
                }
                (Some(app), _) => app.developer_api_key.clone(),
                (None, Some(key)) => key,
                (None, None) => new_uuid(),
            };
            let mut portals = self.portals.write();
            if portals.contains_key(&id) {
                return Err(PortalError::Exists(id));
            }
            portals.insert(id, portal.clone());
            apps.entry(portal.app_id).or_insert_with(|| App {
                id: portal.app_id,
                developer_api_key: key,
                event_templates: BTreeMap::new(),
            });
        }
        self.clients.write().insert(portal.client_id.clone(), id);
        self.tokens.write().insert(
            portal.private_app_token.clone(),
            AccessToken {
                portal_id: id,
                kind: TokenKind::PrivateApp,
                scopes: Arc::new(pat_scopes.iter().cloned().collect()),
                expires_at_ms: None,
                user_id: 1,
            },
        );
        Ok((portal, pat_scopes))
    }

    /// Issues an OAuth access + refresh token pair for a portal.
    pub fn issue_tokens(
        &self,
        portal_id: u64,
        scopes: Arc<HashSet<String>>,
        refresh: Option<String>,
    ) -> (String, String) {
        let access = new_access_token();
        let now = crate::model::now_ms();
        let ttl_ms = i64::try_from(self.config.access_token_ttl_secs)
            .unwrap_or(1800)
            .saturating_mul(1000);
        self.tokens.write().insert(
            access.clone(),
            AccessToken {
                portal_id,
                kind: TokenKind::OAuth,
                scopes: scopes.clone(),
                expires_at_ms: Some(now + ttl_ms),
                user_id: 1,
            },
        );
        let refresh = match refresh {
            Some(r) => r,
            None => {
                let r = new_refresh_token();
                self.refresh_tokens.write().insert(
                    r.clone(),
                    RefreshToken {
                        portal_id,
                        scopes,
                        user_id: 1,
                    },
                );
                r
            }
        };
        (access, refresh)
    }

    /// Drops every portal, app, token, code and fault.
    pub fn reset(&self) {
        let portals: Vec<Arc<Portal>> = self.portals.write().drain().map(|(_, p)| p).collect();
        for portal in portals {
            if let Some(handle) = portal.changes.lock().take() {
                handle.abort();
            }
            portal.hooks.lock().queue.clear();
        }
        self.clients.write().clear();
        self.apps.write().clear();
        self.tokens.write().clear();
        self.refresh_tokens.write().clear();
        self.codes.lock().clear();
        self.faults.write().clear();
    }
}
