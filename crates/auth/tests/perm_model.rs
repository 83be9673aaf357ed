//! The permission matrix: random roles with random key, range, prefix and from-key grants
//! of random types, random users with random role sets, and random requests, checked
//! against a naive model that looks at each granted interval on its own.

use bytes::Bytes;
use oxetcd_api::authpb::Permission;
use oxetcd_auth::{AuthError, AuthStore, PermType};
use proptest::prelude::*;

/// Keys from a two-letter alphabet, up to three long: grants overlap and touch often.
fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(vec![b'a', b'b']), 0..=3)
}

/// The smallest key greater than every key with this prefix (clientv3's prefix end);
/// "\0" when there is none.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[derive(Debug, Clone)]
enum Shape {
    Key,
    Range(Vec<u8>),
    Prefix,
    FromKey,
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        Just(Shape::Key),
        key().prop_map(Shape::Range),
        Just(Shape::Prefix),
        Just(Shape::FromKey)
    ]
}

fn range_end(key: &[u8], shape: &Shape) -> Vec<u8> {
    match shape {
        Shape::Key => Vec::new(),
        Shape::Range(end) => end.clone(),
        Shape::Prefix => prefix_end(key),
        Shape::FromKey => vec![0],
    }
}

fn perm_type() -> impl Strategy<Value = PermType> {
    prop::sample::select(vec![PermType::Read, PermType::Write, PermType::Readwrite])
}

/// The interval `[begin, end)` a (key, range end) stands for, `None` for no end, as etcd
/// reads it; `None` overall when it holds no key.
fn interval(key: &[u8], range_end: &[u8]) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    if key.is_empty() {
        return None;
    }
    let end = match range_end {
        [] => Some([key, &[0]].concat()),
        [0] => None,
        end => Some(end.to_vec()),
    };
    match &end {
        Some(e) if e.as_slice() <= key => None,
        _ => Some((key.to_vec(), end)),
    }
}

fn contains(iv: &(Vec<u8>, Option<Vec<u8>>), k: &[u8]) -> bool {
    iv.0.as_slice() <= k && iv.1.as_ref().is_none_or(|e| k < e.as_slice())
}

fn grants(perm: PermType, need: PermType) -> bool {
    perm == PermType::Readwrite || perm == need
}

/// Whether the granted intervals together cover the request. A gap in the covered area
/// can only start at the request's key or at a granted interval's end, so the request is
/// covered iff each of those points inside it lies in some granted interval. An empty or
/// inverted request needs its key covered (etcd's interval tree).
fn model(granted: &[(Vec<u8>, Option<Vec<u8>>)], key: &[u8], range_end: &[u8]) -> bool {
    if key.is_empty() {
        return false;
    }
    let req_end = match range_end {
        [] => Some([key, &[0]].concat()),
        [0] => None,
        end => Some(end.to_vec()),
    };
    let in_request = |p: &[u8]| p >= key && req_end.as_ref().is_none_or(|e| p < e.as_slice());
    let covered = |p: &[u8]| granted.iter().any(|iv| contains(iv, p));
    covered(key)
        && granted
            .iter()
            .filter_map(|iv| iv.1.as_deref())
            .filter(|end| in_request(end))
            .all(covered)
}

#[derive(Debug, Clone)]
struct Grant {
    key: Vec<u8>,
    shape: Shape,
    perm: PermType,
}

fn grant() -> impl Strategy<Value = Grant> {
    (key(), shape(), perm_type()).prop_map(|(key, shape, perm)| Grant { key, shape, perm })
}

const ROLES: usize = 4;
const USERS: usize = 3;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn permission_matrix(
        roles in prop::collection::vec(prop::collection::vec(grant(), 0..5), ROLES),
        users in prop::collection::vec(prop::collection::vec(0..ROLES, 0..3), USERS),
        requests in prop::collection::vec((key(), shape(), perm_type()), 1..24),
    ) {
        let mut store = AuthStore::new();
        for (r, grants) in roles.iter().enumerate() {
            store.role_add(&format!("role{r}")).unwrap();
            for g in grants {
                let perm = Permission {
                    perm_type: g.perm as i32,
                    key: Bytes::from(g.key.clone()),
                    range_end: Bytes::from(range_end(&g.key, &g.shape)),
                };
                // A permission naming no key is refused; the model grants nothing for it.
                if let Err(e) = store.role_grant_permission(&format!("role{r}"), perm) {
                    prop_assert_eq!(e, AuthError::InvalidAuthMgmt);
                }
            }
        }
        for (u, user_roles) in users.iter().enumerate() {
            store.user_add(&format!("user{u}"), None).unwrap();
            for r in user_roles {
                store.user_grant_role(&format!("user{u}"), &format!("role{r}")).unwrap();
            }
        }
        for (u, user_roles) in users.iter().enumerate() {
            // What the store holds after replacements: read it back, as the model's input.
            let held: Vec<Permission> = user_roles
                .iter()
                .flat_map(|r| store.role_get(&format!("role{r}")).unwrap().key_permission)
                .collect();
            for (key, shape, need) in &requests {
                let end = range_end(key, shape);
                let needs = match need {
                    PermType::Readwrite => vec![PermType::Read, PermType::Write],
                    need => vec![*need],
                };
                let want = needs.iter().all(|n| {
                    let granted: Vec<_> = held
                        .iter()
                        .filter(|p| grants(p.perm_type(), *n))
                        .filter_map(|p| interval(&p.key, &p.range_end))
                        .collect();
                    model(&granted, key, &end)
                });
                let got = store.is_range_permitted(&format!("user{u}"), key, &end, *need);
                prop_assert_eq!(got, want, "user{} {:?} {:?} {:?} holds {:?}", u, key, end, need, held);
            }
        }
    }
}
