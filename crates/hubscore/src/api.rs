//! auth-gateway's public API, as the tool calls it.

use std::time::Duration;

use anyhow::{Context as _, bail};
use reqwest::Method;
use serde_json::Value;

/// A client for one gateway, acting with one caller's token.
pub struct Gateway {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Gateway {
    /// A client for `base` (e.g. `http://127.0.0.1:8080`) sending `token` as the bearer.
    pub fn new(base: &str, token: Option<String>, timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// `GET /api/v1{path}`.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::GET, path, None).await
    }

    /// `GET /api/v1{path}`, or `None` when the answer is 404.
    pub async fn get_if_found(&self, path: &str) -> anyhow::Result<Option<Value>> {
        match self.call(Method::GET, path, None).await {
            Ok(value) => Ok(Some(value)),
            Err(error) if error.downcast_ref::<NotFound>().is_some() => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// `POST /api/v1{path}` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// `PUT /api/v1{path}` with a JSON body.
    pub async fn put(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.call(Method::PUT, path, Some(body)).await
    }

    /// `DELETE /api/v1{path}`.
    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::DELETE, path, None).await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let Some(token) = &self.token else {
            bail!(
                "no token: pass --token or set HUBSCORE_TOKEN (auth-gateway issue-token mints one in development)"
            );
        };
        let url = format!("{}/api/v1{path}", self.base);
        let mut request = self.http.request(method.clone(), &url).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                anyhow::anyhow!("{method} {url}: no answer within the timeout")
            } else {
                anyhow::anyhow!("cannot reach the gateway at {} (is it running?)", self.base)
            }
        })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .with_context(|| format!("{method} {url}: reading the answer"))?;
        let value: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        if status.is_success() {
            return Ok(value);
        }
        let code = value["error"].as_str().unwrap_or("error");
        let message = value["message"].as_str().unwrap_or("");
        let error = anyhow::anyhow!("{method} {path}: {} {code}: {message}", status.as_u16());
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(error.context(NotFound));
        }
        Err(error)
    }
}

/// Marks an error whose answer was 404.
#[derive(Debug)]
pub struct NotFound;

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not found")
    }
}

/// The items of a list answer, whether it is a bare array or `{"items": [...]}` (also
/// `connections`, `customers`, `syncs`, `entries`, `results`).
pub fn items(value: &Value) -> Vec<Value> {
    if let Some(array) = value.as_array() {
        return array.clone();
    }
    for key in [
        "items",
        "data",
        "connections",
        "customers",
        "syncs",
        "entries",
        "results",
    ] {
        if let Some(array) = value[key].as_array() {
            return array.clone();
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn list_answers_are_read_in_either_shape() {
        assert_eq!(items(&json!([1, 2])).len(), 2);
        assert_eq!(items(&json!({"items": [1, 2, 3]})).len(), 3);
        assert_eq!(items(&json!({"customers": [1]})).len(), 1);
        assert!(items(&json!({"other": 1})).is_empty());
    }
}
