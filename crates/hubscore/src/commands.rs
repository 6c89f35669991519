//! What each command does.

use std::time::Duration;

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::api::{Gateway, items};
use crate::cli::{
    Cli, Command, ConnectionsCommand, ScoresArgs, ScoringCommand, SyncCommand, TailArgs,
    WritebackCommand,
};
use crate::output::{self, col};

/// Runs one command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let as_json = cli.global.json;
    if let Command::Tail(args) = &cli.command {
        return tail(args, as_json).await;
    }
    let gateway = Gateway::new(
        &cli.global.url,
        cli.global.token.clone(),
        Duration::from_secs(cli.global.timeout_secs),
    )?;
    match cli.command {
        Command::Connections(command) => connections(&gateway, command, as_json).await,
        Command::Sync(command) => sync(&gateway, command, as_json).await,
        Command::Scores(args) => scores(&gateway, &args, as_json).await,
        Command::Customer { id } => customer(&gateway, &id, as_json).await,
        Command::Scoring(command) => scoring(&gateway, command, as_json).await,
        Command::Writeback(command) => writeback(&gateway, command, as_json).await,
        Command::Tail(_) => Ok(()),
    }
}

const CONNECTION_FIELDS: &[output::Column] = &[
    col("id", "/id"),
    col("name", "/name"),
    col("status", "/status"),
    col("portal", "/portal_id"),
    col("kind", "/auth_kind"),
    col("connected at", "/connected_at"),
];

async fn connections(
    gateway: &Gateway,
    command: ConnectionsCommand,
    as_json: bool,
) -> anyhow::Result<()> {
    match command {
        ConnectionsCommand::List => {
            let answer = gateway.get("/connections").await?;
            output::print_rows(as_json, &answer, &items(&answer), CONNECTION_FIELDS)
        }
        ConnectionsCommand::Add {
            name,
            access_token,
            webhook_secret,
        } => {
            let mut body = json!({"name": name, "access_token": access_token});
            if let Some(secret) = webhook_secret {
                body["webhook_secret"] = json!(secret);
            }
            let answer = gateway.post("/connections", &body).await?;
            output::print_object(as_json, &answer, CONNECTION_FIELDS)
        }
        ConnectionsCommand::Show { id } => {
            let answer = gateway.get(&format!("/connections/{id}")).await?;
            output::print_object(as_json, &answer, CONNECTION_FIELDS)
        }
        ConnectionsCommand::Test { id } => {
            let answer = gateway
                .post(&format!("/connections/{id}/test"), &json!({}))
                .await?;
            output::json(&answer)
        }
        ConnectionsCommand::Remove { id } => {
            let answer = gateway.delete(&format!("/connections/{id}")).await?;
            output::print_object(as_json, &answer, CONNECTION_FIELDS)
        }
    }
}

const SYNC_FIELDS: &[output::Column] = &[
    col("id", "/id"),
    col("mode", "/mode"),
    col("state", "/state"),
    col("started", "/started_at"),
    col("finished", "/finished_at"),
    col("last error", "/last_error"),
];

async fn sync(gateway: &Gateway, command: SyncCommand, as_json: bool) -> anyhow::Result<()> {
    match command {
        SyncCommand::Start { id, object_type } => {
            let body = match object_type {
                Some(object_type) => json!({"object_type": object_type}),
                None => json!({}),
            };
            let answer = gateway
                .post(&format!("/connections/{id}/syncs"), &body)
                .await?;
            output::print_object(as_json, &answer, SYNC_FIELDS)
        }
        SyncCommand::List { id } => {
            let answer = gateway.get(&format!("/connections/{id}/syncs")).await?;
            output::print_rows(as_json, &answer, &items(&answer), SYNC_FIELDS)
        }
        SyncCommand::Follow {
            id,
            every_secs,
            wait_secs,
        } => follow_sync(gateway, &id, every_secs, wait_secs, as_json).await,
    }
}

/// Done and total of a sync run: the sum over object types of what was written or
/// skipped, against HubSpot's totals.
fn sync_progress(run: &Value) -> (u64, Option<u64>) {
    let counts = run["objects"].as_array().cloned().unwrap_or_default();
    let mut done = 0;
    let mut total = Some(0);
    for count in &counts {
        done += count["written"].as_u64().unwrap_or(0) + count["skipped"].as_u64().unwrap_or(0);
        total = match (total, count["total"].as_u64()) {
            (Some(sum), Some(t)) => Some(sum + t),
            _ => None,
        };
    }
    (done, total.filter(|t| *t > 0))
}

async fn follow_sync(
    gateway: &Gateway,
    id: &str,
    every_secs: f64,
    wait_secs: u64,
    as_json: bool,
) -> anyhow::Result<()> {
    let bar = if as_json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {pos}/{len} ({per_sec}, ~{eta} left)",
        )
        .context("progress template")?
        .progress_chars("=> "),
    );
    let pause = Duration::from_secs_f64(every_secs.max(0.1));
    // A connection made a moment ago may not have reached sync-worker yet: its first run
    // is recorded when the worker takes the connection's event.
    let unrecorded_until = tokio::time::Instant::now() + Duration::from_secs(wait_secs);
    loop {
        let path = format!("/connections/{id}/syncs/latest");
        let Some(run) = gateway.get_if_found(&path).await? else {
            if tokio::time::Instant::now() >= unrecorded_until {
                bail!("connection {id} has no sync after {wait_secs} s (GET {path} answered 404)");
            }
            bar.set_message("waiting for the sync to start");
            tokio::time::sleep(pause).await;
            continue;
        };
        let state = run["state"].as_str().unwrap_or("unknown").to_owned();
        let (done, total) = sync_progress(&run);
        if let Some(total) = total {
            bar.set_length(total);
        }
        bar.set_position(done);
        bar.set_message(state.clone());
        match state.as_str() {
            "succeeded" => {
                bar.finish_with_message("succeeded");
                return if as_json { output::json(&run) } else { Ok(()) };
            }
            "failed" | "cancelled" => {
                bar.abandon_with_message(state.clone());
                let error = run["last_error"].as_str().unwrap_or("no reason given");
                bail!("the sync {state}: {error}");
            }
            _ => tokio::time::sleep(pause).await,
        }
    }
}

const CUSTOMER_COLUMNS: &[output::Column] = &[
    col("id", "/id"),
    col("name", "/name"),
    col("type", "/object_type"),
    col("hubspot id", "/object_id"),
    col("score", "/score"),
    col("risk", "/risk_level"),
    col("computed at", "/computed_at"),
];

async fn scores(gateway: &Gateway, args: &ScoresArgs, as_json: bool) -> anyhow::Result<()> {
    let mut query = vec![
        format!("sort={}", args.sort),
        format!("limit={}", args.limit),
    ];
    if let Some(risk) = &args.risk {
        query.push(format!("risk_level={risk}"));
    }
    if let Some(min) = args.min {
        query.push(format!("min_score={min}"));
    }
    if let Some(max) = args.max {
        query.push(format!("max_score={max}"));
    }
    let answer = gateway
        .get(&format!("/customers?{}", query.join("&")))
        .await?;
    output::print_rows(as_json, &answer, &items(&answer), CUSTOMER_COLUMNS)
}

async fn customer(gateway: &Gateway, id: &str, as_json: bool) -> anyhow::Result<()> {
    let answer = gateway.get(&format!("/customers/{id}")).await?;
    if as_json {
        return output::json(&answer);
    }
    output::print_object(false, &answer, CUSTOMER_COLUMNS)?;
    let factors = answer["factors"].as_array().cloned().unwrap_or_default();
    output::line("factors:")?;
    output::print_rows(
        false,
        &answer,
        &factors,
        &[
            col("factor", "/name"),
            col("input", "/description"),
            col("value", "/value"),
            col("weight", "/weight"),
            col("points", "/contribution"),
        ],
    )?;
    let changes = answer["changes"]["factors"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !changes.is_empty() {
        output::line("since the previous score:")?;
        output::print_rows(
            false,
            &answer,
            &changes,
            &[
                col("factor", "/name"),
                col("before", "/previous_contribution"),
                col("now", "/contribution"),
                col("change", "/delta"),
            ],
        )?;
    }
    let history = answer["history"].as_array().cloned().unwrap_or_default();
    output::line("history:")?;
    output::print_rows(
        false,
        &answer,
        &history,
        &[
            col("at", "/computed_at"),
            col("score", "/score"),
            col("risk", "/risk_level"),
        ],
    )
}

async fn scoring(gateway: &Gateway, command: ScoringCommand, as_json: bool) -> anyhow::Result<()> {
    match command {
        ScoringCommand::Show => output::json(&gateway.get("/scoring/config").await?),
        ScoringCommand::Preview { file } => {
            let proposed = read_json(&file)?;
            let answer = gateway.post("/scoring/config/preview", &proposed).await?;
            output::json(&answer)
        }
        ScoringCommand::Set { file } => {
            let config = read_json(&file)?;
            output::json(&gateway.put("/scoring/config", &config).await?)
        }
        ScoringCommand::Distribution => {
            let answer = gateway.get("/scoring/distribution").await?;
            output::print_object(
                as_json,
                &answer,
                &[
                    col("healthy", "/current/healthy"),
                    col("at_risk", "/current/at_risk"),
                    col("critical", "/current/critical"),
                    col("none", "/current/none"),
                    col("mean score", "/current/mean_score"),
                    col("mean change, 7 days", "/days_7/change/mean_score"),
                    col("mean change, 30 days", "/days_30/change/mean_score"),
                ],
            )
        }
    }
}

fn read_json(file: &std::path::Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))
}

async fn writeback(
    gateway: &Gateway,
    command: WritebackCommand,
    as_json: bool,
) -> anyhow::Result<()> {
    match command {
        WritebackCommand::Status { id } => {
            let answer = gateway
                .get(&format!("/connections/{id}/writeback/status"))
                .await?;
            output::print_object(
                as_json,
                &answer,
                &[
                    col("written", "/written"),
                    col("unchanged", "/unchanged_skipped"),
                    col("failed", "/failed"),
                    col("pending", "/pending"),
                    col("last success", "/last_success_at"),
                    col("last error", "/last_error"),
                    col("timeline events sent", "/timeline/sent"),
                    col("timeline events failed", "/timeline/failed"),
                ],
            )
        }
        WritebackCommand::Backfill { id } => output::json(
            &gateway
                .post(&format!("/connections/{id}/writeback/backfill"), &json!({}))
                .await?,
        ),
        WritebackCommand::Mapping { id, set } => {
            let path = format!("/connections/{id}/writeback");
            let answer = match set {
                Some(file) => gateway.put(&path, &read_json(&file)?).await?,
                None => gateway.get(&path).await?,
            };
            output::json(&answer)
        }
    }
}

/// Binds a private, auto-deleted queue to the exchange and prints each event.
async fn tail(args: &TailArgs, as_json: bool) -> anyhow::Result<()> {
    use lapin::options::{
        BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions,
    };
    use lapin::types::FieldTable;
    let connection =
        lapin::Connection::connect(&args.amqp_url, lapin::ConnectionProperties::default())
            .await
            .context("connecting to RabbitMQ")?;
    let channel = connection
        .create_channel()
        .await
        .context("opening a channel")?;
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .context("declaring the tail queue")?;
    channel
        .queue_bind(
            queue.name().clone(),
            args.exchange.as_str().into(),
            args.key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("binding to {} with {}", args.exchange, args.key))?;
    let mut consumer = channel
        .basic_consume(
            queue.name().clone(),
            "hubscore-tail".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .context("consuming")?;
    let mut seen = 0_u64;
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery.context("receiving")?;
        let kind = delivery
            .properties
            .kind()
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default();
        let event = describe_event(&kind, &delivery.data);
        if as_json {
            output::line(&event.to_string())?;
        } else {
            output::line(&event_line(&delivery.routing_key.to_string(), &event))?;
        }
        delivery
            .ack(BasicAckOptions::default())
            .await
            .context("acking")?;
        seen += 1;
        if args.count.is_some_and(|count| seen >= count) {
            break;
        }
    }
    Ok(())
}

/// A score event as JSON; other events by type and size.
pub fn describe_event(kind: &str, body: &[u8]) -> Value {
    use prost::Message as _;
    if kind == "hubscore.v1.ScoreUpdated"
        && let Ok(score) = contracts::v1::ScoreUpdated::decode(body)
    {
        let risk = |level: i32| {
            contracts::v1::RiskLevel::try_from(level)
                .map(|l| {
                    l.as_str_name()
                        .trim_start_matches("RISK_LEVEL_")
                        .to_lowercase()
                })
                .unwrap_or_default()
        };
        return json!({
            "type": kind,
            "org_id": score.org_id,
            "customer_id": score.customer_id,
            "object_type": contracts::v1::ObjectType::try_from(score.object_type).map(|t| t.as_str_name().trim_start_matches("OBJECT_TYPE_").to_lowercase()).unwrap_or_default(),
            "object_id": score.object_id,
            "old_score": score.old_score,
            "new_score": score.new_score,
            "old_risk_level": risk(score.old_risk_level),
            "new_risk_level": risk(score.new_risk_level),
            "top_factor": score.top_factor,
            "config_version": score.config_version,
        });
    }
    if kind == "hubscore.v1.ScoreUpdatedBatch"
        && let Ok(batch) = contracts::v1::ScoreUpdatedBatch::decode(body)
    {
        return json!({
            "type": kind,
            "org_id": batch.org_id,
            "changes": batch.updates.len(),
        });
    }
    if kind == "hubscore.v1.ScoreAlertBatch"
        && let Ok(batch) = contracts::v1::ScoreAlertBatch::decode(body)
    {
        return json!({
            "type": kind,
            "org_id": batch.org_id,
            "alerts": batch.alerts.len(),
        });
    }
    json!({"type": kind, "bytes": body.len()})
}

fn event_line(routing_key: &str, event: &Value) -> String {
    if event.get("new_score").is_some() {
        let score = |v: &Value| v.as_u64().map_or("N/A".to_owned(), |s| s.to_string());
        format!(
            "{routing_key} {} {} {}: {} ({}) -> {} ({}){}",
            event["object_type"].as_str().unwrap_or(""),
            event["object_id"],
            event["customer_id"].as_str().unwrap_or(""),
            score(&event["old_score"]),
            event["old_risk_level"].as_str().unwrap_or(""),
            score(&event["new_score"]),
            event["new_risk_level"].as_str().unwrap_or(""),
            event["top_factor"]
                .as_str()
                .filter(|f| !f.is_empty())
                .map(|f| format!(", mostly {f}"))
                .unwrap_or_default(),
        )
    } else if let Some(changes) = event.get("changes") {
        format!(
            "{routing_key} a batch of {changes} changes of org {}",
            event["org_id"].as_str().unwrap_or("")
        )
    } else if let Some(alerts) = event.get("alerts") {
        format!(
            "{routing_key} a batch of {alerts} alerts of org {}",
            event["org_id"].as_str().unwrap_or("")
        )
    } else {
        format!(
            "{routing_key} {} ({} bytes)",
            event["type"].as_str().unwrap_or("?"),
            event["bytes"]
        )
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn sync_progress_sums_written_and_skipped_against_the_totals() {
        let run = json!({"objects": [
            {"object_type": "contacts", "total": 100, "written": 40, "skipped": 2},
            {"object_type": "deals", "total": 50, "written": 10, "skipped": 0},
        ]});
        assert_eq!(sync_progress(&run), (52, Some(150)));
        let unknown = json!({"objects": [{"object_type": "contacts", "written": 5}]});
        assert_eq!(sync_progress(&unknown), (5, None));
    }

    #[test]
    fn a_score_event_is_shown_with_both_scores_and_levels() {
        let event = contracts::v1::ScoreUpdated {
            customer_id: "c1".into(),
            old_score: Some(72),
            new_score: None,
            old_risk_level: contracts::v1::RiskLevel::Healthy.into(),
            new_risk_level: contracts::v1::RiskLevel::None.into(),
            object_type: contracts::v1::ObjectType::Contact.into(),
            object_id: 51,
            ..Default::default()
        };
        let described = describe_event("hubscore.v1.ScoreUpdated", &event.encode_to_vec());
        let shown = event_line("score.updated", &described);
        assert_eq!(
            shown,
            "score.updated contact 51 c1: 72 (healthy) -> N/A (none)"
        );
    }

    #[test]
    fn a_batch_of_score_changes_is_shown_with_its_size() {
        let batch = contracts::v1::ScoreUpdatedBatch {
            org_id: "o1".into(),
            updates: vec![contracts::v1::ScoreUpdated::default(); 3],
        };
        let described = describe_event("hubscore.v1.ScoreUpdatedBatch", &batch.encode_to_vec());
        assert_eq!(
            event_line("score.updated", &described),
            "score.updated a batch of 3 changes of org o1"
        );
    }

    #[test]
    fn a_batch_of_alerts_is_shown_with_its_size() {
        let batch = contracts::v1::ScoreAlertBatch {
            org_id: "o1".into(),
            alerts: vec![contracts::v1::ScoreAlert::default(); 4],
        };
        let described = describe_event("hubscore.v1.ScoreAlertBatch", &batch.encode_to_vec());
        assert_eq!(
            event_line("score.alert", &described),
            "score.alert a batch of 4 alerts of org o1"
        );
    }
}
