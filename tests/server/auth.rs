//! Auth v3 on the wire (issue #12): the lifecycle and etcd's errors, a permission matrix
//! checked against a model, a revocation racing writers, a deleted user on every member
//! of a cluster, persistence across a restart, and simple-token TTLs.
//!
//! Written against etcd's wire behaviour only, through raw gRPC stubs: each call is one
//! request answered by one member, with the token the test chooses (or none), so every
//! code and message checked is the member's own, with no client retry or
//! re-authentication in between.
//!
//! Every scenario runs against oxetcd. With `--features compat` the same scenarios also
//! run against the reference etcd 3.4.23 (the `etcd34_reference::*` tests), which proves
//! that the expectations are etcd's. Where oxetcd does as etcd 3.5 does or closes one of
//! etcd 3.4's holes, [`Rules`] says so and the model follows it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use oxetcd_api::authpb::{Permission, permission};
use oxetcd_api::etcdserverpb::alarm_request::AlarmAction;
use oxetcd_api::etcdserverpb::auth_client::AuthClient;
use oxetcd_api::etcdserverpb::cluster_client::ClusterClient;
use oxetcd_api::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use oxetcd_api::etcdserverpb::kv_client::KvClient;
use oxetcd_api::etcdserverpb::lease_client::LeaseClient;
use oxetcd_api::etcdserverpb::maintenance_client::MaintenanceClient;
use oxetcd_api::etcdserverpb::request_op::Request as Op;
use oxetcd_api::etcdserverpb::watch_client::WatchClient;
use oxetcd_api::etcdserverpb::watch_request::RequestUnion;
use oxetcd_api::etcdserverpb::*;
use oxetcd_client::auth::{Permission as ClientPermission, PermissionType};
use oxetcd_client::{Client, ClientOptions};
use oxetcd_tests::member::TestCluster;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// Bound on one call (and on connecting).
const STEP: Duration = Duration::from_secs(20);
/// Bound on a whole scenario.
const SCENARIO: Duration = Duration::from_secs(300);

const ROOT_PASSWORD: &str = "root-secret";

// etcd's messages (etcdserver/api/v3rpc/rpctypes), as clients match them.
const PERMISSION_DENIED: &str = "etcdserver: permission denied";
const USER_EMPTY: &str = "etcdserver: user name is empty";
const INVALID_TOKEN: &str = "etcdserver: invalid auth token";
const OLD_REVISION: &str = "etcdserver: revision of auth store is old";
const AUTH_FAILED: &str = "etcdserver: authentication failed, invalid user ID or password";
const AUTH_NOT_ENABLED: &str = "etcdserver: authentication is not enabled";
const INVALID_AUTH_MGMT: &str = "etcdserver: invalid auth management";
const USER_NOT_FOUND: &str = "etcdserver: user name not found";
const ROLE_NOT_FOUND: &str = "etcdserver: role name not found";
/// What etcd puts in a watch's cancel reason when the creation is refused: the gRPC
/// error's text, not just its message.
const WATCH_PERMISSION_DENIED: &str =
    "rpc error: code = PermissionDenied desc = etcdserver: permission denied";

// ---------------------------------------------------------------- the servers

/// Where oxetcd deliberately checks more than etcd 3.4.23 does. The model and the
/// assertions follow these rules; the reference run turns them off.
#[derive(Clone, Copy, Debug)]
struct Rules {
    /// The ops (and compares) of nested transactions need permissions. etcd 3.4 checks
    /// only the top level of a Txn, so a nested put writes anywhere.
    nested_txn_ops: bool,
    /// LeaseTimeToLive with `keys` needs read permission on every attached key (etcd
    /// 3.4.26 and 3.5.8 on; 3.4.23 lists the keys to anyone).
    lease_ttl_keys: bool,
    /// The AuthStatus RPC (etcd 3.5; 3.4 answers `Unimplemented`).
    auth_status: bool,
    /// A permission must name keys: a key, and a range end after it (or `\0`). etcd 3.5
    /// refuses others as invalid auth management; etcd 3.4 stores them (they grant
    /// nothing).
    valid_permission_ranges: bool,
    /// A watch from a key on (`range_end` `\0`) needs read on every key from there. etcd
    /// 3.4 turns the range end into an empty one before the check and so checks the
    /// key alone.
    watch_from_key_range: bool,
    /// Refused maintenance calls (Hash, HashKV, Defragment, Snapshot) answer etcd's
    /// `PermissionDenied` status (etcd 3.5 on). etcd 3.4 returns the auth store's error
    /// as it is: `Unknown` "auth: permission denied".
    maintenance_refusal_mapped: bool,
}

const OXETCD_RULES: Rules = Rules {
    nested_txn_ops: true,
    lease_ttl_keys: true,
    auth_status: true,
    valid_permission_ranges: true,
    watch_from_key_range: true,
    maintenance_refusal_mapped: true,
};

/// The servers a scenario runs against: oxetcd members in this process, or (with the
/// `compat` feature) etcd 3.4.23 processes.
enum Servers {
    Oxetcd(TestCluster),
    #[cfg(feature = "compat")]
    Etcd(etcd34::EtcdCluster),
}

impl Servers {
    async fn oxetcd(members: usize, flags: &[&str]) -> Servers {
        Servers::Oxetcd(TestCluster::start_with(members, flags).await)
    }

    #[cfg(feature = "compat")]
    async fn etcd(members: usize, flags: &[&str]) -> Servers {
        Servers::Etcd(etcd34::EtcdCluster::start(members, flags).await)
    }

    fn endpoint(&self, i: usize) -> String {
        match self {
            Servers::Oxetcd(cluster) => cluster.endpoint(i),
            #[cfg(feature = "compat")]
            Servers::Etcd(cluster) => cluster.endpoint(i),
        }
    }

    fn rules(&self) -> Rules {
        match self {
            Servers::Oxetcd(_) => OXETCD_RULES,
            #[cfg(feature = "compat")]
            Servers::Etcd(_) => Rules {
                nested_txn_ops: false,
                lease_ttl_keys: false,
                auth_status: false,
                valid_permission_ranges: false,
                watch_from_key_range: false,
                maintenance_refusal_mapped: false,
            },
        }
    }

    /// Stops member `i` and starts it again on the same data dir, waiting until it
    /// answers.
    async fn restart(&mut self, i: usize) {
        match self {
            Servers::Oxetcd(cluster) => {
                cluster.stop_member(i).await;
                cluster.start_member(i).await;
            }
            #[cfg(feature = "compat")]
            Servers::Etcd(cluster) => cluster.restart(i).await,
        }
        wait_serving(&self.endpoint(i)).await;
    }

    async fn stop(self) {
        match self {
            Servers::Oxetcd(cluster) => cluster.stop_all().await,
            #[cfg(feature = "compat")]
            Servers::Etcd(cluster) => drop(cluster),
        }
    }
}

/// Waits until the member at `endpoint` knows a leader (Status needs no token in etcd
/// 3.4; a refusal for want of one is an answer too).
async fn wait_serving(endpoint: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let session = Session::open(endpoint);
    loop {
        match session.maintenance().status(session.req(StatusRequest {})).await {
            Ok(status) if status.get_ref().leader != 0 => return,
            Err(e) if matches!(e.code(), Code::InvalidArgument | Code::PermissionDenied) => {
                return;
            }
            _ => {}
        }
        assert!(Instant::now() < deadline, "{endpoint} did not serve within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Declares each scenario as a test against oxetcd and, with the `compat` feature, as a
/// test of the same name in `etcd34_reference` against the reference etcd.
macro_rules! scenarios {
    ($($(#[$doc:meta])* $name:ident($members:expr, $flags:expr) => $scenario:ident;)*) => {
        $(
            $(#[$doc])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let mut servers = Servers::oxetcd($members, $flags).await;
                tokio::time::timeout(SCENARIO, $scenario(&mut servers))
                    .await
                    .expect("the scenario finishes in time");
                servers.stop().await;
            }
        )*

        /// The same scenarios against the reference etcd 3.4.23.
        #[cfg(feature = "compat")]
        mod etcd34_reference {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let mut servers = Servers::etcd($members, $flags).await;
                    tokio::time::timeout(SCENARIO, $scenario(&mut servers))
                        .await
                        .expect("the scenario finishes in time");
                    servers.stop().await;
                }
            )*
        }
    };
}

scenarios! {
    /// Enabling, user and role management, authentication and tokens: etcd's code and
    /// message for each refusal, and nothing changed by a refused call.
    lifecycle_and_refusals(1, &[]) => lifecycle;
    /// Users × roles × permission shapes × every key RPC, each outcome checked against
    /// a model; the admin-only RPCs for users without the root role.
    permission_matrix_matches_the_model(1, &[]) => permission_matrix;
    /// Writers racing a revocation: nothing lands after the revocation's revision.
    no_write_lands_after_its_permission_is_revoked(1, &[]) => revocation_race;
    /// A deleted user is refused by every member as soon as the delete returns.
    a_deleted_user_is_refused_on_every_member(3, &[]) => deleted_user_everywhere;
    /// Users, roles, permissions and the enabled flag survive a restart; tokens do not.
    auth_survives_a_restart_but_tokens_do_not(1, &[]) => persistence;
    /// A simple token unused for longer than `--auth-token-ttl` is invalid; one in use
    /// stays valid.
    idle_simple_tokens_expire(1, &["--auth-token-ttl", "2"]) => token_ttl;
}

// ---------------------------------------------------------------- sessions

/// Raw stubs to one member, with a token or without: one request per call, no retries,
/// no re-authentication.
#[derive(Clone)]
struct Session {
    /// For unary calls: every call bounded by [`STEP`].
    unary: Channel,
    /// For streams (watch, snapshot), which live longer than a step.
    streams: Channel,
    token: Option<AsciiMetadataValue>,
}

impl Session {
    fn open(endpoint: &str) -> Session {
        let builder = Endpoint::from_shared(endpoint.to_string())
            .expect("a valid endpoint")
            .connect_timeout(STEP);
        Session {
            streams: builder.connect_lazy(),
            unary: builder.timeout(STEP).connect_lazy(),
            token: None,
        }
    }

    /// The same connection, sending `token` (any string: the tests send bogus ones).
    fn with_token(&self, token: &str) -> Session {
        let token = AsciiMetadataValue::try_from(token).expect("an ASCII token");
        Session { token: Some(token), ..self.clone() }
    }

    /// A session of `user`, who must authenticate.
    async fn login(endpoint: &str, user: &str, password: &str) -> Session {
        let anonymous = Session::open(endpoint);
        let token = anonymous
            .authenticate(user, password)
            .await
            .unwrap_or_else(|e| panic!("{user} authenticates on {endpoint}: {e:?}"));
        anonymous.with_token(&token)
    }

    async fn authenticate(&self, user: &str, password: &str) -> Result<String, Status> {
        let request = AuthenticateRequest { name: user.into(), password: password.into() };
        let response = self.auth().authenticate(self.req(request)).await?.into_inner();
        Ok(response.token)
    }

    /// `message` as a request carrying this session's token.
    fn req<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(token) = &self.token {
            request.metadata_mut().insert("token", token.clone());
        }
        request
    }

    fn kv(&self) -> KvClient<Channel> {
        KvClient::new(self.unary.clone())
    }

    fn auth(&self) -> AuthClient<Channel> {
        AuthClient::new(self.unary.clone())
    }

    fn lease(&self) -> LeaseClient<Channel> {
        LeaseClient::new(self.unary.clone())
    }

    fn cluster(&self) -> ClusterClient<Channel> {
        ClusterClient::new(self.unary.clone())
    }

    fn maintenance(&self) -> MaintenanceClient<Channel> {
        MaintenanceClient::new(self.unary.clone())
    }

    async fn get(&self, key: &[u8], range_end: &[u8]) -> Result<RangeResponse, Status> {
        let request = RangeRequest {
            key: key.to_vec().into(),
            range_end: range_end.to_vec().into(),
            ..Default::default()
        };
        Ok(self.kv().range(self.req(request)).await?.into_inner())
    }

    async fn put(&self, key: &[u8], value: &[u8]) -> Result<PutResponse, Status> {
        let request = PutRequest {
            key: key.to_vec().into(),
            value: value.to_vec().into(),
            ..Default::default()
        };
        Ok(self.kv().put(self.req(request)).await?.into_inner())
    }

    /// The store's revision, as a Range's header reports it.
    async fn revision(&self) -> i64 {
        let response = self.get(b"a", b"").await.expect("a range for the revision");
        response.header.expect("a header").revision
    }

    async fn user_add(&self, name: &str, password: &str) -> Result<(), Status> {
        let request = AuthUserAddRequest {
            name: name.into(),
            password: password.into(),
            options: Some(oxetcd_api::authpb::UserAddOptions { no_password: false }),
            hashed_password: String::new(),
        };
        self.auth().user_add(self.req(request)).await.map(drop)
    }

    async fn role_add(&self, name: &str) -> Result<(), Status> {
        self.auth().role_add(self.req(AuthRoleAddRequest { name: name.into() })).await.map(drop)
    }

    async fn grant_role(&self, user: &str, role: &str) -> Result<(), Status> {
        let request = AuthUserGrantRoleRequest { user: user.into(), role: role.into() };
        self.auth().user_grant_role(self.req(request)).await.map(drop)
    }

    async fn revoke_role(&self, user: &str, role: &str) -> Result<ResponseHeader, Status> {
        let request = AuthUserRevokeRoleRequest { name: user.into(), role: role.into() };
        let response = self.auth().user_revoke_role(self.req(request)).await?.into_inner();
        Ok(response.header.expect("a header"))
    }

    async fn grant_permission(
        &self,
        role: &str,
        kind: permission::Type,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), Status> {
        let perm = Permission {
            perm_type: kind as i32,
            key: key.to_vec().into(),
            range_end: range_end.to_vec().into(),
        };
        let request = AuthRoleGrantPermissionRequest { name: role.into(), perm: Some(perm) };
        self.auth().role_grant_permission(self.req(request)).await.map(drop)
    }

    async fn auth_enable(&self) -> Result<(), Status> {
        self.auth().auth_enable(self.req(AuthEnableRequest {})).await.map(drop)
    }

    async fn auth_status(&self) -> Result<AuthStatusResponse, Status> {
        Ok(self.auth().auth_status(self.req(AuthStatusRequest {})).await?.into_inner())
    }
}

/// The code and message of a refused call.
#[track_caller]
fn refusal<T: std::fmt::Debug>(result: Result<T, Status>) -> (Code, String) {
    let status = result.expect_err("the call is refused");
    (status.code(), status.message().to_string())
}

/// Asserts a call was refused with `code` and `message`.
#[track_caller]
fn assert_refused<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, message: &str) {
    assert_eq!(refusal(result), (code, message.to_string()));
}

/// Adds the user `root` with the role `root` and turns auth on (as an admin does
/// first, with no token: auth is off); returns a root session.
async fn enable_with_root(endpoint: &str) -> Session {
    let anonymous = Session::open(endpoint);
    anonymous.user_add("root", ROOT_PASSWORD).await.expect("add root");
    anonymous.role_add("root").await.expect("add the root role");
    anonymous.grant_role("root", "root").await.expect("grant root root");
    anonymous.auth_enable().await.expect("enable auth");
    Session::login(endpoint, "root", ROOT_PASSWORD).await
}

/// What the auth store shows clients: each user's roles and each role's permissions
/// (read as root, or by anyone while auth is off).
#[derive(Debug, PartialEq, Eq)]
struct AuthState {
    users: BTreeMap<String, Vec<String>>,
    roles: BTreeMap<String, BTreeSet<StoredPermission>>,
}

/// A permission as RoleGet shows it: (type, key, range end).
type StoredPermission = (i32, Vec<u8>, Vec<u8>);

async fn auth_state(s: &Session) -> AuthState {
    let users = s.auth().user_list(s.req(AuthUserListRequest {})).await.expect("user list");
    let mut state = AuthState { users: BTreeMap::new(), roles: BTreeMap::new() };
    for user in users.into_inner().users {
        let request = AuthUserGetRequest { name: user.clone() };
        let mut roles =
            s.auth().user_get(s.req(request)).await.expect("user get").into_inner().roles;
        roles.sort();
        state.users.insert(user, roles);
    }
    let roles = s.auth().role_list(s.req(AuthRoleListRequest {})).await.expect("role list");
    for role in roles.into_inner().roles {
        let request = AuthRoleGetRequest { role: role.clone() };
        let perms = s.auth().role_get(s.req(request)).await.expect("role get").into_inner().perm;
        let perms = perms.into_iter().map(|p| (p.perm_type, p.key.to_vec(), p.range_end.to_vec()));
        state.roles.insert(role, perms.collect());
    }
    state
}

// ---------------------------------------------------------------- 1. lifecycle

async fn lifecycle(servers: &mut Servers) {
    use Code::{
        FailedPrecondition, InvalidArgument, PermissionDenied, ResourceExhausted, Unauthenticated,
    };
    let ep = servers.endpoint(0);
    let anonymous = Session::open(&ep);
    let auth = || anonymous.auth();

    // Auth off: nobody can authenticate, anybody manages users and roles.
    assert_refused(anonymous.authenticate("root", "x").await, FailedPrecondition, AUTH_NOT_ENABLED);
    if servers.rules().auth_status {
        assert!(!anonymous.auth_status().await.expect("auth status").enabled);
    }

    // Enabling needs the user root, holding the role root.
    assert_refused(
        anonymous.auth_enable().await,
        FailedPrecondition,
        "etcdserver: root user does not exist",
    );
    anonymous.user_add("root", ROOT_PASSWORD).await.expect("add root");
    assert_refused(
        anonymous.auth_enable().await,
        FailedPrecondition,
        "etcdserver: root user does not have root role",
    );
    anonymous.role_add("root").await.expect("add the root role");
    anonymous.user_add("alice", "alice-pw").await.expect("add alice");
    anonymous.role_add("reader").await.expect("add reader");
    anonymous
        .grant_permission("reader", permission::Type::Read, b"a", b"b")
        .await
        .expect("grant reader [a, b)");

    // Granting the same key and range again replaces the permission's type.
    for kind in [permission::Type::Write, permission::Type::Read] {
        anonymous.grant_permission("reader", kind, b"a", b"b").await.expect("grant again");
        let state = auth_state(&anonymous).await;
        assert_eq!(
            state.roles["reader"],
            BTreeSet::from([(kind as i32, b"a".to_vec(), b"b".to_vec())])
        );
    }

    // Each refusal leaves the store as it was.
    let state = auth_state(&anonymous).await;
    let unchanged = |what: &'static str| {
        let anonymous = anonymous.clone();
        let state = &state;
        async move { assert_eq!(&auth_state(&anonymous).await, state, "after {what}") }
    };

    assert_refused(anonymous.user_add("", "pw").await, InvalidArgument, USER_EMPTY);
    unchanged("an empty user name").await;
    assert_refused(anonymous.role_add("").await, InvalidArgument, "etcdserver: role name is empty");
    unchanged("an empty role name").await;
    assert_refused(
        anonymous.user_add("alice", "other").await,
        FailedPrecondition,
        "etcdserver: user name already exists",
    );
    unchanged("a duplicate user").await;
    assert_refused(
        anonymous.role_add("reader").await,
        FailedPrecondition,
        "etcdserver: role name already exists",
    );
    unchanged("a duplicate role").await;
    assert_refused(
        anonymous.grant_role("alice", "nosuch").await,
        FailedPrecondition,
        ROLE_NOT_FOUND,
    );
    unchanged("granting a missing role").await;
    assert_refused(
        anonymous.grant_role("nosuch", "reader").await,
        FailedPrecondition,
        USER_NOT_FOUND,
    );
    unchanged("granting to a missing user").await;
    assert_refused(
        anonymous.revoke_role("alice", "reader").await,
        FailedPrecondition,
        "etcdserver: role is not granted to the user",
    );
    unchanged("revoking a role not granted").await;
    assert_refused(
        anonymous.revoke_role("nosuch", "reader").await,
        FailedPrecondition,
        USER_NOT_FOUND,
    );
    unchanged("revoking from a missing user").await;
    for (key, range_end) in [(&b"a"[..], &b""[..]), (b"a", b"c"), (b"x", b"")] {
        let request = AuthRoleRevokePermissionRequest {
            role: "reader".into(),
            key: key.to_vec().into(),
            range_end: range_end.to_vec().into(),
        };
        assert_refused(
            auth().role_revoke_permission(anonymous.req(request)).await,
            FailedPrecondition,
            "etcdserver: permission is not granted to the role",
        );
        unchanged("revoking a permission not granted").await;
    }
    assert_refused(
        anonymous.grant_permission("nosuch", permission::Type::Read, b"a", b"").await,
        FailedPrecondition,
        ROLE_NOT_FOUND,
    );
    assert_refused(
        auth().user_get(anonymous.req(AuthUserGetRequest { name: "nosuch".into() })).await,
        FailedPrecondition,
        USER_NOT_FOUND,
    );
    assert_refused(
        auth().user_delete(anonymous.req(AuthUserDeleteRequest { name: "nosuch".into() })).await,
        FailedPrecondition,
        USER_NOT_FOUND,
    );
    assert_refused(
        auth().role_get(anonymous.req(AuthRoleGetRequest { role: "nosuch".into() })).await,
        FailedPrecondition,
        ROLE_NOT_FOUND,
    );
    assert_refused(
        auth().role_delete(anonymous.req(AuthRoleDeleteRequest { role: "nosuch".into() })).await,
        FailedPrecondition,
        ROLE_NOT_FOUND,
    );
    unchanged("calls naming missing users and roles").await;

    // A 10 MiB password is over the gRPC message limit (`--max-request-bytes` + 512 KiB):
    // refused before any handler runs, for every call that carries one.
    let big = "p".repeat(10 << 20);
    let limit = 3 * 1024 * 1024 / 2 + 512 * 1024;
    let too_large =
        |size: usize| format!("grpc: received message larger than max ({size} vs. {limit})");
    // Sizes as encoded: the name and password fields, the empty options message.
    let name_field = |name: &str| 1 + varint_len(name.len()) + name.len();
    let password_field = 1 + varint_len(big.len()) + big.len();
    assert_refused(
        anonymous.user_add("big", &big).await,
        ResourceExhausted,
        &too_large(name_field("big") + password_field + 2),
    );
    let request = AuthUserChangePasswordRequest {
        name: "alice".into(),
        password: big.clone(),
        hashed_password: String::new(),
    };
    assert_refused(
        auth().user_change_password(anonymous.req(request)).await,
        ResourceExhausted,
        &too_large(name_field("alice") + password_field),
    );
    unchanged("a 10 MiB password").await;

    // Enabled: root may not lose root.
    anonymous.grant_role("root", "root").await.expect("grant root root");
    anonymous.auth_enable().await.expect("enable auth");
    let root = Session::login(&ep, "root", ROOT_PASSWORD).await;
    if servers.rules().auth_status {
        assert!(root.auth_status().await.expect("auth status").enabled);
    }
    root.grant_role("alice", "reader").await.expect("grant alice reader");
    let state = auth_state(&root).await;
    let unchanged = |what: &'static str| {
        let root = root.clone();
        let state = &state;
        async move { assert_eq!(&auth_state(&root).await, state, "after {what}") }
    };
    // Enabling again is accepted and changes nothing.
    root.auth_enable().await.expect("enable auth again");
    unchanged("enabling twice").await;
    assert_refused(
        root.auth().user_delete(root.req(AuthUserDeleteRequest { name: "root".into() })).await,
        InvalidArgument,
        INVALID_AUTH_MGMT,
    );
    unchanged("deleting root").await;
    assert_refused(root.revoke_role("root", "root").await, InvalidArgument, INVALID_AUTH_MGMT);
    unchanged("revoking root from root").await;
    assert_refused(
        root.auth().role_delete(root.req(AuthRoleDeleteRequest { role: "root".into() })).await,
        InvalidArgument,
        INVALID_AUTH_MGMT,
    );
    unchanged("deleting the root role").await;

    // Permissions that name no key: an inverted range, an empty one, an empty key.
    // etcd 3.5 refuses them (isValidPermissionRange); etcd 3.4 stores them, and they
    // grant nothing.
    let bad: [(&[u8], &[u8]); 4] = [(b"y", b"x"), (b"x", b"x"), (b"", b""), (b"", b"b")];
    for (key, range_end) in bad {
        let got =
            root.grant_permission("reader", permission::Type::Readwrite, key, range_end).await;
        if servers.rules().valid_permission_ranges {
            assert_refused(got, InvalidArgument, INVALID_AUTH_MGMT);
            unchanged("a permission naming no key").await;
        } else {
            got.expect("etcd 3.4 stores any permission range");
        }
    }
    let alice = Session::login(&ep, "alice", "alice-pw").await;
    alice.get(b"a", b"").await.expect("alice reads [a, b)");
    for (key, range_end) in
        [(&b"x"[..], &b""[..]), (b"xa", b""), (b"y", b""), (b"x", b"y"), (b"w", b"\0")]
    {
        assert_refused(alice.get(key, range_end).await, PermissionDenied, PERMISSION_DENIED);
        assert_refused(alice.put(key, b"v").await, PermissionDenied, PERMISSION_DENIED);
    }
    if !servers.rules().valid_permission_ranges {
        for (key, range_end) in bad {
            let request = AuthRoleRevokePermissionRequest {
                role: "reader".into(),
                key: key.to_vec().into(),
                range_end: range_end.to_vec().into(),
            };
            root.auth().role_revoke_permission(root.req(request)).await.expect("revoke it again");
        }
    }
    unchanged("permissions naming no key").await;

    // Authentication: a wrong password and an unknown user get the same answer.
    assert_refused(anonymous.authenticate("root", "wrong").await, InvalidArgument, AUTH_FAILED);
    assert_refused(anonymous.authenticate("nosuch", "x").await, InvalidArgument, AUTH_FAILED);
    assert_refused(anonymous.authenticate("root", &big).await, ResourceExhausted, &{
        too_large(name_field("root") + password_field)
    });

    // Requests without a token, or with one the member never issued.
    assert_refused(anonymous.get(b"a", b"").await, InvalidArgument, USER_EMPTY);
    assert_refused(anonymous.put(b"a", b"v").await, InvalidArgument, USER_EMPTY);
    assert_refused(
        auth().user_list(anonymous.req(AuthUserListRequest {})).await,
        InvalidArgument,
        USER_EMPTY,
    );
    let bogus = anonymous.with_token("bogus.token");
    assert_refused(bogus.get(b"a", b"").await, Unauthenticated, INVALID_TOKEN);
    assert_refused(bogus.put(b"a", b"v").await, Unauthenticated, INVALID_TOKEN);
    assert_refused(
        bogus
            .auth()
            .user_add(bogus.req(AuthUserAddRequest {
                name: "mallory".into(),
                password: "pw".into(),
                options: None,
                hashed_password: String::new(),
            }))
            .await,
        Unauthenticated,
        INVALID_TOKEN,
    );
    unchanged("calls without a valid token").await;
    assert_eq!(root.revision().await, 1, "no write landed");

    // Disabling (as root) turns it all off again.
    root.auth().auth_disable(root.req(AuthDisableRequest {})).await.expect("disable auth");
    anonymous.put(b"a", b"v").await.expect("a put without a token once auth is off");
    assert_refused(anonymous.authenticate("root", ROOT_PASSWORD).await, FailedPrecondition, {
        AUTH_NOT_ENABLED
    });
}

/// The length of `n` as a protobuf varint.
fn varint_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

// ---------------------------------------------------------------- 2. the matrix

/// Key intervals and the permission model: etcd merges each user's permissions into
/// intervals per type (its range-permission cache); a request is allowed when the
/// intervals cover all of its keys.
mod model {
    use super::*;

    /// Keys `[begin, end)`; no end: every key from `begin` on.
    #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
    pub struct Span {
        pub begin: Vec<u8>,
        pub end: Option<Vec<u8>>,
    }

    /// The keys a request's `key` and `range_end` name, with etcd's conventions: no end
    /// is the key alone, `\0` is every key from the key on.
    pub fn span(key: &[u8], range_end: &[u8]) -> Span {
        match range_end {
            [] => Span { begin: key.to_vec(), end: Some([key, &[0]].concat()) },
            [0] => Span { begin: key.to_vec(), end: None },
            end => Span { begin: key.to_vec(), end: Some(end.to_vec()) },
        }
    }

    /// Whether the union of `have` covers every key of `want`.
    pub fn covers(have: &[Span], want: &Span) -> bool {
        let mut sorted: Vec<&Span> = have.iter().collect();
        sorted.sort();
        let mut reached = want.begin.clone();
        for s in sorted {
            if s.begin > reached {
                break;
            }
            match &s.end {
                None => return true,
                Some(end) if *end > reached => reached = end.clone(),
                Some(_) => {}
            }
            if let Some(want_end) = &want.end
                && reached >= *want_end
            {
                return true;
            }
        }
        false
    }

    /// One user's merged permissions.
    #[derive(Debug, Default)]
    pub struct Perms {
        pub read: Vec<Span>,
        pub write: Vec<Span>,
    }

    impl Perms {
        pub fn add(&mut self, kind: permission::Type, key: &[u8], range_end: &[u8]) {
            let s = span(key, range_end);
            match kind {
                permission::Type::Read => self.read.push(s),
                permission::Type::Write => self.write.push(s),
                permission::Type::Readwrite => {
                    self.read.push(s.clone());
                    self.write.push(s);
                }
            }
        }

        pub fn read(&self, key: &[u8], range_end: &[u8]) -> bool {
            covers(&self.read, &span(key, range_end))
        }

        pub fn write(&self, key: &[u8], range_end: &[u8]) -> bool {
            covers(&self.write, &span(key, range_end))
        }
    }

    #[test]
    fn covering() {
        let have = [span(b"a", b"c"), span(b"c", b""), span(b"e", b"\0")];
        assert!(covers(&have, &span(b"a", b"")));
        assert!(covers(&have, &span(b"b", b"c\0")), "adjacent intervals merge");
        assert!(!covers(&have, &span(b"b", b"c\0\0")), "c\\0 is not covered");
        assert!(!covers(&have, &span(b"d", b"")));
        assert!(covers(&have, &span(b"f", b"\0")));
        assert!(!covers(&have, &span(b"d", b"\0")));
        assert!(!covers(&[], &span(b"a", b"")));
    }
}

use model::Perms;

/// A deterministic generator (splitmix64): a failing seed reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// The seed of the matrix: `OXETCD_AUTH_SEED`, or the clock.
fn matrix_seed() -> u64 {
    std::env::var("OXETCD_AUTH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        now.expect("a clock after 1970").as_nanos() as u64
    })
}

/// Every key of one or two letters of "abcd": the keys the matrix writes and probes.
fn universe() -> Vec<Vec<u8>> {
    let letters = b"abcd";
    let mut keys: Vec<Vec<u8>> = letters.iter().map(|&l| vec![l]).collect();
    for &a in letters {
        for &b in letters {
            keys.push(vec![a, b]);
        }
    }
    keys
}

fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    oxetcd_tests::scenario::prefix_end(prefix)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Key,
    Range,
    Prefix,
    FromKey,
}

const SHAPES: [Shape; 4] = [Shape::Key, Shape::Range, Shape::Prefix, Shape::FromKey];
const TYPES: [permission::Type; 3] =
    [permission::Type::Read, permission::Type::Write, permission::Type::Readwrite];

/// A random `(key, range_end)` of `shape` over the universe.
fn random_span(rng: &mut Rng, keys: &[Vec<u8>], shape: Shape) -> (Vec<u8>, Vec<u8>) {
    let key = keys[rng.below(keys.len())].clone();
    match shape {
        Shape::Key => (key, vec![]),
        Shape::Prefix => {
            let end = prefix_end(&key);
            (key, end)
        }
        Shape::FromKey => (key, vec![0]),
        Shape::Range => loop {
            let other = keys[rng.below(keys.len())].clone();
            if other != key {
                let (begin, end) = if key < other { (key, other) } else { (other, key) };
                break (begin, end);
            }
        },
    }
}

fn show(key: &[u8], range_end: &[u8]) -> String {
    let k = String::from_utf8_lossy(key).replace('\0', "\\0");
    match range_end {
        [] => format!("{k:?}"),
        [0] => format!("[{k:?}, ∞)"),
        end => format!("[{k:?}, {:?})", String::from_utf8_lossy(end).replace('\0', "\\0")),
    }
}

/// The roles of the matrix: every shape of every type held by some role, at random keys.
type RolePerms = BTreeMap<String, BTreeMap<(Vec<u8>, Vec<u8>), permission::Type>>;

/// Outcomes of the matrix, per RPC kind.
struct Tally {
    rules: Rules,
    /// RPC kind → (allowed, denied) as the model expects.
    seen: BTreeMap<&'static str, (usize, usize)>,
    /// Unauthorized calls the server allowed.
    leaks: Vec<String>,
    /// Authorized calls the server refused, and refusals with the wrong code or message.
    wrong_refusals: Vec<String>,
}

impl Tally {
    fn new(rules: Rules) -> Tally {
        Tally { rules, seen: BTreeMap::new(), leaks: Vec::new(), wrong_refusals: Vec::new() }
    }

    /// The refusal the server answers for `kind` when the user lacks permission.
    fn refusal(&self, kind: &str) -> (Code, &'static str) {
        let maintenance = matches!(kind, "Hash" | "HashKV" | "Defragment" | "Snapshot");
        if maintenance && !self.rules.maintenance_refusal_mapped {
            (Code::Unknown, "auth: permission denied")
        } else {
            (Code::PermissionDenied, PERMISSION_DENIED)
        }
    }

    /// Records one call of `kind` the model `expected` to be allowed or not.
    fn record<T>(
        &mut self,
        kind: &'static str,
        what: String,
        expected: bool,
        got: &Result<T, Status>,
    ) {
        let entry = self.seen.entry(kind).or_default();
        if expected {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
        match (expected, got) {
            (true, Ok(_)) => {}
            (false, Ok(_)) => self.leaks.push(format!("{kind} {what}: allowed")),
            (true, Err(e)) => self.wrong_refusals.push(format!(
                "{kind} {what}: refused {:?} {:?}",
                e.code(),
                e.message()
            )),
            (false, Err(e)) => {
                let (code, message) = self.refusal(kind);
                if (e.code(), e.message()) != (code, message) {
                    self.wrong_refusals.push(format!(
                        "{kind} {what}: refused with {:?} {:?}, not {code:?} {message:?}",
                        e.code(),
                        e.message()
                    ));
                }
            }
        }
    }
}

async fn permission_matrix(servers: &mut Servers) {
    let rules = servers.rules();
    let seed = matrix_seed();
    eprintln!("permission matrix seed {seed} (set OXETCD_AUTH_SEED={seed} to run it again)");
    let mut rng = Rng(seed);
    let ep = servers.endpoint(0);
    let root = enable_with_root(&ep).await;
    // The Rust client as an admin would use it: its Permission builder makes the
    // shapes, and the roles read back must be what the model granted.
    let admin_options =
        ClientOptions::default().with_user("root", ROOT_PASSWORD).with_max_retries(0);
    let admin = Client::connect([ep.as_str()], admin_options).await.expect("admin client");
    let keys = universe();

    // Roles r0..r5: the twelve (shape, type) pairs two per role, and a random extra.
    let mut roles: RolePerms = BTreeMap::new();
    let pairs: Vec<(Shape, permission::Type)> =
        SHAPES.iter().flat_map(|&s| TYPES.iter().map(move |&t| (s, t))).collect();
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    for r in 0..6 {
        let role = format!("r{r}");
        admin.auth().role_add(&role).await.expect("role add");
        let mut grants = vec![pairs[order[2 * r]], pairs[order[2 * r + 1]]];
        if rng.chance(50) {
            grants.push(pairs[rng.below(pairs.len())]);
        }
        for (shape, kind) in grants {
            // A new key and range each time: granting one again replaces its type, and
            // etcd 3.4 may store a duplicate instead when the key has several ranges.
            let held = roles.entry(role.clone()).or_default();
            let (key, range_end) = loop {
                let span = random_span(&mut rng, &keys, shape);
                if !held.contains_key(&span) {
                    break span;
                }
            };
            let kind_c = match kind {
                permission::Type::Read => PermissionType::Read,
                permission::Type::Write => PermissionType::Write,
                permission::Type::Readwrite => PermissionType::ReadWrite,
            };
            let perm = ClientPermission::new(kind_c, key.clone());
            let perm = match shape {
                Shape::Key => perm,
                Shape::Range => perm.with_range(range_end.clone()),
                Shape::Prefix => perm.with_prefix(),
                Shape::FromKey => perm.with_from_key(),
            };
            admin.auth().role_grant_permission(&role, perm).await.expect("grant permission");
            roles.entry(role.clone()).or_default().insert((key, range_end), kind);
        }
    }
    // Users: u0..u3 with one to three roles each, and nobody with none.
    let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for u in 0..4 {
        let user = format!("u{u}");
        root.user_add(&user, "pw").await.expect("user add");
        let mut held: BTreeSet<String> = BTreeSet::new();
        for _ in 0..1 + rng.below(3) {
            held.insert(format!("r{}", rng.below(6)));
        }
        for role in &held {
            root.grant_role(&user, role).await.expect("grant role");
        }
        users.insert(user, held.into_iter().collect());
    }
    root.user_add("nobody", "pw").await.expect("user add");
    users.insert("nobody".into(), vec![]);

    // The store as granted, read back.
    let state = auth_state(&root).await;
    for (role, perms) in &roles {
        let want: BTreeSet<StoredPermission> =
            perms.iter().map(|((k, e), t)| (*t as i32, k.clone(), e.clone())).collect();
        assert_eq!(state.roles[role], want, "role {role} as granted");
    }
    for (user, held) in &users {
        assert_eq!(&state.users[user], held, "user {user} as granted");
    }
    for (role, perms) in &roles {
        let list: Vec<String> =
            perms.iter().map(|((k, e), t)| format!("{t:?} {}", show(k, e))).collect();
        eprintln!("{role}: {}", list.join(", "));
    }
    eprintln!("users: {users:?}");

    // Every key of the universe holds a value, so a leak would show data.
    for key in &keys {
        root.put(key, b"v").await.expect("root writes");
    }

    let mut tally = Tally::new(rules);
    for (user, held) in &users {
        let mut perms = Perms::default();
        for role in held {
            for ((key, range_end), kind) in &roles[role] {
                perms.add(*kind, key, range_end);
            }
        }
        let session = Session::login(&ep, user, "pw").await;
        let probes = probe_spans(&mut rng, &keys, &roles);
        key_probes(&session, &root, user, &perms, &probes, &mut tally).await;
        watch_probes(&session, user, &perms, rules, &probes, &mut tally).await;
        let txns = TxnGen { rng: &mut rng, keys: &keys, probes: &probes, perms: &perms, rules };
        txn_probes(&session, &root, user, txns, &mut tally).await;
        lease_probes(&session, &root, user, &perms, rules, &mut rng, &keys, &mut tally).await;
        admin_only_probes(&session, &root, user, held, &mut tally).await;
    }
    assert_eq!(auth_state(&root).await, state, "the users' admin calls changed nothing");

    for (kind, (allowed, denied)) in &tally.seen {
        eprintln!("{kind}: {allowed} allowed, {denied} denied");
    }
    for kind in ["Range", "Put", "DeleteRange", "Txn", "Watch", "LeaseRevoke"] {
        let (allowed, denied) = tally.seen.get(kind).copied().unwrap_or_default();
        assert!(allowed > 0 && denied > 0, "seed {seed}: {kind} was probed both ways");
    }
    let show_some = |v: &[String]| v.iter().take(40).cloned().collect::<Vec<_>>().join("\n  ");
    assert!(
        tally.leaks.is_empty() && tally.wrong_refusals.is_empty(),
        "seed {seed}: {} unauthorized calls allowed:\n  {}\n{} authorized calls refused or refusals \
         not etcd's:\n  {}",
        tally.leaks.len(),
        show_some(&tally.leaks),
        tally.wrong_refusals.len(),
        show_some(&tally.wrong_refusals),
    );
}

/// The ranges probed for one user: every granted permission's own range and its
/// edges, around and one key beyond, and random ranges of every shape.
fn probe_spans(rng: &mut Rng, keys: &[Vec<u8>], roles: &RolePerms) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut spans: BTreeSet<(Vec<u8>, Vec<u8>)> = BTreeSet::new();
    for perms in roles.values() {
        for (key, range_end) in perms.keys() {
            spans.insert((key.clone(), range_end.clone()));
            spans.insert((key.clone(), vec![]));
            // The key and the one after it ("k\0"): one more than a single-key grant.
            spans.insert((key.clone(), [key.as_slice(), &[0, 0]].concat()));
            match range_end.as_slice() {
                [] => {
                    spans.insert(([key.as_slice(), &[0]].concat(), vec![]));
                    spans.insert((key.clone(), prefix_end(key)));
                }
                [0] => {}
                end => {
                    spans.insert((end.to_vec(), vec![]));
                    spans.insert((key.clone(), [end, &[0]].concat()));
                    spans.insert((key.clone(), vec![0]));
                }
            }
        }
    }
    for _ in 0..12 {
        let shape = SHAPES[rng.below(SHAPES.len())];
        spans.insert(random_span(rng, keys, shape));
    }
    spans.into_iter().collect()
}

async fn key_probes(
    session: &Session,
    root: &Session,
    user: &str,
    perms: &Perms,
    probes: &[(Vec<u8>, Vec<u8>)],
    tally: &mut Tally,
) {
    for (key, range_end) in probes {
        let what = format!("by {user} on {}", show(key, range_end));
        let range = RangeRequest {
            key: key.clone().into(),
            range_end: range_end.clone().into(),
            ..Default::default()
        };
        let got = session.kv().range(session.req(range.clone())).await;
        tally.record("Range", what.clone(), perms.read(key, range_end), &got);
        let serializable = RangeRequest { serializable: true, ..range };
        let got = session.kv().range(session.req(serializable)).await;
        tally.record("Range", format!("{what} serializable"), perms.read(key, range_end), &got);

        for prev_kv in [false, true] {
            let expected = perms.write(key, range_end) && (!prev_kv || perms.read(key, range_end));
            let request = DeleteRangeRequest {
                key: key.clone().into(),
                range_end: range_end.clone().into(),
                prev_kv,
            };
            let before = root.revision().await;
            let got = session.kv().delete_range(session.req(request)).await;
            tally.record("DeleteRange", format!("{what} prev_kv={prev_kv}"), expected, &got);
            unchanged_if_refused(root, before, &got, &what).await;
        }
        if range_end.is_empty() {
            for prev_kv in [false, true] {
                let expected = perms.write(key, b"") && (!prev_kv || perms.read(key, b""));
                let request = PutRequest {
                    key: key.clone().into(),
                    value: b"w".to_vec().into(),
                    prev_kv,
                    ..Default::default()
                };
                let before = root.revision().await;
                let got = session.kv().put(session.req(request)).await;
                tally.record("Put", format!("{what} prev_kv={prev_kv}"), expected, &got);
                unchanged_if_refused(root, before, &got, &what).await;
            }
        }
    }
}

/// After a refused write, the store's revision is still `before`.
async fn unchanged_if_refused<T>(root: &Session, before: i64, got: &Result<T, Status>, what: &str) {
    if got.is_err() {
        assert_eq!(root.revision().await, before, "a refused write {what} changed the store");
    }
}

async fn watch_probes(
    session: &Session,
    user: &str,
    perms: &Perms,
    rules: Rules,
    probes: &[(Vec<u8>, Vec<u8>)],
    tally: &mut Tally,
) {
    let mut stream = WatchStream::open(session);
    for (key, range_end) in probes {
        let what = format!("by {user} on {}", show(key, range_end));
        let expected = if range_end.as_slice() == [0] && !rules.watch_from_key_range {
            perms.read(key, b"")
        } else {
            perms.read(key, range_end)
        };
        let create = WatchCreateRequest {
            key: key.clone().into(),
            range_end: range_end.clone().into(),
            ..Default::default()
        };
        let outcome = match stream.create(create).await {
            Ok(created) if !created.canceled => {
                stream.cancel(created.watch_id).await;
                Ok(())
            }
            Ok(refused) => {
                // etcd answers a refused creation as created and canceled at once, on an
                // invalid watch id, with the gRPC error's text as the reason.
                if (refused.watch_id, refused.cancel_reason.as_str())
                    != (-1, WATCH_PERMISSION_DENIED)
                {
                    tally.wrong_refusals.push(format!(
                        "Watch {what}: canceled as watch {} with reason {:?}",
                        refused.watch_id, refused.cancel_reason
                    ));
                }
                Err(Status::permission_denied(PERMISSION_DENIED))
            }
            Err(status) => {
                stream = WatchStream::open(session);
                Err(Status::unknown(format!("the watch stream ended: {status:?}")))
            }
        };
        tally.record("Watch", what, expected, &outcome);
    }
}

/// One watch stream, creating and canceling watches one at a time.
struct WatchStream {
    requests: tokio::sync::mpsc::Sender<WatchRequest>,
    /// The call, started with the first request: etcd sends the response headers with
    /// its first answer.
    call: Option<(WatchClient<Channel>, tonic::Request<ReceiverStream<WatchRequest>>)>,
    responses: Option<tonic::Streaming<WatchResponse>>,
}

type ReceiverStream<T> = tokio_stream::wrappers::ReceiverStream<T>;

impl WatchStream {
    fn open(session: &Session) -> WatchStream {
        let (requests, rx) = tokio::sync::mpsc::channel(4);
        let client = WatchClient::new(session.streams.clone());
        let call = Some((client, session.req(ReceiverStream::new(rx))));
        WatchStream { requests, call, responses: None }
    }

    async fn send(&mut self, request: RequestUnion) -> Result<(), Status> {
        let request = WatchRequest { request_union: Some(request) };
        self.requests.send(request).await.map_err(|_| Status::unknown("watch stream closed"))?;
        if let Some((mut client, call)) = self.call.take() {
            let opened = tokio::time::timeout(STEP, client.watch(call)).await.expect("bounded");
            self.responses = Some(opened?.into_inner());
        }
        Ok(())
    }

    async fn next(&mut self) -> Result<WatchResponse, Status> {
        let responses = self.responses.as_mut().expect("a request was sent");
        let next = tokio::time::timeout(STEP, responses.message()).await.expect("bounded");
        next?.ok_or_else(|| Status::unknown("the watch stream ended"))
    }

    /// Sends a creation and returns its answer (`created`, maybe `canceled`).
    async fn create(&mut self, create: WatchCreateRequest) -> Result<WatchResponse, Status> {
        self.send(RequestUnion::CreateRequest(create)).await?;
        loop {
            let response = self.next().await?;
            if response.created {
                return Ok(response);
            }
        }
    }

    async fn cancel(&mut self, watch_id: i64) {
        let cancel = RequestUnion::CancelRequest(WatchCancelRequest { watch_id });
        self.send(cancel).await.expect("watch stream open");
        loop {
            let response = self.next().await.expect("the cancel answered");
            if response.canceled && response.watch_id == watch_id {
                return;
            }
        }
    }
}

/// Random transactions for one user, and what the model says each needs. Ranges come
/// from the user's probes (mostly granted ranges and their edges) or at random.
struct TxnGen<'a> {
    rng: &'a mut Rng,
    keys: &'a [Vec<u8>],
    probes: &'a [(Vec<u8>, Vec<u8>)],
    perms: &'a Perms,
    rules: Rules,
}

/// A generated piece of a transaction: itself, whether the user may send it, and how
/// it reads.
type Piece<T> = (T, bool, String);

impl TxnGen<'_> {
    fn span(&mut self) -> (Vec<u8>, Vec<u8>) {
        if self.rng.chance(60) {
            self.probes[self.rng.below(self.probes.len())].clone()
        } else {
            let shape = SHAPES[self.rng.below(SHAPES.len())];
            random_span(self.rng, self.keys, shape)
        }
    }

    fn key(&mut self) -> Vec<u8> {
        if self.rng.chance(60) {
            self.probes[self.rng.below(self.probes.len())].0.clone()
        } else {
            self.keys[self.rng.below(self.keys.len())].clone()
        }
    }

    fn compare(&mut self) -> Piece<Compare> {
        let (key, range_end) = self.span();
        let compare = Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Version as i32,
            key: key.clone().into(),
            range_end: range_end.clone().into(),
            target_union: Some(TargetUnion::Version(0)),
        };
        let what = format!("version {} = 0", show(&key, &range_end));
        (compare, self.perms.read(&key, &range_end), what)
    }

    fn range(&mut self) -> Piece<RequestOp> {
        let (key, range_end) = self.span();
        let range = RangeRequest {
            key: key.clone().into(),
            range_end: range_end.clone().into(),
            ..Default::default()
        };
        let what = format!("range {}", show(&key, &range_end));
        let op = RequestOp { request: Some(Op::RequestRange(range)) };
        (op, self.perms.read(&key, &range_end), what)
    }

    /// A put, a delete (maybe with prev_kv), or (`nest`) a nested transaction.
    fn write(&mut self, nest: bool) -> Piece<RequestOp> {
        match self.rng.below(if nest { 3 } else { 2 }) {
            0 => {
                // No prev_kv: etcd does not check read permission for a txn's puts.
                let key = self.key();
                let put = PutRequest {
                    key: key.clone().into(),
                    value: b"t".to_vec().into(),
                    ..Default::default()
                };
                let what = format!("put {}", show(&key, b""));
                let op = RequestOp { request: Some(Op::RequestPut(put)) };
                (op, self.perms.write(&key, b""), what)
            }
            1 => {
                let (key, range_end) = self.span();
                let prev_kv = self.rng.chance(50);
                let delete = DeleteRangeRequest {
                    key: key.clone().into(),
                    range_end: range_end.clone().into(),
                    prev_kv,
                };
                let needs = self.perms.write(&key, &range_end)
                    && (!prev_kv || self.perms.read(&key, &range_end));
                let what = format!("delete {} prev_kv={prev_kv}", show(&key, &range_end));
                (RequestOp { request: Some(Op::RequestDeleteRange(delete)) }, needs, what)
            }
            _ => {
                // Nested: a compare, and one op per branch, the write in one of them.
                let (compare, compare_ok, compare_what) = self.compare();
                let (write, write_ok, write_what) = self.write(false);
                let (read, read_ok, read_what) = self.range();
                let (then, otherwise) = if self.rng.chance(50) {
                    ((write, write_what), (read, read_what))
                } else {
                    ((read, read_what), (write, write_what))
                };
                let what = format!("txn{{if {compare_what} then {} else {}}}", then.1, otherwise.1);
                let txn = TxnRequest {
                    compare: vec![compare],
                    success: vec![then.0],
                    failure: vec![otherwise.0],
                };
                // etcd 3.4 checks none of it.
                let needs = !self.rules.nested_txn_ops || (compare_ok && write_ok && read_ok);
                (RequestOp { request: Some(Op::RequestTxn(txn)) }, needs, what)
            }
        }
    }

    /// Maybe a compare; each branch maybe a range and maybe one write or nested
    /// transaction (one write per branch, so etcd's duplicate-key check passes it).
    fn txn(&mut self) -> Piece<TxnRequest> {
        let mut request = TxnRequest::default();
        let mut needs = true;
        let mut parts = Vec::new();
        if self.rng.chance(70) {
            let (compare, ok, what) = self.compare();
            request.compare.push(compare);
            needs &= ok;
            parts.push(format!("if {what}"));
        }
        for branch in ["then", "else"] {
            let mut ops = Vec::new();
            if self.rng.chance(50) {
                let (op, ok, what) = self.range();
                ops.push(op);
                needs &= ok;
                parts.push(format!("{branch} {what}"));
            }
            if self.rng.chance(60) {
                let (op, ok, what) = self.write(true);
                ops.push(op);
                needs &= ok;
                parts.push(format!("{branch} {what}"));
            }
            if branch == "then" {
                request.success = ops;
            } else {
                request.failure = ops;
            }
        }
        (request, needs, parts.join(" "))
    }
}

async fn txn_probes(
    session: &Session,
    root: &Session,
    user: &str,
    mut txns: TxnGen<'_>,
    tally: &mut Tally,
) {
    for _ in 0..50 {
        let (request, needs, what) = txns.txn();
        let what = format!("by {user}: {what}");
        let before = root.revision().await;
        let got = session.kv().txn(session.req(request)).await;
        tally.record("Txn", what.clone(), needs, &got);
        unchanged_if_refused(root, before, &got, &what).await;
    }
}

/// Leases, one at a time: root grants one and attaches zero to two keys; the user asks
/// its time to live (with and without keys), puts a key on it, and revokes it.
#[allow(clippy::too_many_arguments)]
async fn lease_probes(
    session: &Session,
    root: &Session,
    user: &str,
    perms: &Perms,
    rules: Rules,
    rng: &mut Rng,
    keys: &[Vec<u8>],
    tally: &mut Tally,
) {
    let writable: Vec<Vec<u8>> = keys.iter().filter(|k| perms.write(k, b"")).cloned().collect();
    for _ in 0..8 {
        let lease = root.lease().lease_grant(root.req(LeaseGrantRequest { ttl: 60, id: 0 })).await;
        let id = lease.expect("root grants a lease").into_inner().id;
        // Half the time keys this user may write, so that some revocations are allowed.
        let pool = if !writable.is_empty() && rng.chance(50) { &writable[..] } else { keys };
        let mut attached: BTreeSet<Vec<u8>> = BTreeSet::new();
        for _ in 0..rng.below(3) {
            attached.insert(pool[rng.below(pool.len())].clone());
        }
        for key in &attached {
            let put = PutRequest {
                key: key.clone().into(),
                value: b"l".to_vec().into(),
                lease: id,
                ..Default::default()
            };
            root.kv().put(root.req(put)).await.expect("root attaches a key");
        }
        let names: Vec<String> = attached.iter().map(|k| show(k, b"")).collect();
        let what = format!("by {user} of a lease on {}", names.join(", "));

        let readable = attached.iter().all(|k| perms.read(k, b""));
        let request = LeaseTimeToLiveRequest { id, keys: true };
        let got = session.lease().lease_time_to_live(session.req(request)).await;
        if let Ok(ttl) = &got {
            let listed: BTreeSet<Vec<u8>> = ttl.get_ref().keys.iter().map(|k| k.to_vec()).collect();
            assert_eq!(listed, attached, "LeaseTimeToLive lists the attached keys");
        }
        tally.record(
            "LeaseTimeToLive(keys)",
            what.clone(),
            readable || !rules.lease_ttl_keys,
            &got,
        );
        let request = LeaseTimeToLiveRequest { id, keys: false };
        let got = session.lease().lease_time_to_live(session.req(request)).await;
        tally.record("LeaseTimeToLive", what.clone(), true, &got);

        // A put attaching a key to the lease needs write on the key and on the keys
        // already attached (the user could not revoke them otherwise).
        let key = pool[rng.below(pool.len())].clone();
        let expected = perms.write(&key, b"") && attached.iter().all(|k| perms.write(k, b""));
        let put = PutRequest {
            key: key.clone().into(),
            value: b"u".to_vec().into(),
            lease: id,
            ..Default::default()
        };
        let before = root.revision().await;
        let got = session.kv().put(session.req(put)).await;
        let put_what = format!("{what} of {}", show(&key, b""));
        tally.record("Put(lease)", put_what.clone(), expected, &got);
        unchanged_if_refused(root, before, &got, &put_what).await;
        if got.is_ok() {
            attached.insert(key);
        }

        // Revoking deletes the attached keys: it needs write on each.
        let expected = attached.iter().all(|k| perms.write(k, b""));
        let before = root.revision().await;
        let got = session.lease().lease_revoke(session.req(LeaseRevokeRequest { id })).await;
        tally.record("LeaseRevoke", what.clone(), expected, &got);
        let ttl = root
            .lease()
            .lease_time_to_live(root.req(LeaseTimeToLiveRequest { id, keys: true }))
            .await;
        let ttl = ttl.expect("root reads the lease").into_inner();
        if got.is_ok() {
            assert_eq!(ttl.ttl, -1, "a revoked lease is gone");
        } else {
            assert!(ttl.ttl > 0, "a refused revocation {what} ended the lease");
            assert_eq!(ttl.keys.len(), attached.len(), "a refused revocation {what} kept the keys");
            assert_eq!(
                root.revision().await,
                before,
                "a refused revocation {what} changed the store"
            );
            root.lease()
                .lease_revoke(root.req(LeaseRevokeRequest { id }))
                .await
                .expect("root revokes");
        }
    }
}

/// For a user without the root role: the admin-only RPCs are refused, the others (as
/// etcd 3.4 has them) are not.
async fn admin_only_probes(
    s: &Session,
    root: &Session,
    user: &str,
    held: &[String],
    tally: &mut Tally,
) {
    let what = || format!("by {user}");
    let auth = || s.auth();
    let cluster = || s.cluster();
    let maintenance = || s.maintenance();
    let pw = || "pw".to_string();
    macro_rules! admin_only {
        ($name:literal, $call:expr) => {{
            let got = $call.await;
            tally.record($name, what(), false, &got);
        }};
    }
    macro_rules! open_to_all {
        ($name:literal, $call:expr) => {{
            let got = $call.await;
            tally.record($name, what(), true, &got);
        }};
    }
    let before = auth_state(root).await;
    admin_only!("AuthDisable", auth().auth_disable(s.req(AuthDisableRequest {})));
    admin_only!("AuthEnable", auth().auth_enable(s.req(AuthEnableRequest {})));
    admin_only!(
        "UserAdd",
        auth().user_add(s.req(AuthUserAddRequest {
            name: "eve".into(),
            password: pw(),
            options: None,
            hashed_password: String::new()
        }))
    );
    admin_only!(
        "UserDelete",
        auth().user_delete(s.req(AuthUserDeleteRequest { name: user.into() }))
    );
    admin_only!("UserList", auth().user_list(s.req(AuthUserListRequest {})));
    admin_only!(
        "UserChangePassword",
        auth().user_change_password(s.req(AuthUserChangePasswordRequest {
            name: user.into(),
            password: "new".into(),
            hashed_password: String::new()
        }))
    );
    admin_only!(
        "UserGrantRole",
        auth().user_grant_role(
            s.req(AuthUserGrantRoleRequest { user: user.into(), role: "root".into() })
        )
    );
    admin_only!(
        "UserRevokeRole",
        auth().user_revoke_role(
            s.req(AuthUserRevokeRoleRequest { name: "root".into(), role: "root".into() })
        )
    );
    admin_only!("RoleAdd", auth().role_add(s.req(AuthRoleAddRequest { name: "mine".into() })));
    admin_only!(
        "RoleDelete",
        auth().role_delete(s.req(AuthRoleDeleteRequest { role: "r0".into() }))
    );
    admin_only!("RoleList", auth().role_list(s.req(AuthRoleListRequest {})));
    let perm = Permission {
        perm_type: permission::Type::Readwrite as i32,
        key: b"\0".to_vec().into(),
        range_end: b"\0".to_vec().into(),
    };
    admin_only!(
        "RoleGrantPermission",
        auth().role_grant_permission(
            s.req(AuthRoleGrantPermissionRequest { name: "r0".into(), perm: Some(perm) })
        )
    );
    admin_only!(
        "RoleRevokePermission",
        auth().role_revoke_permission(s.req(AuthRoleRevokePermissionRequest {
            role: "r0".into(),
            key: b"a".to_vec().into(),
            range_end: Default::default()
        }))
    );
    // One's own user and roles are readable; others' are not.
    admin_only!("UserGet", auth().user_get(s.req(AuthUserGetRequest { name: "root".into() })));
    open_to_all!("UserGet", auth().user_get(s.req(AuthUserGetRequest { name: user.into() })));
    admin_only!("RoleGet", auth().role_get(s.req(AuthRoleGetRequest { role: "root".into() })));
    for role in held {
        open_to_all!("RoleGet", auth().role_get(s.req(AuthRoleGetRequest { role: role.clone() })));
    }
    assert_eq!(auth_state(root).await, before, "{user}'s auth calls changed nothing");

    admin_only!("Hash", maintenance().hash(s.req(HashRequest {})));
    admin_only!("HashKV", maintenance().hash_kv(s.req(HashKvRequest { revision: 0 })));
    admin_only!("Defragment", maintenance().defragment(s.req(DefragmentRequest {})));
    let snapshot = async {
        let mut stream = MaintenanceClient::new(s.streams.clone())
            .snapshot(s.req(SnapshotRequest {}))
            .await?
            .into_inner();
        let first = tokio::time::timeout(STEP, stream.message()).await.expect("bounded");
        first.map(|_| ())
    };
    admin_only!("Snapshot", snapshot);

    let members =
        root.cluster().member_list(root.req(MemberListRequest { linearizable: false })).await;
    let me = members.expect("root lists members").into_inner().members[0].clone();
    // A learner on an address where nothing listens: harmless if it were allowed.
    admin_only!(
        "MemberAdd",
        cluster().member_add(s.req(MemberAddRequest {
            peer_ur_ls: vec!["http://127.0.0.1:9".into()],
            is_learner: true
        }))
    );
    // A member that does not exist: were the call allowed, the answer would be "member
    // not found", still not the refusal expected.
    let stranger = me.id.wrapping_add(1);
    admin_only!(
        "MemberRemove",
        cluster().member_remove(s.req(MemberRemoveRequest { id: stranger }))
    );
    admin_only!(
        "MemberUpdate",
        cluster().member_update(
            s.req(MemberUpdateRequest { id: me.id, peer_ur_ls: me.peer_ur_ls.clone() })
        )
    );
    admin_only!(
        "MemberPromote",
        cluster().member_promote(s.req(MemberPromoteRequest { id: me.id }))
    );

    // Open to every authenticated user in etcd 3.4.
    open_to_all!("Status", maintenance().status(s.req(StatusRequest {})));
    open_to_all!(
        "MemberList",
        cluster().member_list(s.req(MemberListRequest { linearizable: false }))
    );
    open_to_all!(
        "Alarm",
        maintenance().alarm(s.req(AlarmRequest {
            action: AlarmAction::Get as i32,
            member_id: 0,
            alarm: 0
        }))
    );
    open_to_all!("LeaseGrant", s.lease().lease_grant(s.req(LeaseGrantRequest { ttl: 60, id: 0 })));
    // A fresh revision, so that the compaction is never of one already compacted.
    let put = root.put(b"compacted", user.as_bytes()).await.expect("root writes");
    let revision = put.header.expect("a header").revision;
    open_to_all!("Compact", s.kv().compact(s.req(CompactionRequest { revision, physical: false })));
}

// ---------------------------------------------------------------- 3. revocation races

async fn revocation_race(servers: &mut Servers) {
    let ep = servers.endpoint(0);
    let root = enable_with_root(&ep).await;
    root.user_add("writer", "writer-pw").await.expect("add writer");
    root.role_add("w").await.expect("add w");
    root.grant_permission("w", permission::Type::Readwrite, b"race/", &prefix_end(b"race/"))
        .await
        .expect("grant w race/");
    root.grant_role("writer", "w").await.expect("grant w");

    // The moment the revocation is sent, and the moment its answer arrived.
    let sending = Arc::new(AtomicBool::new(false));
    let revoked = Arc::new(AtomicBool::new(false));
    // Writes acknowledged so far: the revocation waits for some, so the race is real
    // however slow logging in is (bcrypt in a debug build).
    let acknowledged = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..2 {
        let (ep, sending, revoked) = (ep.clone(), sending.clone(), revoked.clone());
        let acknowledged = acknowledged.clone();
        writers.spawn(async move {
            let mut session = Session::login(&ep, "writer", "writer-pw").await;
            let mut landed: Vec<i64> = Vec::new();
            let mut refusals: Vec<String> = Vec::new();
            let mut after_revoke = 0;
            for i in 0.. {
                let started_after = revoked.load(Ordering::SeqCst);
                let put = session.put(format!("race/{w}/{i:05}").as_bytes(), b"v").await;
                // A put in flight when the revocation applies may be refused too.
                let may_fail = sending.load(Ordering::SeqCst);
                match put {
                    Ok(put) => {
                        assert!(
                            !started_after,
                            "writer {w}: a put sent after the revocation landed"
                        );
                        assert!(refusals.is_empty(), "writer {w}: a put landed after a refusal");
                        landed.push(put.header.expect("a header").revision);
                        acknowledged.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => {
                        assert!(may_fail, "writer {w}: refused before the revocation: {e:?}");
                        assert!(
                            matches!(e.message(), PERMISSION_DENIED | OLD_REVISION),
                            "writer {w}: refused with {e:?}"
                        );
                        refusals.push(e.message().to_string());
                        if e.message() == OLD_REVISION {
                            // What clients do: authenticate again, and try again.
                            session = Session::login(&ep, "writer", "writer-pw").await;
                        }
                    }
                }
                if started_after {
                    after_revoke += 1;
                    if after_revoke == 5 {
                        break;
                    }
                }
            }
            (landed, refusals)
        });
    }
    while acknowledged.load(Ordering::SeqCst) < 20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sending.store(true, Ordering::SeqCst);
    let header = root.revoke_role("writer", "w").await.expect("revoke w");
    revoked.store(true, Ordering::SeqCst);
    let revision = header.revision;

    let mut landed = Vec::new();
    while let Some(writer) = writers.join_next().await {
        let (mut writes, refusals) = writer.expect("a writer task");
        eprintln!("a writer: {} writes landed, then refused with {refusals:?}", writes.len());
        // Once refused, refused for good, and permission denied in the end (after
        // re-authenticating when the token's auth revision was old).
        assert_eq!(refusals.last().map(String::as_str), Some(PERMISSION_DENIED), "{refusals:?}");
        landed.append(&mut writes);
    }
    assert!(!landed.is_empty(), "writes landed before the revocation");
    assert!(
        landed.iter().all(|&r| r <= revision),
        "writes landed after the revocation's revision {revision}: {:?}",
        landed.iter().filter(|&&r| r > revision).collect::<Vec<_>>()
    );
    let stored = root.get(b"race/", &prefix_end(b"race/")).await.expect("root reads");
    assert_eq!(stored.kvs.len(), landed.len(), "exactly the acknowledged writes are stored");
    assert!(stored.kvs.iter().all(|kv| kv.mod_revision <= revision));
}

async fn deleted_user_everywhere(servers: &mut Servers) {
    let endpoints: Vec<String> = (0..3).map(|i| servers.endpoint(i)).collect();
    let root = enable_with_root(&endpoints[0]).await;
    root.user_add("temp", "temp-pw").await.expect("add temp");
    root.role_add("t").await.expect("add t");
    root.grant_permission("t", permission::Type::Readwrite, b"x", b"y").await.expect("grant t");
    root.grant_role("temp", "t").await.expect("grant t");
    root.put(b"x1", b"v").await.expect("root writes");
    // One token, issued by member 0, works on every member at once (etcd replicates
    // simple tokens through the log, and a member waits to have applied a token's
    // index before judging it); and a token from each member.
    let shared = Session::login(&endpoints[0], "temp", "temp-pw").await;
    let shared = shared.token.expect("a token");
    let mut sessions = Vec::new();
    for (i, endpoint) in endpoints.iter().enumerate() {
        let session = Session::open(endpoint).with_token(shared.to_str().expect("ASCII"));
        session.get(b"x1", b"").await.unwrap_or_else(|e| panic!("member 0's token on {i}: {e:?}"));
        sessions.push((format!("member 0's token on member {i}"), session));
        let session = Session::login(endpoint, "temp", "temp-pw").await;
        session.get(b"x1", b"").await.expect("temp reads");
        sessions.push((format!("member {i}'s token on member {i}"), session));
    }
    let before = root.revision().await;

    let delete = AuthUserDeleteRequest { name: "temp".into() };
    root.auth().user_delete(root.req(delete)).await.expect("delete temp");
    // Right after, on every member: a (linearizable) read and a write. A member that
    // has not applied the delete yet when a write arrives refuses it at apply.
    let refused = |what: &str, got: Result<(), Status>| {
        let e = got.expect_err(&format!("{what} by a deleted user is refused"));
        assert!(
            matches!(e.message(), INVALID_TOKEN | OLD_REVISION | PERMISSION_DENIED),
            "{what}: {e:?}"
        );
    };
    // Sent together, so that no member's answer waits for another's.
    let mut checks = tokio::task::JoinSet::new();
    for (what, s) in sessions.iter().cloned() {
        checks.spawn(async move {
            let read = s.get(b"x1", b"").await.map(drop);
            let write = s.put(b"x2", b"v").await.map(drop);
            (what, read, write)
        });
    }
    while let Some(check) = checks.join_next().await {
        let (what, read, write) = check.expect("a check task");
        refused(&format!("a read with {what}"), read);
        refused(&format!("a write with {what}"), write);
    }
    assert_eq!(root.revision().await, before, "no write of the deleted user landed");
    for (what, s) in &sessions {
        assert_refused(s.authenticate("temp", "temp-pw").await, Code::InvalidArgument, AUTH_FAILED);
        // The linearizable read above made this member apply the delete: its own
        // (serializable) reads see it too.
        let serializable =
            RangeRequest { key: b"x1".to_vec().into(), serializable: true, ..Default::default() };
        let local = s.kv().range(s.req(serializable)).await.map(drop);
        refused(&format!("a serializable read with {what}"), local);
    }
}

// ---------------------------------------------------------------- 4. persistence

async fn persistence(servers: &mut Servers) {
    let ep = servers.endpoint(0);
    let root = enable_with_root(&ep).await;
    root.user_add("alice", "alice-pw").await.expect("add alice");
    root.user_add("bob", "bob-pw").await.expect("add bob");
    for (role, kind, key, end) in [
        ("reader", permission::Type::Read, &b"p/"[..], prefix_end(b"p/")),
        ("writer", permission::Type::Write, b"p/a", b"p/m".to_vec()),
        ("tail", permission::Type::Readwrite, b"z", b"\0".to_vec()),
    ] {
        root.role_add(role).await.expect("role add");
        root.grant_permission(role, kind, key, &end).await.expect("grant");
    }
    root.grant_role("alice", "reader").await.expect("grant");
    root.grant_role("alice", "writer").await.expect("grant");
    root.grant_role("bob", "tail").await.expect("grant");
    root.put(b"p/a", b"1").await.expect("root writes");
    let alice = Session::login(&ep, "alice", "alice-pw").await;
    alice.get(b"p/a", b"").await.expect("alice reads p/");
    // A write after the logins: etcd 3.4 saves its applied index only with changes to
    // the backend, so on restart it applies the Authenticate entries after the last
    // change again, which revives their tokens.
    root.put(b"after", b"logins").await.expect("root writes");
    let state = auth_state(&root).await;
    let status = if servers.rules().auth_status {
        Some(root.auth_status().await.expect("auth status"))
    } else {
        None
    };

    servers.restart(0).await;
    let ep = servers.endpoint(0);
    let anonymous = Session::open(&ep);
    // Tokens lived in the member's memory.
    for old in [&root, &alice] {
        let old = Session::open(&ep)
            .with_token(old.token.as_ref().expect("a token").to_str().expect("ASCII"));
        assert_refused(old.get(b"p/a", b"").await, Code::Unauthenticated, INVALID_TOKEN);
    }
    // Auth is still on, with the same passwords, users, roles and permissions.
    assert_refused(anonymous.get(b"p/a", b"").await, Code::InvalidArgument, USER_EMPTY);
    assert_refused(
        anonymous.authenticate("alice", "wrong").await,
        Code::InvalidArgument,
        AUTH_FAILED,
    );
    let root = Session::login(&ep, "root", ROOT_PASSWORD).await;
    assert_eq!(auth_state(&root).await, state);
    if let Some(before) = status {
        let after = root.auth_status().await.expect("auth status");
        assert!(after.enabled);
        assert_eq!(after.auth_revision, before.auth_revision, "the auth revision is kept");
    }
    let alice = Session::login(&ep, "alice", "alice-pw").await;
    assert_eq!(alice.get(b"p/a", b"").await.expect("alice reads p/").kvs[0].value, &b"1"[..]);
    alice.put(b"p/b", b"2").await.expect("alice writes [p/a, p/m)");
    assert_refused(alice.put(b"p/z", b"2").await, Code::PermissionDenied, PERMISSION_DENIED);
    assert_refused(alice.get(b"z", b"").await, Code::PermissionDenied, PERMISSION_DENIED);
    let bob = Session::login(&ep, "bob", "bob-pw").await;
    bob.put(b"zz", b"3").await.expect("bob writes from z on");
    assert_refused(bob.get(b"p/a", b"").await, Code::PermissionDenied, PERMISSION_DENIED);
}

// ---------------------------------------------------------------- 5. token TTL

async fn token_ttl(servers: &mut Servers) {
    let ep = servers.endpoint(0);
    let root = enable_with_root(&ep).await;
    root.put(b"k", b"v").await.expect("root writes");
    let idle = Session::login(&ep, "root", ROOT_PASSWORD).await;
    let busy = Session::login(&ep, "root", ROOT_PASSWORD).await;
    idle.get(b"k", b"").await.expect("a fresh token works");
    // Used every half second for 5 s (2.5 TTLs): each use renews it.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        busy.get(b"k", b"").await.expect("a token in use stays valid");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_refused(idle.get(b"k", b"").await, Code::Unauthenticated, INVALID_TOKEN);
    assert_refused(idle.put(b"k", b"w").await, Code::Unauthenticated, INVALID_TOKEN);
    busy.get(b"k", b"").await.expect("a token in use stays valid");
    // Expired is expired: a new token works.
    let again = Session::login(&ep, "root", ROOT_PASSWORD).await;
    again.put(b"k", b"w").await.expect("a new token works");
}

// ---------------------------------------------------------------- the reference etcd

/// etcd 3.4.23 clusters of processes, restartable on their data dirs (the reference
/// harness in `oxetcd_tests::reference` runs one member that cannot restart).
#[cfg(feature = "compat")]
mod etcd34 {
    use std::process::{Child, Command, Stdio};

    use oxetcd_tests::member::free_port;
    use oxetcd_tests::reference::ETCD_BIN_VAR;

    pub struct EtcdCluster {
        children: Vec<Option<Child>>,
        client_urls: Vec<String>,
        peer_urls: Vec<String>,
        flags: Vec<String>,
        dir: tempfile::TempDir,
    }

    impl EtcdCluster {
        pub async fn start(n: usize, flags: &[&str]) -> EtcdCluster {
            let url = |_| format!("http://127.0.0.1:{}", free_port());
            let mut cluster = EtcdCluster {
                children: (0..n).map(|_| None).collect(),
                client_urls: (0..n).map(url).collect(),
                peer_urls: (0..n).map(url).collect(),
                flags: flags.iter().map(|f| f.to_string()).collect(),
                dir: tempfile::tempdir().expect("temp dir"),
            };
            for i in 0..n {
                cluster.children[i] = Some(cluster.spawn(i));
            }
            for i in 0..n {
                super::wait_serving(&cluster.endpoint(i)).await;
            }
            cluster
        }

        fn spawn(&self, i: usize) -> Child {
            let bin = std::env::var(ETCD_BIN_VAR).unwrap_or_else(|_| "etcd".to_string());
            let initial: Vec<String> =
                self.peer_urls.iter().enumerate().map(|(j, u)| format!("m{j}={u}")).collect();
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.path().join(format!("m{i}.log")))
                .expect("log file");
            Command::new(&bin)
                .args(["--name", &format!("m{i}")])
                .arg("--data-dir")
                .arg(self.dir.path().join(format!("m{i}")))
                .args(["--listen-client-urls", &self.client_urls[i]])
                .args(["--advertise-client-urls", &self.client_urls[i]])
                .args(["--listen-peer-urls", &self.peer_urls[i]])
                .args(["--initial-advertise-peer-urls", &self.peer_urls[i]])
                .args(["--initial-cluster", &initial.join(",")])
                .args(&self.flags)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run the reference etcd `{bin}`: {e}"))
        }

        pub fn endpoint(&self, i: usize) -> String {
            self.client_urls[i].clone()
        }

        /// Stops member `i` as an operator does (SIGTERM: etcd commits its backend and
        /// exits) and starts it again on its data dir. After a `kill -9`, etcd replays
        /// the log entries its backend had not committed, Authenticate entries included,
        /// which brings recent simple tokens back.
        pub async fn restart(&mut self, i: usize) {
            if let Some(mut child) = self.children[i].take() {
                let pid = child.id().to_string();
                let status = Command::new("kill").args(["-TERM", &pid]).status();
                assert!(status.expect("run kill").success(), "SIGTERM to etcd {pid}");
                let deadline = std::time::Instant::now() + super::STEP;
                while child.try_wait().expect("poll etcd").is_none() {
                    assert!(std::time::Instant::now() < deadline, "etcd {pid} did not stop");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
            self.children[i] = Some(self.spawn(i));
        }
    }

    impl Drop for EtcdCluster {
        fn drop(&mut self) {
            for child in self.children.iter_mut().flatten() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
