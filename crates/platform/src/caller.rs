//! Who is calling a service's `/api/v1` routes: the identity auth-gateway forwards in a
//! short-lived internal token (`docs/internal-api.md`).
//!
//! A service registers a [`CallerAuth`] as app data (its own name as the audience) and takes
//! [`Caller`] as a handler argument. A request without a valid token never reaches the
//! handler: it is answered 401 with the common error shape.

use std::future::{Ready, ready};
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use serde_json::json;
use uuid::Uuid;

use crate::jwt::InternalTokenVerifier;

/// Roles allowed to change things (connections, mappings, configs).
const WRITER_ROLES: [&str; 2] = ["owner", "admin"];

/// What the [`Caller`] extractor verifies tokens with: register with
/// `App::app_data(web::Data::new(CallerAuth::new(verifier, "scoring-engine")))`.
#[derive(Clone)]
pub struct CallerAuth {
    verifier: Arc<InternalTokenVerifier>,
    audience: String,
}

impl CallerAuth {
    /// Accepts tokens verified by `verifier` and meant for `audience` (the service's name).
    pub fn new(verifier: InternalTokenVerifier, audience: impl Into<String>) -> Self {
        Self {
            verifier: Arc::new(verifier),
            audience: audience.into(),
        }
    }
}

/// The caller of a forwarded request, as auth-gateway vouched for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `user:<sub>` for a person, or a service name.
    pub subject: String,
    /// The organization every query of this request is scoped to.
    pub org_id: Uuid,
    /// The caller's roles (`owner`, `admin`, `member`).
    pub roles: Vec<String>,
}

impl Caller {
    /// True for owners and admins.
    pub fn is_writer(&self) -> bool {
        self.roles
            .iter()
            .any(|r| WRITER_ROLES.contains(&r.as_str()))
    }

    /// Ok for owners and admins; a 403 [`CallerError::Forbidden`] for members.
    pub fn require_writer(&self) -> Result<(), CallerError> {
        if self.is_writer() {
            Ok(())
        } else {
            Err(CallerError::Forbidden)
        }
    }
}

/// Why a request's caller was refused.
#[derive(Debug, thiserror::Error)]
pub enum CallerError {
    /// No token, not a valid internal token, or one without an org.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller's role may not do this.
    #[error("this needs the owner or admin role")]
    Forbidden,
    /// The service was built without a [`CallerAuth`]: a wiring bug, answered 500.
    #[error("caller verification is not configured")]
    NotConfigured,
}

impl ResponseError for CallerError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotConfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (code, message) = match self {
            Self::Unauthenticated(message) => ("unauthenticated", message.as_str()),
            Self::Forbidden => ("forbidden", "this needs the owner or admin role"),
            Self::NotConfigured => ("internal", "internal error"),
        };
        HttpResponse::build(self.status_code()).json(json!({"error": code, "message": message}))
    }
}

impl FromRequest for Caller {
    type Error = CallerError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut actix_web::dev::Payload) -> Self::Future {
        ready(caller_of(req))
    }
}

fn caller_of(req: &HttpRequest) -> Result<Caller, CallerError> {
    let Some(auth) = req.app_data::<web::Data<CallerAuth>>() else {
        tracing::error!("Caller extractor used without CallerAuth app data");
        return Err(CallerError::NotConfigured);
    };
    let token = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| CallerError::Unauthenticated("missing bearer token".to_owned()))?;
    let claims = auth
        .verifier
        .verify(token, &auth.audience)
        .map_err(|e| CallerError::Unauthenticated(e.to_string()))?;
    let org_id = claims.org_id.ok_or_else(|| {
        CallerError::Unauthenticated("the token names no organization".to_owned())
    })?;
    Ok(Caller {
        subject: claims.sub,
        org_id,
        roles: claims.roles,
    })
}

#[cfg(test)]
mod tests {
    use actix_web::{App, test, web};

    use super::*;
    use crate::jwt::{
        DEVELOPMENT_PRIVATE_KEY_PEM, DEVELOPMENT_PUBLIC_KEY_PEM, InternalTokenSigner,
    };

    fn signer() -> InternalTokenSigner {
        InternalTokenSigner::new(
            DEVELOPMENT_PRIVATE_KEY_PEM,
            "hubscore",
            std::time::Duration::from_secs(60),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn verifier() -> InternalTokenVerifier {
        InternalTokenVerifier::new(&[DEVELOPMENT_PUBLIC_KEY_PEM], "hubscore")
            .unwrap_or_else(|e| panic!("{e}"))
    }

    async fn whoami(caller: Caller) -> Result<HttpResponse, CallerError> {
        caller.require_writer()?;
        Ok(HttpResponse::Ok().body(caller.org_id.to_string()))
    }

    #[actix_web::test]
    async fn only_a_valid_token_for_this_service_with_a_writer_role_gets_through() {
        let app = test::init_service(
            App::new()
                .app_data(web::Data::new(CallerAuth::new(
                    verifier(),
                    "scoring-engine",
                )))
                .route("/", web::get().to(whoami)),
        )
        .await;
        let org = Uuid::now_v7();
        let mint = |aud: &str, role: &str| {
            signer()
                .mint(aud, "user:1", Some(org), vec![role.to_owned()])
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let cases = [
            (None, 401),
            (Some(mint("sync-worker", "admin")), 401),
            (Some(mint("scoring-engine", "member")), 403),
            (Some(mint("scoring-engine", "admin")), 200),
        ];
        for (token, expected) in cases {
            let mut request = test::TestRequest::get().uri("/");
            if let Some(token) = token {
                request = request.insert_header(("Authorization", format!("Bearer {token}")));
            }
            let response = test::call_service(&app, request.to_request()).await;
            assert_eq!(response.status().as_u16(), expected);
        }
    }
}
