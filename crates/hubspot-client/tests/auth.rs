//! OAuth against the simulator, and what the client does with rejected tokens.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::Sim;
use futures::future::BoxFuture;
use hubspot_client::{
    AccessToken, HubSpotError, OAuthApp, OAuthClient, RefreshingToken, StaticToken, TimelineEvent,
    TokenSource,
};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeline_events_are_created_with_an_oauth_token() {
    let sim = Sim::start().await;
    let (portal, oauth) = oauth_portal(&sim).await;
    let tokens = oauth
        .exchange_code(&code(&sim, &portal).await)
        .await
        .unwrap();
    let client = sim.client(Arc::new(StaticToken::new(tokens.access_token)));
    let company = json!({"properties": {"name": "Northwind", "domain": "northwind.example"}});
    sim.control(
        Method::POST,
        &format!("/_sim/portals/{}/objects/companies", portal.portal_id),
        Some(company),
    )
    .await;
    let event = TimelineEvent {
        event_template_id: "1122334".into(),
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
