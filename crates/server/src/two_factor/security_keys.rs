//! Security keys and passkeys (WebAuthn) as second factors, through `webauthn-rs`: registering
//! a key, and asserting with one. Every ceremony's state is kept in the store (single use,
//! expiring, bound to the session or handshake that began it), so one begun on an instance
//! completes on another, and a ceremony id alone is worth nothing elsewhere.
//!
//! The relying party is the registry's public origin: `public_url` when set, else the origin the
//! request came to (`http://localhost:4873` in development; browsers refuse IP addresses as
//! WebAuthn origins). Keys are second factors after the password, so user verification is
//! preferred, not required: a U2F-style key with no PIN works, as does a passkey.

use webauthn_rs::prelude::{
    AttestationCaList, CreationChallengeResponse, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse, SecurityKey, SecurityKeyAuthentication, SecurityKeyRegistration, Url,
    Uuid, Webauthn, WebauthnBuilder, WebauthnError,
};

use tessera_store::{
    Ceremony, CeremonyKind, FailureKind, NewSecurityKey, SecurityKeyRecord, StoreError,
    TwoFactorMode, User,
};

use crate::authn::{api_tokens, throttle};
use crate::http::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::two_factor::enrolment;

/// How long a ceremony may take (the browser's own timeout is the same).
pub const CEREMONY_MS: i64 = 5 * 60 * 1000;
/// The longest name a key may have.
pub const MAX_NAME: usize = 64;

/// Whether account `user` has a security key or passkey.
pub async fn has_keys(state: &AppState, user: i64) -> ApiResult<bool> {
    Ok(!state.store.security_keys(user).await?.is_empty())
}

/// The relying party for `base_url` (the registry's origin, no path).
pub fn relying_party(base_url: &str) -> ApiResult<Webauthn> {
    let origin = Url::parse(base_url).map_err(|_| not_available())?;
    let Some(rp_id) = origin.domain().map(str::to_owned) else {
        return Err(not_available());
    };
    WebauthnBuilder::new(&rp_id, &origin)
        .and_then(|b| b.rp_name("tessera").build())
        .map_err(|_| not_available())
}

fn not_available() -> ApiError {
    ApiError::bad_request(
        "Security keys need the registry to be reached by a domain name (set public_url), not \
         an IP address: browsers refuse IP addresses for WebAuthn.",
    )
}

/// The stable, opaque user handle an authenticator stores (never the name or the row id).
fn user_handle(user: &User) -> Uuid {
    let h = api_tokens::hash(&format!("tessera user handle {}", user.id));
    let bytes = data_encoding::HEXLOWER
        .decode(&h.as_bytes()[..32])
        .expect("a SHA-256 hex digest");
    Uuid::from_slice(&bytes).expect("16 bytes")
}

fn library_error(what: &str, e: WebauthnError) -> ApiError {
    tracing::info!(error = ?e, "{what}");
    ApiError::bad_request(format!("{what}: {e}."))
}

fn stored_key(k: &SecurityKeyRecord) -> ApiResult<SecurityKey> {
    serde_json::from_str(&k.credential).map_err(ApiError::internal)
}

/// Opens a ceremony for `user` bound to `bound_to`; returns its id (for the page).
async fn open(
    state: &AppState,
    user: &User,
    kind: CeremonyKind,
    bound_to: &str,
    ceremony_state: String,
) -> ApiResult<String> {
    let id = api_tokens::random_base62(32);
    let now = state.clock.now_ms();
    state
        .store
        .create_ceremony(&Ceremony {
            id_hash: api_tokens::hash(&id),
            user_id: user.id,
            kind,
            bound_to: bound_to.to_owned(),
            state: ceremony_state,
            created_at: now,
            expires_at: now + CEREMONY_MS,
        })
        .await?;
    Ok(id)
}

/// Takes the ceremony `id` of `kind` for `user`, begun by `bound_to`: once, before it expires.
async fn take(
    state: &AppState,
    user: &User,
    kind: CeremonyKind,
    bound_to: &str,
    id: &str,
) -> ApiResult<String> {
    let found = state
        .store
        .take_ceremony(&api_tokens::hash(id), state.clock.now_ms())
        .await?;
    match found {
        Some(c) if c.user_id == user.id && c.kind == kind && c.bound_to == bound_to => Ok(c.state),
        _ => Err(ApiError::bad_request(
            "This security key request has expired or was already used. Try again.",
        )),
    }
}

/// The attestation roots of `tfa.attestation_roots` (`None`: any key may be added). Each file
/// holds one or more PEM certificates.
pub fn attestation_roots(
    config: &crate::config::Config,
) -> Result<Option<AttestationCaList>, String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    let paths = &config.tfa.attestation_roots;
    if paths.is_empty() {
        return Ok(None);
    }
    let mut list = AttestationCaList::default();
    for path in paths {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("tfa.attestation_roots: cannot read {}: {e}", path.display()))?;
        let pems: Vec<String> = text
            .split(BEGIN)
            .skip(1)
            .map(|rest| format!("{BEGIN}{rest}"))
            .collect();
        if pems.is_empty() {
            return Err(format!(
                "tfa.attestation_roots: {} holds no PEM certificate",
                path.display()
            ));
        }
        for pem in pems {
            let one = AttestationCaList::try_from(pem.as_bytes()).map_err(|e| {
                format!(
                    "tfa.attestation_roots: {} holds a certificate that cannot be read: {e:?}",
                    path.display()
                )
            })?;
            list.union(&one);
        }
    }
    Ok(Some(list))
}

/// Starts registering a key for `user`: the options for `navigator.credentials.create`.
pub async fn begin_registration(
    state: &AppState,
    user: &User,
    bound_to: &str,
    base_url: &str,
) -> ApiResult<(String, serde_json::Value)> {
    let rp = relying_party(base_url)?;
    let existing = state.store.security_keys(user.id).await?;
    let mut exclude = Vec::with_capacity(existing.len());
    for k in &existing {
        exclude.push(stored_key(k)?.cred_id().clone());
    }
    let roots = attestation_roots(&state.config).map_err(ApiError::internal)?;
    let (options, reg) = rp
        .start_securitykey_registration(
            user_handle(user),
            &user.name,
            &user.name,
            Some(exclude),
            roots,
            None,
        )
        .map_err(|e| library_error("Cannot start registering a key", e))?;
    let saved: String = serde_json::to_string(&reg).map_err(ApiError::internal)?;
    let id = open(state, user, CeremonyKind::Register, bound_to, saved).await?;
    Ok((id, without_cred_protect(options)?))
}

/// The creation options without the credProtect extension. The library asks for it with user
/// verification only preferred (a second factor need not be verified), a combination Chromium
/// refuses outright; the extension is optional and its absence is accepted on the way back.
fn without_cred_protect(options: CreationChallengeResponse) -> ApiResult<serde_json::Value> {
    let mut v = serde_json::to_value(options).map_err(ApiError::internal)?;
    if let Some(ext) = v
        .pointer_mut("/publicKey/extensions")
        .and_then(serde_json::Value::as_object_mut)
    {
        ext.remove("credentialProtectionPolicy");
        ext.remove("enforceCredentialProtectionPolicy");
    }
    Ok(v)
}

/// A registered key, and the recovery codes when it turned 2FA on.
pub struct Registered {
    /// The stored key.
    pub key: SecurityKeyRecord,
    /// Shown once: the key was the account's first second factor.
    pub recovery_codes: Option<Vec<String>>,
}

/// The browser's answer to a ceremony, and where it came from.
pub struct Answer<'a> {
    /// The account.
    pub user: &'a User,
    /// The session or handshake that began the ceremony (it must be this one).
    pub bound_to: &'a str,
    /// The registry's origin as this request reached it.
    pub base_url: &'a str,
    /// The ceremony's id, as the page got it.
    pub ceremony: &'a str,
    /// The authenticator's answer (JSON).
    pub credential: &'a str,
}

/// Finishes a registration with the browser's answer; the first key turns 2FA on in `mode`.
pub async fn finish_registration(
    state: &AppState,
    answer: Answer<'_>,
    name: &str,
    mode: TwoFactorMode,
) -> ApiResult<Registered> {
    let Answer {
        user,
        bound_to,
        base_url,
        ceremony,
        credential,
    } = answer;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "Give the key a name of 1 to {MAX_NAME} characters."
        )));
    }
    let saved = take(state, user, CeremonyKind::Register, bound_to, ceremony).await?;
    let reg: SecurityKeyRegistration = serde_json::from_str(&saved).map_err(ApiError::internal)?;
    let answer: RegisterPublicKeyCredential = serde_json::from_str(credential)
        .map_err(|e| ApiError::bad_request(format!("The key's answer is malformed: {e}.")))?;
    let rp = relying_party(base_url)?;
    let key = rp
        .finish_securitykey_registration(&answer, &reg)
        .map_err(|e| match e {
            WebauthnError::AttestationNotVerifiable
            | WebauthnError::AttestationChainNotTrusted(_)
            | WebauthnError::AttestationUntrustedAaguid
            | WebauthnError::AttestationTrustFailure => {
                tracing::info!(error = ?e, "a key outside the attestation allow-list");
                ApiError::forbidden(
                    "This registry accepts only security keys from the makers its administrator \
                     approved, and this key's attestation is not one of them. Use another key.",
                )
            }
            e => library_error("The key could not be registered", e),
        })?;
    let (codes, hashes) = enrolment::new_recovery_codes();
    let new = NewSecurityKey {
        user_id: user.id,
        name: name.to_owned(),
        credential_id: data_encoding::BASE64URL_NOPAD.encode(key.cred_id().as_ref()),
        credential: serde_json::to_string(&key).map_err(ApiError::internal)?,
        counter: 0,
        backup_state: false,
    };
    let now = state.clock.now_ms();
    let (key, turned_on) = match state.store.add_security_key(new, mode, &hashes, now).await {
        Ok(r) => r,
        Err(StoreError::Conflict) => {
            return Err(ApiError::bad_request(
                "This key is already registered to an account.",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Registered {
        key,
        recovery_codes: turned_on.then_some(codes),
    })
}

/// Starts an assertion with any of `user`'s keys; `None` when the account has none.
pub async fn begin_assertion(
    state: &AppState,
    user: &User,
    bound_to: &str,
    base_url: &str,
) -> ApiResult<Option<(String, RequestChallengeResponse)>> {
    let keys = state.store.security_keys(user.id).await?;
    if keys.is_empty() {
        return Ok(None);
    }
    let creds: Vec<SecurityKey> = keys.iter().map(stored_key).collect::<ApiResult<_>>()?;
    let rp = relying_party(base_url)?;
    let (options, auth) = rp
        .start_securitykey_authentication(&creds)
        .map_err(|e| library_error("Cannot start asking the key", e))?;
    let saved: String = serde_json::to_string(&auth).map_err(ApiError::internal)?;
    let id = open(state, user, CeremonyKind::Authenticate, bound_to, saved).await?;
    Ok(Some((id, options)))
}

/// Why an assertion failed, for the security log.
pub struct AssertionFailed {
    /// The answer to give.
    pub error: ApiError,
    /// What to log.
    pub detail: String,
}

/// Checks the browser's assertion against the ceremony: the key must be one of `user`'s and its
/// signature counter must move forward (a counter that stays at 0, as synced passkeys report,
/// is accepted). Counted with the one-time-password failures of `ip`'s address and the account.
pub async fn finish_assertion(
    state: &AppState,
    answer: Answer<'_>,
    ip: &str,
) -> Result<SecurityKeyRecord, AssertionFailed> {
    let Answer {
        user,
        bound_to,
        base_url,
        ceremony,
        credential,
    } = answer;
    let fail = |error: ApiError, detail: String| AssertionFailed { error, detail };
    let attempt = throttle::begin(state, FailureKind::Otp, Some(user.id), ip)
        .await
        .map_err(|e| fail(e, "security key: throttled".into()))?;
    let saved = take(state, user, CeremonyKind::Authenticate, bound_to, ceremony)
        .await
        .map_err(|e| fail(e, "security key: unknown, used or expired request".into()))?;
    let result = check_assertion(state, user, base_url, &saved, credential).await;
    match result {
        Ok(key) => {
            let _ = attempt.succeeded(state).await;
            Ok(key)
        }
        Err(e) => {
            let _ = attempt.failed(state).await;
            Err(e)
        }
    }
}

async fn check_assertion(
    state: &AppState,
    user: &User,
    base_url: &str,
    saved: &str,
    credential: &str,
) -> Result<SecurityKeyRecord, AssertionFailed> {
    let fail = |error: ApiError, detail: String| AssertionFailed { error, detail };
    let internal = |e: String| fail(ApiError::internal(e.clone()), e);
    let auth: SecurityKeyAuthentication =
        serde_json::from_str(saved).map_err(|e| internal(e.to_string()))?;
    let answer: PublicKeyCredential = serde_json::from_str(credential).map_err(|e| {
        fail(
            ApiError::bad_request(format!("The key's answer is malformed: {e}.")),
            "security key: malformed answer".into(),
        )
    })?;
    let rp = relying_party(base_url).map_err(|e| fail(e, "security key: no origin".into()))?;
    let result = rp
        .finish_securitykey_authentication(&answer, &auth)
        .map_err(|e| {
            let (message, detail) = match e {
                WebauthnError::CredentialPossibleCompromise => (
                    "The security key's signature counter went back: it may have been copied. \
                     It was refused; use another key, a one-time password or a recovery code.",
                    "security key: signature counter went back (a cloned key?)".to_owned(),
                ),
                WebauthnError::InvalidRPOrigin => (
                    "The security key answered a page of another origin, not this registry's. \
                     Sign in only at the registry's own address.",
                    "security key: the answer names another origin".to_owned(),
                ),
                WebauthnError::InvalidRPIDHash => (
                    "The security key signed for another relying party (site), not this \
                     registry. Sign in only at the registry's own address.",
                    "security key: signed for another relying party".to_owned(),
                ),
                WebauthnError::MismatchedChallenge => (
                    "The security key answered another request. Try again.",
                    "security key: the answer is for another request".to_owned(),
                ),
                ref other => (
                    "The security key's answer was not accepted. Try again, or use a one-time \
                     password or a recovery code.",
                    format!("security key: refused ({other})"),
                ),
            };
            fail(ApiError::otp_required(message), detail)
        })?;
    let keys = state
        .store
        .security_keys(user.id)
        .await
        .map_err(|e| internal(e.to_string()))?;
    let used_id = data_encoding::BASE64URL_NOPAD.encode(result.cred_id().as_ref());
    let Some(record) = keys.into_iter().find(|k| k.credential_id == used_id) else {
        return Err(fail(
            ApiError::otp_required("This security key is not registered to this account."),
            "security key: a credential of another account".into(),
        ));
    };
    let mut key = stored_key(&record).map_err(|e| internal(e.message))?;
    key.update_credential(&result);
    let json = serde_json::to_string(&key).map_err(|e| internal(e.to_string()))?;
    let now = state.clock.now_ms();
    let counter = i64::from(result.counter());
    state
        .store
        .record_key_use(record.id, &json, counter, result.backup_state(), now)
        .await
        .map_err(|e| internal(e.to_string()))?;
    Ok(SecurityKeyRecord {
        counter,
        backup_state: result.backup_state(),
        last_used_at: Some(now),
        credential: json,
        ..record
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relying_party_is_the_registry_origin_and_never_an_ip_address() {
        assert!(relying_party("http://localhost:4873").is_ok());
        assert!(relying_party("https://npm.example.com").is_ok());
        let e = relying_party("http://127.0.0.1:4873").err().unwrap();
        assert!(e.message.contains("public_url"), "{}", e.message);
        assert!(relying_party("not a url").is_err());
    }

    /// A software authenticator with its own attestation CA: admitted when its root is listed
    /// in `tfa.attestation_roots` (read from a PEM file, beside another root), refused when only
    /// another maker's root is; files that hold no certificate are reported by name.
    #[test]
    fn the_attestation_allow_list_admits_keys_chaining_to_a_listed_root() {
        use crypto_glue::traits::{EncodePem, LineEndingPem};
        use webauthn_authenticator_rs::WebauthnAuthenticator;
        use webauthn_authenticator_rs::softtoken::SoftToken;

        let dir = std::env::temp_dir().join(format!("tessera-att-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write_root = |name: &str, cert: &crypto_glue::x509::Certificate| {
            let path = dir.join(name);
            std::fs::write(&path, cert.to_pem(LineEndingPem::LF).unwrap()).unwrap();
            path
        };
        let (mut token, root) = SoftToken::new(false).unwrap();
        let (_, other_root) = SoftToken::new(false).unwrap();
        let ours = write_root("ours.pem", &root);
        let theirs = write_root("theirs.pem", &other_root);
        let mut config = crate::config::Config::default();
        let origin = Url::parse("http://localhost:4873").unwrap();
        let rp = relying_party(origin.as_str()).unwrap();
        let mut register = |roots: Vec<std::path::PathBuf>| {
            config.tfa.attestation_roots = roots;
            let list = attestation_roots(&config).unwrap();
            let (options, state) = rp
                .start_securitykey_registration(Uuid::nil(), "ivy", "ivy", None, list, None)
                .unwrap();
            assert_eq!(
                serde_json::to_value(&options).unwrap()["publicKey"]["attestation"],
                "direct"
            );
            let answer = token.do_registration(origin.clone(), options).unwrap();
            rp.finish_securitykey_registration(&answer, &state)
        };
        assert!(register(vec![theirs.clone(), ours]).is_ok());
        assert!(matches!(
            register(vec![theirs]),
            Err(WebauthnError::AttestationChainNotTrusted(_))
        ));
        config.tfa.attestation_roots = vec![dir.join("missing.pem")];
        let e = attestation_roots(&config).unwrap_err();
        assert!(e.contains("missing.pem"), "{e}");
        std::fs::write(dir.join("empty.pem"), "no certificate here").unwrap();
        config.tfa.attestation_roots = vec![dir.join("empty.pem")];
        let e = attestation_roots(&config).unwrap_err();
        assert!(e.contains("holds no PEM certificate"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
