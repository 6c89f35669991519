//! CRM search, and walking a modified-since window so that every record is returned once,
//! past HubSpot's 10,000-results-per-query cap and while records change.
//!
//! The walk sorts ascending by the last-modified property in pages of 200 and never pages by
//! `after`: every query starts at the top, filtered `GTE` the last value the previous page
//! ended on, and ids already returned are dropped (see `Walk::advance` for why). Since no query
//! pages past its first 200 results, the cap is never reached. Half a page or more sharing one
//! timestamp is walked on its own by `hs_object_id` (`EQ` the timestamp, `GT` the last id,
//! sorted by id), then the walk resumes with `GT` the timestamp.

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

/// Ids already returned. HubSpot's ids are numbers; anything else is kept as text.
#[derive(Default)]
struct Seen {
    numeric: HashSet<u64>,
    other: HashSet<String>,
}

impl Seen {
    /// True the first time `id` is offered.
    fn insert(&mut self, id: &str) -> bool {
        match id.parse::<u64>() {
            Ok(n) => self.numeric.insert(n),
            Err(_) => self.other.insert(id.to_owned()),
        }
    }
}

struct Walk {
    client: HubSpotClient,
    query: ModifiedSince,
    property: &'static str,
    mode: Mode,
    /// Every id returned so far: a record modified during the walk moves to its end and is
    /// met again there.
    seen: Seen,
    done: bool,
    /// The next query would repeat the previous one exactly (a full page whose records carry
    /// no readable last-modified value or id): stop with an error rather than loop forever.
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
            seen: Seen::default(),
            done: false,
            stalled: false,
            buffer: VecDeque::new(),
        }
    }

    /// The next query: always the first page (no `after`), bounded below by where the walk is.
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
            after: None,
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
                        "cannot continue the walk: a full page of results carries no readable \
                         {} or hs_object_id to continue from",
                        self.property
                    ),
                });
            }
            let page = self
                .client
                .search(&self.query.object_type, &self.request())
                .await?;
            self.take_page(page.results);
        }
    }

    /// Returns the page's records not returned before and moves the walk past the page.
    fn take_page(&mut self, records: Vec<CrmObject>) {
        let full = records.len() >= PAGE_SIZE as usize;
        // The page's highest last-modified value, how many records carry it, and its highest id.
        let mut last_modified: Option<i64> = None;
        let mut at_last_modified = 0usize;
        let mut last_id: Option<u64> = None;
        for record in records {
            if let Some(modified) = record.property(self.property).and_then(epoch_ms) {
                match last_modified {
                    Some(last) if modified < last => {}
                    Some(last) if modified == last => at_last_modified += 1,
                    _ => {
                        last_modified = Some(modified);
                        at_last_modified = 1;
                    }
                }
            }
            if let Ok(id) = record.id.parse::<u64>() {
                last_id = Some(last_id.map_or(id, |last| last.max(id)));
            }
            if self.seen.insert(&record.id) {
                self.buffer.push_back(record);
            }
        }
        self.advance(full, last_modified, at_last_modified, last_id);
    }

    /// The next query. A page that was not full was the end of its query. After a full page
    /// the walk continues from the page's last value *inclusive* (`GTE`, re-reading the records
    /// at that value, which `seen` drops), never by offset: HubSpot's `after` is a position in
    /// a list that shifts when a record earlier in it is modified or deleted, so paging by it
    /// skips a record at every page boundary. When half a page or more shares that last value,
    /// continuing from it would make little or no progress, so the records at that instant are
    /// walked on their own by id (`EQ` the value, `GT` the last id, sorted by id).
    fn advance(
        &mut self,
        full: bool,
        last_modified: Option<i64>,
        at_last_modified: usize,
        last_id: Option<u64>,
    ) {
        let previous = self.mode;
        self.mode = match (self.mode, full) {
            (Mode::Window { .. }, false) => {
                self.done = true;
                return;
            }
            // The tied instant is exhausted: continue strictly after it.
            (Mode::Tie { at, .. }, false) => Mode::Window {
                lower: at,
                strict: true,
            },
            (Mode::Tie { at, after_id }, true) => Mode::Tie {
                at,
                after_id: last_id.unwrap_or(after_id),
            },
            (Mode::Window { lower, strict }, true) => match last_modified {
                Some(last) if at_last_modified >= PAGE_SIZE as usize / 2 => Mode::Tie {
                    at: last,
                    after_id: 0,
                },
                Some(last) => Mode::Window {
                    lower: last,
                    strict: false,
                },
                None => Mode::Window { lower, strict },
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

    /// A full page: ids from `first_id`, the first `spread` at distinct instants from
    /// `from_ms`, the rest at the instant after them.
    fn page(first_id: u64, from_ms: i64, spread: usize) -> Vec<CrmObject> {
        (0..PAGE_SIZE as usize)
            .map(|i| {
                let at = from_ms + i64::try_from(i.min(spread)).unwrap();
                record(&(first_id + i as u64).to_string(), Some(&at.to_string()))
            })
            .collect()
    }

    #[test]
    fn a_full_page_continues_from_its_last_value_inclusive_and_never_by_offset() {
        let mut walk = walk();
        walk.take_page(page(1, 100, 199));
        assert_eq!(walk.buffer.len(), 200);
        assert_eq!(
            walk.mode,
            Mode::Window {
                lower: 299,
                strict: false
            }
        );
        assert_eq!(walk.request().after, None);
        // The next page starts with the record at 299 again; it is not returned twice.
        walk.buffer.clear();
        walk.take_page(page(200, 299, 199));
        assert_eq!(walk.buffer.len(), 199);
    }

    #[test]
    fn half_a_page_sharing_the_last_value_is_walked_by_id() {
        let mut walk = walk();
        walk.take_page(page(1, 100, 100));
        assert_eq!(
            walk.mode,
            Mode::Tie {
                at: 200,
                after_id: 0
            }
        );
        let request = walk.request();
        assert_eq!(request.sorts[0].property_name, "hs_object_id");
        walk.take_page(page(500, 200, 0));
        assert_eq!(
            walk.mode,
            Mode::Tie {
                at: 200,
                after_id: 699
            }
        );
        walk.take_page(vec![record("700", Some("200"))]);
        assert_eq!(
            walk.mode,
            Mode::Window {
                lower: 200,
                strict: true
            }
        );
        walk.take_page(vec![record("3", Some("201"))]);
        assert!(walk.done);
    }

    #[test]
    fn a_full_page_whose_records_give_nothing_to_continue_from_stops_instead_of_looping() {
        let mut walk = walk();
        let records = (0..PAGE_SIZE)
            .map(|i| record(&format!("x{i}"), None))
            .collect();
        walk.take_page(records);
        assert!(walk.stalled, "the same query would run again forever");
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
