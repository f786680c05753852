//! The access log: method, path, status and time of every request, with token values redacted
//! from paths (`npm logout` and `npm token revoke <token>` put them there). Headers and bodies
//! are never logged, so OTPs, passwords and tokens never reach the log.

use std::time::Instant;

use axum::extract::Request;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

/// Replaces token values and one-time ids in a path with `[redacted]`. A browser-login or web
/// OTP id lets whoever holds it collect what the user approves, so it is a credential too.
pub fn redact(path: &str) -> String {
    for prefix in ["/-/user/token/", "/-/npm/v1/tokens/token/"] {
        if let Some(rest) = path.strip_prefix(prefix)
            && !crate::authn::api_tokens::looks_like_key(rest)
        {
            return format!("{prefix}[redacted]");
        }
    }
    for prefix in [
        "/-/v1/done/",
        "/-/web/cli-login/",
        "/-/web/confirm/",
        "/-/web/invitation/",
    ] {
        if let Some(rest) = path.strip_prefix(prefix)
            && !rest.is_empty()
        {
            let tail = rest.find('/').map_or("", |i| &rest[i..]);
            return format!("{prefix}[redacted]{tail}");
        }
    }
    path.to_owned()
}

/// Middleware that logs each request at `info` under the `tessera::access` target.
pub async fn log(req: Request, next: Next) -> Response {
    if !enabled() {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    around(&method, &path, next.run(req)).await
}

/// Whether the access log is on (`tessera::access` at `info`).
pub fn enabled() -> bool {
    tracing::enabled!(target: "tessera::access", tracing::Level::INFO)
}

/// Runs `handler`, the answer to `method` `path`, and logs it at `info` under the
/// `tessera::access` target.
pub async fn around(
    method: &Method,
    path: &str,
    handler: impl std::future::Future<Output = Response>,
) -> Response {
    let start = Instant::now();
    let path = redact(path);
    let res = handler.await;
    tracing::info!(
        target: "tessera::access",
        %method,
        path = %path,
        status = res.status().as_u16(),
        ms = start.elapsed().as_millis() as u64,
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_time_ids_never_reach_the_log() {
        assert_eq!(redact("/-/v1/done/AbC123"), "/-/v1/done/[redacted]");
        assert_eq!(
            redact("/-/web/cli-login/AbC123/approve"),
            "/-/web/cli-login/[redacted]/approve"
        );
        assert_eq!(redact("/-/web/confirm/x9"), "/-/web/confirm/[redacted]");
        assert_eq!(
            redact("/-/web/invitation/s3cret"),
            "/-/web/invitation/[redacted]"
        );
        assert_eq!(redact("/-/web/account"), "/-/web/account");
    }

    #[test]
    fn tokens_never_reach_the_log() {
        let t = crate::authn::api_tokens::mint().value;
        assert_eq!(
            redact(&format!("/-/user/token/{t}")),
            "/-/user/token/[redacted]"
        );
        assert_eq!(
            redact(&format!("/-/npm/v1/tokens/token/{t}")),
            "/-/npm/v1/tokens/token/[redacted]"
        );
        let key = "a".repeat(64);
        assert_eq!(
            redact(&format!("/-/npm/v1/tokens/token/{key}")),
            format!("/-/npm/v1/tokens/token/{key}")
        );
        assert_eq!(redact("/demo"), "/demo");
    }
}
