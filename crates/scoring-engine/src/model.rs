//! The health-score model: an org's configuration, its validation, and the pure scoring
//! function that turns one customer's inputs into a score with its factor breakdown.
//!
//! Nothing here reads the clock or the database: `now` and every input are parameters,
//! so the same inputs always give the same score (which is what makes previews, replays
//! and two replicas agree).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use domain::outbound::{RiskLevel, RiskThresholds, Score};
use serde::{Deserialize, Serialize};

/// The five factors, in the order every breakdown, array column and event uses.
pub const FACTOR_NAMES: [&str; 5] = [
    "engagement_recency",
    "deal_momentum",
    "lifecycle_stage",
    "activity_frequency",
    "deal_value",
];

const MS_PER_DAY: f64 = 86_400_000.0;

/// An org's scoring model. Serialized as the body of `GET/PUT /api/v1/scoring/config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Points each factor can add; they sum to 100.
    pub weights: Weights,
    /// Where the risk levels start.
    pub thresholds: Thresholds,
    /// Parameters of engagement recency.
    pub engagement_recency: RecencyParams,
    /// Parameters of activity frequency.
    pub activity_frequency: FrequencyParams,
    /// Parameters of lifecycle stage.
    pub lifecycle_stage: LifecycleParams,
    /// Parameters of deal value.
    pub deal_value: DealValueParams,
    /// When `score.alert` is raised.
    pub alerts: AlertParams,
}

/// The weight of each factor (points out of 100).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weights {
    /// Engagement recency (default 25).
    pub engagement_recency: f64,
    /// Deal momentum (default 20).
    pub deal_momentum: f64,
    /// Lifecycle stage (default 15).
    pub lifecycle_stage: f64,
    /// Activity frequency (default 20).
    pub activity_frequency: f64,
    /// Deal value (default 20).
    pub deal_value: f64,
}

impl Weights {
    /// The weights in [`FACTOR_NAMES`] order.
    pub fn as_array(&self) -> [f64; 5] {
        [
            self.engagement_recency,
            self.deal_momentum,
            self.lifecycle_stage,
            self.activity_frequency,
            self.deal_value,
        ]
    }
}

/// Risk band thresholds: `healthy_min..=100` healthy, `at_risk_min..healthy_min` at risk,
/// below critical.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Lowest healthy score (default 70).
    pub healthy_min: u8,
    /// Lowest at-risk score (default 40).
    pub at_risk_min: u8,
}

/// Engagement recency: `0.5^(days / half_life_days)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecencyParams {
    /// Days after which the factor halves (default 14).
    pub half_life_days: f64,
}

/// Activity frequency: `min(updates / target_updates, 1)` over the last `window_days`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrequencyParams {
    /// Updates that give the full factor (default 8).
    pub target_updates: u32,
    /// Days counted (default 30, at most 90: the activity log keeps 90 days).
    pub window_days: u32,
}

/// Lifecycle stage: a value per stage, `other_value` for stages not listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleParams {
    /// Value (0-1) per HubSpot lifecycle stage id.
    pub values: BTreeMap<String, f64>,
    /// Value (0-1) of a stage not in `values`, or of none (default 0).
    pub other_value: f64,
}

/// Deal value: `min(amount / (cap_multiple_of_mean x org mean), 1)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DealValueParams {
    /// The multiple of the org's mean amount per customer with deals that gives the
    /// full factor (default 2).
    pub cap_multiple_of_mean: f64,
}

/// When a `score.alert` goes out (besides entering a worse risk level).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertParams {
    /// A fall of at least this many points below the window's highest score alerts
    /// (default 15; 0 turns drop alerts off).
    pub drop_points: u8,
    /// The window, in days (default 7).
    pub drop_window_days: u32,
}

impl Default for ModelConfig {
    fn default() -> Self {
        let values = [
            ("subscriber", 0.1),
            ("lead", 0.2),
            ("marketingqualifiedlead", 0.35),
            ("salesqualifiedlead", 0.5),
            ("opportunity", 0.65),
            ("customer", 0.9),
            ("evangelist", 1.0),
            ("other", 0.0),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Self {
            weights: Weights {
                engagement_recency: 25.0,
                deal_momentum: 20.0,
                lifecycle_stage: 15.0,
                activity_frequency: 20.0,
                deal_value: 20.0,
            },
            thresholds: Thresholds {
                healthy_min: 70,
                at_risk_min: 40,
            },
            engagement_recency: RecencyParams {
                half_life_days: 14.0,
            },
            activity_frequency: FrequencyParams {
                target_updates: 8,
                window_days: 30,
            },
            lifecycle_stage: LifecycleParams {
                values,
                other_value: 0.0,
            },
            deal_value: DealValueParams {
                cap_multiple_of_mean: 2.0,
            },
            alerts: AlertParams {
                drop_points: 15,
                drop_window_days: 7,
            },
        }
    }
}

/// One thing wrong with a proposed config, naming the field (dotted path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// e.g. `weights.deal_value` or `thresholds.at_risk_min`.
    pub field: String,
    /// What is wrong, for people.
    pub message: String,
}

fn field_error(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// Longest activity window: the activity log keeps 90 days.
pub const MAX_WINDOW_DAYS: u32 = 90;

impl ModelConfig {
    /// Every problem of the config (empty when it is valid).
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut sum = 0.0;
        for (name, weight) in FACTOR_NAMES.iter().zip(self.weights.as_array()) {
            if !weight.is_finite() || !(0.0..=100.0).contains(&weight) {
                errors.push(field_error(
                    format!("weights.{name}"),
                    format!("must be between 0 and 100, got {weight}"),
                ));
            }
            sum += weight;
        }
        if errors.is_empty() && (sum - 100.0).abs() > 1e-6 {
            errors.push(field_error(
                "weights",
                format!("must sum to 100, got {sum}"),
            ));
        }
        let t = self.thresholds;
        if t.healthy_min > 100 || t.healthy_min == 0 {
            errors.push(field_error(
                "thresholds.healthy_min",
                format!("must be between 1 and 100, got {}", t.healthy_min),
            ));
        }
        if t.at_risk_min == 0 || t.at_risk_min >= t.healthy_min {
            errors.push(field_error(
                "thresholds.at_risk_min",
                format!(
                    "must be above 0 and below healthy_min ({}), got {}",
                    t.healthy_min, t.at_risk_min
                ),
            ));
        }
        let half_life = self.engagement_recency.half_life_days;
        if !half_life.is_finite() || half_life <= 0.0 {
            errors.push(field_error(
                "engagement_recency.half_life_days",
                format!("must be a positive number of days, got {half_life}"),
            ));
        }
        let frequency = self.activity_frequency;
        if frequency.target_updates == 0 {
            errors.push(field_error(
                "activity_frequency.target_updates",
                "must be at least 1",
            ));
        }
        if !(1..=MAX_WINDOW_DAYS).contains(&frequency.window_days) {
            errors.push(field_error(
                "activity_frequency.window_days",
                format!(
                    "must be between 1 and {MAX_WINDOW_DAYS} (the activity log keeps {MAX_WINDOW_DAYS} days), got {}",
                    frequency.window_days
                ),
            ));
        }
        for (stage, value) in &self.lifecycle_stage.values {
            if stage.is_empty() {
                errors.push(field_error(
                    "lifecycle_stage.values",
                    "stage names must not be empty",
                ));
            } else if !value.is_finite() || !(0.0..=1.0).contains(value) {
                errors.push(field_error(
                    format!("lifecycle_stage.values.{stage}"),
                    format!("must be between 0 and 1, got {value}"),
                ));
            }
        }
        let other = self.lifecycle_stage.other_value;
        if !other.is_finite() || !(0.0..=1.0).contains(&other) {
            errors.push(field_error(
                "lifecycle_stage.other_value",
                format!("must be between 0 and 1, got {other}"),
            ));
        }
        let cap = self.deal_value.cap_multiple_of_mean;
        if !cap.is_finite() || cap <= 0.0 {
            errors.push(field_error(
                "deal_value.cap_multiple_of_mean",
                format!("must be a positive number, got {cap}"),
            ));
        }
        if self.alerts.drop_points > 100 {
            errors.push(field_error(
                "alerts.drop_points",
                format!("must be between 0 and 100, got {}", self.alerts.drop_points),
            ));
        }
        if !(1..=MAX_WINDOW_DAYS).contains(&self.alerts.drop_window_days) {
            errors.push(field_error(
                "alerts.drop_window_days",
                format!(
                    "must be between 1 and {MAX_WINDOW_DAYS}, got {}",
                    self.alerts.drop_window_days
                ),
            ));
        }
        errors
    }

    /// The risk thresholds as the domain crate (shared with writeback) has them.
    pub fn risk_thresholds(&self) -> RiskThresholds {
        RiskThresholds {
            healthy_min: self.thresholds.healthy_min,
            at_risk_min: self.thresholds.at_risk_min,
        }
    }

    /// The value of a lifecycle stage (`other_value` for unlisted stages and none).
    pub fn lifecycle_value(&self, stage: Option<&str>) -> f64 {
        stage
            .and_then(|s| self.lifecycle_stage.values.get(s))
            .copied()
            .unwrap_or(self.lifecycle_stage.other_value)
    }
}

/// What one customer's score is computed from (gathered from the projection).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScoreInputs {
    /// The latest sales activity: for a contact the later of its own and its companies'
    /// `last_activity_at`; for a company the later of its own and its contacts'.
    pub last_activity_at: Option<DateTime<Utc>>,
    /// Deals of the customer in any status (for the N/A rule).
    pub deal_count: u32,
    /// Mean close probability of the open deals; `None` with no open deal.
    pub open_deal_probability: Option<f64>,
    /// Lifecycle stage id (a company uses its contacts' highest-valued stage).
    pub lifecycle_stage: Option<String>,
    /// Contact and deal updates within the configured window before `now`.
    pub updates_in_window: u32,
    /// Total amount of open and won deals, in cents.
    pub deal_amount_cents: i64,
    /// The org's mean open-and-won amount per customer with such deals; `None` when no
    /// customer has one.
    pub org_mean_deal_cents: Option<f64>,
}

/// The measured input of one factor.
#[derive(Debug, Clone, PartialEq)]
pub enum FactorInput {
    /// A number with its unit (`days`, `probability`, `updates`, `cents`).
    Number(f64, &'static str),
    /// A label (the lifecycle stage).
    Text(String),
    /// Nothing was measured (no activity ever, no stage).
    Missing,
}

/// One factor of a computed score.
#[derive(Debug, Clone, PartialEq)]
pub struct Factor {
    /// One of [`FACTOR_NAMES`].
    pub name: &'static str,
    /// What was measured (a sentence for people: [`describe`], written only where one is
    /// shown: most cards a rescore or a preview computes never are).
    pub input: FactorInput,
    /// Normalised, 0-1.
    pub value: f64,
    /// The configured weight.
    pub weight: f64,
    /// `weight x value`.
    pub contribution: f64,
}

/// A computed score: `None` score is N/A (no sales activity and no deal).
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreCard {
    /// 0-100, or `None` for N/A.
    pub score: Option<Score>,
    /// The band of the score; `None` for N/A.
    pub risk_level: Option<RiskLevel>,
    /// The five factors in [`FACTOR_NAMES`] order; empty for N/A.
    pub factors: Vec<Factor>,
}

impl ScoreCard {
    /// Each factor's contribution, in order (empty for N/A).
    pub fn contributions(&self) -> Vec<f64> {
        self.factors.iter().map(|f| f.contribution).collect()
    }
}

/// Days between `at` and `now` (fractional; 0 for instants in the future).
pub fn days_since(at: DateTime<Utc>, now: DateTime<Utc>) -> f64 {
    #[expect(
        clippy::cast_precision_loss,
        reason = "milliseconds over centuries fit f64's 53 bits"
    )]
    let ms = (now - at).num_milliseconds().max(0) as f64;
    ms / MS_PER_DAY
}

/// Scores one customer under `config` at `now`. Pure: the same arguments always give the
/// same card.
pub fn score_customer(config: &ModelConfig, inputs: &ScoreInputs, now: DateTime<Utc>) -> ScoreCard {
    if inputs.last_activity_at.is_none() && inputs.deal_count == 0 {
        return ScoreCard {
            score: None,
            risk_level: None,
            factors: Vec::new(),
        };
    }
    let weights = config.weights.as_array();
    let days = inputs.last_activity_at.map(|at| days_since(at, now));
    let recency = days.map_or(0.0, |d| {
        0.5_f64.powf(d / config.engagement_recency.half_life_days)
    });
    let momentum = inputs.open_deal_probability.unwrap_or(0.0).clamp(0.0, 1.0);
    let lifecycle = config.lifecycle_value(inputs.lifecycle_stage.as_deref());
    let frequency = (f64::from(inputs.updates_in_window)
        / f64::from(config.activity_frequency.target_updates.max(1)))
    .min(1.0);
    #[expect(
        clippy::cast_precision_loss,
        reason = "cents below 2^53 are exact; beyond that a cent does not matter"
    )]
    let amount = inputs.deal_amount_cents.max(0) as f64;
    let deal_value = match inputs.org_mean_deal_cents {
        Some(mean) if mean > 0.0 => {
            (amount / (config.deal_value.cap_multiple_of_mean * mean)).min(1.0)
        }
        _ => 0.0,
    };
    let values = [recency, momentum, lifecycle, frequency, deal_value];
    let inputs = [
        days.map_or(FactorInput::Missing, |d| FactorInput::Number(d, "days")),
        inputs
            .open_deal_probability
            .map_or(FactorInput::Missing, |p| {
                FactorInput::Number(p, "probability")
            }),
        inputs
            .lifecycle_stage
            .clone()
            .map_or(FactorInput::Missing, FactorInput::Text),
        FactorInput::Number(f64::from(inputs.updates_in_window), "updates"),
        FactorInput::Number(amount, "cents"),
    ];
    let factors: Vec<Factor> = FACTOR_NAMES
        .iter()
        .zip(values)
        .zip(weights)
        .zip(inputs)
        .map(|(((name, value), weight), input)| Factor {
            name,
            input,
            value,
            weight,
            contribution: weight * value,
        })
        .collect();
    let points: f64 = factors.iter().map(|f| f.contribution).sum();
    let score = Score::from_points(points);
    ScoreCard {
        score: Some(score),
        risk_level: Some(config.risk_thresholds().risk_level(score)),
        factors,
    }
}

/// A sentence for people about factor `index`'s input (`window_days`: the activity window).
pub fn describe(index: usize, input: &FactorInput, window_days: u32) -> String {
    match (index, input) {
        (0, FactorInput::Number(d, _)) => format!("last sales activity {d:.1} days ago"),
        (0, _) => "no sales activity".to_owned(),
        (1, FactorInput::Number(p, _)) => {
            format!("open deals' mean close probability {:.0}%", p * 100.0)
        }
        (1, _) => "no open deals".to_owned(),
        (2, FactorInput::Text(stage)) => format!("lifecycle stage {stage}"),
        (2, _) => "no lifecycle stage".to_owned(),
        (3, FactorInput::Number(n, _)) => {
            format!("{n} contact and deal updates in the last {window_days} days")
        }
        (4, FactorInput::Number(cents, _)) => {
            format!("open and won deals worth {:.2}", cents / 100.0)
        }
        _ => String::new(),
    }
}

/// How a company rolls up its contacts' lifecycle stages: the stage worth most under
/// `config` (ties: the alphabetically first, so the choice is stable).
pub fn best_lifecycle_stage<'a>(
    config: &ModelConfig,
    stages: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let mut best: Option<(&str, f64)> = None;
    for stage in stages {
        let value = config.lifecycle_value(Some(stage));
        let better = match best {
            None => true,
            Some((b, v)) => value > v || (value == v && stage < b),
        };
        if better {
            best = Some((stage, value));
        }
    }
    best.map(|(s, _)| s.to_owned())
}

/// The factor whose contribution moved most (by absolute change), or `None` when there is
/// nothing to compare (a first score or N/A). Ties go to the earlier factor.
pub fn top_factor(deltas: &[f64]) -> Option<&'static str> {
    let mut best: Option<(usize, f64)> = None;
    for (i, d) in deltas.iter().enumerate() {
        if best.is_none_or(|(_, b)| d.abs() > b) {
            best = Some((i, d.abs()));
        }
    }
    best.and_then(|(i, _)| FACTOR_NAMES.get(i).copied())
}

/// New minus old contribution per factor; empty unless both have a full breakdown.
pub fn contribution_deltas(old: &[f64], new: &[f64]) -> Vec<f64> {
    if old.len() != FACTOR_NAMES.len() || new.len() != FACTOR_NAMES.len() {
        return Vec::new();
    }
    new.iter().zip(old).map(|(n, o)| n - o).collect()
}

/// Position of a risk level from best to worst (healthy 0, at risk 1, critical 2).
pub fn severity(level: RiskLevel) -> u8 {
    match level {
        RiskLevel::Green => 0,
        RiskLevel::Yellow => 1,
        RiskLevel::Red => 2,
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use proptest::prelude::*;

    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-03T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn green_example() -> ScoreInputs {
        ScoreInputs {
            last_activity_at: Some(now() - Duration::days(2)),
            deal_count: 1,
            open_deal_probability: Some(0.6),
            lifecycle_stage: Some("customer".into()),
            updates_in_window: 8,
            deal_amount_cents: 500_000,
            org_mean_deal_cents: Some(500_000.0),
        }
    }

    fn red_example() -> ScoreInputs {
        ScoreInputs {
            last_activity_at: Some(now() - Duration::days(60)),
            deal_count: 0,
            open_deal_probability: None,
            lifecycle_stage: Some("lead".into()),
            updates_in_window: 0,
            deal_amount_cents: 0,
            org_mean_deal_cents: Some(500_000.0),
        }
    }

    fn contribution(card: &ScoreCard, name: &str) -> f64 {
        card.factors
            .iter()
            .find(|f| f.name == name)
            .unwrap()
            .contribution
    }

    #[test]
    fn worked_example_recent_customer_with_an_open_deal_scores_78_healthy() {
        let card = score_customer(&ModelConfig::default(), &green_example(), now());
        // 25 x 0.5^(2/14) = 22.643; 20 x 0.6 = 12; 15 x 0.9 = 13.5; 20 x min(8/8,1) = 20;
        // 20 x min(mean / (2 x mean), 1) = 10: 78.143 rounds to 78.
        assert!((contribution(&card, "engagement_recency") - 22.643_1).abs() < 1e-3);
        assert!((contribution(&card, "deal_momentum") - 12.0).abs() < 1e-9);
        assert!((contribution(&card, "lifecycle_stage") - 13.5).abs() < 1e-9);
        assert!((contribution(&card, "activity_frequency") - 20.0).abs() < 1e-9);
        assert!((contribution(&card, "deal_value") - 10.0).abs() < 1e-9);
        let total: f64 = card.contributions().iter().sum();
        assert!((total - 78.143_1).abs() < 1e-3, "{total}");
        assert_eq!(card.score, Score::new(78));
        assert_eq!(card.risk_level, Some(RiskLevel::Green));
    }

    #[test]
    fn worked_example_quiet_lead_without_deals_scores_4_critical() {
        let card = score_customer(&ModelConfig::default(), &red_example(), now());
        // 25 x 0.5^(60/14) = 1.281; no open deal 0; lead 15 x 0.2 = 3; no updates 0;
        // no deal value 0: 4.281 rounds to 4.
        assert!((contribution(&card, "engagement_recency") - 1.281_3).abs() < 1e-3);
        assert_eq!(contribution(&card, "deal_momentum"), 0.0);
        assert!((contribution(&card, "lifecycle_stage") - 3.0).abs() < 1e-9);
        assert_eq!(contribution(&card, "activity_frequency"), 0.0);
        assert_eq!(contribution(&card, "deal_value"), 0.0);
        assert_eq!(card.score, Score::new(4));
        assert_eq!(card.risk_level, Some(RiskLevel::Red));
    }

    #[test]
    fn no_sales_activity_and_no_deal_is_not_applicable() {
        let inputs = ScoreInputs {
            lifecycle_stage: Some("customer".into()),
            updates_in_window: 20,
            ..ScoreInputs::default()
        };
        let card = score_customer(&ModelConfig::default(), &inputs, now());
        assert_eq!(card.score, None);
        assert_eq!(card.risk_level, None);
        assert!(card.factors.is_empty());
    }

    #[test]
    fn a_lost_deal_alone_is_enough_for_a_score() {
        let inputs = ScoreInputs {
            deal_count: 1,
            ..ScoreInputs::default()
        };
        let card = score_customer(&ModelConfig::default(), &inputs, now());
        assert_eq!(card.score, Score::new(0));
        assert_eq!(card.risk_level, Some(RiskLevel::Red));
        assert_eq!(card.factors[0].input, FactorInput::Missing);
    }

    #[test]
    fn recency_is_full_today_half_after_one_half_life_and_never_negative_for_future_dates() {
        let config = ModelConfig::default();
        let at = |days: i64| ScoreInputs {
            last_activity_at: Some(now() - Duration::days(days)),
            ..ScoreInputs::default()
        };
        let value = |inputs: &ScoreInputs| score_customer(&config, inputs, now()).factors[0].value;
        assert_eq!(value(&at(0)), 1.0);
        assert!((value(&at(14)) - 0.5).abs() < 1e-12);
        assert!((value(&at(28)) - 0.25).abs() < 1e-12);
        assert_eq!(
            value(&at(-3)),
            1.0,
            "activity stamped in the future counts as today"
        );
    }

    #[test]
    fn deal_momentum_is_the_mean_probability_and_zero_without_open_deals() {
        let config = ModelConfig::default();
        let with = |p: Option<f64>| ScoreInputs {
            deal_count: 2,
            open_deal_probability: p,
            ..ScoreInputs::default()
        };
        assert_eq!(
            score_customer(&config, &with(None), now()).factors[1].value,
            0.0
        );
        assert_eq!(
            score_customer(&config, &with(Some(0.35)), now()).factors[1].value,
            0.35
        );
        assert_eq!(
            score_customer(&config, &with(Some(1.0)), now()).factors[1].value,
            1.0
        );
    }

    #[test]
    fn lifecycle_stages_take_their_documented_values_and_unknown_ones_zero() {
        let config = ModelConfig::default();
        for (stage, expected) in [
            ("subscriber", 0.1),
            ("lead", 0.2),
            ("marketingqualifiedlead", 0.35),
            ("salesqualifiedlead", 0.5),
            ("opportunity", 0.65),
            ("customer", 0.9),
            ("evangelist", 1.0),
            ("other", 0.0),
            ("1234567", 0.0),
        ] {
            assert_eq!(config.lifecycle_value(Some(stage)), expected, "{stage}");
        }
        assert_eq!(config.lifecycle_value(None), 0.0);
    }

    #[test]
    fn activity_frequency_saturates_at_the_target() {
        let config = ModelConfig::default();
        let with = |n| ScoreInputs {
            deal_count: 1,
            updates_in_window: n,
            ..ScoreInputs::default()
        };
        assert_eq!(
            score_customer(&config, &with(0), now()).factors[3].value,
            0.0
        );
        assert_eq!(
            score_customer(&config, &with(4), now()).factors[3].value,
            0.5
        );
        assert_eq!(
            score_customer(&config, &with(8), now()).factors[3].value,
            1.0
        );
        assert_eq!(
            score_customer(&config, &with(80), now()).factors[3].value,
            1.0
        );
    }

    #[test]
    fn deal_value_is_capped_at_twice_the_mean_and_zero_without_a_mean() {
        let config = ModelConfig::default();
        let with = |amount, mean| ScoreInputs {
            deal_count: 1,
            deal_amount_cents: amount,
            org_mean_deal_cents: mean,
            ..ScoreInputs::default()
        };
        let value = |i: &ScoreInputs| score_customer(&config, i, now()).factors[4].value;
        assert_eq!(value(&with(100, Some(100.0))), 0.5);
        assert_eq!(value(&with(200, Some(100.0))), 1.0);
        assert_eq!(value(&with(1_000, Some(100.0))), 1.0);
        assert_eq!(value(&with(100, None)), 0.0);
        assert_eq!(value(&with(100, Some(0.0))), 0.0);
        assert_eq!(value(&with(-5, Some(100.0))), 0.0);
    }

    #[test]
    fn a_day_of_decay_moves_a_score_across_the_healthy_band() {
        let config = ModelConfig::default();
        let inputs = ScoreInputs {
            last_activity_at: Some(now()),
            deal_count: 1,
            open_deal_probability: Some(0.6),
            lifecycle_stage: Some("customer".into()),
            updates_in_window: 8,
            deal_amount_cents: 0,
            org_mean_deal_cents: Some(1.0),
        };
        // Today: 25 + 12 + 13.5 + 20 = 70.5 -> 71 healthy. A day later recency is
        // 25 x 0.5^(1/14) = 23.79 -> 69.29 -> 69 at risk.
        let today = score_customer(&config, &inputs, now());
        let tomorrow = score_customer(&config, &inputs, now() + Duration::days(1));
        assert_eq!(today.score, Score::new(71));
        assert_eq!(today.risk_level, Some(RiskLevel::Green));
        assert_eq!(tomorrow.score, Score::new(69));
        assert_eq!(tomorrow.risk_level, Some(RiskLevel::Yellow));
    }

    #[test]
    fn the_default_config_is_valid_and_each_broken_field_is_named() {
        assert_eq!(ModelConfig::default().validate(), Vec::new());
        let mut config = ModelConfig::default();
        config.weights.deal_value = 25.0;
        assert_eq!(config.validate()[0].field, "weights");
        assert!(config.validate()[0].message.contains("105"));

        let mut config = ModelConfig::default();
        config.weights.deal_momentum = -5.0;
        config.weights.deal_value = 45.0;
        assert_eq!(config.validate()[0].field, "weights.deal_momentum");

        let mut config = ModelConfig::default();
        config.thresholds.at_risk_min = 70;
        assert_eq!(config.validate()[0].field, "thresholds.at_risk_min");

        let mut config = ModelConfig::default();
        config.thresholds.healthy_min = 101;
        assert_eq!(config.validate()[0].field, "thresholds.healthy_min");

        let mut config = ModelConfig::default();
        config.engagement_recency.half_life_days = 0.0;
        config.activity_frequency.target_updates = 0;
        config.activity_frequency.window_days = 91;
        config.lifecycle_stage.values.insert("lead".into(), 1.5);
        config.lifecycle_stage.other_value = f64::NAN;
        config.deal_value.cap_multiple_of_mean = -1.0;
        config.alerts.drop_points = 101;
        config.alerts.drop_window_days = 0;
        let fields: Vec<String> = config.validate().into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "engagement_recency.half_life_days",
                "activity_frequency.target_updates",
                "activity_frequency.window_days",
                "lifecycle_stage.values.lead",
                "lifecycle_stage.other_value",
                "deal_value.cap_multiple_of_mean",
                "alerts.drop_points",
                "alerts.drop_window_days",
            ]
        );
    }

    #[test]
    fn a_company_takes_its_contacts_most_valuable_stage() {
        let config = ModelConfig::default();
        assert_eq!(
            best_lifecycle_stage(&config, ["lead", "customer", "opportunity"]),
            Some("customer".into())
        );
        assert_eq!(best_lifecycle_stage(&config, []), None);
    }

    #[test]
    fn the_top_factor_is_the_one_that_moved_most_either_way() {
        assert_eq!(
            top_factor(&[1.0, -3.0, 0.0, 2.0, 0.0]),
            Some("deal_momentum")
        );
        assert_eq!(top_factor(&[]), None);
        assert_eq!(contribution_deltas(&[], &[1.0; 5]), Vec::<f64>::new());
        assert_eq!(contribution_deltas(&[1.0; 5], &[2.0; 5]), vec![1.0; 5]);
    }

    fn any_inputs() -> impl Strategy<Value = ScoreInputs> {
        (
            proptest::option::of(0i64..400 * 86_400),
            0u32..5,
            proptest::option::of(0.0..=1.0f64),
            proptest::option::of(proptest::sample::select(vec![
                "lead",
                "customer",
                "evangelist",
                "x",
            ])),
            0u32..40,
            0i64..10_000_000,
            proptest::option::of(0.0..5_000_000.0f64),
        )
            .prop_map(|(ago, deals, probability, stage, updates, amount, mean)| {
                ScoreInputs {
                    last_activity_at: ago.map(|s| now() - Duration::seconds(s)),
                    deal_count: deals,
                    open_deal_probability: probability,
                    lifecycle_stage: stage.map(str::to_owned),
                    updates_in_window: updates,
                    deal_amount_cents: amount,
                    org_mean_deal_cents: mean,
                }
            })
    }

    proptest! {
        #[test]
        fn every_score_is_0_to_100_and_the_rounded_sum_of_its_contributions(inputs in any_inputs()) {
            let card = score_customer(&ModelConfig::default(), &inputs, now());
            if let Some(score) = card.score {
                let sum: f64 = card.contributions().iter().sum();
                prop_assert!(score.value() <= 100);
                prop_assert_eq!(Score::from_points(sum), score);
                prop_assert_eq!(card.factors.len(), 5);
                for factor in &card.factors {
                    prop_assert!((0.0..=1.0).contains(&factor.value), "{factor:?}");
                }
            } else {
                prop_assert!(inputs.last_activity_at.is_none() && inputs.deal_count == 0);
            }
        }

        #[test]
        fn time_passing_never_raises_a_score(inputs in any_inputs(), hours in 0i64..2_000) {
            let config = ModelConfig::default();
            let before = score_customer(&config, &inputs, now());
            let after = score_customer(&config, &inputs, now() + Duration::hours(hours));
            prop_assert!(after.score <= before.score);
        }

        #[test]
        fn more_recent_activity_never_lowers_a_score(inputs in any_inputs(), hours in 0i64..2_000) {
            let config = ModelConfig::default();
            let mut later = inputs.clone();
            later.last_activity_at = Some(
                inputs.last_activity_at.map_or(now(), |at| at + Duration::hours(hours)).min(now()),
            );
            prop_assert!(
                score_customer(&config, &later, now()).score
                    >= score_customer(&config, &inputs, now()).score
            );
        }
    }
}
