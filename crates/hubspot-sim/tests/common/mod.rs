//! Shared helpers: start the simulator in-process and create portals over plain HTTP.

#![allow(dead_code, reason = "each test binary uses a different subset")]
#![expect(clippy::expect_used, reason = "test helpers fail loudly")]

pub mod receiver;

use hubspot_sim::{RunningSim, SimConfig, spawn};
use serde_json::{Value, json};

pub struct Harness {
    pub sim: RunningSim,
    pub base: String,
    pub http: reqwest::Client,
}

pub struct PortalInfo {
    pub id: u64,
    pub token: String,
    pub client_id: String,
    pub client_secret: String,
    pub app_id: u64,
    /// The developer API key (`hapikey`) of the portal's app.
    pub developer_api_key: String,
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::with(SimConfig::default()).await
    }

    pub async fn with(config: SimConfig) -> Harness {
        let sim = spawn(config).await.expect("simulator starts");
        let base = sim.base_url();
        Harness {
            sim,
            base,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn portal(&self, body: Value) -> PortalInfo {
        let resp = self
            .http
            .post(self.url("/_sim/portals"))
            .json(&body)
            .send()
            .await
            .expect("create portal");
        assert_eq!(resp.status(), 201);
        let v: Value = resp.json().await.expect("json");
        PortalInfo {
            id: v["portal_id"].as_u64().expect("id"),
            token: v["private_app_token"].as_str().expect("token").to_owned(),
            client_id: v["client_id"].as_str().expect("client id").to_owned(),
            client_secret: v["client_secret"].as_str().expect("secret").to_owned(),
            app_id: v["app_id"].as_u64().expect("app id"),
            developer_api_key: v["developer_api_key"]
                .as_str()
                .expect("developer api key")
                .to_owned(),
        }
    }

    pub async fn seed(&self, portal: u64, contacts: usize, companies: usize, deals: usize) {
        let resp = self
            .http
            .post(self.url(&format!("/_sim/portals/{portal}/seed")))
            .json(&json!({"seed": 7, "contacts": contacts, "companies": companies, "deals": deals, "owners": 5}))
            .send()
            .await
            .expect("seed");
        assert_eq!(resp.status(), 200);
    }

    pub async fn get(&self, token: &str, path: &str) -> (u16, reqwest::header::HeaderMap, Value) {
        split(self.get_raw(token, path).await).await
    }

    /// GETs `path` with `token` and returns the response unread, for tests of the body's bytes.
    pub async fn get_raw(&self, token: &str, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("get")
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: Value,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let resp = self
            .http
            .request(method, self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("send");
        split(resp).await
    }

    pub async fn post(
        &self,
        token: &str,
        path: &str,
        body: Value,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        self.send(reqwest::Method::POST, token, path, body).await
    }

    /// Sends `body` (if any) to the developer API `path` with `hapikey` (none when `None`),
    /// without a bearer token.
    pub async fn developer(
        &self,
        method: reqwest::Method,
        path: &str,
        hapikey: Option<&str>,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut request = self.http.request(method, self.url(path));
        if let Some(key) = hapikey {
            request = request.query(&[("hapikey", key)]);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        split(request.send().await.expect("send")).await
    }

    /// Creates an event template for portal `p`'s app with its developer key, asserts 201
    /// and returns the template.
    pub async fn template(&self, p: &PortalInfo, body: Value) -> Value {
        let (status, _, template) = self
            .developer(
                reqwest::Method::POST,
                &format!("/integrators/timeline/v3/{}/event-templates", p.app_id),
                Some(&p.developer_api_key),
                Some(body),
            )
            .await;
        assert_eq!(status, 201, "create template: {template}");
        template
    }

    /// The id of a new `object_type` template for portal `p`'s app declaring `tokens`
    /// (string tokens).
    pub async fn template_id(&self, p: &PortalInfo, object_type: &str, tokens: &[&str]) -> String {
        let tokens: Vec<Value> = tokens
            .iter()
            .map(|t| json!({"name": t, "label": t, "type": "string"}))
            .collect();
        let template = self
            .template(
                p,
                json!({"name": format!("{object_type} event"), "objectType": object_type,
                       "headerTemplate": "Something happened", "tokens": tokens}),
            )
            .await;
        template["id"].as_str().expect("template id").to_owned()
    }

    pub async fn stats(&self, portal: u64) -> Value {
        self.sim_get(&format!("/_sim/portals/{portal}/stats")).await
    }

    /// GETs a control-API `path` (no token) and returns its JSON body.
    pub async fn sim_get(&self, path: &str) -> Value {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("control get")
            .json()
            .await
            .expect("json")
    }

    /// Creates a record of `object_type` with `properties` at `/crm/v3/objects/…`,
    /// asserts 201 and returns the created record.
    pub async fn create(&self, token: &str, object_type: &str, properties: Value) -> Value {
        let (status, _, record) = self
            .post(
                token,
                &format!("/crm/v3/objects/{object_type}"),
                json!({ "properties": properties }),
            )
            .await;
        assert_eq!(status, 201, "create {object_type}: {record}");
        record
    }

    /// Adds a fault through the control API, asserting 201.
    pub async fn add_fault(&self, fault: Value) {
        let resp = self
            .http
            .post(self.url("/_sim/faults"))
            .json(&fault)
            .send()
            .await
            .expect("fault");
        assert_eq!(resp.status(), 201);
    }

    /// Clears every fault through the control API, asserting 204.
    pub async fn clear_faults(&self) {
        let resp = self
            .http
            .delete(self.url("/_sim/faults"))
            .send()
            .await
            .expect("clear");
        assert_eq!(resp.status(), 204);
    }

    /// POSTs a form body (no token) to `path`; answers the status and the JSON body.
    pub async fn form(&self, path: &str, fields: &[(&str, &str)]) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url(path))
            .form(fields)
            .send()
            .await
            .expect("post");
        let (status, _, body) = split(resp).await;
        (status, body)
    }

    /// Consents for `portal` through the control API with `consent` (its
    /// `redirect_uri` and optional `scopes`) and returns the authorization code.
    pub async fn auth_code(&self, portal: u64, consent: Value) -> String {
        let v: Value = self
            .http
            .post(self.url(&format!("/_sim/portals/{portal}/oauth/authorize")))
            .json(&consent)
            .send()
            .await
            .expect("authorize")
            .json()
            .await
            .expect("json");
        v["code"].as_str().expect("code").to_owned()
    }

    /// Exchanges `code` (granted for `http://localhost/cb`) at the v3 token endpoint,
    /// asserts 200 and returns the token body.
    pub async fn exchange(&self, p: &PortalInfo, code: &str) -> Value {
        let (status, tokens) = self
            .form(
                "/oauth/v3/token",
                &[
                    ("grant_type", "authorization_code"),
                    ("client_id", &p.client_id),
                    ("client_secret", &p.client_secret),
                    ("redirect_uri", "http://localhost/cb"),
                    ("code", code),
                ],
            )
            .await;
        assert_eq!(status, 200, "{tokens}");
        tokens
    }

    /// Consents with `consent`, exchanges the code and returns the OAuth access token.
    pub async fn oauth_access(&self, p: &PortalInfo, consent: Value) -> String {
        let code = self.auth_code(p.id, consent).await;
        let tokens = self.exchange(p, &code).await;
        tokens["access_token"].as_str().expect("access").to_owned()
    }

    /// Asks the token endpoint at `path` for a refresh with portal `p`'s client
    /// credentials; answers the status and the JSON body.
    pub async fn refresh(&self, p: &PortalInfo, path: &str, refresh_token: &str) -> (u16, Value) {
        self.form(
            path,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &p.client_id),
                ("client_secret", &p.client_secret),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }
}

pub async fn split(resp: reqwest::Response) -> (u16, reqwest::header::HeaderMap, Value) {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    (status, headers, body)
}
