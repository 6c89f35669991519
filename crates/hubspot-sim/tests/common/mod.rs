//! Shared helpers: start the simulator in-process and create portals over plain HTTP.

#![allow(dead_code, reason = "each test binary uses a different subset")]
#![expect(clippy::expect_used, reason = "test helpers fail loudly")]

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
        let resp = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("get");
        split(resp).await
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

    pub async fn stats(&self, portal: u64) -> Value {
        self.http
            .get(self.url(&format!("/_sim/portals/{portal}/stats")))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("json")
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
