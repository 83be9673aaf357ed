//! The auth store in the backend: etcd's `auth`, `authUsers` and `authRoles` buckets,
//! row for row, so a data dir keeps etcd's layout. The crate knows no backend: apply
//! writes the rows [`AuthStore::take_changes`] hands it in the same commit as the entry's
//! index, and a start or a snapshot install rebuilds the store from the rows it reads
//! ([`AuthStore::recover`]).

use std::collections::BTreeMap;

use bytes::Bytes;
use oxetcd_api::authpb::{Role, User};
use prost::Message;

use crate::store::{AuthStore, Dirty};

/// The enabled flag and the auth revision (etcd's `auth` bucket).
pub const AUTH_TABLE: &str = "auth";
/// One row per user, its name → `authpb.User` (etcd's `authUsers` bucket).
pub const AUTH_USERS_TABLE: &str = "authUsers";
/// One row per role, its name → `authpb.Role` (etcd's `authRoles` bucket).
pub const AUTH_ROLES_TABLE: &str = "authRoles";

/// etcd's keys in the `auth` bucket.
const ENABLED_KEY: &[u8] = b"authEnabled";
const REVISION_KEY: &[u8] = b"authRevision";
/// etcd's values of `authEnabled`.
const ENABLED: &[u8] = &[1];
const DISABLED: &[u8] = &[0];

/// A row to write (`Some`) or delete (`None`).
pub type Row = (Bytes, Option<Bytes>);

/// Rows to write, per table; an empty table has nothing to write.
#[derive(Debug, Default, PartialEq)]
pub struct AuthChanges {
    pub auth: Vec<Row>,
    pub users: Vec<Row>,
    pub roles: Vec<Row>,
}

impl AuthChanges {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.auth.is_empty() && self.users.is_empty() && self.roles.is_empty()
    }

    /// The changes as (table, rows), for tables with rows to write.
    pub fn tables(self) -> impl Iterator<Item = (&'static str, Vec<Row>)> {
        [(AUTH_TABLE, self.auth), (AUTH_USERS_TABLE, self.users), (AUTH_ROLES_TABLE, self.roles)]
            .into_iter()
            .filter(|(_, rows)| !rows.is_empty())
    }
}

/// The three tables' rows as read from the backend.
#[derive(Debug, Default)]
pub struct AuthRows {
    pub auth: Vec<(Bytes, Bytes)>,
    pub users: Vec<(Bytes, Bytes)>,
    pub roles: Vec<(Bytes, Bytes)>,
}

/// Why the stored auth state could not be read back: the backend is corrupt.
#[derive(Debug, thiserror::Error)]
#[error("auth tables: {0}")]
pub struct RecoverError(String);

fn name_of(key: &[u8], table: &str) -> Result<String, RecoverError> {
    String::from_utf8(key.to_vec())
        .map_err(|_| RecoverError(format!("{table}: a row's name is not UTF-8")))
}

impl AuthStore {
    /// The rows changed since the last call (by every mutation since, successful or
    /// not: failed ones mark nothing), and forgets them.
    pub fn take_changes(&mut self) -> AuthChanges {
        let dirty = std::mem::take(&mut self.dirty);
        let Dirty { meta, users, roles } = dirty;
        let mut changes = AuthChanges::default();
        if meta {
            let enabled = if self.enabled { ENABLED } else { DISABLED };
            changes.auth.push((Bytes::from_static(ENABLED_KEY), Some(Bytes::from_static(enabled))));
            changes.auth.push((
                Bytes::from_static(REVISION_KEY),
                Some(Bytes::copy_from_slice(&self.revision.to_be_bytes())),
            ));
        }
        changes.users = users
            .into_iter()
            .map(|name| {
                let row = self.users.get(&name).map(|u| Bytes::from(u.encode_to_vec()));
                (Bytes::from(name), row)
            })
            .collect();
        changes.roles = roles
            .into_iter()
            .map(|name| {
                let row = self.roles.get(&name).map(|r| Bytes::from(r.encode_to_vec()));
                (Bytes::from(name), row)
            })
            .collect();
        changes
    }

    /// The store as the backend's rows describe it; a backend without them (a new
    /// member's, or one written before auth existed) gives the empty store.
    pub fn recover(rows: AuthRows) -> Result<AuthStore, RecoverError> {
        let mut store = AuthStore::new();
        for (key, value) in rows.auth {
            match key.as_ref() {
                ENABLED_KEY => store.enabled = value.as_ref() == ENABLED,
                REVISION_KEY => {
                    let bytes: [u8; 8] = value.as_ref().try_into().map_err(|_| {
                        RecoverError(format!("{AUTH_TABLE}: authRevision is {} bytes", value.len()))
                    })?;
                    store.revision = u64::from_be_bytes(bytes);
                }
                // etcd keeps nothing else there; a newer version's rows are not ours to read.
                _ => {}
            }
        }
        let mut users = BTreeMap::new();
        for (key, value) in rows.users {
            let mut user = User::decode(value)
                .map_err(|e| RecoverError(format!("{AUTH_USERS_TABLE}: {e}")))?;
            // etcd keeps roles sorted too; a hand-edited row must not break the lookups.
            user.roles.sort();
            user.roles.dedup();
            users.insert(name_of(&key, AUTH_USERS_TABLE)?, user);
        }
        let mut roles = BTreeMap::new();
        for (key, value) in rows.roles {
            let mut role = Role::decode(value)
                .map_err(|e| RecoverError(format!("{AUTH_ROLES_TABLE}: {e}")))?;
            role.key_permission.sort_by(|a, b| (&a.key, &a.range_end).cmp(&(&b.key, &b.range_end)));
            roles.insert(name_of(&key, AUTH_ROLES_TABLE)?, role);
        }
        store.users = users;
        store.roles = roles;
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MIN_BCRYPT_COST, PermType, ROOT_ROLE, hash_password};
    use oxetcd_api::authpb::Permission;

    /// Applies `changes` to `tables` as a backend would.
    fn write(tables: &mut [BTreeMap<Bytes, Bytes>; 3], changes: AuthChanges) {
        for (table, rows) in changes.tables() {
            let i = [AUTH_TABLE, AUTH_USERS_TABLE, AUTH_ROLES_TABLE]
                .iter()
                .position(|t| *t == table)
                .unwrap();
            for (k, v) in rows {
                match v {
                    Some(v) => tables[i].insert(k, v),
                    None => tables[i].remove(&k),
                };
            }
        }
    }

    fn read(tables: &[BTreeMap<Bytes, Bytes>; 3]) -> AuthRows {
        let rows = |i: usize| tables[i].iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        AuthRows { auth: rows(0), users: rows(1), roles: rows(2) }
    }

    fn same(a: &AuthStore, b: &AuthStore) {
        assert_eq!(a.status(), b.status());
        assert_eq!(a.users, b.users);
        assert_eq!(a.roles, b.roles);
    }

    #[test]
    fn every_change_reaches_the_rows() {
        let mut tables: [BTreeMap<Bytes, Bytes>; 3] = Default::default();
        let mut s = AuthStore::new();
        let step = |s: &mut AuthStore, tables: &mut [BTreeMap<Bytes, Bytes>; 3]| {
            write(tables, s.take_changes());
            same(s, &AuthStore::recover(read(tables)).unwrap());
        };
        s.user_add("root", Some(hash_password("pw", MIN_BCRYPT_COST))).unwrap();
        step(&mut s, &mut tables);
        s.user_grant_role("root", ROOT_ROLE).unwrap();
        s.role_add("r").unwrap();
        s.role_add("q").unwrap();
        step(&mut s, &mut tables);
        s.user_add("alice", None).unwrap();
        s.user_grant_role("alice", "r").unwrap();
        s.user_grant_role("alice", "q").unwrap();
        let perm = Permission {
            perm_type: PermType::Write as i32,
            key: Bytes::from_static(b"a"),
            range_end: Bytes::from_static(b"b"),
        };
        s.role_grant_permission("r", perm).unwrap();
        s.auth_enable().unwrap();
        step(&mut s, &mut tables);
        // A role deleted leaves its users' rows too.
        s.role_delete("r").unwrap();
        s.user_change_password("alice", "x".into()).unwrap();
        step(&mut s, &mut tables);
        s.auth_disable();
        s.user_delete("alice").unwrap();
        step(&mut s, &mut tables);
        assert_eq!(tables[1].len(), 1, "only root is left");
        assert!(s.take_changes().is_empty());
    }

    #[test]
    fn enabled_and_revision_are_etcds_bytes() {
        let mut s = AuthStore::new();
        s.user_add("root", None).unwrap();
        s.user_grant_role("root", ROOT_ROLE).unwrap();
        s.take_changes();
        s.auth_enable().unwrap();
        let changes = s.take_changes();
        assert_eq!(
            changes.auth,
            [
                (Bytes::from_static(b"authEnabled"), Some(Bytes::from_static(&[1]))),
                (
                    Bytes::from_static(b"authRevision"),
                    Some(Bytes::copy_from_slice(&2u64.to_be_bytes()))
                ),
            ]
        );
    }

    #[test]
    fn corrupt_rows_are_refused() {
        let bad = AuthRows {
            auth: vec![(Bytes::from_static(REVISION_KEY), Bytes::from_static(b"xx"))],
            ..Default::default()
        };
        assert!(AuthStore::recover(bad).is_err());
        let bad = AuthRows {
            users: vec![(Bytes::from_static(b"u"), Bytes::from_static(&[0xff, 0xff]))],
            ..Default::default()
        };
        assert!(AuthStore::recover(bad).is_err());
    }
}
