//! Scoring runs: a batch of projection rows becomes score cards (pure), and the cards that
//! changed become stored rows, history, `score.updated` and `score.alert` events (one
//! transaction per batch, under the org's advisory lock).
//!
//! Three callers: a `crm.changed` message (the affected customers), a whole-org rescore
//! (after a full sync, a config change, and on the schedule) and the config preview
//! (computes, compares, stores nothing).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use contracts::v1::{
    ObjectType, RiskLevel as ProtoRisk, ScoreAlert, ScoreAlertBatch, ScoreAlertReason, ScoreFactor,
    ScoreUpdated, ScoreUpdatedBatch, score_factor,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use domain::outbound::RiskLevel;
use platform::amqp::{MessageMeta, OutgoingMessage};
use platform::db::Pool;
use platform::outbox::RelayWaker;
use serde::Serialize;
use uuid::Uuid;

use crate::db::configs::{self, OrgMeans, VersionedConfig};
use crate::db::inputs::{self, InputRow, Olds, Selection};
use crate::db::object_type;
use crate::db::projection::Affected;
use crate::db::writes::{self, AlertRow, RawInputs, ScoreRow};
use crate::model::{self, FACTOR_NAMES, FactorInput, ModelConfig, ScoreCard, ScoreInputs};

/// Namespace of customer ids (UUIDv5 of org, portal, object type and HubSpot id).
const CUSTOMER_NAMESPACE: Uuid = Uuid::from_u128(0x6a1c_2f0e_5b7d_4c3a_9e8f_1d2c_3b4a_5f60);

/// hubscore's id for a contact or company: the same on every replica, for ever.
pub fn customer_id(org_id: Uuid, portal_id: i64, kind: i16, object_id: i64) -> Uuid {
    let kind = if kind == object_type::COMPANY {
        "company"
    } else {
        "contact"
    };
    Uuid::new_v5(
        &CUSTOMER_NAMESPACE,
        format!("{org_id}/{portal_id}/{kind}/{object_id}").as_bytes(),
    )
}

/// contracts' `RiskLevel` value of a card's level (`NONE` for N/A).
pub fn proto_risk(level: Option<RiskLevel>) -> i16 {
    let proto = match level {
        Some(RiskLevel::Green) => ProtoRisk::Healthy,
        Some(RiskLevel::Yellow) => ProtoRisk::AtRisk,
        Some(RiskLevel::Red) => ProtoRisk::Critical,
        None => ProtoRisk::None,
    };
    i16::try_from(i32::from(proto)).unwrap_or(0)
}

/// The API name of a stored risk level.
pub fn risk_name(level: i16) -> &'static str {
    match ProtoRisk::try_from(i32::from(level)) {
        Ok(ProtoRisk::Healthy) => "healthy",
        Ok(ProtoRisk::AtRisk) => "at_risk",
        Ok(ProtoRisk::Critical) => "critical",
        _ => "none",
    }
}

/// One record scored: the card, the row to store and what was stored before.
#[derive(Debug, Clone, PartialEq)]
pub struct Computed {
    /// The row to store.
    pub row: ScoreRow,
    /// The card.
    pub card: ScoreCard,
    /// Whether a row was stored before.
    pub had_row: bool,
    /// The stored score before.
    pub old_score: Option<i16>,
    /// The stored risk level before (`NONE` without a row).
    pub old_risk_level: i16,
    /// The stored contributions before.
    pub old_contributions: Vec<f64>,
    /// Score or risk level changed (or a first real score): history and an event.
    pub changed: bool,
    /// Anything stored changed: the row is rewritten.
    pub store: bool,
}

/// Updates within the config's window before `now` (`now` included).
fn updates_in_window(
    config: &ModelConfig,
    activity_at: &[DateTime<Utc>],
    now: DateTime<Utc>,
) -> u32 {
    let since = now - Duration::days(i64::from(config.activity_frequency.window_days));
    let n = activity_at
        .iter()
        .filter(|at| **at > since && **at <= now)
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn inputs_of(
    config: &ModelConfig,
    kind: i16,
    row: &InputRow,
    means: OrgMeans,
    now: DateTime<Utc>,
) -> ScoreInputs {
    let stages = row.stages.clone().unwrap_or_default();
    let lifecycle_stage = if kind == object_type::COMPANY {
        model::best_lifecycle_stage(config, stages.iter().map(String::as_str))
    } else {
        stages.into_iter().next()
    };
    ScoreInputs {
        last_activity_at: row.last_activity_at,
        deal_count: u32::try_from(row.deal_count).unwrap_or(u32::MAX),
        open_deal_probability: row.open_probability,
        lifecycle_stage,
        updates_in_window: updates_in_window(config, &row.activity_at, now),
        deal_amount_cents: row.amount_cents,
        org_mean_deal_cents: if kind == object_type::COMPANY {
            means.company_cents
        } else {
            means.contact_cents
        },
    }
}

/// Scores a batch of rows under `config` at `now`. Pure.
pub fn compute(
    org_id: Uuid,
    kind: i16,
    rows: Vec<InputRow>,
    config: &VersionedConfig,
    means: OrgMeans,
    now: DateTime<Utc>,
) -> Vec<Computed> {
    rows.into_iter()
        .map(|mut row| {
            let inputs = inputs_of(&config.config, kind, &row, means, now);
            let card = model::score_customer(&config.config, &inputs, now);
            let score = card.score.map(|s| i16::from(s.value()));
            let risk_level = proto_risk(card.risk_level);
            let scored = card.score.is_some();
            let factor_values: Vec<f64> = card.factors.iter().map(|f| f.value).collect();
            let contributions = card.contributions();
            let old_contributions = row.old_contributions.take().unwrap_or_default();
            let had_row = row.old_risk_level.is_some();
            let old_risk_level = row.old_risk_level.unwrap_or_else(|| proto_risk(None));
            let changed =
                (had_row || scored) && (row.old_score != score || old_risk_level != risk_level);
            let contributions_moved = old_contributions.len() != contributions.len()
                || old_contributions
                    .iter()
                    .zip(&contributions)
                    .any(|(a, b)| (a - b).abs() > 1e-9);
            let is_company = kind == object_type::COMPANY;
            let company_id = if is_company {
                Some(row.object_id)
            } else {
                row.primary_company_id
            };
            let store = !had_row
                || changed
                || contributions_moved
                || row.old_config_version != Some(config.version)
                || (!row.olds_are_inputs
                    && (row.old_display_name.as_deref() != Some(row.display_name.as_str())
                        || row.old_company_id != company_id
                        || !row.inputs_unchanged()));
            let score_row = ScoreRow {
                score_id: row
                    .old_score_id
                    .unwrap_or_else(|| customer_id(org_id, row.portal_id, kind, row.object_id)),
                portal_id: row.portal_id,
                connection_id: row.connection_id,
                object_type: kind,
                object_id: row.object_id,
                contact_id: if is_company { 0 } else { row.object_id },
                company_id,
                display_name: std::mem::take(&mut row.display_name),
                score,
                risk_level,
                recency_days: scored
                    .then(|| inputs.last_activity_at.map(|at| model::days_since(at, now)))
                    .flatten(),
                deal_probability: if scored {
                    inputs.open_deal_probability
                } else {
                    None
                },
                lifecycle_stage: inputs.lifecycle_stage.clone(),
                update_count: i32::try_from(inputs.updates_in_window).unwrap_or(i32::MAX),
                deal_amount_cents: scored.then_some(inputs.deal_amount_cents),
                factor_values,
                contributions,
                inputs: RawInputs {
                    last_activity_at: row.last_activity_at,
                    deal_count: row.deal_count,
                    open_probability: row.open_probability,
                    amount_cents: row.amount_cents,
                    open_won_count: row.open_won_count,
                    stages: row.stages.take(),
                    activity_at: std::mem::take(&mut row.activity_at),
                },
                row_tid: row.old_row_tid.take(),
            };
            Computed {
                row: score_row,
                card,
                had_row,
                old_score: row.old_score,
                old_risk_level,
                old_contributions,
                changed,
                store,
            }
        })
        .collect()
}

/// Builds the contract's factor list from a card, each factor described for people
/// (`window_days`: the config's activity window, which the frequency factor names).
pub fn proto_factors(card: &ScoreCard, window_days: u32) -> Vec<ScoreFactor> {
    card.factors
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let (raw_input, unit) = match &f.input {
                FactorInput::Number(n, unit) => (
                    Some(score_factor::RawInput::InputNumber(*n)),
                    (*unit).to_owned(),
                ),
                FactorInput::Text(t) => (
                    Some(score_factor::RawInput::InputText(t.clone())),
                    String::new(),
                ),
                FactorInput::Missing => (None, String::new()),
            };
            ScoreFactor {
                name: f.name.to_owned(),
                raw_input,
                input_unit: unit,
                input_description: model::describe(i, &f.input, window_days),
                value: f.value,
                weight: f.weight,
                contribution: f.contribution,
            }
        })
        .collect()
}

fn proto_object_type(kind: i16) -> ObjectType {
    if kind == object_type::COMPANY {
        ObjectType::Company
    } else {
        ObjectType::Contact
    }
}

fn score_updated(
    org_id: Uuid,
    c: &Computed,
    config: &VersionedConfig,
    now: DateTime<Utc>,
) -> ScoreUpdated {
    let deltas = if c.card.factors.is_empty() {
        Vec::new()
    } else {
        model::contribution_deltas(&c.old_contributions, &c.row.contributions)
    };
    let mut event = ScoreUpdated {
        org_id: org_id.to_string(),
        connection_id: c.row.connection_id.to_string(),
        portal_id: c.row.portal_id,
        customer_id: c.row.score_id.to_string(),
        contact_id: c.row.contact_id,
        company_id: c.row.company_id,
        old_score: c.old_score.and_then(|s| u32::try_from(s).ok()),
        new_score: c.row.score.and_then(|s| u32::try_from(s).ok()),
        old_risk_level: i32::from(c.old_risk_level),
        new_risk_level: i32::from(c.row.risk_level),
        factors: proto_factors(&c.card, config.config.activity_frequency.window_days),
        config_version: config.version,
        computed_at: Some(contracts::time::to_timestamp(now)),
        object_type: 0,
        object_id: c.row.object_id,
        top_factor: model::top_factor(&deltas).unwrap_or_default().to_owned(),
        contribution_deltas: deltas,
    };
    event.set_object_type(proto_object_type(c.row.object_type));
    event
}

/// Why a change raises a `score.alert` (no reasons: it does not).
#[derive(Default)]
struct Alerting {
    reasons: Vec<ScoreAlertReason>,
    reference_score: Option<i16>,
    drop_points: i16,
}

/// What a write of a batch did.
#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct WriteSummary {
    /// Records scored.
    pub scored: usize,
    /// Scores or risk levels that changed (one `score.updated` entry each, alone or in a
    /// batch).
    pub changed: usize,
    /// `score.alert` events raised.
    pub alerts: usize,
}

impl std::ops::AddAssign for WriteSummary {
    fn add_assign(&mut self, other: Self) {
        self.scored += other.scored;
        self.changed += other.changed;
        self.alerts += other.alerts;
    }
}

/// From how many events a batch's are written to the outbox as bundles (a row per
/// thousands of events, see `platform::outbox::enqueue_bundle`) rather than a row each; a
/// write that batches its changes (a whole-org rescore's) bundles its events whatever their
/// number: a batch of 10,000 customers makes about 90 messages of 65 kB, and as rows of
/// their own they took the relay 6-7 s longer to publish than as bundles. Each event is
/// still published as its own message.
const BUNDLE_FROM: usize = 100;

/// From how many changed scores one write publishes them as `ScoreUpdatedBatch` messages
/// rather than a `ScoreUpdated` each, and its alerts as `ScoreAlertBatch` messages rather
/// than a `ScoreAlert` each: a whole-org rescore's writes. A million changes
/// cost the broker about ten thousand messages on every bound queue, not a million; a CRM change
/// to a few records still sends one message per change.
const BATCH_UPDATES_FROM: usize = 100;

/// Most changes in one `ScoreUpdatedBatch` (and alerts in one `ScoreAlertBatch`): one
/// HubSpot batch write's worth. A consumer
/// holds as many messages as its prefetch allows (writeback-worker: 256), so this bounds
/// the changes in its memory at once; with 1,000 a million-customer rescore was 31.3 s
/// as the service runs it, with 100 34.8 s on a slower run (see the docs' Benchmarks).
const UPDATES_PER_BATCH: usize = 100;

/// Stores what changed in a computed batch, with history, events and alerts, inside the
/// caller's transaction (which holds the org lock).
pub async fn persist(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    computed: &[Computed],
    config: &VersionedConfig,
    now: DateTime<Utc>,
    correlation_id: &str,
) -> diesel::QueryResult<WriteSummary> {
    persist_rows(conn, org_id, computed, config, now, correlation_id, false).await
}

/// [`persist`]; `from_stored_rows` says the batch was read from the score rows themselves
/// (a config change's rescore), so only their score columns need writing: the inputs,
/// names and ids sent back would be the ones just read.
async fn persist_rows(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    computed: &[Computed],
    config: &VersionedConfig,
    now: DateTime<Utc>,
    correlation_id: &str,
    from_stored_rows: bool,
) -> diesel::QueryResult<WriteSummary> {
    let to_store: Vec<&ScoreRow> = computed
        .iter()
        .filter(|c| c.store)
        .map(|c| &c.row)
        .collect();
    let weights = config.config.weights.as_array();
    if from_stored_rows {
        writes::update_score_columns(conn, org_id, &to_store, &weights, config.version, now)
            .await?;
    } else {
        writes::upsert_scores(conn, org_id, &to_store, &weights, config.version, now).await?;
    }
    let changed: Vec<&Computed> = computed.iter().filter(|c| c.changed).collect();
    // Alerts: entering a worse band, or falling far enough below the window's best.
    let alerts_config = config.config.alerts;
    let candidates: Vec<&ScoreRow> = changed
        .iter()
        .filter(|c| matches!((c.old_score, c.row.score), (Some(o), Some(n)) if n < o))
        .map(|c| &c.row)
        .collect();
    let window_start = now - Duration::days(i64::from(alerts_config.drop_window_days));
    let references = if alerts_config.drop_points > 0 {
        writes::drop_references(conn, org_id, &candidates, window_start).await?
    } else {
        HashMap::new()
    };
    // Which changes raise an alert: entering a worse band, or falling far enough below the
    // window's best. Decided before the history rows are written, so that only the ids of
    // the alerting ones (an alert refers to its history row) come back from the database.
    let alerting: Vec<Alerting> = changed
        .iter()
        .map(|c| {
            let mut alerting = Alerting::default();
            let worse_band = (1..=3).contains(&c.old_risk_level)
                && (1..=3).contains(&c.row.risk_level)
                && c.row.risk_level > c.old_risk_level;
            if worse_band {
                alerting.reasons.push(ScoreAlertReason::WorseRiskLevel);
            }
            if let (Some(reference), Some(new)) = (references.get(&c.row.score_id), c.row.score) {
                let drop = reference - new;
                if drop > 0 && drop >= i16::from(alerts_config.drop_points) {
                    alerting.reasons.push(ScoreAlertReason::ScoreDrop);
                    alerting.reference_score = Some(*reference);
                    alerting.drop_points = drop;
                }
            }
            alerting
        })
        .collect();
    let history_rows: Vec<&ScoreRow> = changed.iter().map(|c| &c.row).collect();
    let wanted: Vec<Uuid> = changed
        .iter()
        .zip(&alerting)
        .filter(|(_, a)| !a.reasons.is_empty())
        .map(|(c, _)| c.row.score_id)
        .collect();
    let history_ids =
        writes::insert_history(conn, org_id, &history_rows, &wanted, config.version, now).await?;
    let batched = changed.len() >= BATCH_UPDATES_FROM;
    let mut messages = Vec::with_capacity(if batched { 0 } else { changed.len() });
    let mut updates = Vec::with_capacity(if batched { changed.len() } else { 0 });
    let mut alerts = Vec::new();
    let mut alert_events = Vec::new();
    for (c, alerting) in changed.iter().zip(alerting) {
        let event = score_updated(org_id, c, config, now);
        let Alerting {
            reasons,
            reference_score,
            drop_points,
        } = alerting;
        if let (false, Some(new_score), Some(history_id)) = (
            reasons.is_empty(),
            c.row.score,
            history_ids.get(&c.row.score_id),
        ) {
            let alert_id = Uuid::now_v7();
            let lowest = event
                .contribution_deltas
                .iter()
                .enumerate()
                .min_by(|a, b| a.1.total_cmp(b.1))
                .and_then(|(i, _)| FACTOR_NAMES.get(i))
                .copied()
                .unwrap_or_default();
            let mut alert = ScoreAlert {
                alert_id: alert_id.to_string(),
                org_id: org_id.to_string(),
                connection_id: event.connection_id.clone(),
                portal_id: event.portal_id,
                customer_id: event.customer_id.clone(),
                object_type: event.object_type,
                object_id: event.object_id,
                reasons: reasons.iter().map(|r| i32::from(*r)).collect(),
                old_score: event.old_score,
                new_score: u32::try_from(new_score).unwrap_or_default(),
                old_risk_level: event.old_risk_level,
                new_risk_level: event.new_risk_level,
                reference_score: reference_score.and_then(|s| u32::try_from(s).ok()),
                drop_points: u32::try_from(drop_points).unwrap_or_default(),
                window_days: alerts_config.drop_window_days,
                top_factor: lowest.to_owned(),
                config_version: config.version,
                computed_at: event.computed_at,
            };
            alert.object_type = event.object_type;
            alerts.push(AlertRow {
                alert_id,
                score_id: c.row.score_id,
                history_id: *history_id,
                reasons: reasons
                    .iter()
                    .map(|r| i16::try_from(i32::from(*r)).unwrap_or(0))
                    .collect(),
                old_score: c.old_score,
                new_score,
                reference_score,
            });
            if batched {
                alert_events.push(alert);
            } else {
                messages.push(OutgoingMessage::from_event(
                    &alert,
                    MessageMeta::new(correlation_id, Some(org_id)),
                ));
            }
        }
        if batched {
            updates.push(event);
        } else {
            messages.push(OutgoingMessage::from_event(
                &event,
                MessageMeta::new(correlation_id, Some(org_id)),
            ));
        }
    }
    let meta = || MessageMeta::new(correlation_id, Some(org_id));
    for updates in in_batches(updates) {
        let batch = ScoreUpdatedBatch {
            org_id: org_id.to_string(),
            updates,
        };
        messages.push(OutgoingMessage::from_event(&batch, meta()));
    }
    // The alerts of a batched write go out batched too: one message per alert cost the
    // broker and the relay more than the bodies did (346,083 alerts of one rescore).
    for alerts in in_batches(alert_events) {
        let batch = ScoreAlertBatch {
            org_id: org_id.to_string(),
            alerts,
        };
        messages.push(OutgoingMessage::from_event(&batch, meta()));
    }
    writes::insert_alerts(conn, org_id, &alerts, now).await?;
    if batched || messages.len() >= BUNDLE_FROM {
        platform::outbox::enqueue_bundle(conn, &messages).await?;
    } else {
        platform::outbox::enqueue_all(conn, &messages).await?;
    }
    Ok(WriteSummary {
        scored: computed.len(),
        changed: changed.len(),
        alerts: alerts.len(),
    })
}

/// `items` in groups of up to [`UPDATES_PER_BATCH`], in order.
fn in_batches<T>(items: Vec<T>) -> impl Iterator<Item = Vec<T>> {
    let mut items = items.into_iter().peekable();
    std::iter::from_fn(move || {
        items
            .peek()
            .is_some()
            .then(|| items.by_ref().take(UPDATES_PER_BATCH).collect())
    })
}

/// Rescores the affected contacts and companies inside the caller's transaction (which
/// holds the org lock), with the org's stored means.
pub async fn rescore_affected(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    affected: &Affected,
    now: DateTime<Utc>,
    correlation_id: &str,
) -> diesel::QueryResult<WriteSummary> {
    let config = configs::current(conn, org_id).await?;
    let means = configs::stored_means(conn, org_id, now).await?;
    let mut summary = WriteSummary::default();
    for (kind, keys) in [
        (object_type::CONTACT, &affected.contacts),
        (object_type::COMPANY, &affected.companies),
    ] {
        if keys.is_empty() {
            continue;
        }
        let selection = Selection::Keys(keys.iter().copied().collect());
        let rows = inputs::load(conn, org_id, kind, &selection).await?;
        let computed = compute(org_id, kind, rows, &config, means, now);
        summary += persist(conn, org_id, &computed, &config, now, correlation_id).await?;
    }
    Ok(summary)
}

/// Why a whole-org rescore did not finish.
#[derive(Debug, thiserror::Error)]
pub enum RescoreError {
    /// No database connection.
    #[error("no database connection: {0}")]
    Pool(String),
    /// A query failed.
    #[error("rescore query failed: {0}")]
    Database(#[from] diesel::result::Error),
}

/// Where a whole-org rescore or a preview reads each customer's inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputSource {
    /// The projection (after a full sync, on the schedule: it also catches anything the
    /// stored inputs could have missed).
    Projection,
    /// The raw inputs stored with each current score (a config change and its preview):
    /// the same values as the projection gives (every projection change rewrites them in
    /// its transaction), re-weighed under the new config at `now`, without the projection's
    /// joins. An org with a score stored before inputs were is read from the projection.
    Stored,
}

/// Reads the next batch after `after` (keyset order) from `source`; from stored inputs,
/// with the stored row's values that `olds` asks for.
pub async fn load_batch(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    kind: i16,
    source: InputSource,
    after: Option<(i64, i64)>,
    limit: i64,
    olds: Olds,
) -> diesel::QueryResult<Vec<InputRow>> {
    match source {
        InputSource::Projection => {
            inputs::load(conn, org_id, kind, &Selection::After { after, limit }).await
        }
        InputSource::Stored => inputs::load_stored(conn, org_id, kind, after, limit, olds).await,
    }
}

/// The projection's per-record plans are index probes whatever their cost estimate; JIT
/// compiling them cost more than running them (about 0.1 s per batch).
async fn no_jit(conn: &mut AsyncPgConnection) -> diesel::QueryResult<()> {
    conn.batch_execute("SET LOCAL jit = off").await
}

/// The org means a whole-org pass scores with, from where it reads the inputs: the stored
/// inputs give them in one pass over the score rows (a third of a preview's time at a
/// million customers when they came from the projection's joins).
async fn org_means(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    source: InputSource,
) -> diesel::QueryResult<OrgMeans> {
    match source {
        InputSource::Stored => inputs::stored_input_means(conn, org_id).await,
        InputSource::Projection => inputs::compute_means(conn, org_id).await,
    }
}

/// A connection from `pool`.
async fn pooled(pool: &Pool) -> Result<platform::db::Connection, RescoreError> {
    pool.get()
        .await
        .map_err(|e| RescoreError::Pool(e.to_string()))
}

/// Tries the org's rescore lock: a transaction-level advisory lock on `lock`'s open
/// transaction, held for a whole-org rescore so that one task of one replica does it. A
/// process that dies mid-way loses it with its session.
async fn try_rescore_lock(lock: &mut AsyncPgConnection, org_id: Uuid) -> diesel::QueryResult<bool> {
    #[derive(diesel::QueryableByName)]
    struct Locked {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        locked: bool,
    }
    let row: Locked = diesel_async::RunQueryDsl::get_result(
        diesel::sql_query(
            "SELECT pg_try_advisory_xact_lock(\
                hashtextextended('scoring.org-rescore.' || $1::text, 0)) AS locked",
        )
        .bind::<diesel::sql_types::Uuid, _>(org_id),
        lock,
    )
    .await?;
    Ok(row.locked)
}

/// What whole-org rescores run with beside the org and the time: the pool their
/// connections come from, the relay woken as each batch commits, customers per batch and
/// the correlation id their events carry.
#[derive(Clone, Copy)]
pub struct Rescorer<'a> {
    /// Where the lock, batch and helper connections come from.
    pub pool: &'a Pool,
    /// Woken after each batch commits, so that its events go out while the rest is
    /// rescored.
    pub relay: &'a RelayWaker,
    /// Customers per transaction (`scoring.batch_size`).
    pub batch_size: i64,
    /// Connections rescoring side by side (`scoring.rescore_lanes`).
    pub lanes: usize,
    /// Carried by every event the rescore publishes.
    pub correlation_id: &'a str,
}

/// Does the rescore a config change owes the org, under every version owed until none is,
/// unless another task or replica holds the org's rescore lock (`None`). A process that
/// dies mid-way leaves the version owed for the next scheduler pass of any replica.
pub async fn pay_owed_rescore(
    run: Rescorer<'_>,
    org_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<WriteSummary>, RescoreError> {
    let paid = holding_rescore_lock(run, org_id, now, async |_| Ok(None)).await?;
    Ok(paid.flatten())
}

/// Runs `work` holding the org's rescore lock, if it is free (`None`: another task or
/// replica holds it), pays what the org is owed before letting go ([`pay_debts`]) and
/// again after ([`pay_left`]); returns what `work` and the debts rescored. Every holder of
/// the lock but a config save (which saves whether or not it gets the lock) goes through
/// here.
async fn holding_rescore_lock(
    run: Rescorer<'_>,
    org_id: Uuid,
    now: DateTime<Utc>,
    work: impl for<'r> LockedWork<'r> + Send,
) -> Result<Option<Option<WriteSummary>>, RescoreError> {
    match if_free(run, org_id, now, work).await? {
        None => Ok(None),
        Some(done) => Ok(Some(pay_left(run, org_id, now, done).await?)),
    }
}

/// What [`holding_rescore_lock`] runs under the lock: an async closure over the lock's
/// connection whose future is `Send`, as the transaction it runs in needs (the bound
/// `AsyncFnOnce` alone cannot state).
trait LockedWork<'r>:
    AsyncFnOnce(&'r mut AsyncPgConnection) -> Result<Option<WriteSummary>, RescoreError>
    + FnOnce(&'r mut AsyncPgConnection) -> <Self as LockedWork<'r>>::Fut
{
    type Fut: Future<Output = Result<Option<WriteSummary>, RescoreError>> + Send;
}

impl<'r, F, Fut> LockedWork<'r> for F
where
    F: AsyncFnOnce(&'r mut AsyncPgConnection) -> Result<Option<WriteSummary>, RescoreError>
        + FnOnce(&'r mut AsyncPgConnection) -> Fut,
    Fut: Future<Output = Result<Option<WriteSummary>, RescoreError>> + Send,
{
    type Fut = Fut;
}

/// [`holding_rescore_lock`] until it lets go: `work`, then the debts, under the lock.
async fn if_free(
    run: Rescorer<'_>,
    org_id: Uuid,
    now: DateTime<Utc>,
    work: impl for<'r> LockedWork<'r> + Send,
) -> Result<Option<Option<WriteSummary>>, RescoreError> {
    let mut lock = pooled(run.pool).await?;
    lock.transaction(async |lock| {
        if !try_rescore_lock(lock, org_id).await? {
            return Ok(None);
        }
        let mut done = work(lock).await?;
        if let Some(paid) = pay_debts(run, lock, org_id, now).await? {
            *done.get_or_insert_default() += paid;
        }
        Ok(Some(done))
    })
    .await
}

/// Pays, once the caller has let go of the org's rescore lock, what the org was owed
/// meanwhile, adding it to `paid`. A config saved while a holder ran finds the lock taken
/// and leaves its rescore to the holder; the holder's last look for debts may come just
/// before that save commits. So every holder looks again after it lets go, and a save that
/// found the lock taken tries it again once its version is committed: whichever comes
/// last sees the debt, and pays it unless yet another holder has the lock (which looks
/// again in turn).
async fn pay_left(
    run: Rescorer<'_>,
    org_id: Uuid,
    now: DateTime<Utc>,
    mut paid: Option<WriteSummary>,
) -> Result<Option<WriteSummary>, RescoreError> {
    loop {
        let mut conn = pooled(run.pool).await?;
        let owed = configs::owed_rescore(&mut conn, org_id).await?;
        drop(conn);
        if owed.is_none() {
            return Ok(paid);
        }
        match if_free(run, org_id, now, async |_| Ok(None)).await? {
            None => return Ok(paid),
            Some(Some(summary)) => *paid.get_or_insert_default() += summary,
            Some(None) => {}
        }
    }
}

/// A config version to save and pay the rescore of (see [`save_config_and_pay`]).
pub struct ConfigSave {
    /// The config.
    pub config: ModelConfig,
    /// Who saves it.
    pub author: String,
    /// When the org's scheduled rescore is due next if it has no schedule yet.
    pub next_scheduled: DateTime<Utc>,
    /// Taken and told the version as soon as it is saved, before the rescore: still here
    /// after [`save_config_and_pay`] returns an error if nothing was saved.
    pub saved: Option<tokio::sync::oneshot::Sender<i64>>,
}

/// Saves a new config version, owed a rescore of the org in the same transaction, and
/// pays that rescore (with any other version owed) unless another task or replica holds
/// the org's rescore lock (`None`; the holder pays it, see [`pay_left`]). The lock is
/// tried before the version is saved: a scheduler pass of any replica that sees the new
/// debt finds the lock already taken, so the rescore is this call's whenever the lock was
/// free. The version goes to `save.saved` once it commits, before the rescore runs.
pub async fn save_config_and_pay(
    run: Rescorer<'_>,
    org_id: Uuid,
    save: &mut ConfigSave,
    now: DateTime<Utc>,
) -> Result<Option<WriteSummary>, RescoreError> {
    let mut lock = pooled(run.pool).await?;
    let paid = lock
        .transaction(async |lock| {
            let locked = try_rescore_lock(lock, org_id).await?;
            let mut conn = pooled(run.pool).await?;
            let version = conn
                .transaction(async |conn| {
                    crate::db::lock_org(conn, org_id).await?;
                    let version =
                        configs::save(conn, org_id, &save.config, &save.author, now).await?;
                    configs::owe_rescore(conn, org_id, version, save.next_scheduled).await?;
                    Ok::<_, diesel::result::Error>(version)
                })
                .await?;
            drop(conn);
            if let Some(saved) = save.saved.take() {
                // The caller may have stopped waiting; the rescore is owed either way.
                let _ = saved.send(version);
            }
            if !locked {
                return Ok(None);
            }
            pay_debts(run, lock, org_id, now).await
        })
        .await?;
    pay_left(run, org_id, now, paid).await
}

/// Rescores the org under every config version it is owed until none is (`None`: none
/// was). The caller holds the org's rescore lock on `lock`'s open transaction: a config
/// saved while the holder rescored could not take the lock and left the version owed to
/// it, so every holder pays before it lets go.
async fn pay_debts(
    run: Rescorer<'_>,
    lock: &mut AsyncPgConnection,
    org_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<WriteSummary>, RescoreError> {
    let mut total: Option<WriteSummary> = None;
    while let Some(owed) = configs::owed_rescore(lock, org_id).await? {
        let summary = rescore_org(run, org_id, now, InputSource::Stored).await?;
        // Settled at once on another connection (a row lock held here until the end
        // would stall the next save and this loop's own means update). If the config
        // changed meanwhile, the newer version stays owed and goes next.
        let mut conn = pooled(run.pool).await?;
        configs::rescore_paid(&mut conn, org_id, owed).await?;
        *total.get_or_insert_default() += summary;
    }
    Ok(total)
}

/// The scheduled rescore of an org that is due at `now`, from the projection, unless
/// another task or replica holds the org's rescore lock or it is no longer due (`None`).
/// Only a finished rescore moves the org's next due time to `next`: a process that dies
/// mid-way leaves it due, and the next scheduler pass of any replica does it. Then pays any
/// config rescore owed meanwhile (see [`pay_debts`] and [`pay_left`]).
pub async fn scheduled_rescore(
    run: Rescorer<'_>,
    org_id: Uuid,
    now: DateTime<Utc>,
    next: DateTime<Utc>,
) -> Result<Option<WriteSummary>, RescoreError> {
    let mut due = false;
    let done = holding_rescore_lock(run, org_id, now, async |lock| {
        if !configs::is_due(lock, org_id, now).await? {
            return Ok(None);
        }
        due = true;
        let mut conn = pooled(run.pool).await?;
        crate::db::projection::prune_activity(&mut conn, org_id, now).await?;
        drop(conn);
        let summary = rescore_org(run, org_id, now, InputSource::Projection).await?;
        let mut conn = pooled(run.pool).await?;
        configs::schedule_rescore(&mut conn, org_id, next).await?;
        Ok(Some(summary))
    })
    .await?;
    // Not due (another replica did it): what was owed meanwhile is still paid, though not
    // reported as a scheduled rescore.
    Ok(done.flatten().filter(|_| due))
}

/// Rescores every contact and company of an org in batches of `run.batch_size` (each batch its
/// own transaction under the org lock, reading its inputs inside it), refreshing the org
/// means first. Stops early, with what it did so far, if the org's config changes meanwhile
/// (that change's own rescore covers the rest).
///
/// The org is rescored in `run.lanes` key ranges side by side, on as many connections, once
/// a kind has two batches: reading, scoring and writing one batch kept one core busy, and
/// with three lanes one can score while the others wait on PostgreSQL. The lanes' batches
/// take the org lock shared ([`crate::db::lock_org_shared`]), so anything else writing the
/// org's scores still waits for each batch. Callers must hold the org's rescore lock
/// ([`pay_owed_rescore`], [`scheduled_rescore`], [`rescore_org_unless_busy`]): two whole-org
/// rescores at once would score one customer twice under the shared lock.
pub async fn rescore_org(
    run: Rescorer<'_>,
    org_id: Uuid,
    now: DateTime<Utc>,
    source: InputSource,
) -> Result<WriteSummary, RescoreError> {
    let Rescorer {
        pool,
        relay,
        batch_size,
        lanes,
        correlation_id,
    } = run;
    let mut conn = pooled(pool).await?;
    let (config, means, source, lanes) = conn
        .transaction(async |conn| {
            crate::db::lock_org(conn, org_id).await?;
            let config = configs::current(conn, org_id).await?;
            let source =
                if source == InputSource::Stored && !inputs::inputs_stored(conn, org_id).await? {
                    InputSource::Projection
                } else {
                    source
                };
            let means = org_means(conn, org_id, source).await?;
            configs::store_means(conn, org_id, means, now).await?;
            let lanes = lanes_of(conn, org_id, source, batch_size, lanes).await?;
            Ok::<_, diesel::result::Error>((config, means, source, lanes))
        })
        .await?;
    let pass = Rewrite {
        relay: relay.clone(),
        org_id,
        config: std::sync::Arc::new(config),
        means,
        now,
        batch_size,
        correlation_id: correlation_id.to_owned(),
        source,
    };
    let mut lanes = lanes.into_iter();
    let first = lanes.next().unwrap_or_default();
    let mut helpers = Vec::new();
    for _ in 0..lanes.len() {
        helpers.push(pooled(pool).await?);
    }
    // The other lanes on tasks of their own, so that each has a thread of its own.
    let mut others = Vec::new();
    for (ranges, mut helper) in lanes.zip(helpers) {
        let other_pass = pass.clone();
        others.push(tokio::spawn(async move {
            other_pass.run(&mut helper, &ranges).await
        }));
    }
    let mine = pass.run(&mut conn, &first).await;
    // Every lane ends before the rescore does: each batch is whole or not at all.
    let mut summary = WriteSummary::default();
    let mut failed = None;
    for other in others {
        match joined(other).await {
            Ok(Ok(done)) => summary += done,
            Ok(Err(error)) => {
                failed.get_or_insert(error);
            }
            // A lane that panicked; the others are still waited for.
            Err(error) => {
                failed.get_or_insert(error.into());
            }
        }
    }
    summary += mine?;
    match failed {
        Some(error) => Err(error),
        None => Ok(summary),
    }
}

/// [`rescore_org`] unless another whole-org rescore of the org runs (`None`: it holds the
/// org's rescore lock). A caller that must have the org rescored comes back later: waiting
/// for the lock would hold a pool connection and the caller's consumer meanwhile, and every
/// other org's changes queued behind it. Then pays any config rescore owed meanwhile (see
/// [`pay_debts`] and [`pay_left`]): a config saved while this ran cut it short and could not
/// rescore the org itself.
pub async fn rescore_org_unless_busy(
    run: Rescorer<'_>,
    org_id: Uuid,
    now: DateTime<Utc>,
    source: InputSource,
) -> Result<Option<WriteSummary>, RescoreError> {
    let done = holding_rescore_lock(run, org_id, now, async |_| {
        Ok(Some(rescore_org(run, org_id, now, source).await?))
    })
    .await?;
    Ok(done.map(Option::unwrap_or_default))
}

/// An org's contacts and companies in key order, split into up to `lanes` parts of about
/// equal size where [`inputs::split_keys`] says: each part holds a range of each kind
/// large enough to split (one part when neither kind has two batches).
async fn lanes_of(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    source: InputSource,
    batch_size: i64,
    lanes: usize,
) -> diesel::QueryResult<Vec<Vec<KeyRange>>> {
    let mut parts: Vec<Vec<KeyRange>> = Vec::new();
    for kind in [object_type::CONTACT, object_type::COMPANY] {
        let keys = inputs::split_keys(conn, org_id, kind, source, batch_size, lanes).await?;
        let bounds = std::iter::once(None).chain(keys.into_iter().map(Some));
        let ends = bounds.clone().skip(1).chain(std::iter::once(None));
        for (lane, (after, until)) in bounds.zip(ends).enumerate() {
            if parts.len() <= lane {
                parts.push(Vec::new());
            }
            parts[lane].push(KeyRange { kind, after, until });
        }
    }
    Ok(parts)
}

/// What one half of a whole-org rescore writes with.
#[derive(Clone)]
struct Rewrite {
    /// Woken after each batch commits, so that its events go out while the rest is
    /// rescored.
    relay: RelayWaker,
    org_id: Uuid,
    config: std::sync::Arc<VersionedConfig>,
    means: OrgMeans,
    now: DateTime<Utc>,
    batch_size: i64,
    correlation_id: String,
    source: InputSource,
}

impl Rewrite {
    /// Rescores every record of `ranges`, a batch per transaction; stops, with what it did,
    /// once the org's config is no longer the one it scores with.
    async fn run(
        &self,
        conn: &mut AsyncPgConnection,
        ranges: &[KeyRange],
    ) -> Result<WriteSummary, RescoreError> {
        let mut summary = WriteSummary::default();
        for range in ranges {
            let kind = range.kind;
            let mut after = range.after;
            loop {
                let batch = conn
                    .transaction(async |conn| {
                        crate::db::lock_org_shared(conn, self.org_id).await?;
                        no_jit(conn).await?;
                        if configs::current(conn, self.org_id).await?.version != self.config.version
                        {
                            return Ok(None);
                        }
                        let (rows, last_batch) = range
                            .batch(
                                conn,
                                self.org_id,
                                self.source,
                                after,
                                self.batch_size,
                                Olds::All,
                            )
                            .await?;
                        let last = rows.last().map(|r| (r.portal_id, r.object_id));
                        let computed =
                            compute(self.org_id, kind, rows, &self.config, self.means, self.now);
                        let written = persist_rows(
                            conn,
                            self.org_id,
                            &computed,
                            &self.config,
                            self.now,
                            &self.correlation_id,
                            self.source == InputSource::Stored,
                        )
                        .await?;
                        Ok::<_, diesel::result::Error>(Some((written, last, last_batch)))
                    })
                    .await?;
                let Some((written, last, last_batch)) = batch else {
                    return Ok(summary);
                };
                self.relay.wake();
                summary += written;
                after = last;
                if last_batch || after.is_none() {
                    break;
                }
            }
        }
        Ok(summary)
    }
}

/// A level-to-level move and how many customers make it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Move {
    /// The risk level now (`healthy`, `at_risk`, `critical`, `none`).
    pub from: &'static str,
    /// The risk level under the proposed config.
    pub to: &'static str,
    /// How many customers.
    pub count: u64,
}

/// One of the customers whose score would move most.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Mover {
    /// Customer id.
    pub id: Uuid,
    /// `contact` or `company`.
    pub object_type: &'static str,
    /// HubSpot id.
    pub object_id: i64,
    /// Name, e-mail or domain.
    pub name: String,
    /// The score now.
    pub from_score: Option<i16>,
    /// The score under the proposed config.
    pub to_score: Option<i16>,
    /// The level now.
    pub from_risk_level: &'static str,
    /// The level under the proposed config.
    pub to_risk_level: &'static str,
    /// `to_score - from_score`.
    pub delta: i16,
}

/// What saving a config would do to the org, computed without storing anything.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Preview {
    /// The version in force now, that the proposal is compared with.
    pub current_version: i64,
    /// Customers (contacts and companies) compared.
    pub customers: u64,
    /// Customers whose score would change.
    pub score_changes: u64,
    /// Every (from, to) pair with at least one customer, `from` = `to` included.
    pub matrix: Vec<Move>,
    /// The customers whose score would move most (largest absolute change first).
    pub largest_movers: Vec<Mover>,
}

/// How many movers a preview lists.
pub const MOVERS: usize = 10;

/// Computes what `proposed` would do to every customer of the org at `now`, from one
/// consistent snapshot, reading what saving reads (see [`InputSource::Stored`]).
pub async fn preview(
    pool: &Pool,
    org_id: Uuid,
    proposed: &ModelConfig,
    now: DateTime<Utc>,
    batch_size: i64,
    lanes: usize,
) -> Result<Preview, RescoreError> {
    let mut conn = pooled(pool).await?;
    // The org is read in lanes on connections that share one snapshot: reading is most of
    // a preview's time, and one connection kept one core busy.
    let mut helpers = Vec::new();
    for _ in 1..lanes {
        helpers.push(pooled(pool).await?);
    }
    let preview = conn
        .build_transaction()
        .repeatable_read()
        .read_only()
        .run(async |conn| {
            no_jit(conn).await?;
            let current = configs::current(conn, org_id).await?;
            let source = if inputs::inputs_stored(conn, org_id).await? {
                InputSource::Stored
            } else {
                InputSource::Projection
            };
            let means = org_means(conn, org_id, source).await?;
            let config = std::sync::Arc::new(VersionedConfig {
                version: current.version + 1,
                config: proposed.clone(),
                created_at: None,
            });
            let mut lanes = lanes_of(conn, org_id, source, batch_size, lanes)
                .await?
                .into_iter();
            let first = lanes.next().unwrap_or_default();
            let snapshot = export_snapshot(conn).await?;
            let pass = Pass {
                org_id,
                source,
                config,
                means,
                now,
                batch_size,
            };
            // The other lanes on tasks of their own: decoding rows is work on this side
            // too, and futures of one task would share one thread.
            let others: Vec<_> = lanes
                .zip(helpers)
                .map(|(ranges, mut helper)| {
                    let other_pass = pass.clone();
                    let snapshot = snapshot.clone();
                    tokio::spawn(async move {
                        helper
                            .build_transaction()
                            .repeatable_read()
                            .read_only()
                            .run(async |helper| {
                                helper
                                    .batch_execute(&format!(
                                        "SET TRANSACTION SNAPSHOT '{snapshot}'"
                                    ))
                                    .await?;
                                no_jit(helper).await?;
                                other_pass.tally(helper, &ranges).await
                            })
                            .await
                    })
                })
                .collect();
            let mine = pass.tally(conn, &first).await;
            let mut tally = Tally::default();
            let mut failed = None;
            for other in others {
                match joined(other).await.and_then(|other| other) {
                    Ok(other) => tally.merge(other),
                    Err(error) => {
                        failed.get_or_insert(error);
                    }
                }
            }
            tally.merge(mine?);
            if let Some(error) = failed {
                return Err(error);
            }
            Ok::<_, diesel::result::Error>(tally.finish(current.version))
        })
        .await?;
    Ok(preview)
}

/// The id of the transaction's snapshot, for another connection to read the same data.
async fn export_snapshot(conn: &mut AsyncPgConnection) -> diesel::QueryResult<String> {
    #[derive(diesel::QueryableByName)]
    struct Snapshot {
        #[diesel(sql_type = diesel::sql_types::Text)]
        id: String,
    }
    let row: Snapshot = diesel_async::RunQueryDsl::get_result(
        diesel::sql_query("SELECT pg_export_snapshot() AS id"),
        conn,
    )
    .await?;
    Ok(row.id)
}

/// Records of one kind after `after` up to and including `until` (`None`: no bound).
#[derive(Debug, Clone, Copy)]
struct KeyRange {
    kind: i16,
    after: Option<(i64, i64)>,
    until: Option<(i64, i64)>,
}

impl KeyRange {
    /// The range's next batch of up to `batch_size` records after `after`, and whether it
    /// is the range's last.
    async fn batch(
        &self,
        conn: &mut AsyncPgConnection,
        org_id: Uuid,
        source: InputSource,
        after: Option<(i64, i64)>,
        batch_size: i64,
        olds: Olds,
    ) -> diesel::QueryResult<(Vec<InputRow>, bool)> {
        let mut rows = load_batch(conn, org_id, self.kind, source, after, batch_size, olds).await?;
        let mut last = i64::try_from(rows.len()).unwrap_or(i64::MAX) < batch_size;
        if let Some(until) = self.until
            && rows
                .last()
                .is_some_and(|r| (r.portal_id, r.object_id) >= until)
        {
            rows.retain(|r| (r.portal_id, r.object_id) <= until);
            last = true;
        }
        Ok((rows, last))
    }
}

/// What a preview scores with.
#[derive(Clone)]
struct Pass {
    org_id: Uuid,
    source: InputSource,
    config: std::sync::Arc<VersionedConfig>,
    means: OrgMeans,
    now: DateTime<Utc>,
    batch_size: i64,
}

impl Pass {
    /// Scores every record of `ranges` and counts the moves. A batch is scored on a
    /// blocking thread while the next one is read.
    async fn tally(
        &self,
        conn: &mut AsyncPgConnection,
        ranges: &[KeyRange],
    ) -> diesel::QueryResult<Tally> {
        let mut tally = Tally::default();
        for range in ranges {
            let kind = range.kind;
            let mut after = range.after;
            let mut scoring: Option<tokio::task::JoinHandle<Vec<Computed>>> = None;
            loop {
                let (rows, last_batch) = range
                    .batch(
                        conn,
                        self.org_id,
                        self.source,
                        after,
                        self.batch_size,
                        Olds::ScoreAndLevel,
                    )
                    .await?;
                if let Some(task) = scoring.take() {
                    tally.add(kind, joined(task).await?);
                }
                after = rows.last().map(|r| (r.portal_id, r.object_id));
                let (org_id, config, means, now) =
                    (self.org_id, self.config.clone(), self.means, self.now);
                scoring = Some(tokio::task::spawn_blocking(move || {
                    compute(org_id, kind, rows, &config, means, now)
                }));
                if last_batch {
                    break;
                }
            }
            if let Some(task) = scoring.take() {
                tally.add(kind, joined(task).await?);
            }
        }
        Ok(tally)
    }
}

/// What a task of a preview or a rescore gave; a panic in it is carried on here, and a task
/// that never ran (the runtime shutting down) ends the caller's transaction.
async fn joined<T>(task: tokio::task::JoinHandle<T>) -> Result<T, diesel::result::Error> {
    match task.await {
        Ok(value) => Ok(value),
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(_) => Err(diesel::result::Error::RollbackTransaction),
    }
}

/// A preview being counted.
#[derive(Default)]
struct Tally {
    matrix: BTreeMap<(i16, i16), u64>,
    movers: Vec<Mover>,
    customers: u64,
    score_changes: u64,
}

impl Tally {
    fn add(&mut self, kind: i16, computed: Vec<Computed>) {
        for c in computed {
            self.customers += 1;
            *self
                .matrix
                .entry((c.old_risk_level, c.row.risk_level))
                .or_default() += 1;
            if c.old_score != c.row.score {
                self.score_changes += 1;
            }
            if let (Some(from), Some(to)) = (c.old_score, c.row.score)
                && from != to
            {
                self.movers.push(Mover {
                    id: c.row.score_id,
                    object_type: if kind == object_type::COMPANY {
                        "company"
                    } else {
                        "contact"
                    },
                    object_id: c.row.object_id,
                    name: c.row.display_name,
                    from_score: Some(from),
                    to_score: Some(to),
                    from_risk_level: risk_name(c.old_risk_level),
                    to_risk_level: risk_name(c.row.risk_level),
                    delta: to - from,
                });
                if self.movers.len() > 4 * MOVERS {
                    sort_movers(&mut self.movers);
                    self.movers.truncate(MOVERS);
                }
            }
        }
    }

    /// Adds what another reader of the same org counted.
    fn merge(&mut self, other: Tally) {
        for (key, count) in other.matrix {
            *self.matrix.entry(key).or_default() += count;
        }
        self.customers += other.customers;
        self.score_changes += other.score_changes;
        // `finish` sorts and keeps the largest.
        self.movers.extend(other.movers);
    }

    fn finish(mut self, current_version: i64) -> Preview {
        sort_movers(&mut self.movers);
        self.movers.truncate(MOVERS);
        Preview {
            current_version,
            customers: self.customers,
            score_changes: self.score_changes,
            matrix: self
                .matrix
                .into_iter()
                .map(|((from, to), count)| Move {
                    from: risk_name(from),
                    to: risk_name(to),
                    count,
                })
                .collect(),
            largest_movers: self.movers,
        }
    }
}

fn sort_movers(movers: &mut [Mover]) {
    movers.sort_by(|a, b| {
        b.delta
            .abs()
            .cmp(&a.delta.abs())
            .then_with(|| a.id.cmp(&b.id))
    });
}
