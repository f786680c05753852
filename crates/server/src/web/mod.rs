//! The website, served by the same binary under `/-/web/`: server-rendered HTML (askama), every
//! form a plain POST that works without JavaScript. Pages: sign-in (with the second step for 2FA),
//! sign-up, the account and its 2FA settings, tokens, the security log, packages, and the browser
//! halves of npm's web login and web OTP.
//!
//! Security: server-side sessions (`session.rs`), a CSRF token plus an `Origin` check on every
//! form, `Cache-Control: no-store`, a strict Content-Security-Policy (no script at all) and no
//! secrets in URLs. Every change goes through the same gate as the npm API.

pub mod account;
pub mod handshake;
pub mod markdown;
pub mod packages;
pub mod qr;
pub mod security_keys;
pub mod session;
pub mod signin;
pub mod templates;
pub mod tokens;

use askama::Template;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::http::error::ApiError;
use crate::state::AppState;

pub use session::Web;

/// The stylesheet, embedded in the binary.
const SITE_CSS: &str = include_str!("../../static/site.css");

/// The security-key script, embedded in the binary.
const KEYS_JS: &str = include_str!("../../static/keys.js");

/// The Content-Security-Policy of every page: nothing but this site's stylesheet and its one
/// script (security keys, which calls this site alone), forms posting to this site, and images
/// from anywhere for READMEs.
pub const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; \
     connect-src 'self'; img-src 'self' https: data:; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// The website's routes (mounted at the root; every path is under `/-/web/`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/-/web/") }))
        .route("/-/web", get(|| async { Redirect::to("/-/web/") }))
        .route("/-/web/", get(packages::home))
        .route("/-/web/static/site.css", get(stylesheet))
        .route("/-/web/static/keys.js", get(script))
        .route("/-/web/package/{*name}", get(packages::package))
        .route("/-/web/signin", get(signin::form).post(signin::submit))
        .route(
            "/-/web/signin/otp",
            get(signin::otp_form).post(signin::otp_submit),
        )
        .route("/-/web/signout", post(signin::signout))
        .route(
            "/-/web/signup",
            get(signin::signup_form).post(signin::signup_submit),
        )
        .route(
            "/-/web/invitation/{secret}",
            get(signin::invitation_form).post(signin::invitation_submit),
        )
        .route(
            "/-/web/reauth",
            get(signin::reauth_form).post(signin::reauth_submit),
        )
        .route("/-/web/account", get(account::page))
        .route("/-/web/account/profile", post(account::profile))
        .route("/-/web/account/security", get(account::security_log))
        .route("/-/web/account/2fa", get(account::two_factor))
        .route("/-/web/account/2fa/enable", post(account::enable))
        .route("/-/web/account/2fa/setup", get(account::setup))
        .route("/-/web/account/2fa/confirm", post(account::confirm))
        .route("/-/web/account/2fa/app", post(account::add_app))
        .route("/-/web/account/2fa/app/confirm", post(account::confirm_app))
        .route("/-/web/account/2fa/mode", post(account::mode))
        .route("/-/web/account/2fa/disable", post(account::disable))
        .route(
            "/-/web/account/2fa/recovery-codes",
            post(account::regenerate),
        )
        .route("/-/web/account/2fa/web-otp", post(account::web_otp))
        .route("/-/web/account/keys", post(security_keys::add))
        .route("/-/web/account/keys/begin", post(security_keys::begin_add))
        .route(
            "/-/web/account/keys/confirm/begin",
            post(security_keys::begin_confirm),
        )
        .route("/-/web/account/keys/remove", post(security_keys::remove))
        .route("/-/web/signin/key", post(security_keys::signin))
        .route(
            "/-/web/handshake/{id}/key",
            post(security_keys::approve_handshake),
        )
        .route(
            "/-/web/handshake/{id}/key/begin",
            post(security_keys::begin_handshake),
        )
        .route("/-/web/signin/key/begin", post(security_keys::begin_signin))
        .route("/-/web/tokens", get(tokens::page).post(tokens::create))
        .route("/-/web/tokens/revoke", post(tokens::revoke))
        .route(
            "/-/web/cli-login/{id}",
            get(handshake::login_page).post(handshake::login_decide),
        )
        .route(
            "/-/web/confirm/{id}",
            get(handshake::otp_page).post(handshake::otp_decide),
        )
        // Any other page of the site: the site's own 404, not the npm API's JSON one.
        .route("/-/web/{*rest}", axum::routing::any(no_such_page))
}

async fn no_such_page() -> WebError {
    WebError::not_found()
}

async fn stylesheet() -> Response {
    static_file(SITE_CSS, "text/css; charset=utf-8")
}

async fn script() -> Response {
    static_file(KEYS_JS, "text/javascript; charset=utf-8")
}

fn static_file(body: &'static str, content_type: &'static str) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    res
}

/// What every page's frame needs: who is signed in, the CSRF token, a message.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    /// The signed-in user's name.
    pub user: Option<String>,
    /// The CSRF token for the forms of the page.
    pub csrf: String,
    /// A one-line message at the top.
    pub flash: Option<String>,
}

impl Web {
    /// The frame of a page for this request.
    pub fn chrome(&self) -> Chrome {
        Chrome {
            user: self.caller.user.as_ref().map(|u| u.name.clone()),
            csrf: self.csrf(),
            flash: None,
        }
    }

    /// Renders a page (200) with the security headers, and the session cookie if it changed.
    pub fn page(&self, t: &impl Template) -> Response {
        self.page_with_status(StatusCode::OK, t)
    }

    /// Renders a page with a status.
    pub fn page_with_status(&self, status: StatusCode, t: &impl Template) -> Response {
        let html = match t.render() {
            Ok(h) => h,
            Err(e) => return WebError::internal(e).into_response(),
        };
        let mut res = (status, axum::response::Html(html)).into_response();
        secure_headers(&mut res);
        for c in &self.set_cookie {
            res.headers_mut().append(header::SET_COOKIE, c.clone());
        }
        res
    }

    /// A 303 redirect to a page of this site, with the session cookie if it changed.
    pub fn redirect(&self, to: &str) -> Response {
        let mut res = Redirect::to(to).into_response();
        secure_headers(&mut res);
        for c in &self.set_cookie {
            res.headers_mut().append(header::SET_COOKIE, c.clone());
        }
        res
    }
}

fn secure_headers(res: &mut Response) {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// Why a page could not be shown.
#[derive(Debug)]
pub enum WebError {
    /// Go elsewhere first (sign in, re-authenticate).
    Redirect(String),
    /// An error page.
    Page {
        /// HTTP status.
        status: StatusCode,
        heading: &'static str,
        /// What went wrong, for the user.
        message: String,
    },
}

impl WebError {
    /// A redirect.
    pub fn redirect(to: &str) -> Self {
        WebError::Redirect(to.to_owned())
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        WebError::Page {
            status: StatusCode::FORBIDDEN,
            heading: "Not allowed",
            message: message.into(),
        }
    }

    /// 404.
    pub fn not_found() -> Self {
        WebError::Page {
            status: StatusCode::NOT_FOUND,
            heading: "Not found",
            message: "There is nothing here.".into(),
        }
    }

    /// 404 for a package page: the same answer for a missing package and for one the reader may
    /// not see, so the page says nothing about which.
    pub fn package_not_found(signed_in: bool) -> Self {
        WebError::Page {
            status: StatusCode::NOT_FOUND,
            heading: "Not found",
            message: if signed_in {
                "There is no package by this name that you can see.".into()
            } else {
                "There is no package by this name, or it is private: sign in to see the private \
                 packages you maintain."
                    .into()
            },
        }
    }

    /// 500; details only in the log.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "website error");
        WebError::Page {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            heading: "Something went wrong",
            message: "The registry could not complete this request.".into(),
        }
    }
}

impl From<ApiError> for WebError {
    fn from(e: ApiError) -> Self {
        WebError::Page {
            status: e.status,
            heading: "Something went wrong",
            message: e.message,
        }
    }
}

impl From<tessera_store::StoreError> for WebError {
    fn from(e: tessera_store::StoreError) -> Self {
        WebError::from(ApiError::from(e))
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            WebError::Redirect(to) => {
                let mut res = Redirect::to(&to).into_response();
                secure_headers(&mut res);
                res
            }
            WebError::Page {
                status,
                heading,
                message,
            } => {
                let t = templates::ErrorPage {
                    chrome: Chrome::default(),
                    heading,
                    message,
                };
                let html = t.render().unwrap_or_else(|_| "error".into());
                let mut res = (status, axum::response::Html(html)).into_response();
                secure_headers(&mut res);
                res
            }
        }
    }
}

/// Result of a page handler.
pub type WebResult = Result<Response, WebError>;

/// A submitted form's fields. A field holding a NUL character is refused (400) before any
/// handler runs, as JSON bodies are: no text column may hold one.
pub struct Form(pub std::collections::HashMap<String, String>);

impl<S: Send + Sync> axum::extract::FromRequest<S> for Form {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Form(fields) = axum::extract::Form::<
            std::collections::HashMap<String, String>,
        >::from_request(req, state)
        .await
        .map_err(IntoResponse::into_response)?;
        if fields
            .iter()
            .any(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err((
                axum::http::StatusCode::BAD_REQUEST,
                "A form field contains a NUL character.",
            )
                .into_response());
        }
        Ok(Form(fields))
    }
}

/// A field of a form, trimmed; `None` when absent or empty.
pub fn field<'a>(form: &'a Form, name: &str) -> Option<&'a str> {
    form.0.get(name).map(|s| s.trim()).filter(|s| !s.is_empty())
}

/// A field of a form, untrimmed (passwords).
pub fn raw_field<'a>(form: &'a Form, name: &str) -> Option<&'a str> {
    form.0
        .get(name)
        .map(String::as_str)
        .filter(|s| !s.is_empty())
}
