//! Contact dedupe: HubSpot allows two contacts with the same e-mail (imports, merges in
//! flight), but hubscore scores one customer per address. The most recently updated
//! contact (`lastmodifieddate`) wins; on a tie, or with no date on either, the lower
//! HubSpot id wins, so every run and every service picks the same one whatever order the
//! records arrived in.
//!
//! One exception comes first: a live contact beats an archived (deleted) one. Deleting a
//! duplicate touches its `lastmodifieddate`, so by date alone the deleted copy would win
//! and the customer would vanish while a live contact still carries the address.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::HubSpotObjectId;
use crate::records::Customer;

/// Orders two customers with the same e-mail: `Greater` means `a` wins over `b`.
///
/// A live record beats an archived one; then a dated record beats an undated one; later
/// beats earlier; then the lower id wins. Use it to decide whether an incoming contact
/// replaces a stored one.
pub fn compare_recency(a: &Customer, b: &Customer) -> Ordering {
    b.archived
        .cmp(&a.archived)
        .then_with(|| a.source_updated_at.cmp(&b.source_updated_at))
        .then_with(|| b.external_id.cmp(&a.external_id))
}

/// A contact that lost to another with the same e-mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Superseded {
    /// The shared e-mail.
    pub email: String,
    /// The contact kept.
    pub winner: HubSpotObjectId,
    /// The contact dropped.
    pub loser: HubSpotObjectId,
}

/// The result of [`dedupe_by_email`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deduped {
    /// One customer per e-mail, ordered by e-mail.
    pub customers: Vec<Customer>,
    /// Every contact dropped, and which one it lost to, ordered by e-mail then loser id.
    pub superseded: Vec<Superseded>,
}

/// Keeps one customer per e-mail (e-mails are already normalised by the mapper). The
/// result does not depend on the input order.
pub fn dedupe_by_email(customers: impl IntoIterator<Item = Customer>) -> Deduped {
    let mut groups: BTreeMap<String, Vec<Customer>> = BTreeMap::new();
    for customer in customers {
        groups
            .entry(customer.email.clone())
            .or_default()
            .push(customer);
    }
    let mut kept = Vec::with_capacity(groups.len());
    let mut superseded = Vec::new();
    for (email, mut group) in groups {
        // Best first; the sort is total (ids are unique per portal, and equal ids compare
        // Equal only for copies of the same record).
        group.sort_by(|a, b| compare_recency(b, a));
        let mut members = group.into_iter();
        let Some(winner) = members.next() else {
            continue;
        };
        let mut losers: Vec<HubSpotObjectId> = members
            .map(|c| c.external_id)
            .filter(|id| *id != winner.external_id)
            .collect();
        losers.sort();
        losers.dedup();
        superseded.extend(losers.into_iter().map(|loser| Superseded {
            email: email.clone(),
            winner: winner.external_id,
            loser,
        }));
        kept.push(winner);
    }
    Deduped {
        customers: kept,
        superseded,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn customer(id: u64, email: &str, updated_secs: Option<i64>) -> Customer {
        Customer {
            external_id: HubSpotObjectId(id),
            email: email.into(),
            name: Some(format!("customer {id}")),
            company_name: None,
            phone: None,
            job_title: None,
            city: None,
            state: None,
            country: None,
            website: None,
            lead_status: None,
            lifecycle_stage: None,
            owner_id: None,
            last_activity_at: None,
            first_seen_at: None,
            source_updated_at: updated_secs.and_then(|s| Utc.timestamp_opt(s, 0).single()),
            archived: false,
            company_ids: vec![],
        }
    }

    fn ids(d: &Deduped) -> Vec<u64> {
        d.customers.iter().map(|c| c.external_id.0).collect()
    }

    #[test]
    fn the_most_recently_updated_contact_wins() {
        let d = dedupe_by_email([
            customer(1, "a@x.io", Some(200)),
            customer(2, "a@x.io", Some(100)),
        ]);
        assert_eq!(ids(&d), vec![1]);
        assert_eq!(
            d.superseded,
            vec![Superseded {
                email: "a@x.io".into(),
                winner: HubSpotObjectId(1),
                loser: HubSpotObjectId(2)
            }]
        );
    }

    #[test]
    fn equal_update_times_resolve_to_the_lower_id_in_any_order() {
        let a = customer(7, "a@x.io", Some(100));
        let b = customer(3, "a@x.io", Some(100));
        assert_eq!(ids(&dedupe_by_email([a.clone(), b.clone()])), vec![3]);
        assert_eq!(ids(&dedupe_by_email([b, a])), vec![3]);
    }

    #[test]
    fn a_dated_contact_beats_an_undated_one() {
        let d = dedupe_by_email([customer(1, "a@x.io", None), customer(9, "a@x.io", Some(1))]);
        assert_eq!(ids(&d), vec![9]);
    }

    #[test]
    fn different_emails_are_all_kept_in_email_order() {
        let d = dedupe_by_email([
            customer(1, "b@x.io", Some(1)),
            customer(2, "a@x.io", Some(1)),
            customer(3, "b@x.io", Some(5)),
        ]);
        assert_eq!(ids(&d), vec![2, 3]);
        assert_eq!(d.superseded.len(), 1);
    }

    #[test]
    fn a_live_contact_beats_a_more_recently_archived_one_in_any_order() {
        let deleted = Customer {
            archived: true,
            ..customer(1, "a@x.io", Some(500))
        };
        let live = customer(2, "a@x.io", Some(100));
        assert_eq!(
            ids(&dedupe_by_email([deleted.clone(), live.clone()])),
            vec![2]
        );
        assert_eq!(
            ids(&dedupe_by_email([live.clone(), deleted.clone()])),
            vec![2]
        );
        assert_eq!(compare_recency(&live, &deleted), Ordering::Greater);
        // Between two archived copies the date decides again.
        let older_deleted = Customer {
            archived: true,
            ..customer(3, "a@x.io", Some(50))
        };
        assert_eq!(ids(&dedupe_by_email([older_deleted, deleted])), vec![1]);
    }

    #[test]
    fn the_same_contact_twice_is_not_reported_as_superseding_itself() {
        let d = dedupe_by_email([
            customer(4, "a@x.io", Some(1)),
            customer(4, "a@x.io", Some(1)),
        ]);
        assert_eq!(ids(&d), vec![4]);
        assert!(d.superseded.is_empty());
    }
}
