//! The commands, one module per family, each following etcdctl 3.4's command of the same
//! name: its argument checks (messages and exit codes), its calls, its output.

mod auth;
mod check;
mod cluster;
mod kv;
mod lease;
mod lock;
mod mirror;
mod offline;
mod txn;
mod watch;

use crate::commands::Id;
use crate::error::{CtlError, CtlResult};
use crate::global::Ctx;

pub async fn run(id: Id, ctx: Ctx) -> CtlResult {
    match id {
        Id::Get => kv::get(&ctx).await,
        Id::Put => kv::put(&ctx).await,
        Id::Del => kv::del(&ctx).await,
        Id::Txn => txn::txn(&ctx).await,
        Id::Compaction => kv::compaction(&ctx).await,
        Id::Watch => watch::watch(&ctx).await,
        Id::LeaseGrant => lease::grant(&ctx).await,
        Id::LeaseRevoke => lease::revoke(&ctx).await,
        Id::LeaseTimeToLive => lease::time_to_live(&ctx).await,
        Id::LeaseList => lease::list(&ctx).await,
        Id::LeaseKeepAlive => lease::keep_alive(&ctx).await,
        Id::MemberAdd => cluster::member_add(&ctx).await,
        Id::MemberRemove => cluster::member_remove(&ctx).await,
        Id::MemberUpdate => cluster::member_update(&ctx).await,
        Id::MemberList => cluster::member_list(&ctx).await,
        Id::MemberPromote => cluster::member_promote(&ctx).await,
        Id::EndpointHealth => cluster::endpoint_health(&ctx).await,
        Id::EndpointStatus => cluster::endpoint_status(&ctx).await,
        Id::EndpointHashKv => cluster::endpoint_hash_kv(&ctx).await,
        Id::MoveLeader => cluster::move_leader(&ctx).await,
        Id::AlarmDisarm => cluster::alarm(&ctx, true).await,
        Id::AlarmList => cluster::alarm(&ctx, false).await,
        Id::Defrag => cluster::defrag(&ctx).await,
        Id::SnapshotSave => cluster::snapshot_save(&ctx).await,
        Id::AuthEnable => auth::auth_enable(&ctx).await,
        Id::AuthDisable => auth::auth_disable(&ctx).await,
        Id::AuthStatus => auth::auth_status(&ctx).await,
        Id::UserAdd => auth::user_add(&ctx).await,
        Id::UserDelete => auth::user_delete(&ctx).await,
        Id::UserGet => auth::user_get(&ctx).await,
        Id::UserList => auth::user_list(&ctx).await,
        Id::UserPasswd => auth::user_passwd(&ctx).await,
        Id::UserGrantRole => auth::user_grant_role(&ctx).await,
        Id::UserRevokeRole => auth::user_revoke_role(&ctx).await,
        Id::RoleAdd => auth::role_add(&ctx).await,
        Id::RoleDelete => auth::role_delete(&ctx).await,
        Id::RoleGet => auth::role_get(&ctx).await,
        Id::RoleList => auth::role_list(&ctx).await,
        Id::RoleGrantPermission => auth::role_grant_permission(&ctx).await,
        Id::RoleRevokePermission => auth::role_revoke_permission(&ctx).await,
        Id::Lock => lock::lock(&ctx).await,
        Id::Elect => lock::elect(&ctx).await,
        Id::SnapshotStatus => offline::snapshot_status(&ctx),
        Id::SnapshotRestore => offline::snapshot_restore(&ctx),
        Id::MakeMirror => mirror::make_mirror(&ctx).await,
        Id::Migrate => Err(CtlError::not_built("migrate (oxetcd serves no v2 store)")),
        Id::CheckPerf => check::perf(&ctx).await,
        Id::CheckDatascale => check::datascale(&ctx).await,
        // Answered before a context is made (they need no connection).
        Id::Version | Id::Completion(_) => Ok(()),
        Id::CompletionPowershell => Err(CtlError::not_built("completion powershell")),
    }
}
