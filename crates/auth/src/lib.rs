//! The auth store (etcd's `auth` package): users, roles and their key permissions, the
//! permission checks every request goes through once auth is enabled, password hashes,
//! and simple tokens.
//!
//! The crate is a pure state machine: no gRPC, no backend, no raft. Every mutation of
//! [`AuthStore`] is meant to run on the apply thread, in log order, with inputs the
//! proposing side has already validated and (for passwords) hashed, so every member
//! reaches the same state. bcrypt is deliberately slow, so hashing and password checks
//! ([`hash_password`], [`Credentials::check`]) belong to the proposing side, never to
//! apply.
//!
//! Simple tokens ([`SimpleTokens`]) are per member: each member assigns a token when it
//! applies the Authenticate entry that carries the token's random prefix, so every member
//! knows it, and forgets it after its TTL of disuse.

mod error;
mod jwt;
mod options;
mod password;
mod perms;
mod rows;
mod store;
mod token;

pub use error::AuthError;
pub use jsonwebtoken::Algorithm as JwtSignMethod;
pub use jwt::JwtTokens;
pub use options::{DEFAULT_JWT_TTL, JwtOptions, TokenSpec};
pub use password::{DEFAULT_BCRYPT_COST, MAX_BCRYPT_COST, MIN_BCRYPT_COST, hash_password};
pub use perms::PermType;
pub use rows::{
    AUTH_ROLES_TABLE, AUTH_TABLE, AUTH_USERS_TABLE, AuthChanges, AuthRows, RecoverError, Row,
};
pub use store::{AuthInfo, AuthStatus, AuthStore, Credentials, ROOT_ROLE, ROOT_USER};
pub use token::{
    DEFAULT_TOKEN_TTL, MAX_SIMPLE_TOKENS, SIMPLE_TOKEN_PREFIX_LEN, SimpleTokens, gen_token_prefix,
    token_index,
};
