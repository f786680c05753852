//! The persistence seam: narrow async traits, with no backend assumption above them.

use async_trait::async_trait;

use crate::error::StoreResult;
use crate::model::*;

/// Accounts and invitations.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates an account; `Conflict` if the name is taken.
    async fn create_user(&self, user: NewUser, now: i64) -> StoreResult<User>;
    /// Creates an account if the invitation whose secret hashes to `secret_hash` is for this
    /// name, unused and unexpired, consuming it in the same transaction. `Ok(None)` otherwise.
    async fn create_invited_user(
        &self,
        user: NewUser,
        secret_hash: &str,
        now: i64,
    ) -> StoreResult<Option<User>>;
    /// The unused, unexpired invitation whose secret hashes to `secret_hash`.
    async fn invitation(&self, secret_hash: &str, now: i64) -> StoreResult<Option<Invitation>>;
    /// Looks an account up by name.
    async fn user_by_name(&self, name: &str) -> StoreResult<Option<User>>;
    /// Looks an account up by id.
    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>>;
    /// Every account, by name.
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    /// Replaces the email and profile fields.
    async fn update_profile(
        &self,
        id: UserId,
        email: &str,
        email_verified: bool,
        profile: &Profile,
        now: i64,
    ) -> StoreResult<User>;
    /// Notes that the account changed (its 2FA state, kept in another table): `updated_at`.
    async fn touch_user(&self, id: UserId, now: i64) -> StoreResult<()>;
    /// Replaces the password hash.
    async fn set_password_hash(&self, id: UserId, hash: &str, now: i64) -> StoreResult<()>;
    /// Locks or unlocks an account.
    async fn set_locked(&self, id: UserId, locked: bool, now: i64) -> StoreResult<()>;
    /// Records an invitation for `name` with `email`, redeemed with the secret that hashes to
    /// `secret_hash`, valid until `expires_at`. Earlier unused invitations for the name end.
    async fn create_invitation(
        &self,
        name: &str,
        email: &str,
        secret_hash: &str,
        now: i64,
        expires_at: i64,
    ) -> StoreResult<()>;
    /// The shared counter of writes that change what tokens grant (see `auth_cache`).
    async fn auth_epoch(&self) -> StoreResult<i64>;
    /// Drops this process's cached token lookups (another process changed something).
    fn forget_cached_auth(&self);
    /// Whether other servers write the same database (scale-out), so that anything cached in
    /// this process must be revalidated against the database before it is served.
    fn shared(&self) -> bool;
}

/// API tokens, stored as hashes.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores a new token.
    async fn create_token(&self, token: NewToken, now: i64) -> StoreResult<Token>;
    /// Finds a token and its owner by the token's hash.
    async fn token_by_hash(&self, hash: &str) -> StoreResult<Option<(Token, User)>>;
    /// A page of a user's tokens, newest first, and the total count; login tokens (the
    /// sessions `npm login` mints) only with `logins`.
    async fn list_tokens(
        &self,
        user: UserId,
        logins: bool,
        offset: i64,
        limit: i64,
    ) -> StoreResult<(Vec<Token>, i64)>;
    /// Deletes a user's token by hash; `false` if the user has no such token.
    async fn delete_token(&self, user: UserId, hash: &str) -> StoreResult<bool>;
    /// Deletes every token of a user; returns how many.
    async fn delete_user_tokens(&self, user: UserId) -> StoreResult<u64>;
    /// Tokens that expire after `now` and no later than `before`, soonest first, with their
    /// owners' names (of one user, if given).
    async fn tokens_expiring(
        &self,
        user: Option<UserId>,
        now: i64,
        before: i64,
    ) -> StoreResult<Vec<(Token, String)>>;
}

/// Packages, versions, dist-tags, maintainers and stars.
#[async_trait]
pub trait PackageStore: Send + Sync {
    /// The package row alone.
    async fn package(&self, name: &str) -> StoreResult<Option<Package>>;
    /// When a name no package holds was last fully unpublished, and by whom it was maintained.
    async fn unpublished_name(&self, name: &str) -> StoreResult<Option<UnpublishedName>>;
    /// The package with its versions, tags, maintainers and stars.
    async fn package_doc(&self, name: &str) -> StoreResult<Option<PackageDoc>>;
    /// The package's id and revision (bumped by every change to what its packument shows), to
    /// revalidate a cached rendering.
    async fn package_revision(&self, name: &str) -> StoreResult<Option<(PackageId, i64)>>;
    /// Publishes one version in one transaction (see [`NewVersion`]).
    async fn publish(&self, v: NewVersion, now: i64) -> StoreResult<Published>;
    /// Publishes many versions in one transaction (seeding benchmarks and imports).
    async fn publish_batch(&self, versions: Vec<NewVersion>, now: i64) -> StoreResult<usize>;
    /// Points `tag` at `version`.
    async fn set_dist_tag(
        &self,
        pkg: PackageId,
        tag: &str,
        version: &str,
        now: i64,
    ) -> StoreResult<()>;
    /// Removes `tag`; `false` if it did not exist.
    async fn remove_dist_tag(&self, pkg: PackageId, tag: &str, now: i64) -> StoreResult<bool>;
    /// Adds and removes maintainers; refuses to leave none.
    async fn change_maintainers(
        &self,
        pkg: PackageId,
        add: &[UserId],
        remove: &[UserId],
        now: i64,
    ) -> StoreResult<()>;
    /// Sets (`Some`) or clears (`None`) deprecation messages.
    async fn set_deprecations(
        &self,
        pkg: PackageId,
        changes: &[(String, Option<String>)],
        now: i64,
    ) -> StoreResult<()>;
    /// Removes versions (retiring their numbers) and replaces the dist-tags, if the package is
    /// still at revision `rev`, the one the removal and the tags were computed from (`Conflict`
    /// otherwise: a racing change would be undone, or a tag left on a removed version).
    /// Returns the content addresses of the removed tarballs.
    async fn remove_versions(
        &self,
        pkg: PackageId,
        rev: i64,
        versions: &[String],
        dist_tags: &[(String, String)],
        now: i64,
    ) -> StoreResult<Vec<String>>;
    /// Deletes a package and everything under it, retiring its version numbers, if it is still
    /// at revision `rev` (`Conflict` otherwise: a version published meanwhile would go too).
    /// Versions staged for it go too. Returns the content addresses of its tarballs (staged ones
    /// included).
    async fn delete_package(&self, pkg: PackageId, rev: i64, now: i64) -> StoreResult<Vec<String>>;
    /// Changes the visibility.
    async fn set_access(&self, pkg: PackageId, access: Access, now: i64) -> StoreResult<()>;
    /// Changes the package's 2FA publishing policy.
    async fn set_mfa_policy(
        &self,
        pkg: PackageId,
        policy: PackageTfaPolicy,
        now: i64,
    ) -> StoreResult<()>;
    /// Sets whether publishes from tokens and trusted publishing must be staged.
    async fn set_staged_publishes(&self, pkg: PackageId, on: bool, now: i64) -> StoreResult<()>;
    /// Sets whether publishes must carry a valid provenance bundle.
    async fn set_provenance_required(&self, pkg: PackageId, on: bool, now: i64) -> StoreResult<()>;
    /// A version's provenance, if it has one.
    async fn version_provenance(
        &self,
        name: &str,
        version: &str,
    ) -> StoreResult<Option<Provenance>>;
    /// Stars or unstars the package for a user.
    async fn set_star(&self, pkg: PackageId, user: UserId, star: bool, now: i64)
    -> StoreResult<()>;
    /// Names of the packages a user starred.
    async fn starred_by(&self, user: UserId) -> StoreResult<Vec<String>>;
    /// Packages a user maintains.
    async fn packages_of(&self, user: UserId) -> StoreResult<Vec<Package>>;
    /// Packages whose name, description or keywords contain every term, visible to `viewer`.
    async fn search(
        &self,
        terms: &[String],
        viewer: Option<UserId>,
        from: i64,
        size: i64,
    ) -> StoreResult<(Vec<SearchHit>, i64)>;
    /// Whether the scope (`@acme`) has any package, and whether `user` maintains one of them.
    async fn scope_standing(&self, scope: &str, user: UserId) -> StoreResult<(bool, bool)>;
    /// Whether any version still references the tarball with this content address.
    async fn blob_in_use(&self, sha512: &str) -> StoreResult<bool>;
}

/// Two-factor state: enrolment, the replay guard, recovery codes and failure counters.
///
/// The security-relevant primitives are single atomic statements, so that racing requests on
/// one instance or many can never both pass.
#[async_trait]
pub trait TwoFactorStore: Send + Sync {
    /// The TOTP enrolment of an account, if any.
    async fn totp(&self, user: UserId) -> StoreResult<Option<TotpRecord>>;
    /// Starts (or restarts, with a new secret) a pending enrolment. `false` if 2FA is active.
    async fn start_enrolment(
        &self,
        user: UserId,
        mode: TwoFactorMode,
        secret_sealed: &[u8],
        now: i64,
    ) -> StoreResult<bool>;
    /// Confirms a pending enrolment started at `started_at`, recording `step` as consumed by
    /// `credential` and replacing the recovery codes. `false` if there is no such pending
    /// enrolment any more.
    async fn confirm_enrolment(
        &self,
        user: UserId,
        started_at: i64,
        step: i64,
        credential: &str,
        recovery_hashes: &[String],
        now: i64,
    ) -> StoreResult<bool>;
    /// Drops a pending enrolment; `false` if none was pending.
    async fn cancel_pending(&self, user: UserId) -> StoreResult<bool>;
    /// Offers an authenticator app to an account whose active 2FA has only security keys: the
    /// sealed secret waits for its first code. `false` if the account has no such 2FA.
    async fn offer_totp(&self, user: UserId, secret_sealed: &[u8], now: i64) -> StoreResult<bool>;
    /// Confirms the app offered at `offered_at`, recording `step` as consumed by `credential`.
    /// `false` if that offer is gone (replaced, confirmed, or 2FA turned off).
    async fn confirm_offered_totp(
        &self,
        user: UserId,
        offered_at: i64,
        step: i64,
        credential: &str,
    ) -> StoreResult<bool>;
    /// Changes the mode of active 2FA; `false` if 2FA is not active.
    async fn set_two_factor_mode(&self, user: UserId, mode: TwoFactorMode) -> StoreResult<bool>;
    /// Turns 2FA off: the secret and every recovery code are deleted. `false` if it was off.
    async fn disable_two_factor(&self, user: UserId) -> StoreResult<bool>;
    /// Consumes a time step with one conditional UPDATE: it succeeds only for a step later than
    /// the last accepted one, or for the same step by the same credential.
    async fn consume_step(&self, user: UserId, step: i64, credential: &str) -> StoreResult<bool>;
    /// Uses a recovery code (by hash): the first use consumes it; the same credential may present
    /// it again while `used_at > repeat_after`.
    async fn use_recovery_code(
        &self,
        user: UserId,
        code_hash: &str,
        credential: &str,
        now: i64,
        repeat_after: i64,
    ) -> StoreResult<RecoveryUse>;
    /// Replaces every recovery code of an account.
    async fn replace_recovery_codes(
        &self,
        user: UserId,
        hashes: &[String],
        now: i64,
    ) -> StoreResult<()>;
    /// Unused recovery codes left.
    async fn recovery_codes_left(&self, user: UserId) -> StoreResult<i64>;
    /// Every sealed TOTP secret (pending or active), for re-sealing under a new key.
    async fn sealed_secrets(&self) -> StoreResult<Vec<(UserId, Vec<u8>)>>;
    /// Replaces a sealed secret, if it is still `old` (a concurrent change wins).
    async fn reseal_secret(&self, user: UserId, old: &[u8], new: &[u8]) -> StoreResult<bool>;
    /// Records a failed attempt (prunes entries older than `prune_before`).
    async fn record_failure(
        &self,
        kind: FailureKind,
        user: Option<UserId>,
        ip: &str,
        now: i64,
        prune_before: i64,
    ) -> StoreResult<()>;
    /// Reserves the right to one attempt, atomically: in one transaction, refuses with the
    /// milliseconds to wait (`Err`) when the account or the address is at a limit, else records a
    /// provisional failure and returns its id (`Ok`). A successful attempt releases it. Racing
    /// requests therefore can never check more guesses than the limits allow.
    #[allow(clippy::too_many_arguments)]
    async fn reserve_attempt(
        &self,
        kind: FailureKind,
        user: Option<UserId>,
        ip: &str,
        now: i64,
        prune_before: i64,
        account_limits: &[Limit],
        address_limits: &[Limit],
    ) -> StoreResult<Result<i64, i64>>;
    /// Releases a reserved attempt that succeeded.
    async fn release_attempt(&self, id: i64) -> StoreResult<()>;
    /// Times of failed attempts since `since`, for an account (`user`) or an address (`ip`),
    /// oldest first.
    async fn failures_since(
        &self,
        kind: FailureKind,
        user: Option<UserId>,
        ip: Option<&str>,
        since: i64,
    ) -> StoreResult<Vec<i64>>;
}

/// The per-account security log.
#[async_trait]
pub trait SecurityLog: Send + Sync {
    /// Appends an event.
    async fn log_event(&self, user: UserId, event: SecurityEvent) -> StoreResult<()>;
    /// The newest `limit` events of an account, newest first.
    async fn events(&self, user: UserId, limit: i64) -> StoreResult<Vec<SecurityEvent>>;
    /// Whether the account's security log has an event of one of `kinds` from `ip` since `since`
    /// (a successful sign-in from that address).
    async fn signed_in_from(
        &self,
        user: UserId,
        ip: &str,
        kinds: &[&str],
        since: i64,
    ) -> StoreResult<bool>;
}

/// Registry-wide settings changed at run time.
#[async_trait]
pub trait SettingsStore: Send + Sync {
    /// A setting's value, if set.
    async fn setting(&self, key: &str) -> StoreResult<Option<String>>;
    /// Sets (`Some`) or clears (`None`) a setting.
    async fn set_setting(&self, key: &str, value: Option<&str>, now: i64) -> StoreResult<()>;
}

/// Website sessions and browser handshakes.
#[async_trait]
pub trait WebStore: Send + Sync {
    /// Stores a new session.
    async fn create_session(&self, session: &Session) -> StoreResult<()>;
    /// A session by the hash of its cookie value.
    async fn session(&self, id_hash: &str) -> StoreResult<Option<Session>>;
    /// Replaces a session by a new one (a new id: sign-in and 2FA changes rotate it).
    async fn rotate_session(&self, old_hash: &str, new: &Session) -> StoreResult<()>;
    /// Records activity.
    async fn touch_session(&self, id_hash: &str, now: i64) -> StoreResult<()>;
    /// Records a fresh proof of a factor.
    async fn reauthenticate_session(&self, id_hash: &str, now: i64) -> StoreResult<()>;
    /// Counts a wrong code on a partial sign-in; returns the new count.
    async fn bump_session_otp_attempts(&self, id_hash: &str) -> StoreResult<i64>;
    /// Ends a session.
    async fn delete_session(&self, id_hash: &str) -> StoreResult<()>;
    /// Ends every session of an account but `keep`.
    async fn delete_user_sessions(&self, user: UserId, keep: Option<&str>) -> StoreResult<u64>;
    /// Drops sessions idle since before `idle_before` or created before `created_before`.
    async fn prune_sessions(&self, idle_before: i64, created_before: i64) -> StoreResult<u64>;
    /// Stores a new handshake (`needs_key`: only a security key may approve it).
    #[allow(clippy::too_many_arguments)]
    async fn create_handshake(
        &self,
        kind: HandshakeKind,
        login_hash: &str,
        done_hash: &str,
        create_account: bool,
        needs_key: bool,
        user: Option<UserId>,
        now: i64,
        expires_at: i64,
    ) -> StoreResult<()>;
    /// A handshake by the hash of its browser id.
    async fn handshake(&self, login_hash: &str) -> StoreResult<Option<Handshake>>;
    /// Approves an open, unexpired handshake for `user`, with a security key or not; `false` if
    /// it is not open any more (or needs a key and was not approved with one).
    async fn approve_handshake(
        &self,
        login_hash: &str,
        user: UserId,
        now: i64,
        with_key: bool,
    ) -> StoreResult<bool>;
    /// Refuses an open handshake.
    async fn deny_handshake(&self, login_hash: &str, now: i64) -> StoreResult<bool>;
    /// npm's poll: collects an approved handshake exactly once.
    async fn poll_handshake(&self, done_hash: &str, now: i64) -> StoreResult<HandshakePoll>;
    /// Records the hash of the one-time code handed out for a web-OTP handshake.
    async fn set_handshake_result(&self, id: i64, result_hash: &str) -> StoreResult<()>;
    /// Uses a web-OTP code (by hash) for `user`, once: it must be unused, its handshake opened
    /// after `issued_after` and, with `need_key`, approved with a security key; the use is
    /// recorded with `credential`. `false` otherwise.
    async fn use_web_otp(
        &self,
        user: UserId,
        result_hash: &str,
        credential: &str,
        now: i64,
        issued_after: i64,
        need_key: bool,
    ) -> StoreResult<bool>;
    /// Sets the account's web-OTP preference.
    async fn set_web_otp(&self, user: UserId, on: bool) -> StoreResult<()>;
}

/// Security keys and passkeys (WebAuthn), and their ceremonies.
#[async_trait]
pub trait SecurityKeyStore: Send + Sync {
    /// Registers a key. When the account has no active 2FA, it is turned on in the same
    /// transaction, in `mode`, with these recovery codes (a pending TOTP enrolment is dropped).
    /// Returns the key and whether 2FA was turned on; `Conflict` if the credential id is known.
    async fn add_security_key(
        &self,
        key: NewSecurityKey,
        mode: TwoFactorMode,
        recovery_hashes: &[String],
        now: i64,
    ) -> StoreResult<(SecurityKeyRecord, bool)>;
    /// An account's keys, oldest first.
    async fn security_keys(&self, user: UserId) -> StoreResult<Vec<SecurityKeyRecord>>;
    /// Records a use: the updated credential, its counter and backup state.
    async fn record_key_use(
        &self,
        id: i64,
        credential: &str,
        counter: i64,
        backup_state: bool,
        now: i64,
    ) -> StoreResult<()>;
    /// Removes a key of `user`; removing the last second factor turns 2FA off.
    async fn remove_security_key(&self, user: UserId, id: i64) -> StoreResult<KeyRemoval>;
    /// Stores a ceremony.
    async fn create_ceremony(&self, ceremony: &Ceremony) -> StoreResult<()>;
    /// Takes a ceremony by the hash of its id: it is deleted, so it completes at most once.
    /// `None` when unknown or expired at `now`.
    async fn take_ceremony(&self, id_hash: &str, now: i64) -> StoreResult<Option<Ceremony>>;
}

/// Trusted publishing: who may publish a package from CI, and the identity tokens already used.
#[async_trait]
pub trait TrustStore: Send + Sync {
    /// Adds trusted publishers, all or none; [`StoreError::Conflict`] (and none added) if one
    /// of them exists for its package already.
    async fn add_trusted_publishers(&self, ps: &[TrustedPublisher]) -> StoreResult<()>;
    /// The trusted publishers of a package name, oldest first.
    async fn trusted_publishers(&self, package: &str) -> StoreResult<Vec<TrustedPublisher>>;
    /// Removes one; `false` if the package has no publisher with that id.
    async fn remove_trusted_publisher(&self, package: &str, id: &str) -> StoreResult<bool>;
    /// Records the immutable ids a publisher's first exchange saw (only once: `false` if
    /// already bound).
    async fn bind_trusted_publisher(&self, id: &str, bound: &str) -> StoreResult<bool>;
    /// Uses an identity token's `jti` (by hash) once, keeping it until `expires_at`; `false` if
    /// it was used before. Forgets those expired at `now`.
    async fn use_jti(&self, jti_hash: &str, expires_at: i64, now: i64) -> StoreResult<bool>;
}

/// Staged publishing: versions uploaded without a second factor, waiting for approval.
#[async_trait]
pub trait StagingStore: Send + Sync {
    /// Stages a version. [`StoreError::VersionExists`] if the number is published, retired or
    /// staged already; [`StoreError::NotMaintainer`] if the package exists and `owner_id` does
    /// not maintain it.
    async fn stage_version(&self, s: &StagedVersion) -> StoreResult<()>;
    /// One staged version by id.
    async fn staged_version(&self, id: &str) -> StoreResult<Option<StagedVersion>>;
    /// One staged version by id, if `viewer` may see it (the rule of [`Self::staged_versions`]).
    async fn staged_version_seen_by(
        &self,
        id: &str,
        viewer: UserId,
    ) -> StoreResult<Option<StagedVersion>>;
    /// The staged versions `viewer` may see (of packages it maintains, and of new names staged
    /// for it), optionally of one package, oldest first; with the total count.
    async fn staged_versions(
        &self,
        viewer: UserId,
        package: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> StoreResult<(Vec<StagedVersion>, i64)>;
    /// Takes a staged version off the stage (rejected); `false` if it was not there.
    async fn remove_staged(&self, id: &str) -> StoreResult<bool>;
}

/// The uplinks' cache: upstream packuments and tarballs, the circuit breakers, fetch leases and
/// the names allowed to shadow upstream ones.
#[async_trait]
pub trait UplinkStore: Send + Sync {
    /// The cached packument of `name`.
    async fn cached_packument(&self, name: &str) -> StoreResult<Option<CachedPackument>>;
    /// Stores (replaces) a packument or a negative answer.
    async fn put_cached_packument(&self, p: &CachedPackument) -> StoreResult<()>;
    /// Notes that the uplink confirmed the cached packument (a 304).
    async fn touch_cached_packument(&self, name: &str, checked_at: i64) -> StoreResult<()>;
    /// Drops the cached packument of `name` (a local package took the name) and, for a scoped
    /// name, of every name in its scope (the scope is local now).
    async fn forget_cached_packument(&self, name: &str) -> StoreResult<()>;
    /// Whether `name` belongs here whatever the uplinks have: a package of that name exists or
    /// was fully unpublished here, or (for a scoped name) its scope has, or had, packages here.
    async fn claimed_locally(&self, name: &str) -> StoreResult<bool>;
    /// Version numbers of `name` used here but not published now: unpublished, or staged for
    /// approval. A merged uplink never fills them.
    async fn held_versions(&self, name: &str) -> StoreResult<Vec<String>>;
    /// The cached tarballs of `name`.
    async fn cached_tarballs(&self, name: &str) -> StoreResult<Vec<CachedTarball>>;
    /// Records a fetched tarball (whose blob is stored), replacing an earlier row.
    async fn put_cached_tarball(&self, t: &CachedTarball) -> StoreResult<()>;
    /// Names of cached packages (with a body), by name, from `after`; at most `limit`.
    async fn cached_names(&self, after: &str, limit: i64) -> StoreResult<Vec<(String, String)>>;
    /// Removes packuments not confirmed since `before` and their tarballs; returns the content
    /// addresses of the removed tarballs (the caller deletes those no longer in use).
    async fn prune_cache(&self, before: i64) -> StoreResult<(i64, Vec<String>)>;
    /// What each uplink's cache holds.
    async fn cache_sizes(&self) -> StoreResult<Vec<UplinkCacheSize>>;
    /// Every uplink's breaker, by name.
    async fn uplink_health(&self) -> StoreResult<Vec<UplinkHealth>>;
    /// One uplink's breaker.
    async fn uplink_health_of(&self, uplink: &str) -> StoreResult<Option<UplinkHealth>>;
    /// Counts a failure; at `max_fails` in a row the uplink is down until `now + fail_timeout`.
    /// Returns the breaker after the change.
    async fn uplink_failed(
        &self,
        uplink: &str,
        error: &str,
        max_fails: i64,
        fail_timeout: i64,
        now: i64,
    ) -> StoreResult<UplinkHealth>;
    /// Notes an answer: the breaker closes.
    async fn uplink_answered(&self, uplink: &str, now: i64) -> StoreResult<()>;
    /// Takes the lease `key` for `holder` until `until`, if nobody holds an unexpired one.
    async fn take_fetch_lease(
        &self,
        key: &str,
        holder: &str,
        until: i64,
        now: i64,
    ) -> StoreResult<bool>;
    /// Gives the lease back.
    async fn release_fetch_lease(&self, key: &str, holder: &str) -> StoreResult<()>;
    /// Whether an admin allowed `name` to be published although it exists upstream.
    async fn allowed_name(&self, name: &str) -> StoreResult<Option<AllowedName>>;
    /// Allows `name` (`true`), or takes the permission back (`false`); returns whether anything
    /// changed.
    async fn set_allowed_name(
        &self,
        name: &str,
        allowed: bool,
        by: &str,
        now: i64,
    ) -> StoreResult<bool>;
    /// Every allowed name.
    async fn allowed_names(&self) -> StoreResult<Vec<AllowedName>>;
}

/// Everything the server needs from persistence.
/// The registry's signing keys and the versions' signatures.
#[async_trait]
pub trait SigningStore: Send + Sync {
    /// Every key, oldest first: the current one has no `expires_at`.
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKey>>;
    /// Adds `key` as the current key. With `retire_current_at`, the current key expires then
    /// (a rotation); without, the key is added only if there is no current key yet (the first
    /// start; `false` when another instance made one first).
    async fn add_signing_key(
        &self,
        key: &SigningKey,
        retire_current_at: Option<i64>,
    ) -> StoreResult<bool>;
    /// Replaces a key's sealed private half (a sealing-key rotation), if it is still `old`.
    async fn reseal_signing_key(&self, keyid: &str, old: &[u8], new: &[u8]) -> StoreResult<bool>;
    /// Up to `limit` versions to sign, after `after` (`(package, version)`, in that order):
    /// those without signatures, and those whose signature names a key that had expired at
    /// their publication.
    async fn versions_to_sign(
        &self,
        after: Option<(PackageId, String)>,
        limit: i64,
    ) -> StoreResult<Vec<UnsignedVersion>>;
    /// The shared counter of writes that change packuments outside a server's request path
    /// (signing): servers poll it and drop their rendered packuments when it moves.
    async fn packument_epoch(&self) -> StoreResult<i64>;
    /// Moves the packument epoch (once per signing pass, not per package: every server drops
    /// all its renderings when it moves).
    async fn bump_packument_epoch(&self) -> StoreResult<()>;
    /// Stores signatures for versions of one package, in a new revision of it: each
    /// `(version, signatures read, new signatures)` is written only if the version still has
    /// the signatures read. Returns how many were written.
    async fn set_version_signatures(
        &self,
        package_id: PackageId,
        signed: &[(String, Option<String>, String)],
        now: i64,
    ) -> StoreResult<usize>;
    /// Up to `limit` versions published before `published_before` whose publish is to be
    /// attested, after `after`: those without a publish attestation, and those whose
    /// attestation's key had expired when the log took it.
    async fn versions_to_attest(
        &self,
        after: Option<(PackageId, String)>,
        published_before: i64,
        limit: i64,
    ) -> StoreResult<Vec<UnattestedVersion>>;
    /// Stores a version's publish attestation: a first one (`replaces` `None`) only if it has
    /// none, a new one only if the one it has was taken by the log at `replaces`. A first one
    /// makes a new revision of the package (its packument now points at attestations).
    /// Returns whether it was written.
    async fn put_publish_attestation(
        &self,
        package_id: PackageId,
        version: &str,
        attestation: &PublishAttestation,
        replaces: Option<i64>,
        now: i64,
    ) -> StoreResult<bool>;
    /// A version's publish attestation, if it has one.
    async fn version_publish_attestation(
        &self,
        name: &str,
        version: &str,
    ) -> StoreResult<Option<PublishAttestation>>;
}

pub trait Store:
    UserStore
    + TokenStore
    + PackageStore
    + TwoFactorStore
    + SecurityLog
    + SettingsStore
    + WebStore
    + SecurityKeyStore
    + TrustStore
    + StagingStore
    + UplinkStore
    + SigningStore
    + crate::transfer::Transfer
{
}

impl<T> Store for T where
    T: UserStore
        + TokenStore
        + PackageStore
        + TwoFactorStore
        + SecurityLog
        + SettingsStore
        + WebStore
        + SecurityKeyStore
        + TrustStore
        + StagingStore
        + UplinkStore
        + SigningStore
        + crate::transfer::Transfer
{
}
