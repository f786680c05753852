//! Concurrency: racing writes to one package through the real server (threads released
//! together, each with its own connection), and what must hold once they settle:
//! - no acknowledged publish is lost: every version answered 201 is listed, its tarball served
//!   and matching its shasum and integrity, in both documents and in the store, also after a
//!   crash; of racing publishes of one version exactly one wins, and its tarball is the one kept;
//! - a package always keeps a maintainer, and whoever is listed can write while nobody else can;
//! - a dist-tag ends on a value somebody wrote, and the packument, the abbreviated document and
//!   the dist-tags endpoint agree;
//! - racing unpublishes never leave a dist-tag on a removed version, nor remove what was not
//!   asked for.
//!
//! Every check reads both through the API ([`check_over_http`]) and below it ([`Stores`]).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::consistency::{Stores, check_over_http, digests};
use common::*;
use serde_json::{Value, json};

/// A tarball for `name@version`, made distinct by `salt`.
fn package_tgz(name: &str, version: &str, salt: &str) -> Vec<u8> {
    tgz(
        &json!({"name": name, "version": version, "description": "racing"}),
        &[(
            "package/index.js",
            format!("module.exports = {salt:?};\n").as_bytes(),
        )],
    )
}

/// `npm publish` of `tgz` as `name@version`, without failing the test on a dropped connection.
fn publish(http: &Http, base: &str, name: &str, version: &str, tgz: &[u8]) -> Result<Resp, String> {
    http.try_send(
        "PUT",
        &format!("/{name}"),
        &[("content-type", "application/json")],
        Some(serde_json::to_vec(&publish_body(base, name, version, tgz)).unwrap()),
    )
}

/// What `npm owner add|rm` does: read the document, change its maintainers list with `change`,
/// and PUT the whole new list at the revision read.
fn change_owners(http: &Http, name: &str, change: impl FnOnce(&mut Vec<String>)) -> Resp {
    let doc = http.get(&format!("/{name}?write=true"));
    if doc.status != 200 {
        return doc;
    }
    let doc = doc.json();
    let rev = doc["_rev"].as_str().unwrap().to_owned();
    let mut owners: Vec<String> = doc["maintainers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .collect();
    change(&mut owners);
    let list: Vec<Value> = owners
        .iter()
        .map(|n| json!({"name": n, "email": format!("{n}@example.com")}))
        .collect();
    http.put_json(
        &format!("/{name}/-rev/{rev}"),
        &json!({"_id": name, "_rev": rev, "maintainers": list}),
    )
}

/// Sets the maintainers of `name` to `owners` (as [`change_owners`]).
fn set_owners(http: &Http, name: &str, owners: &[&str]) -> Resp {
    change_owners(http, name, |l| {
        *l = owners.iter().map(|o| (*o).to_owned()).collect();
    })
}

/// The names of the maintainers the packument lists.
fn owners_of(http: &Http, name: &str) -> BTreeSet<String> {
    check_over_http(http, name)
        .expect("the package exists")
        .maintainers
}

/// Points `tag` of `name` at `version`.
fn tag(http: &Http, name: &str, tag: &str, version: &str) -> Resp {
    http.send(
        "PUT",
        &format!("/-/package/{name}/dist-tags/{tag}"),
        &[("content-type", "application/json")],
        Some(format!("{version:?}").into_bytes()),
    )
}

#[test]
fn a_hundred_concurrent_publishes_to_one_package_lose_nothing() {
    let reg = Registry::start();
    let token = reg.signup("alice", "alice-password");
    let name = "burst";
    let tarballs: Vec<(String, Vec<u8>)> = (0..100)
        .map(|i| {
            let v = format!("1.0.{i}");
            let t = package_tgz(name, &v, &format!("burst {i}"));
            (v, t)
        })
        .collect();
    let http = reg.http().with_token(&token);
    let base = reg.url();
    let started = std::time::Instant::now();
    // the package does not exist yet: the first commits create it, under the others' feet
    let answers = race(tarballs.len(), |i| {
        let (v, t) = &tarballs[i];
        publish(&http, &base, name, v, t)
    });
    eprintln!("100 concurrent publishes: {:?}", started.elapsed());
    let failed: Vec<String> = answers
        .iter()
        .zip(&tarballs)
        .filter_map(|(a, (v, _))| match a {
            Ok(r) if r.status == 201 => None,
            Ok(r) => Some(format!("{v}: {} {}", r.status, r.text)),
            Err(e) => Some(format!("{v}: {e}")),
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of 100 concurrent publishes failed:\n{}",
        failed.len(),
        failed.join("\n")
    );

    let expected: BTreeMap<String, String> = tarballs
        .iter()
        .map(|(v, t)| (v.clone(), digests(t).1))
        .collect();
    let check = |reg: &Registry| {
        let shown = check_over_http(&reg.http(), name).expect("the package");
        assert_eq!(
            shown.versions, expected,
            "every acknowledged version, intact"
        );
        let stores = Stores::open(reg);
        let doc = stores.check_package(name).unwrap();
        assert_eq!(doc.versions.len(), 100);
        assert_eq!(
            stores.check_tarballs(),
            0,
            "no failed publish, so no orphan"
        );
        // each download is byte for byte what was published
        for (v, t) in &tarballs {
            let r = reg.http().get(&format!("/{name}/-/{name}-{v}.tgz"));
            assert_eq!(&r.bytes, t, "{name}@{v}");
        }
    };
    check(&reg);
    // acknowledged means durable: a crash right after changes nothing
    let reg = reg.restart(&[]);
    check(&reg);
}

#[test]
fn racing_publishes_of_one_version_store_exactly_one() {
    let reg = Registry::start();
    let token = reg.signup("alice", "alice-password");
    let http = reg.http().with_token(&token);
    let base = reg.url();
    let name = "contested";
    let candidates: Vec<Vec<u8>> = (0..16)
        .map(|i| package_tgz(name, "2.0.0", &format!("candidate {i}")))
        .collect();
    let answers = race(candidates.len(), |i| {
        publish(&http, &base, name, "2.0.0", &candidates[i]).expect("an answer")
    });
    let won: Vec<usize> = (0..answers.len())
        .filter(|i| answers[*i].status == 201)
        .collect();
    assert_eq!(won.len(), 1, "exactly one publish of 2.0.0 wins");
    for (i, a) in answers.iter().enumerate() {
        if i != won[0] {
            assert_eq!(a.status, 409, "a loser is told why: {}", a.text);
        }
    }
    let winner = &candidates[won[0]];
    let shown = check_over_http(&reg.http(), name).unwrap();
    assert_eq!(
        shown.versions,
        BTreeMap::from([("2.0.0".to_owned(), digests(winner).1)])
    );
    let r = reg.http().get(&format!("/{name}/-/{name}-2.0.0.tgz"));
    assert_eq!(&r.bytes, winner, "the winner's tarball, not a loser's");
    let stores = Stores::open(&reg);
    stores.check_package(name).unwrap();
    // the losers' tarballs were written before their commits failed: orphans at most
    assert!(stores.check_tarballs() < candidates.len());
}

#[test]
fn racing_owner_removals_always_leave_one_writable_maintainer() {
    let reg = Registry::start();
    let alice = reg
        .http()
        .with_token(&reg.signup("alice", "alice-password"));
    let bob = reg.http().with_token(&reg.signup("bob", "bob-password"));
    let name = "owned";
    let base = reg.url();
    let t = package_tgz(name, "1.0.0", "owned");
    assert_eq!(
        publish(&alice, &base, name, "1.0.0", &t).unwrap().status,
        201
    );
    let users = [("alice", &alice), ("bob", &bob)];
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for round in 0..30 {
        // whoever is left adds the other back
        let left = owners_of(&alice, name);
        let keeper = users.iter().find(|(n, _)| left.contains(*n)).unwrap().1;
        let r = set_owners(keeper, name, &["alice", "bob"]);
        assert_eq!(r.status, 200, "{}", r.text);
        // alice drops bob while bob drops alice
        let answers = race(2, |i| {
            let (me, http) = users[i];
            set_owners(http, name, &[me]).status
        });
        let left = owners_of(&alice, name);
        assert_eq!(left.len(), 1, "round {round}: {answers:?} left {left:?}");
        let winners: Vec<&str> = (0..2)
            .filter(|i| answers[*i] == 200)
            .map(|i| users[i].0)
            .collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one removal can win: {answers:?}"
        );
        assert!(left.contains(winners[0]), "round {round}: {left:?}");
        let loser = answers.iter().find(|s| **s != 200).unwrap();
        assert!(
            [400, 403, 409].contains(loser),
            "round {round}: the loser gets a clear refusal, not {loser}"
        );
        *outcomes
            .entry(format!("{} won, loser {loser}", winners[0]))
            .or_default() += 1;
        // the one left can still write; the other cannot
        for (n, http) in users {
            let v = format!("1.0.{}", round + 1);
            let r = tag(http, name, "round", "1.0.0");
            if left.contains(n) {
                assert_eq!(r.status, 200, "{n} owns {name}: {}", r.text);
                let t = package_tgz(name, &v, n);
                assert_eq!(publish(http, &base, name, &v, &t).unwrap().status, 201);
            } else {
                assert_eq!(r.status, 403, "{n} no longer owns {name}: {}", r.text);
            }
        }
        Stores::open(&reg).check_package(name).unwrap();
    }
    eprintln!("outcomes: {outcomes:?}");
}

#[test]
fn racing_owner_additions_and_removals_keep_a_writable_maintainer() {
    let mut rng = Rng::seeded("owner mix");
    let reg = Registry::start();
    let names = ["alice", "bob", "carol", "dave"];
    let https: Vec<Http> = names
        .iter()
        .map(|n| {
            reg.http()
                .with_token(&reg.signup(n, &format!("{n}-password")))
        })
        .collect();
    let pkg = "mixed";
    let t = package_tgz(pkg, "1.0.0", "mixed");
    assert_eq!(
        publish(&https[0], &reg.url(), pkg, "1.0.0", &t)
            .unwrap()
            .status,
        201
    );
    for round in 0..30 {
        // start each round from alice and bob
        let left = owners_of(&https[0], pkg);
        let keeper = names.iter().position(|n| left.contains(*n)).unwrap();
        let r = set_owners(&https[keeper], pkg, &["alice", "bob"]);
        assert_eq!(r.status, 200, "{}", r.text);
        // six owner changes by alice or bob, each adding or removing someone
        let ops: Vec<(usize, bool, usize)> = (0..6)
            .map(|_| {
                (
                    rng.below(2) as usize,
                    rng.below(2) == 0,
                    rng.below(4) as usize,
                )
            })
            .collect();
        let answers = race(ops.len(), |i| {
            let (actor, add, whom) = ops[i];
            change_owners(&https[actor], pkg, |list| {
                list.retain(|n| n != names[whom]);
                if add {
                    list.push(names[whom].to_owned());
                }
            })
            .status
        });
        for s in &answers {
            assert!(
                [200, 400, 403, 409].contains(s),
                "round {round}: {ops:?} → {answers:?}"
            );
        }
        let left = owners_of(&https[0], pkg);
        // what succeeded holds, unless an opposite change also succeeded
        for (i, (_, add, whom)) in ops.iter().enumerate() {
            let opposed = ops
                .iter()
                .zip(&answers)
                .any(|((_, a, w), s)| *s == 200 && a != add && w == whom);
            if answers[i] == 200 && !opposed {
                assert_eq!(
                    left.contains(names[*whom]),
                    *add,
                    "round {round}: {ops:?} → {answers:?} left {left:?}"
                );
            }
        }
        // every listed maintainer can write, nobody else can
        for (n, http) in names.iter().zip(&https) {
            let r = tag(http, pkg, "mix", "1.0.0");
            let want = if left.contains(*n) { 200 } else { 403 };
            assert_eq!(r.status, want, "round {round}: {n} with {left:?}");
        }
        Stores::open(&reg).check_package(pkg).unwrap();
    }
}

#[test]
fn racing_dist_tag_moves_end_on_a_written_value_in_every_view() {
    let mut rng = Rng::seeded("dist-tags");
    let reg = Registry::start();
    let http = reg
        .http()
        .with_token(&reg.signup("alice", "alice-password"));
    let name = "tagged";
    let versions: Vec<String> = (0..8).map(|i| format!("1.0.{i}")).collect();
    for v in &versions {
        let t = package_tgz(name, v, v);
        assert_eq!(publish(&http, &reg.url(), name, v, &t).unwrap().status, 201);
    }
    for round in 0..20 {
        // sixteen moves of latest and beta (two of them removing beta), and readers warming the
        // packument cache meanwhile
        let moves: Vec<(&str, Option<String>)> = (0..16)
            .map(|i| {
                let tag = if i % 2 == 0 { "latest" } else { "beta" };
                if tag == "beta" && i >= 13 {
                    (tag, None)
                } else {
                    (tag, Some(versions[rng.below(8) as usize].clone()))
                }
            })
            .collect();
        let answers = race(moves.len() + 4, |i| {
            if i >= moves.len() {
                for _ in 0..10 {
                    assert_eq!(http.get(&format!("/{name}")).status, 200);
                }
                return 200;
            }
            match &moves[i] {
                (t, Some(v)) => tag(&http, name, t, v).status,
                (t, None) => {
                    http.delete(&format!("/-/package/{name}/dist-tags/{t}"))
                        .status
                }
            }
        });
        for (m, s) in moves.iter().zip(&answers) {
            match m {
                (_, Some(_)) => assert_eq!(
                    *s,
                    200,
                    "round {round}: {m:?}; server log:\n{}",
                    reg.log_text()
                ),
                (_, None) => assert!([200, 404].contains(s), "round {round}: {m:?} → {s}"),
            }
        }
        // check_over_http also checks that the two documents and the endpoint agree
        let shown = check_over_http(&reg.http(), name).unwrap();
        for t in ["latest", "beta"] {
            let written: BTreeSet<&str> = moves
                .iter()
                .filter(|(m, _)| *m == t)
                .filter_map(|(_, v)| v.as_deref())
                .collect();
            let removed = moves
                .iter()
                .zip(&answers)
                .any(|((m, v), s)| *m == t && v.is_none() && *s == 200);
            match shown.dist_tags.get(t) {
                Some(v) => assert!(
                    written.contains(v.as_str()),
                    "round {round}: {t} is {v}, which nobody wrote: {moves:?}"
                ),
                None => assert!(removed, "round {round}: {t} vanished: {moves:?}"),
            }
        }
        let doc = Stores::open(&reg).check_package(name).unwrap();
        let stored: BTreeMap<String, String> = doc.dist_tags.into_iter().collect();
        assert_eq!(stored, shown.dist_tags, "round {round}: the store agrees");
    }
    let before = check_over_http(&reg.http(), name).unwrap();
    let reg = reg.restart(&[]);
    assert_eq!(check_over_http(&reg.http(), name).unwrap(), before);
}

/// `x.y.z` as numbers, to order versions.
fn numeric(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap()).collect()
}

/// What `npm unpublish name@version` does: PUT the document without the version at the
/// revision read, then DELETE its tarball at the new revision. Returns the PUT's status.
fn unpublish(http: &Http, name: &str, version: &str) -> u16 {
    let doc = http.get(&format!("/{name}?write=true"));
    if doc.status != 200 {
        return doc.status;
    }
    let mut doc = doc.json();
    let rev = doc["_rev"].as_str().unwrap().to_owned();
    doc["versions"].as_object_mut().unwrap().remove(version);
    let r = http.put_json(&format!("/{name}/-rev/{rev}"), &doc);
    if r.status != 200 {
        return r.status;
    }
    let doc = http.get(&format!("/{name}?write=true"));
    if doc.status == 200 {
        let rev = doc.json()["_rev"].as_str().unwrap().to_owned();
        let d = http.delete(&format!("/{name}/-/{name}-{version}.tgz/-rev/{rev}"));
        assert!([200, 404].contains(&d.status), "{}", d.text);
    }
    r.status
}

#[test]
fn racing_unpublishes_and_publishes_keep_tags_and_versions_consistent() {
    let reg = Registry::start();
    let http = reg
        .http()
        .with_token(&reg.signup("alice", "alice-password"));
    let base = reg.url();
    let name = "shrinking";
    let mut present: BTreeSet<String> = BTreeSet::new();
    let mut next = 0;
    let mut publish_next = |present: &mut BTreeSet<String>| {
        let v = format!("1.0.{next}");
        next += 1;
        let t = package_tgz(name, &v, &v);
        assert_eq!(publish(&http, &base, name, &v, &t).unwrap().status, 201);
        present.insert(v);
    };
    for _ in 0..4 {
        publish_next(&mut present);
    }
    let mut conflicts = 0;
    for round in 0..20 {
        while present.len() < 4 {
            publish_next(&mut present);
        }
        // latest and the two highest other versions go at once (so that each removal moves
        // latest in its own view of the package), while one more version is published
        let latest = check_over_http(&http, name).unwrap().dist_tags["latest"].clone();
        let mut others: Vec<&String> = present.iter().filter(|v| **v != latest).collect();
        others.sort_by_key(|v| numeric(v));
        let mut doomed = vec![latest.clone()];
        doomed.extend(others.iter().rev().take(2).map(|v| (*v).clone()));
        let fresh = format!("2.0.{round}");
        let fresh_tgz = package_tgz(name, &fresh, &fresh);
        let answers = race(doomed.len() + 1, |i| match doomed.get(i) {
            Some(v) => unpublish(&http, name, v),
            None => {
                publish(&http, &base, name, &fresh, &fresh_tgz)
                    .unwrap()
                    .status
            }
        });
        assert_eq!(
            answers[doomed.len()],
            201,
            "round {round}: the publish of {fresh}: {answers:?}"
        );
        let shown = check_over_http(&reg.http(), name).expect("some versions are left");
        let mut expected = present.clone();
        for (v, s) in doomed.iter().zip(&answers) {
            assert!([200, 409].contains(s), "round {round}: unpublish {v}: {s}");
            if *s == 200 {
                expected.remove(v);
            } else {
                conflicts += 1;
            }
        }
        expected.insert(fresh.clone());
        let listed: BTreeSet<String> = shown.versions.keys().cloned().collect();
        assert_eq!(
            listed, expected,
            "round {round}: acknowledged unpublishes gone, everything else kept ({doomed:?} → {answers:?})"
        );
        let stores = Stores::open(&reg);
        stores.check_package(name).unwrap();
        stores.check_tarballs();
        present = listed;
    }
    eprintln!("unpublishes refused as conflicts: {conflicts}");
}
