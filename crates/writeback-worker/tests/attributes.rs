//! Outbound custom attributes: values arriving with `crm.changed` written to the portal's own
//! properties, with scores or without, only when they changed, newest first; and the
//! mapping's and the portal's problems reported.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use std::collections::HashMap;

use common::World;
use contracts::v1::{AttributeValue, Company, CrmChanged, Customer, ObjectType, attribute_value};
use platform::amqp::{MessageMeta, OutgoingMessage};
use reqwest::Method;
use serde_json::{Value, json};

const T0: i64 = 1_767_225_600_000;

fn text(value: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([(
        "tier".to_owned(),
        AttributeValue {
            kind: Some(attribute_value::Kind::StringValue(value.to_owned())),
        },
    )])
}

impl World {
    /// A `crm.changed` of contacts, each with its attributes and modified time.
    fn contacts_changed(
        &self,
        records: &[(i64, HashMap<String, AttributeValue>, i64)],
    ) -> CrmChanged {
        CrmChanged {
            org_id: self.org_id.to_string(),
            connection_id: self.connection_id.to_string(),
            portal_id: self.portal_id,
            object_type: ObjectType::Contact.into(),
            customers: records
                .iter()
                .map(|(id, attributes, at)| Customer {
                    external_id: *id,
                    email: format!("c{id}@northwind.example"),
                    source_updated_at: Some(contracts::time::from_epoch_ms(*at)),
                    custom_attributes: attributes.clone(),
                    ..Customer::default()
                })
                .collect(),
            committed_at: Some(contracts::time::to_timestamp(chrono::Utc::now())),
            ..CrmChanged::default()
        }
    }

    async fn publish_changes(&self, events: &[CrmChanged]) {
        let messages: Vec<OutgoingMessage> = events
            .iter()
            .map(|e| OutgoingMessage::from_event(e, MessageMeta::start_trace(Some(self.org_id))))
            .collect();
        for result in self.publisher.publish_all(&messages).await {
            result.unwrap();
        }
    }

    async fn create_property(&self, object_type: &str, definition: Value) {
        let (status, body) = self
            .hubspot(
                Method::POST,
                &format!("/crm/v3/properties/{object_type}"),
                Some(definition),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    /// Starts the worker connected, with `tier` mapped to contacts' `customer_tier` and
    /// the properties prepared.
    async fn start_with_tier_mapping(&self) -> common::TestApp {
        let app = self.start_connected().await;
        let (code, body) = self.put_mapping(&app, tier_mapping()).await;
        assert_eq!(code, 200, "{body}");
        self.wait_prepared(&app).await;
        app
    }

    async fn put_mapping(&self, app: &common::TestApp, mapping: Value) -> (u16, Value) {
        let path = format!("/api/v1/connections/{}/writeback", self.connection_id);
        self.api(app, Method::PUT, &path, Some(mapping)).await
    }
}

fn tier_property() -> Value {
    json!({"name": "customer_tier", "label": "Tier", "type": "string", "fieldType": "text",
           "groupName": "contactinformation"})
}

fn tier_mapping() -> Value {
    json!({"attributes": [{"object_type": "contacts", "attribute": "tier", "property": "customer_tier"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribute_values_are_written_with_scores_and_alone_and_only_when_they_change() {
    let world = World::new().await;
    world.create_property("contacts", tier_property()).await;
    let scored = world
        .create("contacts", json!({"email": "ada@northwind.example"}))
        .await;
    let unscored = world
        .create("contacts", json!({"email": "bo@northwind.example"}))
        .await;
    let marker = world
        .create("contacts", json!({"email": "cy@northwind.example"}))
        .await;
    let app = world.start_connected().await;

    // Values that arrive before the mapping names the attribute are kept, and written once
    // it does.
    world
        .publish_changes(&[world.contacts_changed(&[(scored, text("gold"), T0)])])
        .await;
    world
        .publish_scores(&[world.score(ObjectType::Contact, scored, Some(82), T0)])
        .await;
    world
        .wait_status(&app, "score written", |s| s["written"] == 1)
        .await;
    assert!(world.properties("contacts", scored).await["customer_tier"].is_null());
    let (code, body) = world.put_mapping(&app, tier_mapping()).await;
    assert_eq!(code, 200, "{body}");
    world
        .wait_status(&app, "attribute written", |s| {
            s["written"] == 2 && s["pending"] == 0
        })
        .await;
    let p = world.properties("contacts", scored).await;
    assert_eq!(p["customer_tier"], "gold");
    assert_eq!(p["hubscore_health_score"], "82");

    // A record without a score gets its attribute, and no score property.
    world
        .publish_changes(&[world.contacts_changed(&[(unscored, text("silver"), T0)])])
        .await;
    world
        .wait_status(&app, "unscored written", |s| s["written"] == 3)
        .await;
    let p = world.properties("contacts", unscored).await;
    assert_eq!(p["customer_tier"], "silver");
    for property in [
        "hubscore_health_score",
        "hubscore_risk_level",
        "hubscore_score_updated_at",
    ] {
        assert!(p[property].is_null(), "{property}: {p}");
    }

    // A redelivery and an older change alter nothing; the change after them (same queue,
    // applied in order) shows they were handled. One request, one record.
    let before = world.stats().await["requests_total"].as_u64().unwrap();
    world
        .publish_changes(&[
            world.contacts_changed(&[(scored, text("gold"), T0)]),
            world.contacts_changed(&[(scored, text("bronze"), T0 - 60_000)]),
            world.contacts_changed(&[(marker, text("platinum"), T0)]),
        ])
        .await;
    let status = world
        .wait_status(&app, "marker written", |s| {
            s["written"] == 4 && s["pending"] == 0
        })
        .await;
    assert_eq!(status["unchanged_skipped"], 0, "{status:#}");
    assert_eq!(
        world.properties("contacts", marker).await["customer_tier"],
        "platinum"
    );
    assert_eq!(
        world.properties("contacts", scored).await["customer_tier"],
        "gold"
    );
    assert_eq!(
        world.stats().await["requests_total"].as_u64().unwrap(),
        before + 1
    );

    // A newer value is written alone: the score's properties are not sent again.
    let updated_at = p_of(&world, scored, "hubscore_score_updated_at").await;
    world
        .publish_changes(&[world.contacts_changed(&[(scored, text("platinum"), T0 + 60_000)])])
        .await;
    world
        .wait_status(&app, "new value written", |s| s["written"] == 5)
        .await;
    let p = world.properties("contacts", scored).await;
    assert_eq!(p["customer_tier"], "platinum");
    assert_eq!(p["hubscore_score_updated_at"], updated_at);

    // A record deleted in HubSpot that hubscore knew only by its attributes is forgotten.
    let gone = CrmChanged {
        deleted_ids: vec![unscored],
        ..world.contacts_changed(&[])
    };
    world.publish_changes(&[gone]).await;
    let rows = async || {
        let mut conn = platform::db::connect_pool(&world.settings.database, "writeback")
            .unwrap()
            .get()
            .await
            .unwrap();
        count_rows(&mut conn, unscored).await
    };
    assert!(
        platform::testing::eventually(common::PATIENCE, || async { rows().await == 0 }).await,
        "the deleted record's attributes were kept"
    );
    app.stop().await;
}

async fn p_of(world: &World, id: i64, property: &str) -> Value {
    world.properties("contacts", id).await[property].clone()
}

async fn count_rows(conn: &mut diesel_async::AsyncPgConnection, object_id: i64) -> i64 {
    use diesel::sql_types::BigInt;
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let rows: Vec<N> =
        diesel::sql_query("SELECT count(*) AS n FROM record_scores WHERE object_id = $1")
            .bind::<BigInt, _>(object_id)
            .load(conn)
            .await
            .unwrap();
    rows[0].n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapping_naming_unusable_properties_is_refused_with_each_problem() {
    let world = World::new().await;
    world.create_property("contacts", tier_property()).await;
    let app = world.start_connected().await;

    let (code, body) = world
        .put_mapping(
            &app,
            json!({
                "object_types": ["contacts"],
                "attributes": [
                    {"object_type": "contacts", "attribute": "tier", "property": "no_such_property"},
                    {"object_type": "contacts", "attribute": "seats", "property": "hubscore_health_score"},
                    {"object_type": "contacts", "attribute": "id", "property": "hs_object_id"},
                    {"object_type": "companies", "attribute": "tier", "property": "customer_tier"},
                ]
            }),
        )
        .await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["error"], "invalid_mapping");
    let found: Vec<(String, String)> = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let d = &p["detail"];
            let subject = d["property"]
                .as_str()
                .or(d["name"].as_str())
                .or(d["attribute"].as_str())
                .unwrap_or_default();
            (d["error"].as_str().unwrap().to_owned(), subject.to_owned())
        })
        .collect();
    for wanted in [
        ("object_type_not_written", "tier"),
        ("unknown_property", "no_such_property"),
        ("property_written_twice", "hubscore_health_score"),
        ("direction_not_allowed", "hs_object_id"),
    ] {
        assert!(
            found
                .iter()
                .any(|(e, s)| (e.as_str(), s.as_str()) == wanted),
            "{wanted:?} not in {found:?}"
        );
    }
    // Nothing of it was kept.
    let path = format!("/api/v1/connections/{}/writeback", world.connection_id);
    let (_, current) = world.api(&app, Method::GET, &path, None).await;
    assert_eq!(current["attributes"], json!([]));

    let (code, body) = world
        .put_mapping(
            &app,
            json!({"attributes": [{"object_type": "contacts", "attribute": "tier"}]}),
        )
        .await;
    assert_eq!(
        (code, &body["error"]),
        (400, &json!("invalid_body")),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_property_gone_from_the_portal_is_reported_and_the_score_still_written() {
    let world = World::new().await;
    world.create_property("contacts", tier_property()).await;
    let contact = world
        .create("contacts", json!({"email": "di@northwind.example"}))
        .await;
    let app = world.start_with_tier_mapping().await;

    // The portal's admin deletes the property; the next preparation (a reconnect) finds it.
    let (status, body) = world
        .hubspot(
            Method::DELETE,
            "/crm/v3/properties/contacts/customer_tier",
            None,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    world.connect(Vec::new()).await;
    let status = world
        .wait_status(&app, "the missing property reported", |s| {
            s["problems"]
                .as_array()
                .is_some_and(|p| p.iter().any(|t| t["state"] == "missing"))
        })
        .await;
    let problem = status["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["state"] == "missing")
        .unwrap();
    assert_eq!(problem["property"], "customer_tier");
    assert_eq!(problem["purpose"], "attribute:tier");

    world
        .publish_changes(&[world.contacts_changed(&[(contact, text("gold"), T0)])])
        .await;
    world
        .publish_scores(&[world.score(ObjectType::Contact, contact, Some(55), T0)])
        .await;
    let status = world
        .wait_status(&app, "score written", |s| {
            s["written"] == 1 && s["pending"] == 0
        })
        .await;
    assert_eq!(status["failed"], 0, "{status:#}");
    let p = world.properties("contacts", contact).await;
    assert_eq!(p["hubscore_health_score"], "55");
    assert!(p["customer_tier"].is_null(), "{p}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn company_attributes_convert_to_the_property_type() {
    let world = World::new().await;
    world
        .create_property(
            "companies",
            json!({"name": "seats_licensed", "label": "Seats", "type": "number",
                   "fieldType": "number", "groupName": "companyinformation"}),
        )
        .await;
    let company = world
        .create("companies", json!({"name": "Northwind"}))
        .await;
    let other = world.create("companies", json!({"name": "Contoso"})).await;
    let app = world.start_connected().await;
    let (code, body) = world
        .put_mapping(
            &app,
            json!({"attributes": [{"object_type": "companies", "attribute": "seats", "property": "seats_licensed"}]}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let value = |kind| HashMap::from([("seats".to_owned(), AttributeValue { kind: Some(kind) })]);
    let changed = CrmChanged {
        object_type: ObjectType::Company.into(),
        companies: vec![
            Company {
                external_id: company,
                source_updated_at: Some(contracts::time::from_epoch_ms(T0)),
                custom_attributes: value(attribute_value::Kind::IntValue(250)),
                ..Company::default()
            },
            // Text cannot go into a number property: left out, the record not failed.
            Company {
                external_id: other,
                source_updated_at: Some(contracts::time::from_epoch_ms(T0)),
                custom_attributes: value(attribute_value::Kind::BoolValue(true)),
                ..Company::default()
            },
        ],
        ..world.contacts_changed(&[])
    };
    world.publish_changes(&[changed]).await;
    world
        .wait_status(&app, "company written", |s| s["written"] == 1)
        .await;
    assert_eq!(
        world.properties("companies", company).await["seats_licensed"],
        "250"
    );
    assert!(world.properties("companies", other).await["seats_licensed"].is_null());
    let metrics = world
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "hubscore_writeback_attribute_values_skipped_total{reason=\"type_mismatch\",service=\"writeback-worker\"} 1"
        ),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_applications_keep_every_records_newest_attribute_value() {
    let world = World::new().await;
    world.create_property("contacts", tier_property()).await;
    world.seed_contacts(200).await;
    let a = world.start_connected().await;
    let b = world.start().await;
    let (code, body) = world.put_mapping(&a, tier_mapping()).await;
    assert_eq!(code, 200, "{body}");
    // Ten values per record, newest first for odd records, one message each and many
    // records per message: whichever replica takes which message, the newest (round 9)
    // must end up in HubSpot everywhere.
    let mut changes = Vec::new();
    for round in 0..10i64 {
        let records: Vec<_> = (0..200i64)
            .map(|i| {
                let r = if i % 2 == 1 { 9 - round } else { round };
                (1001 + i, text(&format!("tier-{r}")), T0 + r * 1_000)
            })
            .collect();
        for chunk in records.chunks(25) {
            changes.push(world.contacts_changed(chunk));
        }
    }
    world.publish_changes(&changes).await;
    let deadline = tokio::time::Instant::now() + common::PATIENCE;
    loop {
        let mut wrong = Vec::new();
        for id in 1001..1201 {
            let shown = world.properties("contacts", id).await["customer_tier"].clone();
            if shown != "tier-9" {
                wrong.push((id, shown));
            }
        }
        if wrong.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "records not showing their newest value: {:?}",
            &wrong[..wrong.len().min(10)]
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    world
        .wait_status(&a, "drained", |s| s["pending"] == 0)
        .await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapping_changed_while_a_flush_runs_reaches_the_records_changing_meanwhile() {
    use diesel_async::RunQueryDsl;
    let world = World::new().await;
    world.create_property("contacts", tier_property()).await;
    let busy = world
        .create("contacts", json!({"email": "busy@northwind.example"}))
        .await;
    let later = world
        .create("contacts", json!({"email": "later@northwind.example"}))
        .await;
    let app = world.start_connected().await;
    let pool = world.pool();

    // A flush that stays busy: its batch update takes 4 s to be answered.
    world
        .fault_contact_updates(json!({"latency_ms": 4_000}))
        .await;
    world
        .publish_scores(&[world.score(ObjectType::Contact, busy, Some(80), T0)])
        .await;
    assert!(
        platform::testing::eventually(common::PATIENCE, || async {
            #[derive(diesel::QueryableByName)]
            struct N {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            let mut conn = pool.get().await.unwrap();
            let rows: Vec<N> = diesel::sql_query(
                "SELECT count(*) AS n FROM record_scores WHERE inflight_revision IS NOT NULL",
            )
            .load(&mut conn)
            .await
            .unwrap();
            rows[0].n == 1
        })
        .await,
        "the batch never went out"
    );

    // While it waits, the mapping gains the attribute and a record's value arrives: the
    // running flush must not settle that record on what it knew before the change.
    let (code, body) = world.put_mapping(&app, tier_mapping()).await;
    assert_eq!(code, 200, "{body}");
    world
        .publish_changes(&[world.contacts_changed(&[(later, text("gold"), T0)])])
        .await;
    world.clear_faults().await;
    assert!(
        platform::testing::eventually(common::PATIENCE, || async {
            world.properties("contacts", later).await["customer_tier"] == "gold"
        })
        .await,
        "the value that arrived during the flush was never written"
    );
    assert_eq!(
        world.properties("contacts", busy).await["hubscore_health_score"],
        "80"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribute_values_survive_a_lost_answer_and_hubspot_down_for_a_while() {
    let world = World::new().await;
    world.create_property("contacts", tier_property()).await;
    let contact = world
        .create("contacts", json!({"email": "ada@northwind.example"}))
        .await;
    let app = world.start_with_tier_mapping().await;

    // HubSpot applies the update but its answer arrives cut in half: the worker reads the
    // record back, finds the value there and counts it written instead of sending it again.
    world
        .fault_contact_updates(json!({"truncate_body": true}))
        .await;
    world
        .publish_changes(&[world.contacts_changed(&[(contact, text("gold"), T0)])])
        .await;
    let status = world
        .wait_status(&app, "read back", |s| {
            s["written"] == 1 && s["pending"] == 0
        })
        .await;
    assert_eq!(status["failed"], 0, "{status:#}");
    assert!(
        status["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("unexpected response body")),
        "{status:#}"
    );
    assert_eq!(
        world.properties("contacts", contact).await["customer_tier"],
        "gold"
    );
    world.clear_faults().await;

    // HubSpot down: a newer value waits, paused, and goes out once HubSpot is back.
    world
        .fault_contact_updates(json!({"error_rate": 1.0, "error_status": 503}))
        .await;
    world
        .publish_changes(&[world.contacts_changed(&[(contact, text("platinum"), T0 + 60_000)])])
        .await;
    let down = world.wait_paused(&app, "hubspot_unavailable").await;
    assert_eq!(
        (down["pending"].as_i64(), down["written"].as_i64()),
        (Some(1), Some(1)),
        "{down:#}"
    );
    assert_eq!(
        world.properties("contacts", contact).await["customer_tier"],
        "gold"
    );
    world.clear_faults().await;
    let status = world
        .wait_status(&app, "written after the outage", |s| {
            s["written"] == 2 && s["pending"] == 0
        })
        .await;
    assert_eq!(status["failed"], 0, "{status:#}");
    assert_eq!(
        world.properties("contacts", contact).await["customer_tier"],
        "platinum"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_committed_before_a_deletion_does_not_bring_the_record_back() {
    let world = World::new().await;
    world.create_property("contacts", tier_property()).await;
    let gone = world
        .create("contacts", json!({"email": "ada@northwind.example"}))
        .await;
    let marker = world
        .create("contacts", json!({"email": "bo@northwind.example"}))
        .await;
    let app = world.start_with_tier_mapping().await;
    // A removal remembered for 40 days is forgotten at the next removal.
    let pool = world.pool();
    let removed = async || -> Vec<i64> {
        use diesel_async::RunQueryDsl as _;
        #[derive(diesel::QueryableByName)]
        struct Id {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            object_id: i64,
        }
        let mut conn = pool.get().await.unwrap();
        let rows: Vec<Id> = diesel::sql_query(format!(
            "SELECT object_id FROM removed_records WHERE connection_id = '{}' ORDER BY 1",
            world.connection_id
        ))
        .load(&mut conn)
        .await
        .unwrap();
        rows.into_iter().map(|r| r.object_id).collect()
    };
    {
        use diesel_async::RunQueryDsl as _;
        let mut conn = pool.get().await.unwrap();
        diesel::sql_query(format!(
            "INSERT INTO removed_records (connection_id, object_type, object_id, removed_at) \
             VALUES ('{}', 'contacts', 999, now() - interval '40 days')",
            world.connection_id
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    }

    // sync-worker committed a change a minute before the deletion; it arrives after it (a
    // redelivery, a slower replica). Then a change of another record marks the point where
    // both were handled.
    let mut late = world.contacts_changed(&[(gone, text("gold"), T0)]);
    late.committed_at = Some(contracts::time::to_timestamp(
        chrono::Utc::now() - chrono::Duration::minutes(1),
    ));
    let mut deletion = world.contacts_changed(&[]);
    deletion.deleted_ids = vec![gone];
    world.publish_changes(&[deletion, late]).await;
    world
        .publish_changes(&[world.contacts_changed(&[(marker, text("silver"), T0)])])
        .await;
    let status = world
        .wait_status(&app, "marker written", |s| {
            s["written"] == 1 && s["pending"] == 0
        })
        .await;
    assert_eq!(status["failed"], 0, "{status:#}");
    assert_eq!(
        world.properties("contacts", marker).await["customer_tier"],
        "silver"
    );
    assert!(
        world.properties("contacts", gone).await["customer_tier"].is_null(),
        "the late change was written"
    );
    assert_eq!(removed().await, [gone]);

    // Restored in HubSpot: a change committed after the deletion is stored and written.
    world
        .publish_changes(&[world.contacts_changed(&[(gone, text("gold"), T0)])])
        .await;
    world
        .wait_status(&app, "restored record written", |s| {
            s["written"] == 2 && s["pending"] == 0
        })
        .await;
    assert_eq!(
        world.properties("contacts", gone).await["customer_tier"],
        "gold"
    );
    assert!(removed().await.is_empty(), "the restore forgot the removal");
    app.stop().await;
}
