//! A stream of random, realistic CRM changes at a given rate, as if sales reps
//! were working in HubSpot: property edits, stage moves, new contacts and deals,
//! associations and the odd deletion. Every change emits webhooks (`CRM_UI`).

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{Map, Value, json};

use crate::catalogue::{LEAD_STATUSES, LIFECYCLE_STAGES};
use crate::model::{ObjectType, now_ms};
use crate::state::{Portal, PortalData, Sim};
use crate::webhooks::{Change, Source, emit};

fn random_id(rng: &mut StdRng, data: &PortalData, ot: ObjectType) -> Option<u64> {
    let live = &data.store(ot).live;
    let (first, last) = (*live.keys().next()?, *live.keys().next_back()?);
    let probe = rng.random_range(first..=last);
    live.range(probe..).next().map(|(id, _)| *id)
}

fn props(pairs: &[(&str, String)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect()
}

fn one_change(rng: &mut StdRng, data: &mut PortalData) -> Vec<Change> {
    let now = now_ms();
    let roll: f64 = rng.random();
    let update =
        |data: &mut PortalData, ot: ObjectType, id: u64, p: Map<String, Value>| -> Vec<Change> {
            data.normalize(ot, &p)
                .ok()
                .and_then(|v| data.update(ot, id, v, now).ok())
                .unwrap_or_default()
        };
    if roll < 0.4 {
        let Some(id) = random_id(rng, data, ObjectType::Contacts) else {
            return Vec::new();
        };
        let p = match rng.random_range(0..3) {
            0 => props(&[(
                "lifecyclestage",
                LIFECYCLE_STAGES[rng.random_range(0..7)].0.to_owned(),
            )]),
            1 => props(&[(
                "hs_lead_status",
                LEAD_STATUSES[rng.random_range(0..LEAD_STATUSES.len())]
                    .0
                    .to_owned(),
            )]),
            _ => return data.log_sales_activity(ObjectType::Contacts, id, now),
        };
        update(data, ObjectType::Contacts, id, p)
    } else if roll < 0.6 {
        let Some(id) = random_id(rng, data, ObjectType::Deals) else {
            return Vec::new();
        };
        let pipeline = data
            .store(ObjectType::Deals)
            .live
            .get(&id)
            .and_then(|r| r.get("pipeline"))
            .unwrap_or("default")
            .to_owned();
        let stages: Vec<String> = data
            .pipelines
            .iter()
            .find(|p| p.id == pipeline)
            .map(|p| p.stages.iter().map(|s| s.id.clone()).collect())
            .unwrap_or_default();
        if stages.is_empty() {
            return Vec::new();
        }
        let stage = stages[rng.random_range(0..stages.len())].clone();
        let p = if rng.random_bool(0.5) {
            props(&[("dealstage", stage)])
        } else {
            props(&[("amount", (rng.random_range(10..2000u32) * 100).to_string())])
        };
        update(data, ObjectType::Deals, id, p)
    } else if roll < 0.7 {
        let Some(id) = random_id(rng, data, ObjectType::Companies) else {
            return Vec::new();
        };
        let mut changes = update(
            data,
            ObjectType::Companies,
            id,
            props(&[(
                "numberofemployees",
                rng.random_range(5..5000u32).to_string(),
            )]),
        );
        changes.extend(data.log_sales_activity(ObjectType::Companies, id, now));
        changes
    } else if roll < 0.8 {
        let n: u32 = rng.random();
        let p = props(&[
            ("firstname", "Stream".to_owned()),
            ("lastname", format!("Contact{n}")),
            ("email", format!("stream{n}@changes.example")),
        ]);
        let Ok(values) = data.normalize(ObjectType::Contacts, &p) else {
            return Vec::new();
        };
        let Ok((id, mut changes)) = data.create(ObjectType::Contacts, values, now) else {
            return Vec::new();
        };
        if let Some(company) = random_id(rng, data, ObjectType::Companies) {
            changes.extend(
                data.associate(
                    ObjectType::Contacts,
                    id,
                    ObjectType::Companies,
                    company,
                    true,
                )
                .unwrap_or_default(),
            );
        }
        changes
    } else if roll < 0.85 {
        let Some(company) = random_id(rng, data, ObjectType::Companies) else {
            return Vec::new();
        };
        let p = props(&[
            ("dealname", format!("Stream deal {}", rng.random::<u16>())),
            ("pipeline", "default".to_owned()),
            ("dealstage", "appointmentscheduled".to_owned()),
            ("amount", (rng.random_range(10..2000u32) * 100).to_string()),
        ]);
        let Ok(values) = data.normalize(ObjectType::Deals, &p) else {
            return Vec::new();
        };
        let Ok((id, mut changes)) = data.create(ObjectType::Deals, values, now) else {
            return Vec::new();
        };
        changes.extend(
            data.associate(ObjectType::Deals, id, ObjectType::Companies, company, true)
                .unwrap_or_default(),
        );
        changes
    } else if roll < 0.95 {
        let (Some(deal), Some(contact)) = (
            random_id(rng, data, ObjectType::Deals),
            random_id(rng, data, ObjectType::Contacts),
        ) else {
            return Vec::new();
        };
        data.associate(
            ObjectType::Deals,
            deal,
            ObjectType::Contacts,
            contact,
            false,
        )
        .unwrap_or_default()
    } else {
        let Some(id) = random_id(rng, data, ObjectType::Contacts) else {
            return Vec::new();
        };
        data.archive(ObjectType::Contacts, id, now)
    }
}

/// Starts (or restarts) the portal's change stream.
pub fn start(sim: &Arc<Sim>, portal: &Arc<Portal>, per_second: f64, seed: u64) {
    let portal_task = portal.clone();
    let period = Duration::from_secs_f64(1.0 / per_second.clamp(0.01, 10_000.0));
    let task = sim.runtime.spawn(async move {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut ticker = tokio::time::interval(period);
        loop {
            ticker.tick().await;
            let changes = one_change(&mut rng, &mut portal_task.data.write());
            emit(&portal_task, &changes, &Source::crm_ui());
        }
    });
    if let Some(old) = portal.changes.lock().replace(task.abort_handle()) {
        old.abort();
    }
}
