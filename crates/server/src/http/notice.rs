//! `npm-notice` response headers: npm prints them as `npm notice …`. A handler or the `Caller`
//! extractor leaves a message in the request's [`NoticeSlot`]; the middleware adds the header.

use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;

/// Where a notice for this request's response is left.
#[derive(Clone, Default)]
pub struct NoticeSlot(Arc<Mutex<Option<String>>>);

impl NoticeSlot {
    /// Leaves a notice.
    pub fn set(&self, text: String) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(text);
    }
}

/// Leaves a notice for the response to the request these parts belong to.
pub fn leave(parts: &Parts, text: String) {
    if let Some(slot) = parts.extensions.get::<NoticeSlot>() {
        slot.set(text);
    }
}

/// Middleware that gives each request a slot and turns what is left in it into `npm-notice`.
pub async fn layer(mut req: Request, next: Next) -> Response {
    // Notices go with writes and `whoami` only (never with every packument of an install).
    let wanted = !matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    ) || req.uri().path() == "/-/whoami";
    if !wanted {
        return next.run(req).await;
    }
    let slot = NoticeSlot::default();
    req.extensions_mut().insert(slot.clone());
    let mut res = next.run(req).await;
    let text = slot.0.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(t) = text
        && let Ok(v) = HeaderValue::from_str(&t.replace(['\r', '\n'], " "))
    {
        res.headers_mut().insert("npm-notice", v);
    }
    res
}
