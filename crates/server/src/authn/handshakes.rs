//! Browser handshakes: npm shows the user one URL (`loginUrl`, `authUrl`) and polls another
//! (`doneUrl`) until the user has approved in the browser (`npm login` since npm 9, and web
//! one-time passwords since npm 8.15).
//!
//! The two ids are independent random values (≥ 190 bits each) and only their hashes are
//! stored, so seeing the browser URL does not let anyone collect the result. A handshake expires
//! after `web.handshake` and is collected exactly once.

use tessera_store::{HandshakeKind, UserId};

use crate::authn::api_tokens;
use crate::http::error::ApiResult;
use crate::state::AppState;

/// Prefix of the one-time codes a web-OTP handshake hands to npm.
pub const WEB_OTP_PREFIX: &str = "wotp_";

/// The two URLs of a new handshake.
pub struct Urls {
    /// For the browser.
    pub browser: String,
    /// For npm to poll.
    pub done: String,
}

/// Opens a handshake and returns its URLs under `base` (`needs_key`: only a security key may
/// approve it).
pub async fn open(
    state: &AppState,
    kind: HandshakeKind,
    user: Option<UserId>,
    create_account: bool,
    needs_key: bool,
    base: &str,
) -> ApiResult<Urls> {
    let login_id = api_tokens::random_base62(32);
    let done_id = api_tokens::random_base62(32);
    let now = state.clock.now_ms();
    let expires = now + state.config.web.handshake.as_ms();
    state
        .store
        .create_handshake(
            kind,
            &api_tokens::hash(&login_id),
            &api_tokens::hash(&done_id),
            create_account,
            needs_key,
            user,
            now,
            expires,
        )
        .await?;
    let page = match kind {
        HandshakeKind::Login => "cli-login",
        HandshakeKind::Otp => "confirm",
    };
    Ok(Urls {
        browser: format!("{base}/-/web/{page}/{login_id}"),
        done: format!("{base}/-/v1/done/{done_id}"),
    })
}

/// A new one-time code for a collected web-OTP handshake: `wotp_` and 32 base62 characters.
pub fn new_web_otp() -> String {
    format!("{WEB_OTP_PREFIX}{}", api_tokens::random_base62(32))
}
