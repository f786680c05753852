//! `tessera admin …`: account and registry administration from the shell, working directly on
//! the data directory (no running server needed).

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use clap::Subcommand;

use tessera_server::Config;
use tessera_server::clock::iso8601;
use tessera_server::config::Span;
use tessera_server::services::accounts::{self, Channel, SignUp, SignUpError};
use tessera_server::services::security_log;
use tessera_server::services::tokens;
use tessera_store::TokenKind;

/// Admin subcommands.
#[derive(Subcommand)]
pub enum AdminCommand {
    /// Manage accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Print an account's security log (logins, 2FA changes, failures), newest first.
    SecurityLog {
        name: String,
        /// Most entries to print.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Admin-assisted recovery: turn off a user's 2FA, revoke all their tokens and end their
    /// website sessions, after
    /// checking their identity out of band. The user logs in with the password and enables 2FA
    /// again.
    #[command(name = "reset-2fa")]
    Reset2fa { name: String },
    /// List a user's tokens (kind, reach, expiry), or revoke them all; with `--expiring`, the
    /// tokens (of everyone, or of the user) that lapse within a span, login sessions and
    /// trusted-publishing tokens left out.
    Tokens {
        /// The user (optional with `--expiring`).
        name: Option<String>,
        /// Revoke every token of the user.
        #[arg(long)]
        revoke_all: bool,
        /// List the tokens that expire within this span (`7d`, `12h`).
        #[arg(long, value_name = "SPAN")]
        expiring: Option<String>,
    },
    /// Show or change the registry-wide 2FA policy (stored in the database: every instance
    /// follows it, and it overrides `require_2fa` in the configuration).
    Policy {
        /// `none`, `publishers` or `everyone`.
        #[arg(long, value_name = "WHO")]
        require_2fa: Option<String>,
        /// Warn only, until this date (`2027-01-31`); `none` removes the grace period.
        #[arg(long, value_name = "DATE")]
        grace_until: Option<String>,
        /// Of whom a security key or passkey is required as the second factor: `none`,
        /// `publishers` or `everyone`.
        #[arg(long, value_name = "WHO")]
        require_webauthn_for: Option<String>,
        /// Whether new enrolments may use an authenticator app: `allowed` or `disabled`.
        #[arg(long, value_name = "ALLOWED")]
        totp_enrolment: Option<String>,
        /// Forget the database's values and follow the configuration again.
        #[arg(long)]
        reset: bool,
    },
    /// Fill the registry with synthetic packages (for benchmarks): `<prefix><n>`, each with
    /// `--versions` versions and a real tarball, published by the user `seed`.
    Seed {
        /// How many packages.
        #[arg(long, default_value_t = 10)]
        packages: usize,
        /// Versions per package.
        #[arg(long, default_value_t = 1)]
        versions: usize,
        /// Package name prefix.
        #[arg(long, default_value = "seed-")]
        prefix: String,
    },
    /// Apply pending database schema migrations (for `migrate = "manual"`; with the default
    /// `auto`, servers apply them at start).
    Migrate,
    /// Export the whole registry (database and tarballs) into a new folder, to import elsewhere.
    /// Stop writes while it runs: tables are read in one snapshot, tarballs after them.
    Export {
        /// The folder to create.
        #[arg(long, value_name = "DIR")]
        out: std::path::PathBuf,
    },
    /// Import an export into this (empty) registry, then verify every table's row count and
    /// every tarball's SHA-512 and integrity.
    Import {
        /// The folder `tessera admin export` made.
        dir: std::path::PathBuf,
    },
    /// Print a fresh sealing key (for `TESSERA_SECRET_KEY`, shared by every instance).
    NewKey,
    /// Show each uplink (its URL, its circuit breaker, what its cache holds) and the names
    /// allowed to be published here although an uplink has them.
    Uplinks,
    /// The uplinks' cache.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
    /// Allow an unscoped name that an uplink has to be published here (it will then shadow
    /// the upstream package for everyone installing through this registry); `--remove` takes
    /// the permission back (a package already published keeps its name).
    AllowName {
        /// The package name.
        name: String,
        /// Take the permission back.
        #[arg(long)]
        remove: bool,
    },
    /// Rotate the key sealing TOTP secrets: a new current key, and every secret re-sealed
    /// under it (see docs/operations.md).
    RotateKey {
        /// Afterwards, drop the older keys (once no secret uses them).
        #[arg(long)]
        retire_old: bool,
        /// Only print the ring with a new key appended (for `TESSERA_SECRET_KEY` deployments).
        #[arg(long)]
        print_next: bool,
    },
    /// Make a new registry signing key current; the old one gets an `expires` (five minutes
    /// from now, for publishes already under way) and stays in `/-/npm/v1/keys`, so versions
    /// signed with it keep verifying.
    RotateSigningKey {
        /// The old key is compromised since this time (ISO 8601, e.g. 2026-12-01T00:00:00Z):
        /// it expires then, and the versions it signed since are signed again with the new key.
        #[arg(long, value_name = "TIME")]
        compromised_since: Option<String>,
    },
    /// Sign every version that has no registry signature, or one from a key that had expired
    /// when it was published (the server also does this when it starts).
    SignAll,
    /// Invite a user name and email to sign up (for `signup = "invitation"`): prints a one-time
    /// secret link to the sign-up page, to send to the invitee. A new invitation for the same
    /// name replaces the earlier link.
    Invite {
        /// The user name the invitee will have.
        name: String,
        /// The invitee's email address (they can change it on the sign-up page).
        email: String,
        /// Days the invitation stays valid (default: `invitation_expiry`).
        #[arg(long)]
        days: Option<u32>,
    },
}

/// `tessera admin cache …`.
#[derive(Subcommand)]
pub enum CacheCommand {
    /// Remove cached packages (packument and tarballs) no read has revalidated for a span, and
    /// their tarballs when nothing else uses them.
    Prune {
        /// The span (`30d`, `12h`).
        #[arg(long, value_name = "SPAN")]
        older_than: String,
    },
}

/// Prints the uplinks, their breakers and cache sizes, and the allowed names.
async fn uplinks(state: &tessera_server::state::AppState) -> anyhow::Result<()> {
    let health = state.store.uplink_health().await?;
    let sizes = state.store.cache_sizes().await?;
    let now = state.clock.now_ms();
    if state.config.uplinks.is_empty() {
        println!("no uplinks are configured: every name is local");
    }
    for u in &state.config.uplinks {
        let h = health.iter().find(|h| h.uplink == u.name);
        let s = sizes.iter().find(|s| s.uplink == u.name);
        let status = match h {
            None => "not asked yet".to_string(),
            Some(h) if h.down_until > now => format!(
                "DOWN until {} after {} failures (last: {})",
                iso8601(h.down_until),
                h.fails,
                h.last_error.as_deref().unwrap_or("?")
            ),
            Some(h) if h.fails > 0 => format!(
                "up, {} recent failure(s) (last: {})",
                h.fails,
                h.last_error.as_deref().unwrap_or("?")
            ),
            Some(h) => format!(
                "up (last answer {})",
                h.last_success_at.map(iso8601).unwrap_or_else(|| "-".into())
            ),
        };
        println!("{}\t{}\t{status}", u.name, u.url);
        println!(
            "\tcache: {} packuments, {} tarballs, {} bytes",
            s.map_or(0, |s| s.packuments),
            s.map_or(0, |s| s.tarballs),
            s.map_or(0, |s| s.tarball_bytes)
        );
    }
    for r in &state.config.packages {
        let to = if r.proxy.is_empty() {
            "local only".to_string()
        } else {
            format!("proxy {} ({})", r.proxy.join(", "), r.mode.as_str())
        };
        println!("rule\t{}\t{to}", r.pattern);
    }
    for a in state.store.allowed_names().await? {
        println!(
            "allowed\t{}\tby {} on {}",
            a.name,
            a.allowed_by,
            iso8601(a.created_at)
        );
    }
    Ok(())
}

/// `tessera admin user …`.
#[derive(Subcommand)]
pub enum UserCommand {
    /// Create an account (works whatever the sign-up setting).
    Add {
        name: String,
        #[arg(long)]
        email: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Make the account a registry administrator.
        #[arg(long)]
        admin: bool,
    },
    /// List accounts.
    List,
    /// Lock an account: it can no longer log in or use its tokens.
    Lock { name: String },
    /// Unlock an account.
    Unlock { name: String },
    /// List an account's security keys and passkeys, or remove one (removing the last second
    /// factor turns 2FA off, with the recovery codes).
    Keys {
        name: String,
        /// Remove the key with this id (the first column of the list).
        #[arg(long)]
        remove: Option<i64>,
    },
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    Ok(dialoguer::Password::new()
        .with_prompt("Password")
        .with_confirmation("Again", "The passwords do not match")
        .interact()?)
}

/// Runs an admin command.
pub async fn run(config: Config, cmd: AdminCommand) -> anyhow::Result<()> {
    // Commands that work below the application (no sealing key needed).
    match &cmd {
        AdminCommand::NewKey => {
            crate::keys::new_key();
            return Ok(());
        }
        AdminCommand::Migrate => return migrate(&config).await,
        AdminCommand::Export { out } => {
            let (store, blobs) = tessera_server::open_stores(&config, None).await?;
            return crate::transfer::export(&store, &blobs, out).await;
        }
        AdminCommand::Import { dir } => {
            let (store, blobs) = tessera_server::open_stores(&config, None).await?;
            return crate::transfer::import(&store, &blobs, dir).await;
        }
        AdminCommand::RotateKey {
            retire_old,
            print_next,
        } => {
            let (store, _) = tessera_server::open_stores(&config, None).await?;
            return crate::keys::rotate(&config, &store, *retire_old, *print_next).await;
        }
        _ => {}
    }
    let invitation_expiry = config.invitation_expiry;
    let invitation_mode = config.signup == tessera_server::config::Signup::Invitation;
    let has_public_url = config.public_url.is_some();
    let site_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen));
    let state = tessera_server::open_state(config).await?;
    let store = state.store.clone();
    let now = state.clock.now_ms();
    match cmd {
        AdminCommand::User {
            command:
                UserCommand::Add {
                    name,
                    email,
                    password_stdin,
                    admin,
                },
        } => {
            let password = read_password(password_stdin)?;
            let input = SignUp {
                name: name.clone(),
                email,
                password,
                admin,
                invitation: None,
            };
            let user = accounts::sign_up(&state, input, Channel::Admin)
                .await
                .map_err(|e| refused(e, &name))?;
            println!(
                "created user {}{}",
                user.name,
                if admin { " (administrator)" } else { "" }
            );
        }
        AdminCommand::User {
            command: UserCommand::List,
        } => {
            for u in store.list_users().await? {
                let mut flags = Vec::new();
                if u.is_admin {
                    flags.push("admin");
                }
                if u.locked {
                    flags.push("locked");
                }
                println!(
                    "{}\t{}\t{}\t{}",
                    u.name,
                    u.email,
                    iso8601(u.created_at),
                    flags.join(",")
                );
            }
        }
        AdminCommand::User {
            command: UserCommand::Lock { name },
        } => {
            let u = store
                .user_by_name(&name)
                .await?
                .with_context(|| format!("no user {name}"))?;
            store.set_locked(u.id, true, now).await?;
            println!("locked {name}");
        }
        AdminCommand::User {
            command: UserCommand::Unlock { name },
        } => {
            let u = store
                .user_by_name(&name)
                .await?
                .with_context(|| format!("no user {name}"))?;
            store.set_locked(u.id, false, now).await?;
            println!("unlocked {name}");
        }
        AdminCommand::User {
            command: UserCommand::Keys { name, remove },
        } => {
            let u = store
                .user_by_name(&name)
                .await?
                .with_context(|| format!("no user {name}"))?;
            if let Some(id) = remove {
                let keys = store.security_keys(u.id).await?;
                let key_name = keys.iter().find(|k| k.id == id).map(|k| k.name.clone());
                let what = match store.remove_security_key(u.id, id).await? {
                    tessera_store::KeyRemoval::NotFound => bail!("{name} has no key {id}"),
                    tessera_store::KeyRemoval::Removed => "removed",
                    tessera_store::KeyRemoval::RemovedLastFactor => {
                        "removed; it was the last second factor, so 2FA is now off"
                    }
                };
                security_log::record_from(
                    &state,
                    u.id,
                    "admin",
                    "tessera admin",
                    security_log::kind::KEY_REMOVED,
                    format!("{} (by an administrator)", key_name.unwrap_or_default()),
                )
                .await;
                println!("key {id} of {name} {what}");
                return Ok(());
            }
            let keys = store.security_keys(u.id).await?;
            if keys.is_empty() {
                println!("{name} has no security key");
            }
            for k in keys {
                let last = k.last_used_at.map_or_else(|| "never used".into(), iso8601);
                let synced = if k.backup_state {
                    ", synced passkey"
                } else {
                    ""
                };
                println!(
                    "{}\t{}\tadded {}\tlast used {last}\tcounter {}{synced}",
                    k.id,
                    k.name,
                    iso8601(k.created_at),
                    k.counter
                );
            }
        }
        AdminCommand::SecurityLog { name, limit } => {
            let u = store
                .user_by_name(&name)
                .await?
                .with_context(|| format!("no user {name}"))?;
            for e in store.events(u.id, limit.clamp(1, 100_000)).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    iso8601(e.at),
                    e.kind,
                    e.ip,
                    e.detail,
                    e.user_agent
                );
            }
        }
        AdminCommand::Reset2fa { name } => {
            let u = store
                .user_by_name(&name)
                .await?
                .with_context(|| format!("no user {name}"))?;
            let had = store.disable_two_factor(u.id).await?;
            store.touch_user(u.id, now).await?;
            let tokens = store.delete_user_tokens(u.id).await?;
            let sessions = store.delete_user_sessions(u.id, None).await?;
            security_log::record_from(
                &state,
                u.id,
                "local",
                "tessera admin",
                security_log::kind::ADMIN_2FA_RESET,
                format!("{tokens} tokens revoked, {sessions} website sessions ended"),
            )
            .await;
            println!(
                "{name}: two-factor authentication {}; {tokens} tokens revoked, {sessions} website sessions ended. They can log in with their password and run `npm profile enable-2fa`.",
                if had { "turned off" } else { "was not on" }
            );
        }
        AdminCommand::Uplinks => uplinks(&state).await?,
        AdminCommand::Cache {
            command: CacheCommand::Prune { older_than },
        } => {
            anyhow::ensure!(
                !older_than.chars().all(|c| c.is_ascii_digit()),
                "--older-than takes a span with its unit: 30d, 12h"
            );
            let span =
                Span::parse(&older_than).map_err(|e| anyhow::anyhow!("--older-than: {e}"))?;
            let (packuments, rows, deleted) =
                tessera_server::uplinks::prune_cache(&state, now - span.as_ms())
                    .await
                    .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            println!(
                "pruned {packuments} cached packages not read for {span}: {rows} tarball rows, {deleted} tarballs deleted"
            );
        }
        AdminCommand::AllowName { name, remove } => {
            match name.strip_prefix('@') {
                // a scope: its first package here may be published
                Some(scope) => {
                    tessera_server::npm::names::validate_package_name(&format!("@{scope}/x"))
                        .map_err(|e| anyhow::anyhow!("{name}: {e} (give a scope as @scope)"))?
                }
                None => tessera_server::npm::names::validate_package_name(&name)
                    .map_err(|e| anyhow::anyhow!("{name}: {e}"))?,
            }
            let changed = store.set_allowed_name(&name, !remove, "admin", now).await?;
            match (remove, changed) {
                (false, true) => {
                    println!("{name} may now be published here, shadowing the upstream package")
                }
                (false, false) => println!("{name} was already allowed"),
                (true, true) => {
                    println!("{name} is no longer allowed (a package already published keeps it)")
                }
                (true, false) => println!("{name} was not allowed"),
            }
        }
        AdminCommand::Tokens {
            name,
            revoke_all,
            expiring,
        } => {
            let user = match &name {
                Some(n) => Some(
                    store
                        .user_by_name(n)
                        .await?
                        .with_context(|| format!("no user {n}"))?,
                ),
                None => None,
            };
            if let Some(span) = expiring {
                anyhow::ensure!(!revoke_all, "--expiring lists; it does not revoke");
                anyhow::ensure!(
                    !span.chars().all(|c| c.is_ascii_digit()),
                    "--expiring takes a span with its unit: 7d, 12h"
                );
                let span = Span::parse(&span).map_err(|e| anyhow::anyhow!("--expiring: {e}"))?;
                // login sessions and trusted-publishing tokens are short by design: left out
                let lapsing: Vec<_> = store
                    .tokens_expiring(user.as_ref().map(|u| u.id), now, now + span.as_ms())
                    .await?
                    .into_iter()
                    .filter(|(t, _)| {
                        !matches!(
                            t.kind,
                            TokenKind::Login | TokenKind::Oidc | TokenKind::OidcStage
                        )
                    })
                    .collect();
                for (t, owner) in &lapsing {
                    println!(
                        "{}\t{owner}\t{}\t{}\t{}",
                        iso8601(t.expires_at.unwrap_or_default()),
                        &t.token_hash[..12],
                        t.display_prefix,
                        tessera_server::services::tokens::summary(t)
                    );
                }
                eprintln!("{} tokens expire within {span}", lapsing.len());
                return Ok(());
            }
            let (Some(u), Some(name)) = (user, name) else {
                anyhow::bail!("name a user, or list what lapses with --expiring 7d");
            };
            if revoke_all {
                let n = store.delete_user_tokens(u.id).await?;
                security_log::record_from(
                    &state,
                    u.id,
                    "local",
                    "tessera admin",
                    security_log::kind::TOKEN_REVOKED,
                    format!("all {n} tokens, by an administrator"),
                )
                .await;
                println!("revoked {n} tokens of {name}");
            } else {
                let (tokens, _) = tokens::list(&state, &u, true, 0, 100_000)
                    .await
                    .map_err(|e| anyhow::anyhow!(e.message))?;
                for t in tokens {
                    println!(
                        "{}\t{}\t{}\t{}",
                        &t.token_hash[..12],
                        t.display_prefix,
                        iso8601(t.created_at),
                        tessera_server::services::tokens::summary(&t)
                    );
                }
            }
        }
        AdminCommand::Policy {
            require_2fa,
            grace_until,
            require_webauthn_for,
            totp_enrolment,
            reset,
        } => {
            use tessera_server::authz::policy::{
                KEY_GRACE, KEY_REQUIRE, KEY_REQUIRE_WEBAUTHN, KEY_TOTP_ENROLMENT,
            };
            use tessera_server::config::{Requirement, TotpEnrolment, parse_date_ms};
            let keys = [
                KEY_REQUIRE,
                KEY_GRACE,
                KEY_REQUIRE_WEBAUTHN,
                KEY_TOTP_ENROLMENT,
            ];
            if reset {
                for key in keys {
                    store.set_setting(key, None, now).await?;
                }
            }
            if let Some(r) = require_webauthn_for {
                Requirement::parse(&r).with_context(|| {
                    format!(
                        "--require-webauthn-for must be none, publishers or everyone, not {r:?}"
                    )
                })?;
                store
                    .set_setting(KEY_REQUIRE_WEBAUTHN, Some(&r), now)
                    .await?;
            }
            if let Some(t) = totp_enrolment {
                TotpEnrolment::parse(&t).with_context(|| {
                    format!("--totp-enrolment must be allowed or disabled, not {t:?}")
                })?;
                store.set_setting(KEY_TOTP_ENROLMENT, Some(&t), now).await?;
            }
            if let Some(r) = require_2fa {
                Requirement::parse(&r).with_context(|| {
                    format!("--require-2fa must be none, publishers or everyone, not {r:?}")
                })?;
                store.set_setting(KEY_REQUIRE, Some(&r), now).await?;
            }
            if let Some(g) = grace_until {
                if g == "none" {
                    store.set_setting(KEY_GRACE, Some(""), now).await?;
                } else {
                    parse_date_ms(&g).with_context(|| {
                        format!("--grace-until must be a date like 2027-01-31, not {g:?}")
                    })?;
                    store.set_setting(KEY_GRACE, Some(&g), now).await?;
                }
            }
            let p = tessera_server::authz::policy::load(&state)
                .await
                .map_err(|e| anyhow::anyhow!(e.message))?;
            let mut source = Vec::with_capacity(keys.len());
            for key in [KEY_REQUIRE, KEY_REQUIRE_WEBAUTHN, KEY_TOTP_ENROLMENT] {
                source.push(if store.setting(key).await?.is_some() {
                    "set by tessera admin policy"
                } else {
                    "from the configuration"
                });
            }
            println!("require_2fa = {} ({})", p.require.as_str(), source[0]);
            println!(
                "tfa.require_webauthn_for = {} ({})",
                p.require_webauthn_for.as_str(),
                source[1]
            );
            println!(
                "tfa.totp_enrolment = {} ({})",
                p.totp_enrolment.as_str(),
                source[2]
            );
            match p.grace_until {
                Some(g) if p.in_grace(now) => println!(
                    "grace period until {}: accounts without 2FA are warned, not refused",
                    iso8601(g)
                ),
                Some(g) => println!("grace period ended {}", iso8601(g)),
                None => println!("no grace period"),
            }
        }
        AdminCommand::Seed {
            packages,
            versions,
            prefix,
        } => {
            crate::seed::run(&state, packages, versions, &prefix).await?;
        }
        AdminCommand::NewKey
        | AdminCommand::Migrate
        | AdminCommand::Export { .. }
        | AdminCommand::Import { .. }
        | AdminCommand::RotateKey { .. } => unreachable!("handled above"),
        AdminCommand::RotateSigningKey { compromised_since } => {
            let expires = match compromised_since.as_deref() {
                None => now + tessera_server::signing::ROTATION_GRACE_MS,
                Some(t) => match tessera_server::config::parse_date_ms(t) {
                    Some(at) if at <= now => at,
                    Some(_) => anyhow::bail!("--compromised-since {t} is in the future"),
                    None => anyhow::bail!(
                        "--compromised-since takes an ISO 8601 time, e.g. 2026-12-01T00:00:00Z"
                    ),
                },
            };
            let key = tessera_server::signing::generate(&state.keys, now)
                .map_err(|e| anyhow::anyhow!(e))?;
            state.store.add_signing_key(&key, Some(expires)).await?;
            println!(
                "new signing key {} is current; the old one expires {}",
                key.keyid,
                tessera_server::clock::iso8601(expires)
            );
            if compromised_since.is_some() {
                let r = tessera_server::signing::sign_all(&state, now)
                    .await
                    .map_err(|e| anyhow::anyhow!(e.message))?;
                println!("signed {} versions again with the new key", r.signed);
                print_refused(r.refused);
                attest_all(&state, now).await?;
            }
        }
        AdminCommand::SignAll => {
            let r = tessera_server::signing::sign_all(&state, now)
                .await
                .map_err(|e| anyhow::anyhow!(e.message))?;
            println!("signed {} versions", r.signed);
            print_refused(r.refused);
            attest_all(&state, now).await?;
        }
        AdminCommand::Invite { name, email, days } => {
            let lifetime = days.map_or(invitation_expiry, |d| Span::days(u64::from(d.max(1))));
            let invited = accounts::invite(&state, &name, &email, lifetime.as_ms(), &site_url)
                .await
                .map_err(|e| refused(e, &name))?;
            if !has_public_url {
                eprintln!(
                    "note: public_url is not set, so the link names the listen address; set \
                     public_url to the address users reach"
                );
            }
            if !invitation_mode {
                eprintln!(
                    "note: sign-up is not by invitation on this registry (signup = \"invitation\" \
                     in the configuration); the link works only once it is"
                );
            }
            println!(
                "invited {name} <{email}> until {}.\nSend them this link, once, by a private \
                 channel: it lets whoever opens it choose the password of {name}.\n\n  {}\n",
                iso8601(invited.expires_at),
                invited.link
            );
        }
    }
    Ok(())
}

/// Why an account for `name` could not be created or invited, for the shell.
fn refused(e: SignUpError, name: &str) -> anyhow::Error {
    match e {
        SignUpError::Invalid(m) => anyhow::anyhow!(m),
        SignUpError::NameTaken => anyhow::anyhow!("user {name} already exists"),
        SignUpError::Failed(e) => anyhow::anyhow!(e.message),
        SignUpError::Closed | SignUpError::NotInvited => anyhow::anyhow!("sign-up refused"),
    }
}

/// `tessera admin migrate`.
async fn migrate(config: &Config) -> anyhow::Result<()> {
    use tessera_store::{Migrate, PgStore, SqliteStore};
    let (applied, target) = match &config.database {
        None => {
            std::fs::create_dir_all(&config.data)?;
            let s = SqliteStore::open_with(&config.database_path(), Migrate::Apply).await?;
            let a = s.migrations_applied().to_vec();
            s.close().await;
            (a, config.database_path().display().to_string())
        }
        Some(url) => {
            let s = PgStore::open(url, 2, Migrate::Apply).await?;
            let a = s.migrations_applied().to_vec();
            s.close().await;
            (a, tessera_server::config::redact_url(url))
        }
    };
    if applied.is_empty() {
        println!("{target}: the schema is up to date");
    } else {
        println!("{target}: applied migrations {applied:?}");
    }
    Ok(())
}

/// Says how many versions a signing pass left unsigned, if any.
/// Attests every publish not yet attested, when the registry logs publish attestations.
async fn attest_all(state: &tessera_server::state::AppState, now: i64) -> anyhow::Result<()> {
    if state.transparency_log.is_none() {
        return Ok(());
    }
    let r = tessera_server::publish_attestation::attest_all(state, now + 1)
        .await
        .map_err(|e| anyhow::anyhow!("publish attestations: {e}"))?;
    println!("attested {} publishes", r.attested);
    if r.refused > 0 {
        println!(
            "{} versions were left unattested: their tarball does not match their metadata \
             (see the log)",
            r.refused
        );
    }
    Ok(())
}

fn print_refused(refused: usize) {
    if refused > 0 {
        println!(
            "{refused} versions were left unsigned: their tarball does not match their metadata \
             (see the log)"
        );
    }
}
