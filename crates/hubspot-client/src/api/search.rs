//! CRM search, and walking a modified-since window past HubSpot's 10,000-results-per-query cap.
//!
//! The walk sorts ascending by the last-modified property in pages of 200. Before paging would
//! cross the cap it restarts the query from the last value seen with `GTE`, skipping the ids
//! already returned at that boundary value. If a whole capped query shares one timestamp, a
//! restart would make no progress, so that timestamp is walked on its own by `hs_object_id`
//! (`EQ` the timestamp, `GT` the last id, sorted by id), then the walk resumes with `GT`.

use std::collections::{HashSet, VecDeque};

use chrono::DateTime;
use futures::stream::{self, BoxStream, StreamExt};

use crate::client::{Call, HubSpotClient};
use crate::error::HubSpotError;
use crate::types::{
    CrmObject, Direction, Filter, FilterGroup, Operator, Page, SearchRequest, Sort,
};

/// HubSpot returns at most this many results per search query; paging further is a 400.
pub const SEARCH_RESULT_CAP: u64 = 10_000;
const PAGE_SIZE: u32 = 200;

/// The last-modified property HubSpot sorts and filters by for an object type.
pub fn last_modified_property(object_type: &str) -> &'static str {
    match object_type {
        "contacts" | "contact" | "0-1" => "lastmodifieddate",
        _ => "hs_lastmodifieddate",
    }
}

/// A modified-since window to walk.
#[derive(Debug, Clone)]
pub struct ModifiedSince {
    /// `contacts`, `companies`, `deals`, ...
    pub object_type: String,
    /// Records modified at or after this instant (epoch ms).
    pub since_ms: i64,
    /// Records modified before this instant (epoch ms); open-ended when `None`.
    pub until_ms: Option<i64>,
    /// Properties to return (the last-modified property is always added).
    pub properties: Vec<String>,
    /// More filters ANDed with the window.
    pub extra_filters: Vec<Filter>,
}

impl HubSpotClient {
    /// One search request (one page). Uses the portal's search budget.
    pub async fn search(
        &self,
        object_type: &str,
        request: &SearchRequest,
    ) -> Result<Page<CrmObject>, HubSpotError> {
        let path = format!("{}/search", self.objects_path(object_type));
        Ok(self
            .execute(&Call::post("objects.search", path, request)?.search())
            .await?
            .1)
    }

    /// Every record modified in the window, oldest first, each once, however many there are.
    pub fn search_modified_since(
        &self,
        query: ModifiedSince,
    ) -> BoxStream<'static, Result<CrmObject, HubSpotError>> {
        let walk = Walk::new(self.clone(), query);
        stream::try_unfold(walk, |mut walk| async move {
            let batch = walk.next_batch().await?;
            Ok(batch.map(|records| (stream::iter(records.into_iter().map(Ok)), walk)))
        })
        .flat_map(|result| match result {
            Ok(records) => records.left_stream(),
            Err(error) => stream::iter(vec![Err(error)]).right_stream(),
        })
        .boxed()
    }
}

/// Epoch ms of a last-modified value (ISO 8601 or epoch-ms text).
fn epoch_ms(value: &str) -> Option<i64> {
    value.parse::<i64>().ok().or_else(|| {
        DateTime::parse_from_rfc3339(value)
            .ok()
            .map(|t| t.timestamp_millis())
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// Sorted by last-modified from `lower` (inclusive unless `strict`).
    Window { lower: i64, strict: bool },
    /// Every record modified exactly at `at`, by id above `after_id`.
    Tie { at: i64, after_id: u64 },
}

struct Walk {
    client: HubSpotClient,
    query: ModifiedSince,
    property: &'static str,
    mode: Mode,
    after: Option<String>,
    /// Highest last-modified value returned so far, and the ids returned with exactly it.
    boundary: Option<i64>,
    boundary_ids: HashSet<String>,
    /// Highest id returned in tie mode.
    last_tie_id: u64,
    done: bool,
    /// A restart would repeat the previous query exactly (records without a readable
    /// last-modified value or id): stop with an error rather than loop forever.
    stalled: bool,
    buffer: VecDeque<CrmObject>,
}

impl Walk {
    fn new(client: HubSpotClient, query: ModifiedSince) -> Self {
        let property = last_modified_property(&query.object_type);
        let mode = Mode::Window {
            lower: query.since_ms,
            strict: false,
        };
        Self {
            client,
            query,
            property,
            mode,
            after: None,
            boundary: None,
            boundary_ids: HashSet::new(),
            last_tie_id: 0,
            done: false,
            stalled: false,
            buffer: VecDeque::new(),
        }
    }

    fn request(&self) -> SearchRequest {
        let mut filters = self.query.extra_filters.clone();
        let sort_by = match self.mode {
            Mode::Window { lower, strict } => {
                let op = if strict { Operator::Gt } else { Operator::Gte };
                filters.push(Filter::new(self.property, op, lower.to_string()));
                if let Some(until) = self.query.until_ms {
                    filters.push(Filter::new(self.property, Operator::Lt, until.to_string()));
                }
                self.property
            }
            Mode::Tie { at, after_id } => {
                filters.push(Filter::new(self.property, Operator::Eq, at.to_string()));
                filters.push(Filter::new(
                    "hs_object_id",
                    Operator::Gt,
                    after_id.to_string(),
                ));
                "hs_object_id"
            }
        };
        let mut properties = self.query.properties.clone();
        for needed in [self.property, "hs_object_id"] {
            if !properties.iter().any(|p| p == needed) {
                properties.push(needed.to_owned());
            }
        }
        SearchRequest {
            filter_groups: vec![FilterGroup { filters }],
            sorts: vec![Sort {
                property_name: sort_by.to_owned(),
                direction: Direction::Ascending,
            }],
            properties,
            query: None,
            limit: Some(PAGE_SIZE),
            after: self.after.clone(),
        }
    }

    /// The next non-empty batch of new records, or `None` at the end.
    async fn next_batch(&mut self) -> Result<Option<Vec<CrmObject>>, HubSpotError> {
        loop {
            if !self.buffer.is_empty() {
                return Ok(Some(self.buffer.drain(..).collect()));
            }
            if self.done {
                return Ok(None);
            }
            if self.stalled {
                return Err(HubSpotError::Decode {
                    endpoint: "objects.search",
                    message: format!(
                        "cannot walk past the 10,000-result cap: the results carry no readable \
                         {} or hs_object_id to restart from",
                        self.property
                    ),
                });
            }
            let page = self
                .client
                .search(&self.query.object_type, &self.request())
                .await?;
            let next_after = page.next_after().map(str::to_owned);
            for record in page.results {
                self.accept(record);
            }
            self.advance(next_after);
        }
    }

    fn accept(&mut self, record: CrmObject) {
        let modified = record.property(self.property).and_then(epoch_ms);
        if let (Mode::Tie { .. }, Ok(id)) = (self.mode, record.id.parse::<u64>()) {
            self.last_tie_id = self.last_tie_id.max(id);
        }
        if let Some(modified) = modified {
            match self.boundary {
                Some(b) if modified == b => {
                    if !self.boundary_ids.insert(record.id.clone()) {
                        return; // already returned before a restart
                    }
                }
                Some(b) if modified < b => {
                    // Older than the boundary: only possible right after a restart, for records
                    // HubSpot reindexed meanwhile; they were returned already or are out of range.
                    return;
                }
                _ => {
                    self.boundary = Some(modified);
                    self.boundary_ids.clear();
                    self.boundary_ids.insert(record.id.clone());
                }
            }
        }
        self.buffer.push_back(record);
    }

    fn advance(&mut self, next_after: Option<String>) {
        let Some(next) = next_after else {
            match self.mode {
                Mode::Window { .. } => self.done = true,
                // The tied timestamp is exhausted: continue strictly after it.
                Mode::Tie { at, .. } => {
                    self.mode = Mode::Window {
                        lower: at,
                        strict: true,
                    };
                    self.after = None;
                }
            }
            return;
        };
        let offset: u64 = next.parse().unwrap_or(0);
        if offset + u64::from(PAGE_SIZE) <= SEARCH_RESULT_CAP {
            self.after = Some(next);
            return;
        }
        // The next page would cross the cap: restart from where we are.
        self.after = None;
        let previous = self.mode;
        self.mode = match self.mode {
            Mode::Window { lower, strict } => match self.boundary {
                // A whole capped query at one instant: walk that instant by id.
                Some(b) if b == lower && !strict => {
                    self.last_tie_id = 0;
                    Mode::Tie { at: b, after_id: 0 }
                }
                Some(b) => Mode::Window {
                    lower: b,
                    strict: false,
                },
                None => Mode::Window { lower, strict },
            },
            Mode::Tie { at, .. } => Mode::Tie {
                at,
                after_id: self.last_tie_id,
            },
        };
        self.stalled = self.mode == previous;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_use_lastmodifieddate_and_others_hs_lastmodifieddate() {
        assert_eq!(last_modified_property("contacts"), "lastmodifieddate");
        assert_eq!(last_modified_property("0-1"), "lastmodifieddate");
        assert_eq!(last_modified_property("deals"), "hs_lastmodifieddate");
    }

    fn walk() -> Walk {
        let tokens = std::sync::Arc::new(crate::StaticToken::new("pat-na1-test"));
        let client = HubSpotClient::builder(crate::ClientConfig::default(), tokens)
            .build()
            .unwrap();
        Walk::new(
            client,
            ModifiedSince {
                object_type: "deals".into(),
                since_ms: 5,
                until_ms: None,
                properties: vec![],
                extra_filters: vec![],
            },
        )
    }

    fn record(id: &str, modified: Option<&str>) -> CrmObject {
        serde_json::from_value(serde_json::json!({
            "id": id,
            "properties": {"hs_lastmodifieddate": modified},
        }))
        .unwrap()
    }

    #[test]
    fn a_capped_walk_whose_records_give_nothing_to_restart_from_stops_instead_of_looping() {
        let mut walk = walk();
        walk.accept(record("1", None));
        // The next page would cross the 10,000 cap.
        walk.advance(Some("9900".to_owned()));
        assert!(walk.stalled, "the same query would run again forever");
    }

    #[test]
    fn a_capped_walk_restarts_from_the_last_value_seen() {
        let mut walk = walk();
        walk.accept(record("1", Some("1767225600000")));
        walk.advance(Some("9900".to_owned()));
        assert!(!walk.stalled);
        assert_eq!(
            walk.mode,
            Mode::Window {
                lower: 1_767_225_600_000,
                strict: false
            }
        );
    }

    #[test]
    fn last_modified_values_parse_as_iso_or_epoch_ms() {
        assert_eq!(
            epoch_ms("2026-01-01T00:00:00.000Z"),
            Some(1_767_225_600_000)
        );
        assert_eq!(epoch_ms("1767225600000"), Some(1_767_225_600_000));
        assert_eq!(epoch_ms("yesterday"), None);
    }
}
