//! Request body extraction with npm-shaped errors: a size limit (413) and JSON parsing (400).

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_LENGTH;
use serde::de::DeserializeOwned;

use crate::http::error::ApiError;

/// Reads a whole body, refusing it past `limit` bytes.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    if let Some(len) = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > limit as u64
    {
        return Err(ApiError::too_large(limit));
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        let mut timed_out = false;
        while let Some(c) = cause {
            timed_out |= c.is::<crate::http::listener::BodyTimedOut>();
            cause = c.source();
        }
        if timed_out {
            ApiError::new(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                "The request body took too long to arrive: send it again",
            )
        } else {
            ApiError::too_large(limit)
        }
    })
}

/// Parses JSON, with a 400 that says where it broke.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "Request body is empty; expected JSON",
        ));
    }
    if has_escaped_nul(bytes) {
        return Err(ApiError::bad_request(
            "Request body contains a NUL character (\\u0000), which no text field may hold",
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("Malformed JSON in request body: {e}")))
}

/// Whether JSON text holds the escape `\u0000` (a NUL inside a string; a raw NUL byte is not
/// valid JSON anyway). Refused on both backends alike: PostgreSQL cannot store it in text.
fn has_escaped_nul(bytes: &[u8]) -> bool {
    let pat = b"\\u0000";
    bytes.windows(pat.len()).enumerate().any(|(i, w)| {
        w == pat && {
            // the backslash escapes `u` only if an even number of backslashes precede it
            let before = bytes[..i].iter().rev().take_while(|&&c| c == b'\\').count();
            before % 2 == 0
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_in_any_string_is_refused_but_an_escaped_backslash_is_not() {
        assert!(has_escaped_nul(br#"{"readme":"a\u0000b"}"#));
        assert!(has_escaped_nul(br#"{"a\u0000":1}"#));
        assert!(has_escaped_nul(br#"{"x":"\\\u0000"}"#));
        assert!(
            !has_escaped_nul(br#"{"x":"\\u0000"}"#),
            "a backslash, then u0000"
        );
        assert!(!has_escaped_nul(br#"{"x":"u0000"}"#));
        let err = parse_json::<serde_json::Value>(br#"{"readme":"a\u0000"}"#).unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST);
    }
}
