//! The store against its contract: transactions, preconditions and queries. SQLite by default;
//! with `TESSERA_TEST_BACKEND=postgres`, each test gets a fresh PostgreSQL database on the
//! server in `TESSERA_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432`).

use std::ops::Deref;
use std::sync::Arc;

use tessera_store::*;

/// A store for one test, and what it needs kept alive (a database file, a database to drop).
struct TestStore {
    store: Arc<dyn Store>,
    _file: Option<tempfile::TempDir>,
    _pg: Option<PgDatabase>,
}

impl Deref for TestStore {
    type Target = dyn Store;
    fn deref(&self) -> &(dyn Store + 'static) {
        &*self.store
    }
}

/// A PostgreSQL database made for one test, dropped after it.
struct PgDatabase {
    base: String,
    name: String,
}

fn psql(base: &str, sql: &str) {
    let out = std::process::Command::new("psql")
        .arg(format!("{base}/postgres"))
        .args(["-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        psql(
            &self.base,
            &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
        );
    }
}

fn on_postgres() -> bool {
    std::env::var("TESSERA_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

async fn postgres_store() -> TestStore {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let base = std::env::var("TESSERA_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let name = format!(
        "tessera_store_test_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    psql(&base, &format!("CREATE DATABASE \"{name}\""));
    let pg = PgDatabase { base, name };
    let store = PgStore::open(&format!("{}/{}", pg.base, pg.name), 8, Migrate::Apply)
        .await
        .unwrap();
    TestStore {
        store: Arc::new(store),
        _file: None,
        _pg: Some(pg),
    }
}

/// A fresh store on the backend under test.
async fn store() -> TestStore {
    if on_postgres() {
        return postgres_store().await;
    }
    TestStore {
        store: Arc::new(SqliteStore::in_memory().await.unwrap()),
        _file: None,
        _pg: None,
    }
}

/// A fresh store that concurrent tasks can share (SQLite in a file, with a connection pool).
async fn shared_store() -> TestStore {
    if on_postgres() {
        return postgres_store().await;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("db")).await.unwrap();
    TestStore {
        store: Arc::new(s),
        _file: Some(dir),
        _pg: None,
    }
}

fn new_user(name: &str) -> NewUser {
    NewUser {
        name: name.into(),
        email: format!("{name}@example.com"),
        password_hash: "$argon2id$fake".into(),
        is_admin: false,
    }
}

fn version(v: &str, sha: &str) -> VersionRecord {
    VersionRecord {
        version: v.into(),
        manifest: format!(r#"{{"name":"demo","version":"{v}"}}"#),
        readme: Some("# demo".into()),
        tarball_sha512: sha.into(),
        shasum: "00".into(),
        integrity: "sha512-AA==".into(),
        size: 10,
        deprecated: None,
        publisher: None,
        published_at: 0,
        signatures: None,
        provenance: None,
        attested: false,
    }
}

fn publish(name: &str, v: &str, publisher: UserId) -> NewVersion {
    NewVersion {
        package_name: name.into(),
        access: Access::Public,
        set_access: false,
        version: version(v, &format!("{name}-{v}")),
        tags: vec!["latest".into()],
        description: Some(format!("the {name} package")),
        keywords: vec!["demo".into()],
        publisher_id: publisher,
        staged_id: None,
        provenance: None,
    }
}

#[tokio::test]
async fn users_are_unique_by_name() {
    let s = store().await;
    let alice = s.create_user(new_user("alice"), 1).await.unwrap();
    assert_eq!(alice.name, "alice");
    assert!(matches!(
        s.create_user(new_user("alice"), 2).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(s.user_by_name("alice").await.unwrap().unwrap().id, alice.id);
    assert!(s.user_by_name("bob").await.unwrap().is_none());
}

#[tokio::test]
async fn invitations_need_their_secret_are_single_use_and_expire() {
    let s = store().await;
    s.create_invitation("bob", "bob@example.com", "h-bob", 0, 100)
        .await
        .unwrap();
    let found = s.invitation("h-bob", 1).await.unwrap().unwrap();
    assert_eq!((found.name.as_str(), found.expires_at), ("bob", 100));
    assert!(s.invitation("h-other", 1).await.unwrap().is_none());
    // the name and email without the secret: refused
    assert!(
        s.create_invited_user(new_user("bob"), "h-guess", 1)
            .await
            .unwrap()
            .is_none()
    );
    // the secret for another name: refused
    assert!(
        s.create_invited_user(new_user("mallory"), "h-bob", 1)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.create_invited_user(new_user("bob"), "h-bob", 1)
            .await
            .unwrap()
            .is_some()
    );
    assert!(s.invitation("h-bob", 2).await.unwrap().is_none(), "used");
    s.create_invitation("carol", "carol@example.com", "h-carol", 0, 100)
        .await
        .unwrap();
    assert!(
        s.invitation("h-carol", 100).await.unwrap().is_none(),
        "expired"
    );
    assert!(
        s.create_invited_user(new_user("carol"), "h-carol", 100)
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    // a new invitation replaces the old link
    s.create_invitation("dave", "dave@example.com", "h-dave1", 0, 100)
        .await
        .unwrap();
    s.create_invitation("dave", "dave@example.com", "h-dave2", 10, 100)
        .await
        .unwrap();
    assert!(
        s.invitation("h-dave1", 11).await.unwrap().is_none(),
        "replaced"
    );
    assert!(s.invitation("h-dave2", 11).await.unwrap().is_some());
}

/// Runs one statement on the test's database behind the store's back (a file or PostgreSQL
/// store: an in-memory SQLite store has no other handle).
async fn raw_sql(s: &TestStore, sql: &str) {
    if let Some(pg) = &s._pg {
        let out = std::process::Command::new("psql")
            .arg(format!("{}/{}", pg.base, pg.name))
            .args(["-v", "ON_ERROR_STOP=1", "-qAtc", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let dir = s._file.as_ref().expect("a SQLite store in a file");
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(dir.path().join("db"));
    let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

#[tokio::test]
async fn an_unknown_token_permission_is_refused_on_read() {
    let s = shared_store().await;
    let alice = s.create_user(new_user("alice"), 1).await.unwrap();
    let grants = TokenGrants {
        packages: vec!["demo".into()],
        packages_and_scopes_permission: Some(Permission::ReadOnly),
        orgs_permission: Some(Permission::NoAccess),
        ..Default::default()
    };
    s.create_token(
        NewToken {
            user_id: alice.id,
            token_hash: "h1".into(),
            display_prefix: "tsr_ab".into(),
            kind: TokenKind::Granular,
            name: None,
            description: None,
            readonly: true,
            bypass_2fa: false,
            cidr_whitelist: vec![],
            grants: grants.clone(),
            expires_at: None,
        },
        5,
    )
    .await
    .unwrap();
    // the stored words are npm's (read past the authentication cache)
    let (list, _) = s.list_tokens(alice.id, true, 0, 10).await.unwrap();
    let found = &list[0];
    assert_eq!(found.grants, grants);
    assert_eq!(
        serde_json::to_value(&found.grants).unwrap()["packages_and_scopes_permission"],
        "read-only"
    );
    for bad in [
        r#"{"packages":["demo"],"packages_and_scopes_permission":"admin"}"#,
        r#"{"orgs":["acme"],"orgs_permission":"READ-WRITE"}"#,
    ] {
        raw_sql(
            &s,
            &format!("UPDATE tokens SET grants = '{bad}' WHERE token_hash = 'h1'"),
        )
        .await;
        assert!(
            s.list_tokens(alice.id, true, 0, 10).await.is_err(),
            "{bad} was read as a permission"
        );
    }
}

#[tokio::test]
async fn package_tfa_policy_maps_to_the_two_columns() {
    let s = shared_store().await;
    let alice = s.create_user(new_user("alice"), 1).await.unwrap();
    let p = s
        .publish(publish("demo", "1.0.0", alice.id), 10)
        .await
        .unwrap();
    let policy = |s: &TestStore| {
        let s = s.store.clone();
        async move { s.package("demo").await.unwrap().unwrap().policy }
    };
    assert_eq!(policy(&s).await, PackageTfaPolicy::None);
    for want in [
        PackageTfaPolicy::Automation,
        PackageTfaPolicy::Publish,
        PackageTfaPolicy::PublishNoTokens,
        PackageTfaPolicy::Publish,
        PackageTfaPolicy::None,
    ] {
        s.set_mfa_policy(p.package_id, want, 20).await.unwrap();
        assert_eq!(policy(&s).await, want);
    }
    // an override without the requirement means no policy
    raw_sql(
        &s,
        "UPDATE packages SET publish_requires_tfa = FALSE, automation_overrides_tfa = TRUE",
    )
    .await;
    assert_eq!(policy(&s).await, PackageTfaPolicy::None);
    // refusing tokens means something only with the requirement and no override
    raw_sql(
        &s,
        "UPDATE packages SET publish_requires_tfa = TRUE, automation_overrides_tfa = TRUE, \
         tokens_refused = TRUE",
    )
    .await;
    assert_eq!(policy(&s).await, PackageTfaPolicy::Automation);
    let staged = |s: &TestStore| {
        let s = s.store.clone();
        async move { s.package("demo").await.unwrap().unwrap().staged_publishes }
    };
    assert!(!staged(&s).await);
    s.set_staged_publishes(p.package_id, true, 30)
        .await
        .unwrap();
    assert!(staged(&s).await);
    s.set_staged_publishes(p.package_id, false, 31)
        .await
        .unwrap();
    assert!(!staged(&s).await);
}

#[tokio::test]
async fn tokens_roundtrip_by_hash() {
    let s = store().await;
    let alice = s.create_user(new_user("alice"), 1).await.unwrap();
    let t = s
        .create_token(
            NewToken {
                user_id: alice.id,
                token_hash: "h1".into(),
                display_prefix: "tsr_ab".into(),
                kind: TokenKind::Granular,
                name: Some("ci".into()),
                description: None,
                readonly: false,
                bypass_2fa: true,
                cidr_whitelist: vec!["10.0.0.0/8".into()],
                grants: TokenGrants {
                    packages: vec!["demo".into()],
                    ..Default::default()
                },
                expires_at: Some(99),
            },
            5,
        )
        .await
        .unwrap();
    let (found, owner) = s.token_by_hash("h1").await.unwrap().unwrap();
    assert_eq!(found.id, t.id);
    assert_eq!(found.grants.packages, vec!["demo".to_string()]);
    assert_eq!(found.cidr_whitelist, vec!["10.0.0.0/8".to_string()]);
    assert_eq!(owner.name, "alice");
    let (list, total) = s.list_tokens(alice.id, true, 0, 10).await.unwrap();
    assert_eq!((list.len(), total), (1, 1));
    assert!(s.delete_token(alice.id, "h1").await.unwrap());
    assert!(!s.delete_token(alice.id, "h1").await.unwrap());
    assert!(s.token_by_hash("h1").await.unwrap().is_none());
}

#[tokio::test]
async fn publish_checks_maintainers_and_duplicates() {
    let s = store().await;
    let alice = s.create_user(new_user("alice"), 1).await.unwrap();
    let bob = s.create_user(new_user("bob"), 1).await.unwrap();
    let p = s
        .publish(publish("demo", "1.0.0", alice.id), 10)
        .await
        .unwrap();
    assert!(p.created);
    assert!(matches!(
        s.publish(publish("demo", "1.0.0", alice.id), 11).await,
        Err(StoreError::VersionExists)
    ));
    assert!(matches!(
        s.publish(publish("demo", "1.1.0", bob.id), 11).await,
        Err(StoreError::NotMaintainer)
    ));
    s.publish(publish("demo", "1.1.0", alice.id), 12)
        .await
        .unwrap();
    let doc = s.package_doc("demo").await.unwrap().unwrap();
    assert_eq!(doc.versions.len(), 2);
    assert_eq!(doc.tag("latest"), Some("1.1.0"));
    assert_eq!(doc.package.rev, 2);
    assert!(doc.is_maintainer(alice.id));
    assert_eq!(doc.versions[0].publisher.as_ref().unwrap().name, "alice");
}

#[tokio::test]
async fn unpublished_versions_are_retired() {
    let s = store().await;
    let alice = s.create_user(new_user("alice"), 1).await.unwrap();
    let p = s
        .publish(publish("demo", "1.0.0", alice.id), 10)
        .await
        .unwrap();
    s.publish(publish("demo", "1.1.0", alice.id), 11)
        .await
        .unwrap();
    let blobs = s
        .remove_versions(
            p.package_id,
            2,
            &["1.1.0".into()],
            &[("latest".into(), "1.0.0".into())],
            12,
        )
        .await
        .unwrap();
    assert_eq!(blobs, vec!["demo-1.1.0".to_string()]);
    assert!(!s.blob_in_use("demo-1.1.0").await.unwrap());
    assert!(matches!(
        s.publish(publish("demo", "1.1.0", alice.id), 13).await,
        Err(StoreError::VersionExists)
    ));
    assert!(s.unpublished_name("demo").await.unwrap().is_none());
    let bob = s.create_user(new_user("bob"), 1).await.unwrap();
    s.change_maintainers(p.package_id, &[bob.id], &[], 13)
        .await
        .unwrap();
    let (_, rev) = s.package_revision("demo").await.unwrap().unwrap();
    let blobs = s.delete_package(p.package_id, rev, 14).await.unwrap();
    assert_eq!(blobs, vec!["demo-1.0.0".to_string()]);
    assert!(s.package("demo").await.unwrap().is_none());
    // the name is remembered with its maintainers, for the server's hold on it
    let held = s.unpublished_name("demo").await.unwrap().unwrap();
    assert_eq!(held.unpublished_at, 14);
    let mut ids = held.maintainers.clone();
    ids.sort();
    let mut want = vec![alice.id, bob.id];
    want.sort();
    assert_eq!(ids, want);
    // the name is free again, the old numbers are not
    assert!(
        s.publish(publish("demo", "1.0.0", alice.id), 15)
            .await
            .is_err()
    );
    assert!(
        s.publish(publish("demo", "2.0.0", alice.id), 15)
            .await
            .is_ok()
    );
    assert!(
        s.unpublished_name("demo").await.unwrap().is_none(),
        "published again: no longer held"
    );
}

#[tokio::test]
async fn removals_computed_from_an_old_revision_are_refused() {
    let s = store().await;
    let alice = s.create_user(new_user("alice"), 1).await.unwrap();
    let p = s
        .publish(publish("demo", "1.0.0", alice.id), 10)
        .await
        .unwrap();
    s.publish(publish("demo", "1.1.0", alice.id), 11)
        .await
        .unwrap();
    // read at revision 2, then a publish commits first
    s.publish(publish("demo", "1.2.0", alice.id), 12)
        .await
        .unwrap();
    assert!(matches!(
        s.remove_versions(
            p.package_id,
            2,
            &["1.1.0".into()],
            &[("latest".into(), "1.0.0".into())],
            13,
        )
        .await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        s.delete_package(p.package_id, 2, 13).await,
        Err(StoreError::Conflict)
    ));
    let doc = s.package_doc("demo").await.unwrap().unwrap();
    assert_eq!(doc.versions.len(), 3, "nothing removed");
    assert_eq!(doc.tag("latest"), Some("1.2.0"), "the tags untouched");
    assert_eq!(doc.package.rev, 3);
    s.remove_versions(
        p.package_id,
        3,
        &["1.2.0".into()],
        &[("latest".into(), "1.1.0".into())],
        14,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn maintainers_never_drop_to_zero() {
    let s = store().await;
    let alice = s.create_user(new_user("alice"), 1).await.unwrap();
    let bob = s.create_user(new_user("bob"), 1).await.unwrap();
    let p = s
        .publish(publish("demo", "1.0.0", alice.id), 10)
        .await
        .unwrap();
    s.change_maintainers(p.package_id, &[bob.id], &[], 11)
        .await
        .unwrap();
    s.change_maintainers(p.package_id, &[], &[alice.id], 12)
        .await
        .unwrap();
    assert!(matches!(
        s.change_maintainers(p.package_id, &[], &[bob.id], 13).await,
        Err(StoreError::Precondition(_))
    ));
    let doc = s.package_doc("demo").await.unwrap().unwrap();
    assert_eq!(
        doc.maintainers
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>(),
        ["bob"]
    );
}

#[tokio::test]
async fn search_respects_visibility_and_terms() {
    let s = store().await;
    let alice = s.create_user(new_user("alice"), 1).await.unwrap();
    let bob = s.create_user(new_user("bob"), 1).await.unwrap();
    s.publish(publish("left-pad", "1.0.0", alice.id), 10)
        .await
        .unwrap();
    let mut secret = publish("@alice/secret", "1.0.0", alice.id);
    secret.access = Access::Restricted;
    s.publish(secret, 10).await.unwrap();
    let (hits, total) = s.search(&["pad".into()], None, 0, 20).await.unwrap();
    assert_eq!((hits.len(), total), (1, 1));
    assert_eq!(hits[0].latest.as_deref(), Some("1.0.0"));
    let (_, total) = s
        .search(&["secret".into()], Some(bob.id), 0, 20)
        .await
        .unwrap();
    assert_eq!(
        total, 0,
        "restricted packages are hidden from non-maintainers"
    );
    let (_, total) = s
        .search(&["secret".into()], Some(alice.id), 0, 20)
        .await
        .unwrap();
    assert_eq!(total, 1);
    let (_, total) = s.search(&["100%".into()], None, 0, 20).await.unwrap();
    assert_eq!(total, 0, "LIKE wildcards are escaped");
    let (hits, total) = s.search(&["demo".into()], None, 0, 20).await.unwrap();
    assert_eq!((hits.len(), total), (1, 1), "keywords match");
}

#[tokio::test]
async fn enrolment_is_pending_until_confirmed() {
    let s = store().await;
    let alice = s.create_user(new_user("alice"), 1).await.unwrap();
    assert!(
        s.start_enrolment(alice.id, TwoFactorMode::AuthAndWrites, b"sealed-1", 10)
            .await
            .unwrap()
    );
    let u = s.user_by_id(alice.id).await.unwrap().unwrap();
    assert_eq!(
        u.two_factor,
        Some(TwoFactor {
            status: TwoFactorStatus::Pending(TwoFactorMode::AuthAndWrites),
            started_at: 10
        })
    );
    // restarting while pending replaces the secret
    assert!(
        s.start_enrolment(alice.id, TwoFactorMode::AuthOnly, b"sealed-2", 20)
            .await
            .unwrap()
    );
    let t = s.totp(alice.id).await.unwrap().unwrap();
    assert_eq!(t.secret_sealed, b"sealed-2");
    // confirming an old enrolment fails; the current one works
    let codes = vec!["h1".to_string(), "h2".to_string()];
    assert!(
        !s.confirm_enrolment(alice.id, 10, 100, "c", &codes, 30)
            .await
            .unwrap()
    );
    assert!(
        s.confirm_enrolment(alice.id, 20, 100, "c", &codes, 30)
            .await
            .unwrap()
    );
    let u = s.user_by_name("alice").await.unwrap().unwrap();
    assert_eq!(
        u.two_factor.unwrap().status,
        TwoFactorStatus::Active(TwoFactorMode::AuthOnly)
    );
    // active 2FA cannot be silently replaced by a new enrolment
    assert!(
        !s.start_enrolment(alice.id, TwoFactorMode::AuthOnly, b"evil", 40)
            .await
            .unwrap()
    );
    assert_eq!(
        s.totp(alice.id).await.unwrap().unwrap().secret_sealed,
        b"sealed-2"
    );
    assert!(
        !s.cancel_pending(alice.id).await.unwrap(),
        "active is not pending"
    );
    assert_eq!(s.recovery_codes_left(alice.id).await.unwrap(), 2);
    assert!(
        s.set_two_factor_mode(alice.id, TwoFactorMode::AuthAndWrites)
            .await
            .unwrap()
    );
    assert!(s.disable_two_factor(alice.id).await.unwrap());
    assert_eq!(s.recovery_codes_left(alice.id).await.unwrap(), 0);
    assert!(
        s.user_by_id(alice.id)
            .await
            .unwrap()
            .unwrap()
            .two_factor
            .is_none()
    );
}

#[tokio::test]
async fn steps_are_consumed_once_except_by_the_same_credential() {
    let s = store().await;
    let alice = s.create_user(new_user("alice"), 1).await.unwrap();
    s.start_enrolment(alice.id, TwoFactorMode::AuthAndWrites, b"x", 1)
        .await
        .unwrap();
    assert!(
        !s.consume_step(alice.id, 100, "t1").await.unwrap(),
        "pending enrolments consume nothing"
    );
    s.confirm_enrolment(alice.id, 1, 100, "enrol", &[], 2)
        .await
        .unwrap();
    assert!(
        !s.consume_step(alice.id, 100, "t1").await.unwrap(),
        "the confirmation's step is spent"
    );
    assert!(s.consume_step(alice.id, 101, "t1").await.unwrap());
    assert!(
        s.consume_step(alice.id, 101, "t1").await.unwrap(),
        "same credential, same step"
    );
    assert!(
        !s.consume_step(alice.id, 101, "t2").await.unwrap(),
        "another credential"
    );
    assert!(
        !s.consume_step(alice.id, 100, "t1").await.unwrap(),
        "older step"
    );
    assert!(s.consume_step(alice.id, 102, "t2").await.unwrap());
    assert!(
        !s.consume_step(alice.id, 101, "t1").await.unwrap(),
        "monotonic"
    );
}

#[tokio::test]
async fn racing_consumers_get_one_success() {
    let t = shared_store().await;
    let s = t.store.clone();
    let alice = s.create_user(new_user("alice"), 1).await.unwrap();
    s.start_enrolment(alice.id, TwoFactorMode::AuthAndWrites, b"x", 1)
        .await
        .unwrap();
    s.confirm_enrolment(alice.id, 1, 100, "enrol", &[], 2)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.consume_step(alice.id, 200, &format!("cred-{i}"))
                .await
                .unwrap()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += t.await.unwrap() as usize;
    }
    assert_eq!(wins, 1);
}

#[tokio::test]
async fn recovery_codes_work_once() {
    let s = store().await;
    let alice = s.create_user(new_user("alice"), 1).await.unwrap();
    s.start_enrolment(alice.id, TwoFactorMode::AuthOnly, b"x", 1)
        .await
        .unwrap();
    s.confirm_enrolment(alice.id, 1, 1, "c", &["a".into(), "b".into()], 2)
        .await
        .unwrap();
    assert_eq!(
        s.use_recovery_code(alice.id, "a", "cred", 100, 0)
            .await
            .unwrap(),
        RecoveryUse::FirstUse
    );
    assert_eq!(
        s.use_recovery_code(alice.id, "a", "cred", 110, 50)
            .await
            .unwrap(),
        RecoveryUse::Repeat
    );
    assert_eq!(
        s.use_recovery_code(alice.id, "a", "other", 110, 50)
            .await
            .unwrap(),
        RecoveryUse::Spent
    );
    assert_eq!(
        s.use_recovery_code(alice.id, "a", "cred", 500, 400)
            .await
            .unwrap(),
        RecoveryUse::Spent,
        "grace over"
    );
    assert_eq!(
        s.use_recovery_code(alice.id, "zzz", "cred", 500, 400)
            .await
            .unwrap(),
        RecoveryUse::Unknown
    );
    assert_eq!(s.recovery_codes_left(alice.id).await.unwrap(), 1);
    s.replace_recovery_codes(alice.id, &["c".into()], 600)
        .await
        .unwrap();
    assert_eq!(
        s.use_recovery_code(alice.id, "b", "cred", 700, 0)
            .await
            .unwrap(),
        RecoveryUse::Unknown,
        "old set void"
    );
    assert_eq!(
        s.use_recovery_code(alice.id, "c", "cred", 700, 0)
            .await
            .unwrap(),
        RecoveryUse::FirstUse
    );
}

#[tokio::test]
async fn failures_are_counted_per_account_and_address() {
    let s = store().await;
    let alice = s.create_user(new_user("alice"), 1).await.unwrap();
    for t in [10, 20, 30] {
        s.record_failure(FailureKind::Otp, Some(alice.id), "10.0.0.1", t, 0)
            .await
            .unwrap();
    }
    s.record_failure(FailureKind::Password, Some(alice.id), "10.0.0.2", 40, 0)
        .await
        .unwrap();
    assert_eq!(
        s.failures_since(FailureKind::Otp, Some(alice.id), None, 15)
            .await
            .unwrap(),
        vec![20, 30]
    );
    assert_eq!(
        s.failures_since(FailureKind::Otp, None, Some("10.0.0.1"), 0)
            .await
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        s.failures_since(FailureKind::Password, Some(alice.id), None, 0)
            .await
            .unwrap(),
        vec![40]
    );
    // pruning
    s.record_failure(FailureKind::Otp, Some(alice.id), "10.0.0.1", 100, 25)
        .await
        .unwrap();
    assert_eq!(
        s.failures_since(FailureKind::Otp, Some(alice.id), None, 0)
            .await
            .unwrap(),
        vec![30, 100]
    );
}

#[tokio::test]
async fn security_log_keeps_newest_first() {
    let s = store().await;
    let alice = s.create_user(new_user("alice"), 1).await.unwrap();
    for (at, kind) in [(1, "login"), (2, "tfa_enabled"), (3, "otp_failed")] {
        s.log_event(
            alice.id,
            SecurityEvent {
                at,
                kind: kind.into(),
                ip: "127.0.0.1".into(),
                user_agent: "npm".into(),
                detail: String::new(),
            },
        )
        .await
        .unwrap();
    }
    let e = s.events(alice.id, 2).await.unwrap();
    assert_eq!(
        e.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["otp_failed", "tfa_enabled"]
    );
}

#[tokio::test]
async fn settings_set_and_clear() {
    let s = store().await;
    assert_eq!(s.setting("require_2fa").await.unwrap(), None);
    s.set_setting("require_2fa", Some("publishers"), 1)
        .await
        .unwrap();
    s.set_setting("require_2fa", Some("everyone"), 2)
        .await
        .unwrap();
    assert_eq!(
        s.setting("require_2fa").await.unwrap().as_deref(),
        Some("everyone")
    );
    s.set_setting("require_2fa", None, 3).await.unwrap();
    assert_eq!(s.setting("require_2fa").await.unwrap(), None);
}

fn session(id: &str, user: Option<UserId>, stage: SessionStage, now: i64) -> Session {
    Session {
        id_hash: id.into(),
        user_id: user,
        stage,
        csrf: format!("csrf-{id}"),
        created_at: now,
        last_seen_at: now,
        authenticated_at: now,
        otp_attempts: 0,
        return_to: None,
    }
}

#[tokio::test]
async fn sessions_rotate_and_expire() {
    let s = store().await;
    let alice = s.create_user(new_user("alice"), 1).await.unwrap();
    s.create_session(&session("a", None, SessionStage::Anonymous, 10))
        .await
        .unwrap();
    s.rotate_session(
        "a",
        &session("b", Some(alice.id), SessionStage::Partial, 20),
    )
    .await
    .unwrap();
    assert!(
        s.session("a").await.unwrap().is_none(),
        "the old id is dead"
    );
    assert_eq!(
        s.session("b").await.unwrap().unwrap().stage,
        SessionStage::Partial
    );
    assert_eq!(s.bump_session_otp_attempts("b").await.unwrap(), 1);
    assert_eq!(s.bump_session_otp_attempts("b").await.unwrap(), 2);
    s.create_session(&session("c", Some(alice.id), SessionStage::Full, 30))
        .await
        .unwrap();
    assert_eq!(
        s.delete_user_sessions(alice.id, Some("c")).await.unwrap(),
        1
    );
    assert!(s.session("c").await.unwrap().is_some());
    s.touch_session("c", 100).await.unwrap();
    assert_eq!(s.prune_sessions(50, 0).await.unwrap(), 0);
    assert_eq!(s.prune_sessions(101, 0).await.unwrap(), 1);
}

#[tokio::test]
async fn handshakes_are_collected_once() {
    let s = store().await;
    let alice = s.create_user(new_user("alice"), 1).await.unwrap();
    let bob = s.create_user(new_user("bob"), 1).await.unwrap();
    s.create_handshake(
        HandshakeKind::Login,
        "l1",
        "d1",
        false,
        false,
        None,
        10,
        100,
    )
    .await
    .unwrap();
    assert_eq!(
        s.poll_handshake("d1", 20).await.unwrap(),
        HandshakePoll::Pending
    );
    assert_eq!(
        s.poll_handshake("nope", 20).await.unwrap(),
        HandshakePoll::Gone
    );
    assert!(
        s.approve_handshake("l1", alice.id, 30, false)
            .await
            .unwrap()
    );
    assert!(
        !s.approve_handshake("l1", bob.id, 31, false).await.unwrap(),
        "approved once"
    );
    assert!(
        matches!(s.poll_handshake("d1", 40).await.unwrap(), HandshakePoll::Approved { user_id, .. } if user_id == alice.id)
    );
    assert_eq!(
        s.poll_handshake("d1", 41).await.unwrap(),
        HandshakePoll::Gone,
        "collected once"
    );
    // expiry and denial
    s.create_handshake(
        HandshakeKind::Login,
        "l2",
        "d2",
        false,
        false,
        None,
        10,
        100,
    )
    .await
    .unwrap();
    assert!(
        !s.approve_handshake("l2", alice.id, 100, false)
            .await
            .unwrap(),
        "expired"
    );
    assert_eq!(
        s.poll_handshake("d2", 101).await.unwrap(),
        HandshakePoll::Gone
    );
    s.create_handshake(
        HandshakeKind::Login,
        "l3",
        "d3",
        false,
        false,
        None,
        10,
        100,
    )
    .await
    .unwrap();
    assert!(s.deny_handshake("l3", 20).await.unwrap());
    assert_eq!(
        s.poll_handshake("d3", 21).await.unwrap(),
        HandshakePoll::Denied
    );
    // a web-OTP handshake belongs to its account
    s.create_handshake(
        HandshakeKind::Otp,
        "l4",
        "d4",
        false,
        false,
        Some(alice.id),
        10,
        100,
    )
    .await
    .unwrap();
    assert!(!s.approve_handshake("l4", bob.id, 20, false).await.unwrap());
    assert!(
        s.approve_handshake("l4", alice.id, 20, false)
            .await
            .unwrap()
    );
    let HandshakePoll::Approved { id, .. } = s.poll_handshake("d4", 30).await.unwrap() else {
        panic!()
    };
    s.set_handshake_result(id, "r4").await.unwrap();
    assert!(
        !s.use_web_otp(bob.id, "r4", "t1", 39, 0, false)
            .await
            .unwrap(),
        "another account"
    );
    assert!(
        !s.use_web_otp(alice.id, "r4", "t1", 39, 40, false)
            .await
            .unwrap(),
        "issued too long ago"
    );
    assert!(
        s.use_web_otp(alice.id, "r4", "t1", 40, 0, false)
            .await
            .unwrap()
    );
    assert!(
        !s.use_web_otp(alice.id, "r4", "t1", 41, 0, false)
            .await
            .unwrap(),
        "spent on first use, even for the same credential"
    );
    assert!(
        !s.use_web_otp(alice.id, "r4", "t2", 42, 0, false)
            .await
            .unwrap(),
        "another credential"
    );
    // one that asks for a key is approved only with a key, and its code then counts as one
    s.create_handshake(
        HandshakeKind::Otp,
        "l5",
        "d5",
        false,
        true,
        Some(alice.id),
        10,
        100,
    )
    .await
    .unwrap();
    assert!(s.handshake("l5").await.unwrap().unwrap().needs_key);
    assert!(
        !s.approve_handshake("l5", alice.id, 20, false)
            .await
            .unwrap()
    );
    assert!(s.approve_handshake("l5", alice.id, 20, true).await.unwrap());
    let HandshakePoll::Approved { id, .. } = s.poll_handshake("d5", 30).await.unwrap() else {
        panic!()
    };
    s.set_handshake_result(id, "r5").await.unwrap();
    assert!(
        s.use_web_otp(alice.id, "r5", "t1", 40, 0, true)
            .await
            .unwrap()
    );
    // a code whose confirmation was not given with a key does not count where one is needed
    s.create_handshake(
        HandshakeKind::Otp,
        "l6",
        "d6",
        false,
        false,
        Some(alice.id),
        10,
        100,
    )
    .await
    .unwrap();
    assert!(
        s.approve_handshake("l6", alice.id, 20, false)
            .await
            .unwrap()
    );
    let HandshakePoll::Approved { id, .. } = s.poll_handshake("d6", 30).await.unwrap() else {
        panic!()
    };
    s.set_handshake_result(id, "r6").await.unwrap();
    assert!(
        !s.use_web_otp(alice.id, "r6", "t1", 40, 0, true)
            .await
            .unwrap()
    );
    assert!(
        s.use_web_otp(alice.id, "r6", "t1", 40, 0, false)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn scope_standing() {
    let s = store().await;
    let alice = s.create_user(new_user("alice"), 1).await.unwrap();
    let bob = s.create_user(new_user("bob"), 1).await.unwrap();
    assert_eq!(
        s.scope_standing("@acme", alice.id).await.unwrap(),
        (false, false)
    );
    s.publish(publish("@acme/a", "1.0.0", alice.id), 2)
        .await
        .unwrap();
    assert_eq!(
        s.scope_standing("@acme", alice.id).await.unwrap(),
        (true, true)
    );
    assert_eq!(
        s.scope_standing("@acme", bob.id).await.unwrap(),
        (true, false)
    );
    assert_eq!(
        s.scope_standing("@acm", bob.id).await.unwrap(),
        (false, false),
        "no prefix match"
    );
    assert_eq!(
        s.scope_standing("@acme_", bob.id).await.unwrap(),
        (false, false),
        "LIKE wildcards escaped"
    );
}

#[tokio::test]
async fn cached_token_lookups_see_revocation_and_account_changes_at_once() {
    let s = store().await;
    let alice = s.create_user(new_user("alice"), 1).await.unwrap();
    let mk = |h: &str| NewToken {
        user_id: alice.id,
        token_hash: h.into(),
        display_prefix: "tsr_x".into(),
        kind: TokenKind::Login,
        name: None,
        description: None,
        readonly: false,
        bypass_2fa: false,
        cidr_whitelist: vec![],
        grants: TokenGrants::default(),
        expires_at: None,
    };
    s.create_token(mk("h1"), 1).await.unwrap();
    s.create_token(mk("h2"), 1).await.unwrap();
    let e0 = s.auth_epoch().await.unwrap();
    assert!(!s.token_by_hash("h1").await.unwrap().unwrap().1.locked);
    assert!(
        !s.token_by_hash("h1").await.unwrap().unwrap().1.locked,
        "cached"
    );
    s.set_locked(alice.id, true, 2).await.unwrap();
    assert!(
        s.token_by_hash("h1").await.unwrap().unwrap().1.locked,
        "locking is seen at once"
    );
    s.start_enrolment(alice.id, TwoFactorMode::AuthOnly, b"x", 3)
        .await
        .unwrap();
    assert!(
        s.token_by_hash("h1")
            .await
            .unwrap()
            .unwrap()
            .1
            .two_factor
            .is_some(),
        "2FA changes too"
    );
    s.delete_token(alice.id, "h1").await.unwrap();
    assert!(
        s.token_by_hash("h1").await.unwrap().is_none(),
        "revocation at once"
    );
    assert!(
        s.auth_epoch().await.unwrap() >= e0 + 3,
        "the shared counter moved"
    );
    assert!(s.token_by_hash("h2").await.unwrap().is_some());
}

fn key(user: UserId, cred: &str) -> NewSecurityKey {
    NewSecurityKey {
        user_id: user,
        name: format!("key {cred}"),
        credential_id: cred.into(),
        credential: format!("{{\"cred\":\"{cred}\"}}"),
        counter: 0,
        backup_state: false,
    }
}

#[tokio::test]
async fn the_first_security_key_turns_2fa_on_and_the_last_one_off() {
    let s = store().await;
    let alice = s.create_user(new_user("alice"), 1).await.unwrap();
    let bob = s.create_user(new_user("bob"), 1).await.unwrap();
    // a pending TOTP enrolment is dropped when a key turns 2FA on
    assert!(
        s.start_enrolment(alice.id, TwoFactorMode::AuthOnly, b"sealed", 5)
            .await
            .unwrap()
    );
    let codes = vec!["h1".to_string(), "h2".to_string()];
    let (k1, on) = s
        .add_security_key(
            key(alice.id, "c1"),
            TwoFactorMode::AuthAndWrites,
            &codes,
            10,
        )
        .await
        .unwrap();
    assert!(on);
    assert_eq!(
        (k1.name.as_str(), k1.created_at, k1.last_used_at),
        ("key c1", 10, None)
    );
    let user = s.user_by_id(alice.id).await.unwrap().unwrap();
    assert_eq!(
        user.two_factor.unwrap().status,
        TwoFactorStatus::Active(TwoFactorMode::AuthAndWrites)
    );
    let record = s.totp(alice.id).await.unwrap().unwrap();
    assert!(!record.has_totp && record.secret_sealed.is_empty());
    assert_eq!(s.recovery_codes_left(alice.id).await.unwrap(), 2);
    assert!(
        s.sealed_secrets().await.unwrap().is_empty(),
        "no TOTP secret to reseal"
    );
    // a second key leaves 2FA and the recovery codes as they are
    let (k2, on) = s
        .add_security_key(key(alice.id, "c2"), TwoFactorMode::AuthOnly, &[], 11)
        .await
        .unwrap();
    assert!(!on);
    assert_eq!(s.recovery_codes_left(alice.id).await.unwrap(), 2);
    // a credential id is registered once, whoever asks
    assert!(matches!(
        s.add_security_key(key(bob.id, "c1"), TwoFactorMode::AuthOnly, &[], 12)
            .await,
        Err(StoreError::Conflict)
    ));
    assert!(s.security_keys(bob.id).await.unwrap().is_empty());
    assert!(
        s.user_by_id(bob.id)
            .await
            .unwrap()
            .unwrap()
            .two_factor
            .is_none()
    );
    // uses are recorded
    s.record_key_use(k1.id, "{\"cred\":\"c1'\"}", 7, true, 20)
        .await
        .unwrap();
    let keys = s.security_keys(alice.id).await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(
        (keys[0].counter, keys[0].backup_state, keys[0].last_used_at),
        (7, true, Some(20))
    );
    assert_eq!(keys[0].credential, "{\"cred\":\"c1'\"}");
    // another account's key cannot be removed; the last key takes 2FA with it
    assert_eq!(
        s.remove_security_key(bob.id, k1.id).await.unwrap(),
        KeyRemoval::NotFound
    );
    assert_eq!(
        s.remove_security_key(alice.id, k1.id).await.unwrap(),
        KeyRemoval::Removed
    );
    assert_eq!(
        s.remove_security_key(alice.id, k2.id).await.unwrap(),
        KeyRemoval::RemovedLastFactor
    );
    assert!(
        s.user_by_id(alice.id)
            .await
            .unwrap()
            .unwrap()
            .two_factor
            .is_none()
    );
    assert_eq!(s.recovery_codes_left(alice.id).await.unwrap(), 0);
}

#[tokio::test]
async fn keys_beside_totp_and_disabling_removes_them() {
    let s = store().await;
    let alice = s.create_user(new_user("alice"), 1).await.unwrap();
    s.start_enrolment(alice.id, TwoFactorMode::AuthOnly, b"sealed", 5)
        .await
        .unwrap();
    s.confirm_enrolment(alice.id, 5, 100, "c", &["h".to_string()], 6)
        .await
        .unwrap();
    let (k, on) = s
        .add_security_key(key(alice.id, "c1"), TwoFactorMode::AuthAndWrites, &[], 10)
        .await
        .unwrap();
    assert!(!on, "TOTP already had 2FA on");
    let record = s.totp(alice.id).await.unwrap().unwrap();
    assert!(record.has_totp);
    assert_eq!(
        record.state.status,
        TwoFactorStatus::Active(TwoFactorMode::AuthOnly),
        "the mode stays"
    );
    // removing the only key leaves TOTP on
    assert_eq!(
        s.remove_security_key(alice.id, k.id).await.unwrap(),
        KeyRemoval::Removed
    );
    s.add_security_key(key(alice.id, "c2"), TwoFactorMode::AuthOnly, &[], 11)
        .await
        .unwrap();
    assert!(s.disable_two_factor(alice.id).await.unwrap());
    assert!(s.security_keys(alice.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn ceremonies_complete_once_and_expire() {
    let s = store().await;
    let alice = s.create_user(new_user("alice"), 1).await.unwrap();
    let c = Ceremony {
        id_hash: "h1".into(),
        user_id: alice.id,
        kind: CeremonyKind::Authenticate,
        bound_to: "session:x".into(),
        state: "{}".into(),
        created_at: 10,
        expires_at: 100,
    };
    s.create_ceremony(&c).await.unwrap();
    assert_eq!(s.take_ceremony("h1", 50).await.unwrap(), Some(c.clone()));
    assert_eq!(s.take_ceremony("h1", 50).await.unwrap(), None, "once");
    let late = Ceremony {
        id_hash: "h2".into(),
        ..c
    };
    s.create_ceremony(&late).await.unwrap();
    assert_eq!(s.take_ceremony("h2", 100).await.unwrap(), None, "expired");
    assert_eq!(s.take_ceremony("h2", 50).await.unwrap(), None, "and gone");
    assert_eq!(s.take_ceremony("nope", 0).await.unwrap(), None);
}

#[tokio::test]
async fn an_app_is_offered_to_a_keys_only_account_and_confirmed_once() {
    let s = store().await;
    let alice = s.create_user(new_user("alice"), 1).await.unwrap();
    let bob = s.create_user(new_user("bob"), 1).await.unwrap();
    // no 2FA, or TOTP already: nothing to offer
    assert!(!s.offer_totp(alice.id, b"sealed", 5).await.unwrap());
    s.start_enrolment(bob.id, TwoFactorMode::AuthOnly, b"bob", 5)
        .await
        .unwrap();
    assert!(
        !s.offer_totp(bob.id, b"sealed", 6).await.unwrap(),
        "pending"
    );
    s.add_security_key(key(alice.id, "a1"), TwoFactorMode::AuthAndWrites, &[], 10)
        .await
        .unwrap();
    assert!(s.offer_totp(alice.id, b"first", 20).await.unwrap());
    // a newer offer replaces the older one, which can no longer be confirmed
    assert!(s.offer_totp(alice.id, b"second", 30).await.unwrap());
    assert!(!s.confirm_offered_totp(alice.id, 20, 7, "t").await.unwrap());
    let r = s.totp(alice.id).await.unwrap().unwrap();
    assert!(!r.has_totp, "not before its first code");
    assert_eq!(r.offered_at, Some(30));
    assert_eq!(r.secret_sealed, b"second");
    assert!(s.confirm_offered_totp(alice.id, 30, 7, "t").await.unwrap());
    let r = s.totp(alice.id).await.unwrap().unwrap();
    assert!(r.has_totp && r.offered_at.is_none());
    assert_eq!(r.last_step, Some(7));
    assert!(!r.state.status.is_pending());
    assert!(
        !s.confirm_offered_totp(alice.id, 30, 8, "t").await.unwrap(),
        "once"
    );
    assert!(
        !s.offer_totp(alice.id, b"third", 40).await.unwrap(),
        "it has one now"
    );
}

#[tokio::test]
async fn trusted_publishers_and_used_identity_tokens() {
    let s = store().await;
    let alice = s.create_user(new_user("alice"), 1).await.unwrap();
    let p = |id: &str, claims: &str| TrustedPublisher {
        id: id.into(),
        package: "pending-pkg".into(),
        kind: "github".into(),
        claims: claims.into(),
        permissions: "[\"createPackage\"]".into(),
        bound: None,
        created_by: alice.id,
        created_at: 5,
    };
    s.add_trusted_publishers(&[
        p("u1", "{\"repository\":\"o/r\"}"),
        p("u2", "{\"repository\":\"o/other\"}"),
    ])
    .await
    .unwrap();
    // all or none: a duplicate refuses the whole batch
    assert!(matches!(
        s.add_trusted_publishers(&[
            p("u4", "{\"repository\":\"o/new\"}"),
            p("u3", "{\"repository\":\"o/r\"}"),
        ])
        .await,
        Err(StoreError::Conflict)
    ));
    let listed = s.trusted_publishers("pending-pkg").await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0], p("u1", "{\"repository\":\"o/r\"}"));
    assert!(s.trusted_publishers("other").await.unwrap().is_empty());
    // bound once
    assert!(
        s.bind_trusted_publisher("u1", "{\"owner_id\":\"7\"}")
            .await
            .unwrap()
    );
    assert!(
        !s.bind_trusted_publisher("u1", "{\"owner_id\":\"8\"}")
            .await
            .unwrap()
    );
    assert_eq!(
        s.trusted_publishers("pending-pkg").await.unwrap()[0]
            .bound
            .as_deref(),
        Some("{\"owner_id\":\"7\"}")
    );
    assert!(!s.remove_trusted_publisher("other", "u1").await.unwrap());
    assert!(
        s.remove_trusted_publisher("pending-pkg", "u1")
            .await
            .unwrap()
    );
    assert_eq!(s.trusted_publishers("pending-pkg").await.unwrap().len(), 1);
    // identity tokens: once each, forgotten when expired
    assert!(s.use_jti("j1", 100, 10).await.unwrap());
    assert!(!s.use_jti("j1", 100, 20).await.unwrap());
    assert!(
        s.use_jti("j1", 300, 100).await.unwrap(),
        "expired, so forgotten"
    );
}

fn staged(id: &str, name: &str, v: &str, owner: UserId, at: i64) -> StagedVersion {
    StagedVersion {
        id: id.into(),
        package_name: name.into(),
        version: v.into(),
        tag: "latest".into(),
        access: Some(Access::Public),
        manifest: format!("{{\"name\":\"{name}\",\"version\":\"{v}\"}}"),
        readme: None,
        tarball_sha512: format!("staged-{name}-{v}"),
        shasum: "00".into(),
        integrity: "sha512-AA==".into(),
        size: 3,
        description: None,
        keywords: vec!["k".into()],
        owner_id: owner,
        actor: "ci".into(),
        actor_type: "oidc".into(),
        created_at: at,
        provenance: None,
    }
}

#[tokio::test]
async fn staged_versions_hold_their_number_until_approved_or_rejected() {
    let s = store().await;
    let alice = s.create_user(new_user("alice"), 1).await.unwrap();
    let bob = s.create_user(new_user("bob"), 1).await.unwrap();
    s.publish(publish("demo", "1.0.0", alice.id), 10)
        .await
        .unwrap();
    s.stage_version(&staged("s1", "demo", "1.1.0", alice.id, 20))
        .await
        .unwrap();
    // the number is held against stages and publishes; published numbers cannot be staged
    assert!(matches!(
        s.stage_version(&staged("s2", "demo", "1.1.0", alice.id, 21))
            .await,
        Err(StoreError::VersionExists)
    ));
    assert!(matches!(
        s.publish(publish("demo", "1.1.0", alice.id), 22).await,
        Err(StoreError::VersionExists)
    ));
    assert!(matches!(
        s.stage_version(&staged("s3", "demo", "1.0.0", alice.id, 23))
            .await,
        Err(StoreError::VersionExists)
    ));
    // only a maintainer's
    assert!(matches!(
        s.stage_version(&staged("s4", "demo", "1.2.0", bob.id, 24))
            .await,
        Err(StoreError::NotMaintainer)
    ));
    // a new name: staged for whoever staged it
    s.stage_version(&staged("s5", "fresh", "0.1.0", bob.id, 25))
        .await
        .unwrap();
    let got = s.staged_version("s1").await.unwrap().unwrap();
    assert_eq!(got, staged("s1", "demo", "1.1.0", alice.id, 20));
    assert!(s.staged_version("nope").await.unwrap().is_none());
    // one by id, by the same rule as the listing
    let seen = |id: &'static str, by: UserId| {
        let st = s.store.clone();
        async move { st.staged_version_seen_by(id, by).await.unwrap().is_some() }
    };
    assert!(seen("s1", alice.id).await && !seen("s1", bob.id).await);
    assert!(seen("s5", bob.id).await && !seen("s5", alice.id).await);
    // who sees what
    let ids =
        |v: (Vec<StagedVersion>, i64)| (v.0.into_iter().map(|s| s.id).collect::<Vec<_>>(), v.1);
    assert_eq!(
        ids(s.staged_versions(alice.id, None, 0, 10).await.unwrap()),
        (vec!["s1".to_string()], 1)
    );
    assert_eq!(
        ids(s.staged_versions(bob.id, None, 0, 10).await.unwrap()),
        (vec!["s5".to_string()], 1)
    );
    assert_eq!(
        ids(s
            .staged_versions(alice.id, Some("fresh"), 0, 10)
            .await
            .unwrap()),
        (vec![], 0)
    );
    s.stage_version(&staged("s6", "demo", "1.3.0", alice.id, 26))
        .await
        .unwrap();
    assert_eq!(
        ids(s
            .staged_versions(alice.id, Some("demo"), 1, 1)
            .await
            .unwrap()),
        (vec!["s6".to_string()], 2)
    );
    // the tarball is in use while staged
    assert!(s.blob_in_use("staged-demo-1.3.0").await.unwrap());
    // approving: a publish that takes it off the stage, once
    let mut approve = publish("demo", "1.1.0", alice.id);
    approve.staged_id = Some("s1".into());
    s.publish(approve.clone(), 30).await.unwrap();
    assert!(s.staged_version("s1").await.unwrap().is_none());
    assert!(matches!(
        s.publish(approve, 31).await,
        Err(StoreError::NotFound)
    ));
    // an approval naming another version's stage publishes nothing
    let mut wrong = publish("demo", "9.9.9", alice.id);
    wrong.staged_id = Some("s6".into());
    assert!(matches!(
        s.publish(wrong, 32).await,
        Err(StoreError::NotFound)
    ));
    assert!(s.staged_version("s6").await.unwrap().is_some());
    // rejecting frees the number
    assert!(s.remove_staged("s6").await.unwrap());
    assert!(!s.remove_staged("s6").await.unwrap());
    assert!(!s.blob_in_use("staged-demo-1.3.0").await.unwrap());
    s.publish(publish("demo", "1.3.0", alice.id), 33)
        .await
        .unwrap();
    let doc = s.package_doc("demo").await.unwrap().unwrap();
    assert_eq!(doc.versions.len(), 3);

    // a name nobody has: another account's stage does not hold the number against whoever
    // takes the name, and goes when it is taken (its tarball handed back for collection)
    let carol = s.create_user(new_user("carol"), 1).await.unwrap();
    s.stage_version(&staged("c1", "contested", "1.0.0", carol.id, 40))
        .await
        .unwrap();
    s.stage_version(&staged("b1", "contested", "2.0.0", bob.id, 41))
        .await
        .unwrap();
    let p = s
        .publish(publish("contested", "1.0.0", bob.id), 42)
        .await
        .unwrap();
    assert!(p.created);
    assert_eq!(p.dropped_blobs, ["staged-contested-1.0.0"]);
    assert!(s.staged_version("c1").await.unwrap().is_none());
    assert!(
        s.staged_version("b1").await.unwrap().is_some(),
        "the creator's own stays"
    );
    // and its own stage of a free name held the number against its own publish
    s.stage_version(&staged("b2", "fresh2", "1.0.0", bob.id, 43))
        .await
        .unwrap();
    assert!(matches!(
        s.publish(publish("fresh2", "1.0.0", bob.id), 44).await,
        Err(StoreError::VersionExists)
    ));
    // a package deleted: its staged versions go with it, their tarballs returned
    let doc = s.package_doc("contested").await.unwrap().unwrap();
    let blobs = s
        .delete_package(doc.package.id, doc.package.rev, 45)
        .await
        .unwrap();
    assert!(
        blobs.contains(&"staged-contested-2.0.0".to_string()),
        "{blobs:?}"
    );
    assert!(s.staged_version("b1").await.unwrap().is_none());
}

#[tokio::test]
async fn tokens_expiring_within_a_span_of_everyone_or_one_user() {
    let s = store().await;
    let alice = s.create_user(new_user("alice"), 1).await.unwrap();
    let bob = s.create_user(new_user("bob"), 1).await.unwrap();
    let token = |user: UserId, hash: &str, expires_at: Option<i64>| NewToken {
        user_id: user,
        token_hash: hash.into(),
        display_prefix: "tsr_x".into(),
        kind: TokenKind::Granular,
        name: Some(hash.into()),
        description: None,
        readonly: false,
        bypass_2fa: false,
        cidr_whitelist: vec![],
        grants: TokenGrants::default(),
        expires_at,
    };
    for (u, h, e) in [
        (alice.id, "a-soon", Some(150)),
        (alice.id, "a-later", Some(900)),
        (alice.id, "a-never", None),
        (alice.id, "a-gone", Some(50)),
        (bob.id, "b-soon", Some(120)),
    ] {
        s.create_token(token(u, h, e), 1).await.unwrap();
    }
    let names = |v: Vec<(Token, String)>| {
        v.into_iter()
            .map(|(t, owner)| format!("{owner}:{}", t.token_hash))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(s.tokens_expiring(None, 100, 200).await.unwrap()),
        ["bob:b-soon", "alice:a-soon"],
        "soonest first, expired and unexpiring ones left out"
    );
    assert_eq!(
        names(s.tokens_expiring(Some(alice.id), 100, 1000).await.unwrap()),
        ["alice:a-soon", "alice:a-later"]
    );
    assert!(
        s.tokens_expiring(Some(bob.id), 200, 1000)
            .await
            .unwrap()
            .is_empty()
    );
}

fn cached(name: &str, status: i64, at: i64) -> CachedPackument {
    CachedPackument {
        name: name.into(),
        uplink: "npmjs".into(),
        status,
        etag: Some(format!("\"{name}-{at}\"")),
        body: if status == 200 { vec![1, 2, 3] } else { vec![] },
        fetched_at: at,
        checked_at: at,
    }
}

fn cached_tarball(name: &str, version: &str, sha: &str, at: i64) -> CachedTarball {
    CachedTarball {
        name: name.into(),
        version: version.into(),
        uplink: "npmjs".into(),
        tarball_sha512: sha.into(),
        integrity: format!("sha512-{sha}"),
        size: 100,
        fetched_at: at,
    }
}

#[tokio::test]
async fn the_uplink_cache_keeps_packuments_tarballs_and_prunes_what_went_unread() {
    let s = store().await;
    assert_eq!(s.cached_packument("lodash").await.unwrap(), None);
    s.put_cached_packument(&cached("lodash", 200, 10))
        .await
        .unwrap();
    s.put_cached_packument(&cached("gone", 404, 10))
        .await
        .unwrap();
    assert_eq!(
        s.cached_packument("lodash").await.unwrap(),
        Some(cached("lodash", 200, 10))
    );
    // a newer answer replaces the row; a 304 only moves checked_at forward
    s.put_cached_packument(&cached("lodash", 200, 20))
        .await
        .unwrap();
    s.touch_cached_packument("lodash", 30).await.unwrap();
    s.touch_cached_packument("lodash", 25).await.unwrap();
    let p = s.cached_packument("lodash").await.unwrap().unwrap();
    assert_eq!((p.fetched_at, p.checked_at), (20, 30));
    // only packuments with a body are listed as cached packages
    assert_eq!(
        s.cached_names("", 10).await.unwrap(),
        vec![("lodash".to_string(), "npmjs".to_string())]
    );

    s.put_cached_tarball(&cached_tarball("lodash", "4.17.21", "aa", 31))
        .await
        .unwrap();
    // a second fetch of the same version replaces the row
    s.put_cached_tarball(&cached_tarball("lodash", "4.17.21", "bb", 32))
        .await
        .unwrap();
    s.put_cached_tarball(&cached_tarball("lodash", "4.17.21", "aa", 32))
        .await
        .unwrap();
    s.put_cached_tarball(&cached_tarball("lodash", "4.17.20", "cc", 33))
        .await
        .unwrap();
    let t = s.cached_tarballs("lodash").await.unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t[1].tarball_sha512, "aa");
    assert!(s.blob_in_use("aa").await.unwrap());
    assert!(!s.blob_in_use("bb").await.unwrap());
    assert_eq!(
        s.cache_sizes().await.unwrap(),
        vec![UplinkCacheSize {
            uplink: "npmjs".into(),
            packuments: 2,
            tarballs: 2,
            tarball_bytes: 200,
        }]
    );

    // pruning what was not confirmed since 15 takes the negative answer; lodash stays
    let (n, shas) = s.prune_cache(15).await.unwrap();
    assert_eq!((n, shas.len()), (1, 0));
    let (n, mut shas) = s.prune_cache(40).await.unwrap();
    shas.sort();
    assert_eq!((n, shas), (1, vec!["aa".to_string(), "cc".to_string()]));
    assert!(!s.blob_in_use("aa").await.unwrap());
    assert_eq!(s.cached_packument("lodash").await.unwrap(), None);
    s.put_cached_packument(&cached("x", 200, 50)).await.unwrap();
    s.forget_cached_packument("x").await.unwrap();
    assert_eq!(s.cached_packument("x").await.unwrap(), None);
    // a scoped name going local takes its whole scope out of the cache
    for n in ["@corp/a", "@corp/b", "@corp0", "@corpx/c"] {
        s.put_cached_packument(&cached(n, 200, 60)).await.unwrap();
    }
    s.forget_cached_packument("@corp/a").await.unwrap();
    let left: Vec<String> = s
        .cached_names("", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(left, vec!["@corp0", "@corpx/c"]);
}

#[tokio::test]
async fn names_claimed_locally_by_package_unpublish_or_scope() {
    let s = store().await;
    let alice = s.create_user(new_user("alice"), 1).await.unwrap();
    assert!(!s.claimed_locally("demo").await.unwrap());
    s.publish(publish("demo", "1.0.0", alice.id), 10)
        .await
        .unwrap();
    assert!(s.claimed_locally("demo").await.unwrap());
    assert!(!s.claimed_locally("demo2").await.unwrap());
    s.publish(publish("@corp/a", "1.0.0", alice.id), 10)
        .await
        .unwrap();
    assert!(s.claimed_locally("@corp/zzz").await.unwrap());
    assert!(!s.claimed_locally("@corpx/a").await.unwrap());
    assert!(!s.claimed_locally("@cor/a").await.unwrap());
    // a fully unpublished name, and its scope, stay claimed
    let doc = s.package_doc("@corp/a").await.unwrap().unwrap();
    s.delete_package(doc.package.id, doc.package.rev, 20)
        .await
        .unwrap();
    assert!(s.claimed_locally("@corp/a").await.unwrap());
    assert!(s.claimed_locally("@corp/other").await.unwrap());
}

#[tokio::test]
async fn held_versions_are_the_unpublished_and_staged_numbers() {
    let s = store().await;
    let alice = s.create_user(new_user("alice"), 1).await.unwrap();
    let p = s
        .publish(publish("demo", "1.0.0", alice.id), 10)
        .await
        .unwrap();
    s.publish(publish("demo", "1.1.0", alice.id), 11)
        .await
        .unwrap();
    assert!(s.held_versions("demo").await.unwrap().is_empty());
    s.remove_versions(
        p.package_id,
        2,
        &["1.1.0".into()],
        &[("latest".into(), "1.0.0".into())],
        12,
    )
    .await
    .unwrap();
    s.stage_version(&staged("s1", "demo", "1.2.0", alice.id, 13))
        .await
        .unwrap();
    let mut held = s.held_versions("demo").await.unwrap();
    held.sort();
    assert_eq!(held, vec!["1.1.0".to_string(), "1.2.0".into()]);
    assert!(s.held_versions("other").await.unwrap().is_empty());
}

#[tokio::test]
async fn uplink_breakers_open_after_max_fails_and_close_on_an_answer() {
    let s = store().await;
    assert_eq!(s.uplink_health_of("npmjs").await.unwrap(), None);
    let h = s
        .uplink_failed("npmjs", "timed out", 2, 1000, 10)
        .await
        .unwrap();
    assert_eq!((h.fails, h.down_until), (1, 0));
    let h = s
        .uplink_failed("npmjs", "refused", 2, 1000, 20)
        .await
        .unwrap();
    assert_eq!((h.fails, h.down_until), (2, 1020));
    assert_eq!(h.last_error.as_deref(), Some("refused"));
    // the probe after fail_timeout fails: down again at once
    let h = s
        .uplink_failed("npmjs", "refused", 2, 1000, 1100)
        .await
        .unwrap();
    assert_eq!((h.fails, h.down_until), (3, 2100));
    s.uplink_answered("npmjs", 2200).await.unwrap();
    let h = s.uplink_health_of("npmjs").await.unwrap().unwrap();
    assert_eq!((h.fails, h.down_until), (0, 0));
    assert_eq!(h.last_success_at, Some(2200));
    assert_eq!(h.last_failure_at, Some(1100));
    assert_eq!(s.uplink_health().await.unwrap().len(), 1);
    // max_fails 1 opens at the first failure
    let h = s.uplink_failed("other", "boom", 1, 50, 5).await.unwrap();
    assert_eq!(h.down_until, 55);
}

#[tokio::test]
async fn fetch_leases_and_allowed_names() {
    let s = store().await;
    assert!(s.take_fetch_lease("t:a@1", "i1", 100, 0).await.unwrap());
    assert!(!s.take_fetch_lease("t:a@1", "i2", 100, 50).await.unwrap());
    // an expired lease is taken over; a release by another holder does nothing
    assert!(s.take_fetch_lease("t:a@1", "i2", 200, 100).await.unwrap());
    s.release_fetch_lease("t:a@1", "i1").await.unwrap();
    assert!(!s.take_fetch_lease("t:a@1", "i3", 300, 150).await.unwrap());
    s.release_fetch_lease("t:a@1", "i2").await.unwrap();
    assert!(s.take_fetch_lease("t:a@1", "i3", 300, 150).await.unwrap());

    assert_eq!(s.allowed_name("lodash").await.unwrap(), None);
    assert!(
        s.set_allowed_name("lodash", true, "admin", 7)
            .await
            .unwrap()
    );
    assert!(!s.set_allowed_name("lodash", true, "root", 8).await.unwrap());
    let a = s.allowed_name("lodash").await.unwrap().unwrap();
    assert_eq!((a.allowed_by.as_str(), a.created_at), ("admin", 7));
    assert_eq!(s.allowed_names().await.unwrap().len(), 1);
    assert!(
        s.set_allowed_name("lodash", false, "admin", 9)
            .await
            .unwrap()
    );
    assert!(
        !s.set_allowed_name("lodash", false, "admin", 9)
            .await
            .unwrap()
    );
    assert_eq!(s.allowed_name("lodash").await.unwrap(), None);
}

fn signing_key(id: &str, at: i64) -> tessera_store::SigningKey {
    tessera_store::SigningKey {
        keyid: id.into(),
        public_key: format!("pub-{id}"),
        sealed_private: vec![1, 2, 3],
        created_at: at,
        expires_at: None,
    }
}

#[tokio::test]
async fn signing_keys_rotate_and_versions_get_signed_in_a_new_revision() {
    let s = store().await;
    assert!(s.signing_keys().await.unwrap().is_empty());
    assert!(
        s.add_signing_key(&signing_key("k1", 10), None)
            .await
            .unwrap()
    );
    // a second first key (another instance starting) is not added
    assert!(
        !s.add_signing_key(&signing_key("k2", 11), None)
            .await
            .unwrap()
    );
    assert_eq!(s.signing_keys().await.unwrap().len(), 1);
    // a rotation retires the current key
    assert!(
        s.add_signing_key(&signing_key("k3", 20), Some(20))
            .await
            .unwrap()
    );
    let keys = s.signing_keys().await.unwrap();
    assert_eq!(
        keys.iter()
            .map(|k| (k.keyid.as_str(), k.expires_at))
            .collect::<Vec<_>>(),
        vec![("k1", Some(20)), ("k3", None)]
    );
    assert_eq!(keys[0].sealed_private, vec![1, 2, 3]);

    let alice = s.create_user(new_user("alice"), 1).await.unwrap();
    let p = s
        .publish(publish("demo", "1.0.0", alice.id), 30)
        .await
        .unwrap();
    s.publish(publish("demo", "1.1.0", alice.id), 31)
        .await
        .unwrap();
    let unsigned = s.versions_to_sign(None, 10).await.unwrap();
    assert_eq!(unsigned.len(), 2);
    assert_eq!(unsigned[0].name, "demo");
    assert_eq!(unsigned[0].published_at, 30);
    assert_eq!(unsigned[0].signatures, None);
    assert!(!unsigned[0].tarball_sha512.is_empty());
    // the cursor moves on
    let after = s
        .versions_to_sign(Some((p.package_id, "1.0.0".into())), 10)
        .await
        .unwrap();
    assert_eq!(
        after.iter().map(|v| v.version.as_str()).collect::<Vec<_>>(),
        vec!["1.1.0"]
    );
    let rev = s.package_doc("demo").await.unwrap().unwrap().package.rev;
    let by_k3 = "[{\"keyid\":\"k3\",\"sig\":\"x\"}]".to_string();
    let by_k1 = "[{\"keyid\":\"k1\",\"sig\":\"y\"}]".to_string();
    assert_eq!(
        s.set_version_signatures(p.package_id, &[("1.0.0".into(), None, by_k3.clone())], 40,)
            .await
            .unwrap(),
        1
    );
    let doc = s.package_doc("demo").await.unwrap().unwrap();
    assert_eq!(doc.package.rev, rev + 1);
    let signed = doc.versions.iter().find(|v| v.version == "1.0.0").unwrap();
    assert_eq!(signed.signatures.as_deref(), Some(by_k3.as_str()));
    // written only over what was read: a second signer that read "unsigned" loses, and no new
    // revision is made
    assert_eq!(
        s.set_version_signatures(p.package_id, &[("1.0.0".into(), None, by_k1.clone())], 41,)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.package_doc("demo").await.unwrap().unwrap().package.rev,
        rev + 1
    );
    assert_eq!(s.versions_to_sign(None, 10).await.unwrap().len(), 1);

    // 1.1.0 (published at 31) signed with k1, which expired at 20: to be signed again; a
    // version signed with k1 before it expired is not
    s.set_version_signatures(p.package_id, &[("1.1.0".into(), None, by_k1.clone())], 42)
        .await
        .unwrap();
    let again = s.versions_to_sign(None, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].version, "1.1.0");
    assert_eq!(again[0].signatures.as_deref(), Some(by_k1.as_str()));
    assert_eq!(
        s.set_version_signatures(
            p.package_id,
            &[("1.1.0".into(), Some(by_k1.clone()), by_k3.clone())],
            43,
        )
        .await
        .unwrap(),
        1
    );
    assert!(s.versions_to_sign(None, 10).await.unwrap().is_empty());
    let early = s
        .publish(publish("early", "1.0.0", alice.id), 15)
        .await
        .unwrap();
    s.set_version_signatures(early.package_id, &[("1.0.0".into(), None, by_k1)], 44)
        .await
        .unwrap();
    assert!(s.versions_to_sign(None, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn provenance_is_kept_with_its_version_and_its_stage() {
    let s = store().await;
    let alice = s.create_user(new_user("alice"), 1).await.unwrap();
    let prov = tessera_store::Provenance {
        predicate_type: "https://slsa.dev/provenance/v1".into(),
        bundle: "{\"mediaType\":\"b\"}".into(),
        summary: "{\"predicateType\":\"https://slsa.dev/provenance/v1\"}".into(),
    };
    let mut first = publish("built", "1.0.0", alice.id);
    first.provenance = Some(prov.clone());
    let p = s.publish(first, 10).await.unwrap();
    s.publish(publish("built", "1.1.0", alice.id), 11)
        .await
        .unwrap();
    let doc = s.package_doc("built").await.unwrap().unwrap();
    let v = |n: &str| {
        doc.versions
            .iter()
            .find(|v| v.version == n)
            .unwrap()
            .clone()
    };
    assert_eq!(
        v("1.0.0").provenance.as_deref(),
        Some(prov.summary.as_str())
    );
    assert_eq!(v("1.1.0").provenance, None);
    assert_eq!(
        s.version_provenance("built", "1.0.0").await.unwrap(),
        Some(prov.clone())
    );
    assert_eq!(s.version_provenance("built", "1.1.0").await.unwrap(), None);
    assert_eq!(s.version_provenance("other", "1.0.0").await.unwrap(), None);

    // the package's rule, in a new revision
    assert!(!doc.package.provenance_required);
    s.set_provenance_required(p.package_id, true, 12)
        .await
        .unwrap();
    let after = s.package_doc("built").await.unwrap().unwrap();
    assert!(after.package.provenance_required);
    assert_eq!(after.package.rev, doc.package.rev + 1);

    // a staged version keeps its bundle until approved
    let mut st = staged("s1", "built", "1.2.0", alice.id, 13);
    st.provenance = Some(prov.clone());
    s.stage_version(&st).await.unwrap();
    assert_eq!(
        s.staged_version("s1").await.unwrap().unwrap().provenance,
        Some(prov.clone())
    );

    // an unpublished version takes its provenance with it
    s.remove_versions(p.package_id, after.package.rev, &["1.0.0".into()], &[], 14)
        .await
        .unwrap();
    assert_eq!(s.version_provenance("built", "1.0.0").await.unwrap(), None);
}

#[tokio::test]
async fn publish_attestations_are_kept_replaced_only_as_read_and_found_when_due() {
    let s = store().await;
    let alice = s.create_user(new_user("alice"), 1).await.unwrap();
    s.add_signing_key(&signing_key("k1", 1), None)
        .await
        .unwrap();
    let p = s
        .publish(publish("att", "1.0.0", alice.id), 10)
        .await
        .unwrap();
    s.publish(publish("att", "1.1.0", alice.id), 20)
        .await
        .unwrap();
    let ids = |list: Vec<tessera_store::UnattestedVersion>| {
        list.into_iter()
            .map(|u| (u.version, u.replaces))
            .collect::<Vec<_>>()
    };
    // only versions published before the cut, in order, after the cursor
    assert_eq!(
        ids(s.versions_to_attest(None, 15, 10).await.unwrap()),
        [("1.0.0".to_string(), None)]
    );
    assert_eq!(
        ids(s.versions_to_attest(None, 100, 10).await.unwrap()),
        [("1.0.0".to_string(), None), ("1.1.0".to_string(), None)]
    );
    assert_eq!(
        ids(s
            .versions_to_attest(Some((p.package_id, "1.0.0".into())), 100, 10)
            .await
            .unwrap()),
        [("1.1.0".to_string(), None)]
    );

    let rev = s.package_doc("att").await.unwrap().unwrap().package.rev;
    let a = |key: &str, at: i64| tessera_store::PublishAttestation {
        keyid: key.into(),
        bundle: format!("{{\"at\":{at}}}"),
        integrated_at: at,
    };
    assert!(
        s.put_publish_attestation(p.package_id, "1.0.0", &a("k1", 30), None, 31)
            .await
            .unwrap()
    );
    // a second first one (another instance) is not written
    assert!(
        !s.put_publish_attestation(p.package_id, "1.0.0", &a("k1", 32), None, 33)
            .await
            .unwrap()
    );
    // nor one for a version that does not exist
    assert!(
        !s.put_publish_attestation(p.package_id, "9.0.0", &a("k1", 32), None, 33)
            .await
            .unwrap()
    );
    let doc = s.package_doc("att").await.unwrap().unwrap();
    assert_eq!(doc.package.rev, rev + 1, "a new revision points at it");
    let attested: Vec<bool> = doc.versions.iter().map(|v| v.attested).collect();
    assert_eq!(attested, [true, false]);
    assert_eq!(
        s.version_publish_attestation("att", "1.0.0").await.unwrap(),
        Some(a("k1", 30))
    );
    assert_eq!(
        s.version_publish_attestation("att", "1.1.0").await.unwrap(),
        None
    );
    assert_eq!(
        ids(s.versions_to_attest(None, 100, 10).await.unwrap()),
        [("1.1.0".to_string(), None)]
    );

    // k1 expires at 25, before the log took the attestation: due again, replacing it
    s.add_signing_key(&signing_key("k2", 25), Some(25))
        .await
        .unwrap();
    assert_eq!(
        ids(s.versions_to_attest(None, 100, 10).await.unwrap()),
        [("1.0.0".to_string(), Some(30)), ("1.1.0".to_string(), None)]
    );
    // only as read
    assert!(
        !s.put_publish_attestation(p.package_id, "1.0.0", &a("k2", 40), Some(29), 41)
            .await
            .unwrap()
    );
    assert!(
        s.put_publish_attestation(p.package_id, "1.0.0", &a("k2", 40), Some(30), 41)
            .await
            .unwrap()
    );
    assert_eq!(
        s.version_publish_attestation("att", "1.0.0").await.unwrap(),
        Some(a("k2", 40))
    );
    assert_eq!(
        ids(s.versions_to_attest(None, 100, 10).await.unwrap()),
        [("1.1.0".to_string(), None)]
    );

    // an unpublished version takes its attestation with it
    let rev = s.package_doc("att").await.unwrap().unwrap().package.rev;
    s.remove_versions(p.package_id, rev, &["1.0.0".into()], &[], 50)
        .await
        .unwrap();
    assert_eq!(
        s.version_publish_attestation("att", "1.0.0").await.unwrap(),
        None
    );
}

/// A write that ends without committing (here: removing a tag that is not there) must not leave
/// the database locked for the next writer, even when that writer runs on another thread at
/// once. SQLite reports a deferred transaction's upgrade to a writer as "database is locked"
/// straight away, without waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_that_ends_without_committing_never_locks_out_the_next() {
    let s = shared_store().await;
    let alice = s.create_user(new_user("alice"), 1).await.unwrap();
    let pkg = s
        .publish(publish("demo", "1.0.0", alice.id), 2)
        .await
        .unwrap();
    let store = s.store.clone();
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..200 {
                    if (t + i) % 2 == 0 {
                        assert!(
                            !store
                                .remove_dist_tag(pkg.package_id, "absent", 3)
                                .await
                                .unwrap()
                        );
                    } else {
                        store
                            .set_dist_tag(pkg.package_id, "beta", "1.0.0", 3)
                            .await
                            .unwrap_or_else(|e| panic!("task {t}, write {i}: {e}"));
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// The embedded backend reads whole package documents from a database file on the calling
/// thread, outside sqlx; that read must return exactly what the pooled read returns, for every
/// field a package document carries.
#[tokio::test]
async fn direct_package_reads_match_the_pooled_read() {
    if on_postgres() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("db")).await.unwrap();
    let same = |name: &'static str| {
        let s = &s;
        async move {
            let direct = s.package_doc(name).await.unwrap();
            let pooled = s.package_doc_pooled(name).await.unwrap();
            assert_eq!(format!("{direct:?}"), format!("{pooled:?}"), "{name}");
            direct
        }
    };
    assert!(same("missing").await.is_none());

    let alice = s.create_user(new_user("alice"), 1).await.unwrap();
    let bob = s.create_user(new_user("bob"), 1).await.unwrap();
    let carol = s.create_user(new_user("carol"), 1).await.unwrap();
    s.add_signing_key(&signing_key("k1", 1), None)
        .await
        .unwrap();
    let mut first = publish("rich", "1.0.0", alice.id);
    first.provenance = Some(tessera_store::Provenance {
        predicate_type: "https://slsa.dev/provenance/v1".into(),
        bundle: "{}".into(),
        summary: r#"{"repository":"https://example.com/r"}"#.into(),
    });
    let p = s.publish(first, 10).await.unwrap();
    assert_eq!(same("rich").await.unwrap().versions.len(), 1);
    s.change_maintainers(p.package_id, &[bob.id], &[], 11)
        .await
        .unwrap();
    let mut second = publish("rich", "1.1.0-beta.1", bob.id);
    second.version.readme = None;
    second.version.manifest = r#"{"name":"rich","version":"1.1.0-beta.1","é":"ü"}"#.into();
    s.publish(second, 12).await.unwrap();
    s.set_dist_tag(p.package_id, "next", "1.1.0-beta.1", 13)
        .await
        .unwrap();
    s.set_deprecations(
        p.package_id,
        &[("1.0.0".into(), Some("use 1.1".into()))],
        14,
    )
    .await
    .unwrap();
    s.set_version_signatures(
        p.package_id,
        &[("1.0.0".into(), None, r#"[{"keyid":"k1","sig":"x"}]"#.into())],
        15,
    )
    .await
    .unwrap();
    let attestation = tessera_store::PublishAttestation {
        keyid: "k1".into(),
        bundle: "{}".into(),
        integrated_at: 16,
    };
    assert!(
        s.put_publish_attestation(p.package_id, "1.0.0", &attestation, None, 16)
            .await
            .unwrap()
    );
    for u in [bob.id, carol.id] {
        s.set_star(p.package_id, u, true, 17).await.unwrap();
    }
    s.set_access(p.package_id, Access::Restricted, 18)
        .await
        .unwrap();
    s.set_mfa_policy(p.package_id, PackageTfaPolicy::Publish, 19)
        .await
        .unwrap();
    s.set_staged_publishes(p.package_id, true, 20)
        .await
        .unwrap();
    s.set_provenance_required(p.package_id, true, 21)
        .await
        .unwrap();

    // every write above, committed through the pool, is seen by the next direct read
    let doc = same("rich").await.unwrap();
    assert_eq!(doc.package.access, Access::Restricted);
    assert_eq!(doc.package.policy, PackageTfaPolicy::Publish);
    assert!(doc.package.staged_publishes && doc.package.provenance_required);
    assert_eq!(doc.versions.len(), 2);
    let v1 = &doc.versions[0];
    assert_eq!(v1.deprecated.as_deref(), Some("use 1.1"));
    assert!(v1.signatures.is_some() && v1.provenance.is_some() && v1.attested);
    assert_eq!(v1.publisher.as_ref().map(|m| m.id), Some(alice.id));
    assert!(doc.versions[1].readme.is_none());
    assert_eq!(doc.dist_tags.len(), 2);
    assert_eq!(doc.maintainers.len(), 2);
    assert_eq!(doc.stars, ["bob", "carol"]);
}

/// Closing the store checkpoints the WAL into the database file even after direct reads: their
/// read-only connections close first, so the last one to close can write.
#[tokio::test]
async fn closing_after_direct_reads_leaves_everything_in_the_database_file() {
    if on_postgres() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let s = SqliteStore::open(&path).await.unwrap();
    let alice = s.create_user(new_user("alice"), 1).await.unwrap();
    s.publish(publish("walled", "1.0.0", alice.id), 2)
        .await
        .unwrap();
    assert!(s.package_doc("walled").await.unwrap().is_some());
    s.close().await;
    let wal = dir.path().join("db-wal");
    let left = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(left, 0, "the WAL was not checkpointed at close");
}
