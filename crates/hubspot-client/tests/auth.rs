//! OAuth against the simulator, and what the client does with rejected tokens.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::Sim;
use futures::future::BoxFuture;
use hubspot_client::{
    AccessToken, EventTemplate, EventTemplateToken, HubSpotClient, HubSpotError, NewEventTemplate,
    OAuthApp, OAuthClient, RefreshingToken, StaticToken, TimelineEvent, TokenResponse, TokenSource,
};
use hubspot_sim::SimConfig;
use hubspot_sim::state::TokenKind;
use reqwest::Method;
use serde_json::json;

/// Counts how often the client asked for a fresh token.
struct Counting<T> {
    inner: Arc<T>,
    refreshes: AtomicUsize,
}

impl<T: TokenSource> TokenSource for Counting<T> {
    fn access_token(&self) -> BoxFuture<'_, Result<AccessToken, HubSpotError>> {
        self.inner.access_token()
    }

    fn refresh<'a>(
        &'a self,
        rejected: &'a AccessToken,
    ) -> BoxFuture<'a, Result<AccessToken, HubSpotError>> {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        self.inner.refresh(rejected)
    }
}

const REDIRECT: &str = "https://hubscore.example/oauth/callback";

async fn oauth_portal(sim: &Sim) -> (common::Portal, OAuthClient) {
    let portal = sim.portal(common::professional()).await;
    let app = OAuthApp {
        client_id: portal.client_id.clone(),
        client_secret: portal.client_secret.clone(),
        redirect_uri: REDIRECT.to_owned(),
    };
    (portal, OAuthClient::new(sim.config(), app).unwrap())
}

async fn code(sim: &Sim, portal: &common::Portal) -> String {
    let body = json!({"redirect_uri": REDIRECT, "scopes": ["oauth", "crm.objects.contacts.read", "crm.objects.companies.read", "timeline"]});
    let answer = sim
        .control(
            Method::POST,
            &format!("/_sim/portals/{}/oauth/authorize", portal.portal_id),
            Some(body),
        )
        .await;
    answer["code"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_access_token_is_refreshed_once_and_the_call_succeeds() {
    let sim = Sim::start().await;
    let (portal, oauth) = oauth_portal(&sim).await;
    let tokens = oauth
        .exchange_code(&code(&sim, &portal).await)
        .await
        .unwrap();
    assert_eq!(tokens.hub_id, Some(portal.portal_id));
    assert_eq!(tokens.expires_in, 1800);
    let first = tokens.access_token.clone();
    let source = Arc::new(Counting {
        inner: RefreshingToken::new(
            oauth.clone(),
            AccessToken::new(first.clone()),
            tokens.refresh_token.clone().unwrap(),
            tokens.expires_in,
        ),
        refreshes: AtomicUsize::new(0),
    });
    let client = sim.client(source.clone());
    assert_eq!(
        client.account_details().await.unwrap().portal_id,
        portal.portal_id
    );

    sim.control(Method::POST, &format!("/_sim/tokens/{first}/expire"), None)
        .await;
    assert_eq!(
        client.account_details().await.unwrap().portal_id,
        portal.portal_id
    );
    assert_eq!(source.refreshes.load(Ordering::SeqCst), 1);
    assert_ne!(source.access_token().await.unwrap().secret(), first);
    // The fresh token keeps working without further refreshes.
    client.account_details().await.unwrap();
    assert_eq!(source.refreshes.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_still_rejected_after_one_refresh_is_reported_unauthorized() {
    let sim = Sim::start().await;
    let source = Arc::new(Counting {
        inner: Arc::new(StaticToken::new("pat-na1-not-a-real-token")),
        refreshes: AtomicUsize::new(0),
    });
    let client = sim.client(source.clone());
    let error = client.account_details().await.unwrap_err();
    assert!(
        matches!(error, HubSpotError::Unauthorized { expired: false, .. }),
        "{error:?}"
    );
    assert_eq!(source.refreshes.load(Ordering::SeqCst), 1);
    assert!(
        !format!("{error} {error:?}").contains("not-a-real-token"),
        "tokens never appear in errors"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_metadata_and_revocation_work_through_form_bodies() {
    let sim = Sim::start().await;
    let (portal, oauth) = oauth_portal(&sim).await;
    let tokens = oauth
        .exchange_code(&code(&sim, &portal).await)
        .await
        .unwrap();
    let info = oauth
        .token_info(&tokens.access_token, "access_token")
        .await
        .unwrap();
    assert!(info.active);
    assert_eq!(info.hub_id, Some(portal.portal_id));
    assert!(
        info.scopes
            .contains(&"crm.objects.contacts.read".to_owned()),
        "{info:?}"
    );

    let refresh_token = tokens.refresh_token.unwrap();
    let refreshed = oauth.refresh(&refresh_token).await.unwrap();
    assert_ne!(refreshed.access_token, tokens.access_token);
    oauth
        .revoke(refreshed.refresh_token.as_deref().unwrap_or(&refresh_token))
        .await
        .unwrap();
    let error = oauth
        .refresh(refreshed.refresh_token.as_deref().unwrap_or(&refresh_token))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, HubSpotError::OAuth { error, .. } if error == "invalid_grant"),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorize_url_is_served_by_the_configured_oauth_host() {
    let sim = Sim::start().await;
    let (_portal, oauth) = oauth_portal(&sim).await;
    let url = oauth.authorize_url(&["oauth", "crm.objects.contacts.read"], &[], Some("xyz"));
    assert!(
        url.starts_with(&format!("{}/oauth/authorize?", sim.base)),
        "{url}"
    );
    assert!(
        url.contains("scope=oauth%20crm.objects.contacts.read"),
        "{url}"
    );
    let page = sim.http.get(&url).send().await.unwrap();
    assert!(page.status().is_success(), "{}", page.status());
}

/// An OAuth client of a new portal that holds the company Northwind (its id returned), and
/// the portal's app's company template with one number token, `health_score`.
async fn oauth_company_with_template(
    sim: &Sim,
) -> (common::Portal, HubSpotClient, String, EventTemplate) {
    let (portal, oauth) = oauth_portal(sim).await;
    let tokens = oauth
        .exchange_code(&code(sim, &portal).await)
        .await
        .unwrap();
    let client = sim.client(Arc::new(StaticToken::new(tokens.access_token)));
    let company = sim
        .control(
            Method::POST,
            &format!("/_sim/portals/{}/objects/companies", portal.portal_id),
            Some(json!({"properties": {"name": "Northwind", "domain": "northwind.example"}})),
        )
        .await;
    let company_id = company["id"].as_str().unwrap().to_owned();
    let template = sim
        .developer(&portal)
        .create_event_template(&NewEventTemplate {
            name: "Health score".into(),
            object_type: "companies".into(),
            header_template: Some("Health score {{health_score}}".into()),
            tokens: vec![EventTemplateToken {
                name: "health_score".into(),
                label: "Health score".into(),
                kind: "number".into(),
                ..EventTemplateToken::default()
            }],
            ..NewEventTemplate::default()
        })
        .await
        .unwrap();
    (portal, client, company_id, template)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeline_events_are_created_with_an_oauth_token_from_the_apps_template() {
    let sim = Sim::start().await;
    let (portal, client, _, template) = oauth_company_with_template(&sim).await;
    let unknown = TimelineEvent {
        event_template_id: "999999999".into(),
        id: "health-unknown-template".into(),
        domain: Some("northwind.example".into()),
        ..TimelineEvent::default()
    };
    let error = client.create_timeline_event(&unknown).await.unwrap_err();
    assert!(
        matches!(&error, HubSpotError::NotFound { message } if message.contains("999999999")),
        "{error:?}"
    );
    let event = TimelineEvent {
        event_template_id: template.id.clone(),
        id: "health-2026-03-01-company-8123".into(),
        domain: Some("northwind.example".into()),
        tokens: [("health_score".to_owned(), "82".to_owned())]
            .into_iter()
            .collect(),
        extra_data: Some(json!({"drivers": [{"name": "open_tickets", "weight": -0.2}]})),
        ..TimelineEvent::default()
    };
    let created = client.create_timeline_event(&event).await.unwrap();
    assert_eq!(created.id, event.id);
    assert_eq!(created.event_template_id, template.id);
    assert_eq!(created.object_type.as_deref(), Some("COMPANY"));
    let stored = sim
        .control(
            Method::GET,
            &format!("/_sim/portals/{}/timeline-events", portal.portal_id),
            None,
        )
        .await;
    assert!(
        stored
            .to_string()
            .contains("health-2026-03-01-company-8123"),
        "{stored}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_timeline_events_names_each_refused_event_and_a_resend_is_a_conflict() {
    let sim = Sim::start().await;
    let (_, client, company_id, template) = oauth_company_with_template(&sim).await;
    let event = |id: &str, object_id: &str| TimelineEvent {
        event_template_id: template.id.clone(),
        id: id.into(),
        object_id: Some(object_id.into()),
        tokens: [("health_score".to_owned(), "42".to_owned())]
            .into_iter()
            .collect(),
        ..TimelineEvent::default()
    };
    let events = [event("e-kept", &company_id), event("e-gone", "987654321")];
    let answer = client.create_timeline_events(&events).await.unwrap();
    let created: Vec<&str> = answer.results.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(created, ["e-kept"]);
    assert_eq!(answer.errors.len(), 1, "{:?}", answer.errors);
    assert_eq!(answer.errors[0].failed_ids(), ["e-gone"]);
    assert_eq!(
        answer.errors[0].category.as_deref(),
        Some("OBJECT_NOT_FOUND")
    );

    // Sent again (as after a lost answer): the event HubSpot has is refused as a duplicate.
    let again = client.create_timeline_events(&events[..1]).await.unwrap();
    assert!(again.results.is_empty(), "{:?}", again.results);
    assert_eq!(again.errors[0].failed_ids(), ["e-kept"]);
    assert_eq!(again.errors[0].category.as_deref(), Some("CONFLICT"));

    let too_many = vec![event("e-many", &company_id); hubspot_client::TIMELINE_BATCH_SIZE + 1];
    let error = client.create_timeline_events(&too_many).await.unwrap_err();
    assert!(
        matches!(&error, HubSpotError::Validation { message, .. } if message.contains("at most 500")),
        "{error:?}"
    );
}

/// OAuth access tokens the simulator has issued for `portal`: one per code exchange or refresh.
fn issued_access_tokens(sim: &Sim, portal: &common::Portal) -> usize {
    let portal_id = u64::try_from(portal.portal_id).unwrap();
    sim.running
        .sim()
        .tokens
        .read()
        .values()
        .filter(|t| t.portal_id == portal_id && t.kind == TokenKind::OAuth)
        .count()
}

async fn installed(sim: &Sim) -> (common::Portal, OAuthClient, TokenResponse) {
    let (portal, oauth) = oauth_portal(sim).await;
    let tokens = oauth
        .exchange_code(&code(sim, &portal).await)
        .await
        .unwrap();
    (portal, oauth, tokens)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_lived_oauth_token_is_replaced_before_it_expires_and_no_request_is_refused() {
    // Tokens live 4 s, so the default margin (5 min) is capped at half of that: each token
    // is replaced 2 s after it was issued, 2 s before HubSpot would refuse it.
    let sim = Sim::start_with(SimConfig {
        access_token_ttl_secs: 4,
        ..SimConfig::default()
    })
    .await;
    let (portal, oauth, tokens) = installed(&sim).await;
    assert_eq!(tokens.expires_in, 4);
    let source = RefreshingToken::new(
        oauth,
        AccessToken::new(tokens.access_token.clone()),
        tokens.refresh_token.clone().unwrap(),
        tokens.expires_in,
    );
    let client = sim.client(source.clone());
    let mut used = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    // Calls keep coming for more than two token lifetimes.
    while used.len() < 3 {
        assert!(Instant::now() < deadline, "tokens used: {}", used.len());
        client.account_details().await.unwrap();
        used.insert(source.access_token().await.unwrap().secret().to_owned());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stats = sim.stats(&portal).await;
    assert!(
        stats["by_status"].get("401").is_none(),
        "no request went out with an expired token: {stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_with_a_token_due_for_refresh_share_one_refresh() {
    let sim = Sim::start().await;
    let (portal, oauth, tokens) = installed(&sim).await;
    // Told it has expired already (HubSpot still accepts it): due for a refresh at once.
    let source = RefreshingToken::new(
        oauth,
        AccessToken::new(tokens.access_token.clone()),
        tokens.refresh_token.clone().unwrap(),
        0,
    );
    let client = sim.client(source.clone());
    assert_eq!(issued_access_tokens(&sim, &portal), 1);
    let calls = (0..8).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.account_details().await })
    });
    for call in futures::future::join_all(calls).await {
        assert_eq!(call.unwrap().unwrap().portal_id, portal.portal_id);
    }
    assert_eq!(
        issued_access_tokens(&sim, &portal),
        2,
        "eight calls, one refresh"
    );
    assert_ne!(
        source.access_token().await.unwrap().secret(),
        tokens.access_token
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_refresh_ahead_of_expiry_keeps_using_the_still_valid_token() {
    let sim = Sim::start().await;
    let (portal, oauth, tokens) = installed(&sim).await;
    let refresh_token = tokens.refresh_token.clone().unwrap();
    oauth.revoke(&refresh_token).await.unwrap();
    // Valid for 2 s by our count, so due for a refresh after 1 s.
    let source = RefreshingToken::new(
        oauth,
        AccessToken::new(tokens.access_token.clone()),
        refresh_token,
        2,
    );
    let client = sim.client(source.clone());
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(
        client.account_details().await.unwrap().portal_id,
        portal.portal_id
    );
    assert_eq!(
        source.access_token().await.unwrap().secret(),
        tokens.access_token
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_whose_refresh_is_refused_reports_the_oauth_error() {
    let sim = Sim::start().await;
    let (_portal, oauth, tokens) = installed(&sim).await;
    let refresh_token = tokens.refresh_token.clone().unwrap();
    oauth.revoke(&refresh_token).await.unwrap();
    let source = RefreshingToken::new(
        oauth,
        AccessToken::new(tokens.access_token.clone()),
        refresh_token.clone(),
        0,
    );
    let error = sim.client(source).account_details().await.unwrap_err();
    assert!(
        matches!(&error, HubSpotError::OAuth { error, .. } if error == "invalid_grant"),
        "{error:?}"
    );
    let shown = format!("{error} {error:?}");
    assert!(
        !shown.contains(&refresh_token) && !shown.contains(&tokens.access_token),
        "tokens never appear in errors"
    );
}
