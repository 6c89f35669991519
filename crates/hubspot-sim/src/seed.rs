//! Deterministic seeding of a portal with realistic CRM data: owners, companies,
//! contacts (some without email, some sharing one), deals across pipeline stages,
//! recent and old sales activity, custom properties and associations.
//!
//! The same seed, counts and anchor give the same data. Seeding emits no webhooks.

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde::{Deserialize, Serialize};

use crate::catalogue::{LEAD_STATUSES, LIFECYCLE_STAGES};
use crate::model::{ObjectType, Owner, Record, iso, now_ms};
use crate::state::PortalData;

/// `POST /_sim/portals/{id}/seed`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SeedRequest {
    /// Random seed.
    pub seed: u64,
    /// Contacts to create.
    pub contacts: usize,
    /// Companies to create.
    pub companies: usize,
    /// Deals to create.
    pub deals: usize,
    /// Owners to create.
    pub owners: usize,
    /// "Now" for relative dates (ms); defaults to the start of the current UTC day,
    /// so a seed gives identical data all day.
    pub anchor_ms: Option<i64>,
}

impl Default for SeedRequest {
    fn default() -> Self {
        SeedRequest {
            seed: 42,
            contacts: 100,
            companies: 20,
            deals: 40,
            owners: 10,
            anchor_ms: None,
        }
    }
}

/// What seeding created.
#[derive(Debug, Clone, Serialize)]
pub struct SeedCounts {
    /// Contacts.
    pub contacts: usize,
    /// Companies.
    pub companies: usize,
    /// Deals.
    pub deals: usize,
    /// Owners.
    pub owners: usize,
    /// Association pairs.
    pub associations: usize,
}

const FIRST: [&str; 24] = [
    "Ada",
    "Grace",
    "Alan",
    "Linus",
    "Margaret",
    "Ken",
    "Barbara",
    "Dennis",
    "Frances",
    "John",
    "Radia",
    "Guido",
    "Hedy",
    "Tim",
    "Katherine",
    "Edsger",
    "Sophie",
    "Niklaus",
    "Annie",
    "Bjarne",
    "Mary",
    "Donald",
    "Jean",
    "Vint",
];
const LAST: [&str; 24] = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Torvalds",
    "Hamilton",
    "Thompson",
    "Liskov",
    "Ritchie",
    "Allen",
    "McCarthy",
    "Perlman",
    "Rossum",
    "Lamarr",
    "Berners-Lee",
    "Johnson",
    "Dijkstra",
    "Wilson",
    "Wirth",
    "Easley",
    "Stroustrup",
    "Keller",
    "Knuth",
    "Bartik",
    "Cerf",
];
const ADJ: [&str; 16] = [
    "North", "Blue", "Bright", "Silver", "Rapid", "Quiet", "Golden", "Iron", "Clear", "Summit",
    "Harbor", "Pine", "Cedar", "Atlas", "Nova", "Prime",
];
const NOUN: [&str; 16] = [
    "wind", "river", "stone", "field", "bridge", "forge", "peak", "works", "light", "path",
    "point", "gate", "craft", "line", "wave", "core",
];
const SUFFIX: [&str; 6] = ["Inc", "GmbH", "Ltd", "LLC", "Group", "Labs"];
const CITIES: [(&str, &str); 8] = [
    ("Boston", "United States"),
    ("Austin", "United States"),
    ("Berlin", "Germany"),
    ("Dublin", "Ireland"),
    ("Paris", "France"),
    ("Toronto", "Canada"),
    ("Sydney", "Australia"),
    ("Tokyo", "Japan"),
];
const TITLES: [&str; 8] = [
    "CEO",
    "CTO",
    "VP Sales",
    "Head of Ops",
    "Engineer",
    "Buyer",
    "Marketing Manager",
    "Support Lead",
];
const INDUSTRIES: [&str; 6] = [
    "COMPUTER_SOFTWARE",
    "FINANCIAL_SERVICES",
    "HOSPITAL_HEALTH_CARE",
    "RETAIL",
    "MARKETING_AND_ADVERTISING",
    "LOGISTICS_AND_SUPPLY_CHAIN",
];
const PRODUCTS: [&str; 6] = [
    "Platform",
    "Renewal",
    "Expansion",
    "Pilot",
    "Support add-on",
    "Training",
];

const DAY: i64 = 86_400_000;

struct Names {
    map: std::collections::HashMap<&'static str, Arc<str>>,
}

impl Names {
    fn new(data: &PortalData, ot: ObjectType, names: &[&'static str]) -> Names {
        Names {
            map: names
                .iter()
                .filter_map(|n| data.schema(ot).intern(n).map(|k| (*n, k)))
                .collect(),
        }
    }

    fn set(&self, r: &mut Record, name: &'static str, value: String) {
        if let Some(k) = self.map.get(name) {
            r.props.insert(k.clone(), value);
        }
    }
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// Seeds `data` (adding to what is there).
pub fn seed(data: &mut PortalData, req: &SeedRequest) -> SeedCounts {
    let mut rng = StdRng::seed_from_u64(req.seed);
    let anchor = req
        .anchor_ms
        .unwrap_or_else(|| now_ms().div_euclid(DAY) * DAY);
    let mut associations = 0;

    // Owners.
    let first_owner = data.owners.keys().next_back().map_or(70_000_001, |k| k + 1);
    for i in 0..req.owners as u64 {
        let first = FIRST[(i as usize) % FIRST.len()];
        let last = LAST[(i as usize * 7 + 3) % LAST.len()];
        let id = first_owner + i;
        data.owners.insert(
            id,
            Owner {
                id,
                user_id: 9_000_000 + (id - 70_000_000),
                email: format!(
                    "{}.{}@sim-sales.example",
                    first.to_lowercase(),
                    last.to_lowercase()
                ),
                first_name: first.to_owned(),
                last_name: last.to_owned(),
                created_ms: anchor - 400 * DAY,
                archived: false,
            },
        );
    }
    let owner_ids: Vec<u64> = data
        .owners
        .values()
        .filter(|o| !o.archived)
        .map(|o| o.id)
        .collect();
    let owner = |rng: &mut StdRng| -> Option<String> {
        if owner_ids.is_empty() || rng.random_bool(0.1) {
            None
        } else {
            Some(pick(rng, &owner_ids).to_string())
        }
    };
    let activity = |rng: &mut StdRng| -> i64 {
        // Most records had recent activity; a long tail went quiet months ago.
        if rng.random_bool(0.6) {
            anchor - rng.random_range(0..30 * DAY)
        } else {
            anchor - rng.random_range(60 * DAY..720 * DAY)
        }
    };

    // Companies.
    let cn = Names::new(
        data,
        ObjectType::Companies,
        &[
            "hs_object_id",
            "createdate",
            "hs_lastmodifieddate",
            "name",
            "domain",
            "industry",
            "numberofemployees",
            "annualrevenue",
            "city",
            "country",
            "lifecyclestage",
            "hubspot_owner_id",
            "notes_last_updated",
            "hs_last_sales_activity_timestamp",
            "hs_last_sales_activity_date",
            "support_plan",
            "contract_renewal_date",
        ],
    );
    let mut company_ids = Vec::with_capacity(req.companies);
    let mut company_names = Vec::with_capacity(req.companies);
    for i in 0..req.companies {
        let store = data.store_mut(ObjectType::Companies);
        let id = store.next_id;
        store.next_id += 1;
        let created = anchor - rng.random_range(30 * DAY..1000 * DAY);
        let modified = (created + rng.random_range(0..30 * DAY)).min(anchor);
        let adj = pick(&mut rng, &ADJ);
        let noun = pick(&mut rng, &NOUN);
        let name = format!("{adj}{noun} {}", pick(&mut rng, &SUFFIX));
        let mut r = Record {
            id,
            props: Default::default(),
            created_ms: created,
            updated_ms: modified,
            archived_ms: None,
        };
        cn.set(&mut r, "hs_object_id", id.to_string());
        cn.set(&mut r, "createdate", iso(created));
        cn.set(&mut r, "hs_lastmodifieddate", iso(modified));
        cn.set(
            &mut r,
            "domain",
            format!("{}{}{i}.example", adj.to_lowercase(), noun),
        );
        cn.set(
            &mut r,
            "industry",
            (*pick(&mut rng, &INDUSTRIES)).to_owned(),
        );
        let employees: u32 = rng.random_range(5..5000);
        cn.set(&mut r, "numberofemployees", employees.to_string());
        cn.set(
            &mut r,
            "annualrevenue",
            (u64::from(employees) * rng.random_range(50_000..250_000u64)).to_string(),
        );
        let (city, country) = pick(&mut rng, &CITIES);
        cn.set(&mut r, "city", (*city).to_owned());
        cn.set(&mut r, "country", (*country).to_owned());
        cn.set(
            &mut r,
            "lifecyclestage",
            (if rng.random_bool(0.6) {
                "customer"
            } else {
                "opportunity"
            })
            .to_owned(),
        );
        if let Some(o) = owner(&mut rng) {
            cn.set(&mut r, "hubspot_owner_id", o);
        }
        let act = activity(&mut rng);
        cn.set(&mut r, "notes_last_updated", iso(act));
        cn.set(&mut r, "hs_last_sales_activity_timestamp", iso(act));
        cn.set(&mut r, "hs_last_sales_activity_date", iso(act));
        if rng.random_bool(0.7) {
            cn.set(
                &mut r,
                "support_plan",
                (*pick(&mut rng, &["basic", "premium", "enterprise"])).to_owned(),
            );
            cn.set(
                &mut r,
                "contract_renewal_date",
                iso(anchor + rng.random_range(-60..365) * DAY)[..10].to_owned(),
            );
        }
        cn.set(&mut r, "name", name.clone());
        data.store_mut(ObjectType::Companies).live.insert(id, r);
        company_ids.push(id);
        company_names.push(name);
    }

    // Contacts.
    let ctn = Names::new(
        data,
        ObjectType::Contacts,
        &[
            "hs_object_id",
            "createdate",
            "lastmodifieddate",
            "hs_lastmodifieddate",
            "email",
            "firstname",
            "lastname",
            "phone",
            "company",
            "jobtitle",
            "city",
            "country",
            "lifecyclestage",
            "hs_lead_status",
            "hubspot_owner_id",
            "notes_last_updated",
            "hs_last_sales_activity_timestamp",
            "hs_last_sales_activity_date",
            "nps_score",
            "preferred_channel",
        ],
    );
    let mut contact_ids = Vec::with_capacity(req.contacts);
    let mut last_email: Option<String> = None;
    for _ in 0..req.contacts {
        let store = data.store_mut(ObjectType::Contacts);
        let id = store.next_id;
        store.next_id += 1;
        let created = anchor - rng.random_range(DAY..900 * DAY);
        let modified = (created + rng.random_range(0..60 * DAY)).min(anchor);
        let first = *pick(&mut rng, &FIRST);
        let last = *pick(&mut rng, &LAST);
        let company = if company_ids.is_empty() || rng.random_bool(0.15) {
            None
        } else {
            Some(rng.random_range(0..company_ids.len()))
        };
        let mut r = Record {
            id,
            props: Default::default(),
            created_ms: created,
            updated_ms: modified,
            archived_ms: None,
        };
        ctn.set(&mut r, "hs_object_id", id.to_string());
        ctn.set(&mut r, "createdate", iso(created));
        ctn.set(&mut r, "lastmodifieddate", iso(modified));
        ctn.set(&mut r, "hs_lastmodifieddate", iso(modified));
        ctn.set(&mut r, "firstname", first.to_owned());
        ctn.set(&mut r, "lastname", last.to_owned());
        let roll: f64 = rng.random();
        let email = if roll < 0.05 {
            None // some contacts have no email
        } else if roll < 0.07 && last_email.is_some() {
            last_email.clone() // and a few share one (imports do that)
        } else {
            Some(format!(
                "{}.{}{id}@{}",
                first.to_lowercase(),
                last.to_lowercase().replace('-', ""),
                match company {
                    Some(c) => format!(
                        "{}.example",
                        company_names[c]
                            .split(' ')
                            .next()
                            .unwrap_or("mail")
                            .to_lowercase()
                    ),
                    None => "mail.example".to_owned(),
                }
            ))
        };
        if let Some(e) = &email {
            ctn.set(&mut r, "email", e.clone());
            data.email_index.entry(e.to_lowercase()).or_insert(id);
            last_email = Some(e.clone());
        }
        if rng.random_bool(0.7) {
            ctn.set(
                &mut r,
                "phone",
                format!(
                    "+1 555 {:03} {:04}",
                    rng.random_range(0..1000),
                    rng.random_range(0..10000)
                ),
            );
        }
        if let Some(c) = company {
            ctn.set(&mut r, "company", company_names[c].clone());
        }
        ctn.set(&mut r, "jobtitle", (*pick(&mut rng, &TITLES)).to_owned());
        let (city, country) = pick(&mut rng, &CITIES);
        ctn.set(&mut r, "city", (*city).to_owned());
        ctn.set(&mut r, "country", (*country).to_owned());
        ctn.set(
            &mut r,
            "lifecyclestage",
            LIFECYCLE_STAGES[rng.random_range(0..7)].0.to_owned(),
        );
        if rng.random_bool(0.8) {
            ctn.set(
                &mut r,
                "hs_lead_status",
                LEAD_STATUSES[rng.random_range(0..LEAD_STATUSES.len())]
                    .0
                    .to_owned(),
            );
        }
        if let Some(o) = owner(&mut rng) {
            ctn.set(&mut r, "hubspot_owner_id", o);
        }
        if rng.random_bool(0.85) {
            let act = activity(&mut rng);
            ctn.set(&mut r, "notes_last_updated", iso(act));
            ctn.set(&mut r, "hs_last_sales_activity_timestamp", iso(act));
            ctn.set(&mut r, "hs_last_sales_activity_date", iso(act));
        }
        if rng.random_bool(0.3) {
            ctn.set(&mut r, "nps_score", rng.random_range(0..=10u8).to_string());
        }
        if rng.random_bool(0.2) {
            ctn.set(
                &mut r,
                "preferred_channel",
                (*pick(&mut rng, &["email", "phone", "chat"])).to_owned(),
            );
        }
        data.store_mut(ObjectType::Contacts).live.insert(id, r);
        if let Some(c) = company {
            data.link(
                ObjectType::Contacts,
                id,
                ObjectType::Companies,
                company_ids[c],
                true,
            );
            associations += 1;
        }
        contact_ids.push(id);
    }

    // Deals.
    let dn = Names::new(
        data,
        ObjectType::Deals,
        &[
            "hs_object_id",
            "createdate",
            "hs_lastmodifieddate",
            "dealname",
            "amount",
            "closedate",
            "pipeline",
            "dealstage",
            "dealtype",
            "hubspot_owner_id",
            "hs_deal_stage_probability",
            "hs_is_closed",
            "hs_is_closed_won",
            "notes_last_updated",
        ],
    );
    let pipelines = data.pipelines.clone();
    let mut deal_ids = Vec::with_capacity(req.deals);
    for _ in 0..req.deals {
        let store = data.store_mut(ObjectType::Deals);
        let id = store.next_id;
        store.next_id += 1;
        let created = anchor - rng.random_range(DAY..500 * DAY);
        let modified = (created + rng.random_range(0..45 * DAY)).min(anchor);
        let pipeline = if pipelines.len() > 1 && rng.random_bool(0.2) {
            &pipelines[1]
        } else {
            &pipelines[0]
        };
        let stage = pick(&mut rng, &pipeline.stages);
        let company = if company_ids.is_empty() {
            None
        } else {
            Some(rng.random_range(0..company_ids.len()))
        };
        let mut r = Record {
            id,
            props: Default::default(),
            created_ms: created,
            updated_ms: modified,
            archived_ms: None,
        };
        dn.set(&mut r, "hs_object_id", id.to_string());
        dn.set(&mut r, "createdate", iso(created));
        dn.set(&mut r, "hs_lastmodifieddate", iso(modified));
        let base = company.map_or("Direct", |c| company_names[c].as_str());
        dn.set(
            &mut r,
            "dealname",
            format!("{base} - {}", pick(&mut rng, &PRODUCTS)),
        );
        dn.set(
            &mut r,
            "amount",
            (rng.random_range(10..2000u32) * 100).to_string(),
        );
        let close = if stage.closed {
            created + rng.random_range(DAY..120 * DAY)
        } else {
            anchor + rng.random_range(DAY..180 * DAY)
        };
        dn.set(&mut r, "closedate", iso(close));
        dn.set(&mut r, "pipeline", pipeline.id.clone());
        dn.set(&mut r, "dealstage", stage.id.clone());
        dn.set(
            &mut r,
            "dealtype",
            (if rng.random_bool(0.7) {
                "newbusiness"
            } else {
                "existingbusiness"
            })
            .to_owned(),
        );
        dn.set(
            &mut r,
            "hs_deal_stage_probability",
            format!("{}", stage.probability),
        );
        dn.set(&mut r, "hs_is_closed", stage.closed.to_string());
        dn.set(
            &mut r,
            "hs_is_closed_won",
            (stage.closed && stage.probability >= 1.0).to_string(),
        );
        if let Some(o) = owner(&mut rng) {
            dn.set(&mut r, "hubspot_owner_id", o);
        }
        dn.set(&mut r, "notes_last_updated", iso(activity(&mut rng)));
        data.store_mut(ObjectType::Deals).live.insert(id, r);
        deal_ids.push(id);
        if let Some(c) = company {
            data.link(
                ObjectType::Deals,
                id,
                ObjectType::Companies,
                company_ids[c],
                true,
            );
            associations += 1;
        }
        if !contact_ids.is_empty() {
            for _ in 0..rng.random_range(1..=2) {
                let contact = *pick(&mut rng, &contact_ids);
                data.link(ObjectType::Deals, id, ObjectType::Contacts, contact, false);
                associations += 1;
            }
        }
    }
    // The calculated counts, once every association is in place.
    for (ot, ids) in [
        (ObjectType::Contacts, &contact_ids),
        (ObjectType::Companies, &company_ids),
        (ObjectType::Deals, &deal_ids),
    ] {
        for id in ids {
            data.refresh_association_counts(ot, *id);
        }
    }
    SeedCounts {
        contacts: req.contacts,
        companies: req.companies,
        deals: req.deals,
        owners: req.owners,
        associations,
    }
}
