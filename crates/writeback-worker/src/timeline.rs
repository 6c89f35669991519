//! Timeline events on risk-level changes (optional per connection).
//!
//! When a record moves between healthy, at risk and critical, and its connection's mapping
//! has `timeline_events` on, a timeline event goes onto the record in HubSpot: "Health
//! dropped from at risk to critical", with the old and new score and the factor that moved
//! it most. A first score and a move to or from N/A are no events.
//!
//! HubSpot keeps event templates per OAuth app, managed with the app's developer API key,
//! and refuses timeline events from private apps. So events need an OAuth connection and the
//! `[timeline]` settings (app id and key); preparing a connection finds the app's
//! `hubscore health change` template of each object type, or creates it, and records it as
//! the connection's `timeline` target. Where that is impossible the target says why (on the
//! writeback status) and no event is stored.
//!
//! Each change is stored with the score that brought it, in the same transaction, keyed by
//! the `score.updated` message, so a redelivery stores nothing twice. The connection's
//! flusher (holding the connection's lock) sends them in batches of up to
//! [`EVENT_BATCH`]. The event's id in HubSpot is that key too: HubSpot refuses a second
//! event with the same id, so resending after an unknown outcome shows nothing twice.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_query;
use diesel::sql_types::{
    Array, BigInt, Integer, Nullable, SmallInt, Text, Timestamptz, Uuid as SqlUuid,
};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use hubspot_client::{
    DeveloperClient, EventTemplateToken, HubSpotClient, HubSpotError, NewEventTemplate,
    TimelineEvent,
};
use uuid::Uuid;

use crate::db::{IncomingScore, LevelChange, PropertyTarget};
use crate::mapping::{RiskLevel, TargetObject, WritebackMapping};

type Result<T> = diesel::QueryResult<T>;

/// The purpose of a connection's timeline target (its `property` is the template id).
pub const PURPOSE: &str = "timeline";

/// The name of hubscore's event template in the app (one per object type).
pub const TEMPLATE_NAME: &str = "hubscore health change";

/// Events sent per request at most (HubSpot takes up to
/// [`hubspot_client::TIMELINE_BATCH_SIZE`]).
pub const EVENT_BATCH: usize = 100;

/// The tokens every event carries.
const TOKENS: [(&str, &str, &str); 6] = [
    ("summary", "Summary", "string"),
    ("old_risk_level", "Previous risk level", "string"),
    ("new_risk_level", "Risk level", "string"),
    ("old_score", "Previous health score", "number"),
    ("new_score", "Health score", "number"),
    ("top_factor", "Top factor", "string"),
];

/// The template hubscore creates for an object type.
pub fn template_for(object_type: TargetObject) -> NewEventTemplate {
    NewEventTemplate {
        name: TEMPLATE_NAME.to_owned(),
        object_type: object_type.as_str().to_owned(),
        header_template: Some("{{summary}}".to_owned()),
        detail_template: Some(
            "Health score {{old_score}} → {{new_score}} ({{old_risk_level}} → \
             {{new_risk_level}}). The factor that moved it most: {{top_factor}}."
                .to_owned(),
        ),
        tokens: TOKENS
            .iter()
            .map(|(name, label, kind)| EventTemplateToken {
                name: (*name).to_owned(),
                label: (*label).to_owned(),
                kind: (*kind).to_owned(),
                ..EventTemplateToken::default()
            })
            .collect(),
    }
}

fn label(level: &str) -> &'static str {
    match RiskLevel::parse(level) {
        RiskLevel::Healthy => "healthy",
        RiskLevel::AtRisk => "at risk",
        RiskLevel::Critical => "critical",
        RiskLevel::None => "not scored",
    }
}

fn rank(level: &str) -> u8 {
    match RiskLevel::parse(level) {
        RiskLevel::Healthy => 3,
        RiskLevel::AtRisk => 2,
        RiskLevel::Critical => 1,
        RiskLevel::None => 0,
    }
}

/// "Health dropped from at risk to critical" / "Health rose from critical to healthy".
pub fn summary(old_level: &str, new_level: &str) -> String {
    let verb = if rank(new_level) < rank(old_level) {
        "dropped"
    } else {
        "rose"
    };
    format!(
        "Health {verb} from {} to {}",
        label(old_level),
        label(new_level)
    )
}

/// A stored change waiting to be sent.
#[derive(Debug, Clone, QueryableByName)]
pub struct PendingEvent {
    /// Our id, also the event's id in HubSpot.
    #[diesel(sql_type = Text)]
    pub event_id: String,
    /// The record.
    #[diesel(sql_type = BigInt)]
    pub object_id: i64,
    /// Before.
    #[diesel(sql_type = Text)]
    pub old_risk_level: String,
    /// After.
    #[diesel(sql_type = Text)]
    pub new_risk_level: String,
    /// Before.
    #[diesel(sql_type = Nullable<SmallInt>)]
    pub old_score: Option<i16>,
    /// After.
    #[diesel(sql_type = Nullable<SmallInt>)]
    pub new_score: Option<i16>,
    /// What moved it most.
    #[diesel(sql_type = Text)]
    pub top_factor: String,
    /// When the score was computed.
    #[diesel(sql_type = Timestamptz)]
    pub occurred_at: DateTime<Utc>,
}

impl PendingEvent {
    /// The event as HubSpot takes it.
    pub fn to_event(&self, template_id: &str) -> TimelineEvent {
        let mut tokens = BTreeMap::new();
        tokens.insert(
            "summary".to_owned(),
            summary(&self.old_risk_level, &self.new_risk_level),
        );
        tokens.insert(
            "old_risk_level".to_owned(),
            label(&self.old_risk_level).to_owned(),
        );
        tokens.insert(
            "new_risk_level".to_owned(),
            label(&self.new_risk_level).to_owned(),
        );
        if let Some(score) = self.old_score {
            tokens.insert("old_score".to_owned(), score.to_string());
        }
        if let Some(score) = self.new_score {
            tokens.insert("new_score".to_owned(), score.to_string());
        }
        tokens.insert("top_factor".to_owned(), self.top_factor.replace('_', " "));
        TimelineEvent {
            event_template_id: template_id.to_owned(),
            id: self.event_id.clone(),
            tokens,
            object_id: Some(self.object_id.to_string()),
            timestamp: Some(self.occurred_at),
            ..TimelineEvent::default()
        }
    }
}

/// The event id of a `score.updated` message's change.
pub fn event_id(message_id: Uuid) -> String {
    format!("hubscore-{message_id}")
}

/// Stores the level changes of `scores` whose connection wants timeline events and has a
/// ready template for the record's object type; a change stored before is left alone.
/// Call in the transaction that stores the scores.
pub async fn store_level_changes(
    conn: &mut AsyncPgConnection,
    scores: &[&IncomingScore],
) -> Result<usize> {
    let changes: Vec<(&IncomingScore, &LevelChange)> = scores
        .iter()
        .filter_map(|s| s.level_change.as_ref().map(|c| (*s, c)))
        .collect();
    if changes.is_empty() {
        return Ok(0);
    }
    let connection_ids: Vec<Uuid> = changes.iter().map(|(s, _)| s.connection_id).collect();
    let event_ids: Vec<String> = changes
        .iter()
        .map(|(s, _)| event_id(s.message_id))
        .collect();
    let object_types: Vec<&str> = changes
        .iter()
        .map(|(s, _)| s.object_type.as_str())
        .collect();
    let object_ids: Vec<i64> = changes.iter().map(|(s, _)| s.object_id).collect();
    let old_levels: Vec<&str> = changes
        .iter()
        .map(|(_, c)| c.old_risk_level.as_str())
        .collect();
    let new_levels: Vec<&str> = changes.iter().map(|(s, _)| s.risk_level.as_str()).collect();
    let old_scores: Vec<Option<i16>> = changes.iter().map(|(_, c)| c.old_score).collect();
    let new_scores: Vec<Option<i16>> = changes.iter().map(|(s, _)| s.score).collect();
    let factors: Vec<&str> = changes.iter().map(|(s, _)| s.top_factor.as_str()).collect();
    let occurred: Vec<DateTime<Utc>> = changes.iter().map(|(s, _)| s.computed_at).collect();
    sql_query(
        "INSERT INTO timeline_events (connection_id, event_id, object_type, object_id, \
           old_risk_level, new_risk_level, old_score, new_score, top_factor, occurred_at) \
         SELECT u.* FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::text[], \
           $6::text[], $7::smallint[], $8::smallint[], $9::text[], $10::timestamptz[]) \
           AS u(connection_id, event_id, object_type, object_id, old_risk_level, \
                new_risk_level, old_score, new_score, top_factor, occurred_at) \
         JOIN mappings m ON m.connection_id = u.connection_id \
           AND (m.mapping ->> 'timeline_events')::boolean \
         JOIN property_targets t ON t.connection_id = u.connection_id \
           AND t.object_type = u.object_type AND t.purpose = 'timeline' AND t.state = 'ready' \
         ON CONFLICT (connection_id, event_id) DO NOTHING",
    )
    .bind::<Array<SqlUuid>, _>(connection_ids)
    .bind::<Array<Text>, _>(event_ids)
    .bind::<Array<Text>, _>(object_types)
    .bind::<Array<BigInt>, _>(object_ids)
    .bind::<Array<Text>, _>(old_levels)
    .bind::<Array<Text>, _>(new_levels)
    .bind::<Array<Nullable<SmallInt>>, _>(old_scores)
    .bind::<Array<Nullable<SmallInt>>, _>(new_scores)
    .bind::<Array<Text>, _>(factors)
    .bind::<Array<Timestamptz>, _>(occurred)
    .execute(conn)
    .await
}

/// The oldest waiting events of one object type.
async fn pending(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    object_type: TargetObject,
) -> Result<Vec<PendingEvent>> {
    sql_query(
        "SELECT event_id, object_id, old_risk_level, new_risk_level, old_score, new_score, \
           top_factor, occurred_at FROM timeline_events \
         WHERE connection_id = $1 AND object_type = $2 AND state = 'pending' \
         ORDER BY stored_at, event_id LIMIT $3",
    )
    .bind::<SqlUuid, _>(connection_id)
    .bind::<Text, _>(object_type.as_str())
    .bind::<BigInt, _>(i64::try_from(EVENT_BATCH).unwrap_or(100))
    .load(conn)
    .await
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Events of a connection waiting to be sent.
pub async fn pending_count(conn: &mut AsyncPgConnection, connection_id: Uuid) -> Result<i64> {
    let row: Count = sql_query(
        "SELECT count(*) AS n FROM timeline_events WHERE connection_id = $1 AND state = 'pending'",
    )
    .bind::<SqlUuid, _>(connection_id)
    .get_result(conn)
    .await?;
    Ok(row.n)
}

/// What the flusher settles for the events of one request.
#[derive(Debug, Default)]
struct Settled {
    sent: Vec<String>,
    failed: Vec<(String, String)>,
    retry: Vec<(String, String)>,
}

async fn settle(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    settled: &Settled,
    max_attempts: i32,
) -> Result<()> {
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        if !settled.sent.is_empty() {
            sql_query(
                "UPDATE timeline_events SET state = 'sent', sent_at = now(), error = NULL \
                 WHERE connection_id = $1 AND event_id = ANY($2) AND state = 'pending'",
            )
            .bind::<SqlUuid, _>(connection_id)
            .bind::<Array<Text>, _>(&settled.sent)
            .execute(conn)
            .await?;
        }
        for (ids, permanent) in [(&settled.failed, true), (&settled.retry, false)] {
            if ids.is_empty() {
                continue;
            }
            let (event_ids, reasons): (Vec<&str>, Vec<&str>) =
                ids.iter().map(|(i, r)| (i.as_str(), r.as_str())).unzip();
            sql_query(
                "UPDATE timeline_events e SET attempts = e.attempts + 1, error = u.reason, \
                   state = CASE WHEN $3 OR e.attempts + 1 >= $4 THEN 'failed' ELSE 'pending' END \
                 FROM UNNEST($2::text[], $5::text[]) AS u(event_id, reason) \
                 WHERE e.connection_id = $1 AND e.event_id = u.event_id AND e.state = 'pending'",
            )
            .bind::<SqlUuid, _>(connection_id)
            .bind::<Array<Text>, _>(event_ids)
            .bind::<diesel::sql_types::Bool, _>(permanent)
            .bind::<Integer, _>(max_attempts)
            .bind::<Array<Text>, _>(reasons)
            .execute(conn)
            .await?;
        }
        Ok(())
    })
    .await
}

/// Whether a per-event failure is final: the record or template is gone, or HubSpot
/// refused the event's contents.
fn permanent(category: Option<&str>) -> bool {
    matches!(
        category,
        Some("OBJECT_NOT_FOUND" | "VALIDATION_ERROR" | "INVALID_OPTION")
    )
}

/// What one round of sending did.
#[derive(Debug, Default)]
pub struct Round {
    /// Events HubSpot now has.
    pub sent: usize,
    /// Events given up.
    pub failed: usize,
    /// A request failed as a whole (the events stay pending, their attempts counted).
    pub error: Option<HubSpotError>,
}

/// Sends up to one batch of waiting events per object type. `templates` are the ready
/// templates by object type; waiting events of another object type (their template is no
/// longer prepared) are recorded as failed with `unready`'s reason.
pub async fn send_round(
    conn: &mut AsyncPgConnection,
    client: &HubSpotClient,
    connection_id: Uuid,
    templates: &HashMap<TargetObject, String>,
    unready: &HashMap<TargetObject, String>,
    max_attempts: i32,
) -> anyhow::Result<Round> {
    let mut round = Round::default();
    for object_type in TargetObject::ALL {
        let rows = pending(conn, connection_id, object_type).await?;
        if rows.is_empty() {
            continue;
        }
        let Some(template_id) = templates.get(&object_type) else {
            let reason = unready.get(&object_type).map_or_else(
                || "timeline events are no longer prepared for this object type".to_owned(),
                |detail| format!("no timeline event template: {detail}"),
            );
            let settled = Settled {
                failed: rows
                    .iter()
                    .map(|r| (r.event_id.clone(), reason.clone()))
                    .collect(),
                ..Settled::default()
            };
            round.failed += settled.failed.len();
            settle(conn, connection_id, &settled, max_attempts).await?;
            continue;
        };
        let events: Vec<TimelineEvent> = rows.iter().map(|r| r.to_event(template_id)).collect();
        let mut settled = Settled::default();
        match client.create_timeline_events(&events).await {
            Ok(outcome) => {
                let created: HashSet<&str> =
                    outcome.results.iter().map(|r| r.id.as_str()).collect();
                let mut explained: HashMap<String, (String, bool)> = HashMap::new();
                for error in &outcome.errors {
                    for id in error.failed_ids() {
                        // A duplicate id: HubSpot has the event already (an earlier attempt
                        // whose answer was lost).
                        let entry = if error.category.as_deref() == Some("CONFLICT") {
                            (String::new(), true)
                        } else {
                            (error.message.clone(), permanent(error.category.as_deref()))
                        };
                        explained.insert(id, entry);
                    }
                }
                for row in &rows {
                    if created.contains(row.event_id.as_str()) {
                        settled.sent.push(row.event_id.clone());
                        continue;
                    }
                    match explained.get(&row.event_id) {
                        Some((reason, _)) if reason.is_empty() => {
                            settled.sent.push(row.event_id.clone());
                        }
                        Some((reason, true)) => {
                            settled.failed.push((row.event_id.clone(), reason.clone()));
                        }
                        Some((reason, false)) => {
                            settled.retry.push((row.event_id.clone(), reason.clone()));
                        }
                        None => settled.retry.push((
                            row.event_id.clone(),
                            "HubSpot neither created nor refused the event".to_owned(),
                        )),
                    }
                }
            }
            Err(error) => {
                // The events stay pending as they were (a resend cannot show one twice);
                // the caller pauses the connection.
                round.error = Some(error);
                return Ok(round);
            }
        }
        round.sent += settled.sent.len();
        round.failed += settled.failed.len();
        settle(conn, connection_id, &settled, max_attempts).await?;
    }
    Ok(round)
}

/// Timeline event counts of a connection, for the status route.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Counts {
    /// The mapping asks for timeline events.
    pub enabled: bool,
    /// Events HubSpot has.
    pub sent: i64,
    /// Waiting to be sent.
    pub pending: i64,
    /// Given up, with their reasons.
    pub failed: i64,
    /// Failed events by reason.
    pub failures: Vec<FailureCount>,
}

/// Failed events with one reason.
#[derive(Debug, Clone, QueryableByName, serde::Serialize)]
pub struct FailureCount {
    /// HubSpot's or our reason.
    #[diesel(sql_type = Text)]
    pub reason: String,
    /// How many.
    #[diesel(sql_type = BigInt)]
    pub count: i64,
}

#[derive(QueryableByName)]
struct StateCount {
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The counts of a connection's events.
pub async fn counts(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    mapping: &WritebackMapping,
) -> Result<Counts> {
    let states: Vec<StateCount> = sql_query(
        "SELECT state, count(*) AS n FROM timeline_events WHERE connection_id = $1 GROUP BY state",
    )
    .bind::<SqlUuid, _>(connection_id)
    .load(conn)
    .await?;
    let of = |state: &str| states.iter().find(|s| s.state == state).map_or(0, |s| s.n);
    let failures = sql_query(
        "SELECT COALESCE(error, '') AS reason, count(*) AS count FROM timeline_events \
         WHERE connection_id = $1 AND state = 'failed' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 20",
    )
    .bind::<SqlUuid, _>(connection_id)
    .load(conn)
    .await?;
    // Sent events deleted by the retention sweep were counted there.
    let pruned: Vec<StateCount> = sql_query(
        "SELECT 'sent' AS state, timeline_sent_pruned AS n FROM writeback_stats \
         WHERE connection_id = $1",
    )
    .bind::<SqlUuid, _>(connection_id)
    .load(conn)
    .await?;
    Ok(Counts {
        enabled: mapping.enabled && mapping.timeline_events,
        sent: of("sent") + pruned.into_iter().next().map_or(0, |p| p.n),
        pending: of("pending"),
        failed: of("failed"),
        failures,
    })
}

/// Where the developer API is: the app's templates, cached in `timeline_templates`.
pub struct Templates {
    /// The app's developer API, when `[timeline]` is configured.
    pub developer: Option<DeveloperClient>,
}

#[derive(QueryableByName)]
struct TemplateRow {
    #[diesel(sql_type = Text)]
    template_id: String,
}

fn target(
    object_type: TargetObject,
    property: &str,
    state: &str,
    detail: String,
) -> PropertyTarget {
    crate::prepare::target_of(object_type, PURPOSE, property, state, detail)
}

impl Templates {
    /// The timeline targets of a connection whose mapping asks for timeline events: per
    /// mapped object type, the app's template (found or created) or why there is none.
    pub async fn prepare(
        &self,
        conn: &mut AsyncPgConnection,
        mapping: &WritebackMapping,
        oauth: bool,
        scopes: &[String],
    ) -> anyhow::Result<Vec<PropertyTarget>> {
        let mut targets = Vec::new();
        if !mapping.enabled || !mapping.timeline_events {
            return Ok(targets);
        }
        for object_type in mapping.targets() {
            let scoped = scopes.is_empty()
                || scopes
                    .iter()
                    .any(|s| s == "timeline" || s == object_type.write_scope());
            let developer = match (&self.developer, oauth, scoped) {
                (_, false, _) => Err((
                    "unsupported",
                    "HubSpot does not let private apps send timeline events; connect the \
                     portal with OAuth"
                        .to_owned(),
                )),
                (None, true, _) => Err((
                    "unconfigured",
                    "timeline events need the OAuth app's id and developer API key \
                     (timeline.app_id, timeline.developer_api_key)"
                        .to_owned(),
                )),
                (Some(_), true, false) => Err((
                    "missing_scope",
                    format!(
                        "timeline events need the scope timeline or {}",
                        object_type.write_scope()
                    ),
                )),
                (Some(developer), true, true) => Ok(developer),
            };
            let developer = match developer {
                Ok(developer) => developer,
                Err((state, detail)) => {
                    targets.push(target(object_type, "", state, detail));
                    continue;
                }
            };
            match template(conn, developer, object_type).await {
                Ok(id) => targets.push(target(object_type, &id, "ready", String::new())),
                Err(TemplateError::HubSpot(
                    error @ (HubSpotError::Unauthorized { .. }
                    | HubSpotError::Forbidden { .. }
                    | HubSpotError::Validation { .. }),
                )) => targets.push(target(
                    object_type,
                    "",
                    "error",
                    format!("the app's event templates: {error}"),
                )),
                Err(TemplateError::HubSpot(other)) => return Err(other.into()),
                Err(TemplateError::Database(e)) => return Err(e.into()),
            }
        }
        Ok(targets)
    }
}

/// The app's template of an object type: the cached id while the app still has it, else
/// found by name in the app, else created. Replicas preparing at once queue on a transaction-scoped advisory lock
/// per app, so the app never gets two.
async fn template(
    conn: &mut AsyncPgConnection,
    developer: &DeveloperClient,
    object_type: TargetObject,
) -> std::result::Result<String, TemplateError> {
    let app_id = i64::try_from(developer.app_id()).unwrap_or(i64::MAX);
    conn.transaction::<_, TemplateError, _>(async |conn| {
        sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind::<Text, _>(format!("hubscore.writeback.timeline-templates.{app_id}"))
            .execute(conn)
            .await?;
        let known: Vec<TemplateRow> = sql_query(
            "SELECT template_id FROM timeline_templates WHERE app_id = $1 AND object_type = $2",
        )
        .bind::<BigInt, _>(app_id)
        .bind::<Text, _>(object_type.as_str())
        .load(conn)
        .await?;
        if let Some(row) = known.into_iter().next() {
            // Someone may have deleted it in the app since: then it is made again.
            match developer.get_event_template(&row.template_id).await {
                Ok(_) => return Ok(row.template_id),
                Err(HubSpotError::NotFound { .. }) => {}
                Err(other) => return Err(other.into()),
            }
        }
        let existing = developer
            .list_event_templates()
            .await?
            .into_iter()
            .find(|t| t.name == TEMPLATE_NAME && t.object_type == object_type.as_str());
        let id = match existing {
            Some(found) => found.id,
            None => {
                developer
                    .create_event_template(&template_for(object_type))
                    .await?
                    .id
            }
        };
        sql_query(
            "INSERT INTO timeline_templates (app_id, object_type, template_id) \
             VALUES ($1, $2, $3) ON CONFLICT (app_id, object_type) \
             DO UPDATE SET template_id = EXCLUDED.template_id, found_at = now()",
        )
        .bind::<BigInt, _>(app_id)
        .bind::<Text, _>(object_type.as_str())
        .bind::<Text, _>(&id)
        .execute(conn)
        .await?;
        Ok(id)
    })
    .await
}

#[derive(Debug, thiserror::Error)]
enum TemplateError {
    #[error(transparent)]
    HubSpot(#[from] HubSpotError),
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_says_which_way_health_moved() {
        assert_eq!(
            summary("at_risk", "critical"),
            "Health dropped from at risk to critical"
        );
        assert_eq!(
            summary("critical", "healthy"),
            "Health rose from critical to healthy"
        );
    }

    #[test]
    fn an_event_carries_every_template_token_it_has_a_value_for() {
        let event = PendingEvent {
            event_id: "hubscore-x".to_owned(),
            object_id: 42,
            old_risk_level: "healthy".to_owned(),
            new_risk_level: "at_risk".to_owned(),
            old_score: Some(74),
            new_score: None,
            top_factor: "engagement_recency".to_owned(),
            occurred_at: Utc::now(),
        }
        .to_event("123");
        let declared: Vec<&str> = TOKENS.iter().map(|(name, _, _)| *name).collect();
        assert!(event.tokens.keys().all(|k| declared.contains(&k.as_str())));
        assert_eq!(event.tokens["old_score"], "74");
        assert!(!event.tokens.contains_key("new_score"), "N/A is left out");
        assert_eq!(event.tokens["top_factor"], "engagement recency");
        assert_eq!(event.object_id.as_deref(), Some("42"));
    }
}
