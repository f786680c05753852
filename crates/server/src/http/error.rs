//! The one error type of the HTTP edge. It renders what the npm CLI understands:
//! `{"error": "…"}` with the right status, and the `WWW-Authenticate` values that make npm
//! prompt for an OTP (`otp`), report an IP refusal (`ipaddress`) or a bad password (`Basic`).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use tessera_store::StoreError;

/// What `WWW-Authenticate` a 401 carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// No header.
    None,
    /// `otp`: npm prompts for a one-time password and retries with `npm-otp`.
    Otp,
    /// `ipaddress`: npm reports EAUTHIP (token used outside its CIDR whitelist).
    IpAddress,
    /// `Bearer`: npm says the token seems invalid and suggests `npm login`.
    Bearer,
    /// `Basic`: npm says the password is incorrect or missing.
    Basic,
}

/// An error answered to an npm client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human-readable message, shown by npm after the status line.
    pub message: String,
    /// Challenge header for 401s.
    pub challenge: Challenge,
    /// `Retry-After` seconds (429).
    pub retry_after: Option<u64>,
    /// Extra fields of the JSON body (web OTP's `authUrl` and `doneUrl`).
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with a status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            challenge: Challenge::None,
            retry_after: None,
            extra: None,
        }
    }

    /// 400: the request is malformed or breaks a rule.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401: no or bad credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 401 asking for credentials: the caller is anonymous.
    pub fn login_required() -> Self {
        Self::unauthorized("You must be logged in to do this. Run `npm login` first.")
    }

    /// 401 with `WWW-Authenticate: otp`: npm prompts for a one-time password.
    pub fn otp_required(message: impl Into<String>) -> Self {
        ApiError {
            challenge: Challenge::Otp,
            ..Self::unauthorized(message)
        }
    }

    /// 401 with `WWW-Authenticate: ipaddress`.
    pub fn ip_refused() -> Self {
        ApiError {
            challenge: Challenge::IpAddress,
            ..Self::unauthorized("This token may not be used from your IP address.")
        }
    }

    /// 401 for a token that is unknown, revoked, expired or whose account is locked.
    pub fn bad_token(message: impl Into<String>) -> Self {
        ApiError {
            challenge: Challenge::Bearer,
            ..Self::unauthorized(message)
        }
    }

    /// 401 for wrong Basic credentials.
    pub fn bad_basic() -> Self {
        ApiError {
            challenge: Challenge::Basic,
            ..Self::unauthorized("Incorrect username or password.")
        }
    }

    /// 403: authenticated but not allowed.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 404 with npm's wording.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not found")
    }

    /// 404 with a specific message.
    pub fn not_found_msg(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 409: conflicts with the stored state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// 413: the body is over the configured limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request body is larger than this registry's limit of {limit} bytes"),
        )
    }

    /// 429 with `Retry-After`.
    pub fn too_many(message: impl Into<String>, retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, message)
        }
    }

    /// 500; the detail goes to the log, never to the client.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::not_found(),
            StoreError::Conflict => ApiError::conflict("Document update conflict"),
            StoreError::Precondition(m) => ApiError::bad_request(m),
            StoreError::VersionExists => {
                ApiError::conflict("You cannot publish over a previously published version")
            }
            StoreError::NotMaintainer => {
                ApiError::forbidden("You are not a maintainer of this package")
            }
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::Map::new();
        body.insert("error".into(), serde_json::Value::String(self.message));
        if let Some(extra) = self.extra {
            body.extend(extra);
        }
        let mut res = (self.status, Json(serde_json::Value::Object(body))).into_response();
        let h = res.headers_mut();
        match self.challenge {
            Challenge::None => {}
            Challenge::Otp => {
                h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("otp"));
            }
            Challenge::IpAddress => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("ipaddress"),
                );
            }
            Challenge::Bearer => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"tessera\""),
                );
            }
            Challenge::Basic => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"tessera\""),
                );
            }
        }
        if let Some(s) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}
