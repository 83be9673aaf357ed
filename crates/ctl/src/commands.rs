//! The command tree: every command etcdctl has, its words, use line, short description
//! and flags (one table), and how command words resolve (by unique prefix, as cobra's
//! prefix matching does).

use crate::completion::Shell;
use crate::flags::{Kind, Spec};

/// etcdctl's global (persistent root) flags, in the order of its help.
pub const GLOBAL_FLAGS: &[Spec] = &[
    Spec::new(
        "cacert",
        Kind::Str,
        "",
        "verify certificates of TLS-enabled secure servers using this CA bundle",
    ),
    Spec::new("cert", Kind::Str, "", "identify secure client using this TLS certificate file"),
    Spec::new(
        "command-timeout",
        Kind::Duration,
        "5s",
        "timeout for short running command (excluding dial timeout)",
    ),
    Spec::new("debug", Kind::Bool, "false", "enable client-side debug logging"),
    Spec::new("dial-timeout", Kind::Duration, "2s", "dial timeout for client connections"),
    Spec::new(
        "discovery-srv",
        Kind::Str,
        "",
        "domain name to query for SRV records describing cluster endpoints",
    )
    .short('d'),
    Spec::new(
        "discovery-srv-name",
        Kind::Str,
        "",
        "service name to query when using DNS discovery",
    ),
    Spec::new("endpoints", Kind::StrSlice, "127.0.0.1:2379", "gRPC endpoints"),
    Spec::new("hex", Kind::Bool, "false", "print byte strings as hex encoded strings"),
    Spec::new(
        "insecure-discovery",
        Kind::Bool,
        "true",
        "accept insecure SRV records describing cluster endpoints",
    ),
    Spec::new(
        "insecure-skip-tls-verify",
        Kind::Bool,
        "false",
        "skip server certificate verification (CAUTION: this option should be enabled only for testing purposes)",
    ),
    Spec::new(
        "insecure-transport",
        Kind::Bool,
        "true",
        "disable transport security for client connections",
    ),
    Spec::new("keepalive-time", Kind::Duration, "2s", "keepalive time for client connections"),
    Spec::new(
        "keepalive-timeout",
        Kind::Duration,
        "6s",
        "keepalive timeout for client connections",
    ),
    Spec::new("key", Kind::Str, "", "identify secure client using this TLS key file"),
    Spec::new(
        "password",
        Kind::Str,
        "",
        "password for authentication (if this option is used, --user option shouldn't include password)",
    ),
    Spec::new(
        "user",
        Kind::Str,
        "",
        "username[:password] for authentication (prompt if password is not supplied)",
    ),
    Spec::new(
        "write-out",
        Kind::Str,
        "simple",
        "set the output format (fields, json, protobuf, simple, table)",
    )
    .short('w'),
];

pub const HELP: Spec = Spec::new("help", Kind::Bool, "false", "help for").short('h');

const CLUSTER: Spec =
    Spec::new("cluster", Kind::Bool, "false", "use all endpoints from the cluster member list");

/// What runs when a command is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A parent of subcommands: prints its usage.
    Group,
    Run(Id),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Id {
    Get,
    Put,
    Del,
    Txn,
    Compaction,
    AlarmDisarm,
    AlarmList,
    Defrag,
    EndpointHealth,
    EndpointStatus,
    EndpointHashKv,
    MoveLeader,
    Watch,
    Version,
    LeaseGrant,
    LeaseRevoke,
    LeaseTimeToLive,
    LeaseList,
    LeaseKeepAlive,
    MemberAdd,
    MemberRemove,
    MemberUpdate,
    MemberList,
    MemberPromote,
    SnapshotSave,
    SnapshotRestore,
    SnapshotStatus,
    MakeMirror,
    Migrate,
    Lock,
    Elect,
    AuthEnable,
    AuthDisable,
    AuthStatus,
    UserAdd,
    UserDelete,
    UserGet,
    UserList,
    UserPasswd,
    UserGrantRole,
    UserRevokeRole,
    RoleAdd,
    RoleDelete,
    RoleGet,
    RoleList,
    RoleGrantPermission,
    RoleRevokePermission,
    CheckPerf,
    CheckDatascale,
    Completion(crate::completion::Shell),
    /// cobra's PowerShell script, which oxetcdctl does not write.
    CompletionPowershell,
}

#[derive(Debug, Clone, Copy)]
pub struct Command {
    /// Space-separated words: `"lease grant"`.
    pub path: &'static str,
    /// The use line after the command's name, as cobra's `Use`.
    pub usage: &'static str,
    pub short: &'static str,
    pub flags: &'static [Spec],
    /// Flags this command passes to its subcommands (they read them from the
    /// environment too).
    pub persistent: &'static [Spec],
    pub action: Action,
}

const fn cmd(path: &'static str, usage: &'static str, short: &'static str, id: Id) -> Command {
    Command { path, usage, short, flags: &[], persistent: &[], action: Action::Run(id) }
}

const fn group(path: &'static str, usage: &'static str, short: &'static str) -> Command {
    Command { path, usage, short, flags: &[], persistent: &[], action: Action::Group }
}

impl Command {
    const fn flags(mut self, flags: &'static [Spec]) -> Command {
        self.flags = flags;
        self
    }

    const fn persistent(mut self, flags: &'static [Spec]) -> Command {
        self.persistent = flags;
        self
    }

    pub fn name(&self) -> &'static str {
        self.path.rsplit(' ').next().unwrap_or(self.path)
    }

    fn parent(&self) -> Option<&'static str> {
        self.path.rsplit_once(' ').map(|(p, _)| p)
    }
}

const GET_FLAGS: &[Spec] = &[
    Spec::new("consistency", Kind::Str, "l", "Linearizable(l) or Serializable(s)"),
    Spec::new("order", Kind::Str, "", "Order of results; ASCEND or DESCEND (ASCEND by default)"),
    Spec::new("sort-by", Kind::Str, "", "Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION"),
    Spec::new("limit", Kind::Int, "0", "Maximum number of results"),
    Spec::new("prefix", Kind::Bool, "false", "Get keys with matching prefix"),
    Spec::new(
        "from-key",
        Kind::Bool,
        "false",
        "Get keys that are greater than or equal to the given key using byte compare",
    ),
    Spec::new("rev", Kind::Int, "0", "Specify the kv revision"),
    Spec::new("keys-only", Kind::Bool, "false", "Get only the keys"),
    Spec::new(
        "print-value-only",
        Kind::Bool,
        "false",
        "Only write values when using the \"simple\" output format",
    ),
];
pub const PUT_FLAGS: &[Spec] = &[
    Spec::new("lease", Kind::Str, "0", "lease ID (in hexadecimal) to attach to the key"),
    Spec::new(
        "prev-kv",
        Kind::Bool,
        "false",
        "return the previous key-value pair before modification",
    ),
    Spec::new("ignore-value", Kind::Bool, "false", "updates the key using its current value"),
    Spec::new("ignore-lease", Kind::Bool, "false", "updates the key using its current lease"),
];
pub const DEL_FLAGS: &[Spec] = &[
    Spec::new("prefix", Kind::Bool, "false", "delete keys with matching prefix"),
    Spec::new("prev-kv", Kind::Bool, "false", "return deleted key-value pairs"),
    Spec::new(
        "from-key",
        Kind::Bool,
        "false",
        "delete keys that are greater than or equal to the given key using byte compare",
    ),
];
pub const WATCH_FLAGS: &[Spec] = &[
    Spec::new("interactive", Kind::Bool, "false", "Interactive mode").short('i'),
    Spec::new("prefix", Kind::Bool, "false", "Watch on a prefix if prefix is set"),
    Spec::new("rev", Kind::Int, "0", "Revision to start watching"),
    Spec::new(
        "prev-kv",
        Kind::Bool,
        "false",
        "get the previous key-value pair before the event happens",
    ),
];
const PERM_FLAGS_GRANT: &[Spec] = &[
    Spec::new("prefix", Kind::Bool, "false", "grant a prefix permission"),
    Spec::new(
        "from-key",
        Kind::Bool,
        "false",
        "grant a permission of keys that are greater than or equal to the given key using byte compare",
    ),
];
const PERM_FLAGS_REVOKE: &[Spec] = &[
    Spec::new("prefix", Kind::Bool, "false", "revoke a prefix permission"),
    Spec::new(
        "from-key",
        Kind::Bool,
        "false",
        "revoke a permission of keys that are greater than or equal to the given key using byte compare",
    ),
];

/// cobra's flag of its completion commands (bash's script has no descriptions to leave out).
const NO_DESCRIPTIONS: Spec =
    Spec::new("no-descriptions", Kind::Bool, "false", "disable completion descriptions");

pub const COMMANDS: &[Command] = &[
    cmd("get", "get [options] <key> [range_end]", "Gets the key or a range of keys", Id::Get).flags(GET_FLAGS),
    cmd("put", "put [options] <key> <value> (<value> can also be given from stdin)", "Puts the given key into the store", Id::Put).flags(PUT_FLAGS),
    cmd("del", "del [options] <key> [range_end]", "Removes the specified key or range of keys [key, range_end)", Id::Del).flags(DEL_FLAGS),
    cmd("txn", "txn [options]", "Txn processes all the requests in one transaction", Id::Txn).flags(&[
        Spec::new("interactive", Kind::Bool, "false", "Input transaction in interactive mode").short('i'),
    ]),
    cmd("compaction", "compaction [options] <revision>", "Compacts the event history in etcd", Id::Compaction).flags(&[
        Spec::new("physical", Kind::Bool, "false", "'true' to wait for compaction to physically remove all old revisions"),
    ]),
    group("alarm", "alarm <subcommand>", "Alarm related commands"),
    cmd("alarm disarm", "disarm", "Disarms all alarms", Id::AlarmDisarm),
    cmd("alarm list", "list", "Lists all alarms", Id::AlarmList),
    cmd("defrag", "defrag", "Defragments the storage of the etcd members with given endpoints", Id::Defrag)
        .flags(&[Spec::new("data-dir", Kind::Str, "", "Optional. If present, defragments a data directory not in use by etcd.")])
        .persistent(&[CLUSTER]),
    group("endpoint", "endpoint <subcommand>", "Endpoint related commands").persistent(&[CLUSTER]),
    cmd("endpoint health", "health", "Checks the healthiness of endpoints specified in `--endpoints` flag", Id::EndpointHealth),
    cmd("endpoint status", "status", "Prints out the status of endpoints specified in `--endpoints` flag", Id::EndpointStatus),
    cmd("endpoint hashkv", "hashkv", "Prints the KV history hash for each endpoint in --endpoints", Id::EndpointHashKv)
        .persistent(&[Spec::new("rev", Kind::Int, "0", "maximum revision to hash (default: all revisions)")]),
    cmd("move-leader", "move-leader <transferee-member-id>", "Transfers leadership to another etcd cluster member.", Id::MoveLeader),
    cmd("watch", "watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]", "Watches events stream on keys or prefixes", Id::Watch).flags(WATCH_FLAGS),
    cmd("version", "version", "Prints the version of etcdctl", Id::Version),
    group("lease", "lease <subcommand>", "Lease related commands"),
    cmd("lease grant", "grant <ttl>", "Creates leases", Id::LeaseGrant),
    cmd("lease revoke", "revoke <leaseID>", "Revokes leases", Id::LeaseRevoke),
    cmd("lease timetolive", "timetolive <leaseID> [options]", "Get lease information", Id::LeaseTimeToLive)
        .flags(&[Spec::new("keys", Kind::Bool, "false", "Get keys attached to this lease")]),
    cmd("lease list", "list", "List all active leases", Id::LeaseList),
    cmd("lease keep-alive", "keep-alive [options] <leaseID>", "Keeps leases alive (renew)", Id::LeaseKeepAlive)
        .flags(&[Spec::new("once", Kind::Bool, "false", "Resets the keep-alive time to its original value and exits immediately")]),
    group("member", "member <subcommand>", "Membership related commands"),
    cmd("member add", "add <memberName> [options]", "Adds a member into the cluster", Id::MemberAdd).flags(&[
        Spec::new("peer-urls", Kind::Str, "", "comma separated peer URLs for the new member."),
        Spec::new("learner", Kind::Bool, "false", "indicates if the new member is raft learner"),
    ]),
    cmd("member remove", "remove <memberID>", "Removes a member from the cluster", Id::MemberRemove),
    cmd("member update", "update <memberID> [options]", "Updates a member in the cluster", Id::MemberUpdate)
        .flags(&[Spec::new("peer-urls", Kind::Str, "", "comma separated peer URLs for the updated member.")]),
    cmd("member list", "list", "Lists all members in the cluster", Id::MemberList),
    cmd("member promote", "promote <memberID>", "Promotes a non-voting member in the cluster", Id::MemberPromote),
    group("snapshot", "snapshot <subcommand>", "Manages etcd node snapshots"),
    cmd("snapshot save", "save <filename>", "Stores an etcd node backend snapshot to a given file", Id::SnapshotSave),
    cmd("snapshot restore", "restore <filename> [options]", "Restores an etcd member snapshot to an etcd directory", Id::SnapshotRestore).flags(&[
        Spec::new("data-dir", Kind::Str, "", "Path to the data directory"),
        Spec::new("wal-dir", Kind::Str, "", "Path to the WAL directory (use --data-dir if none given)"),
        Spec::new("initial-cluster", Kind::Str, "default=http://localhost:2380", "Initial cluster configuration for restore bootstrap"),
        Spec::new("initial-cluster-token", Kind::Str, "etcd-cluster", "Initial cluster token for the etcd cluster during restore bootstrap"),
        Spec::new("initial-advertise-peer-urls", Kind::Str, "http://localhost:2380", "List of this member's peer URLs to advertise to the rest of the cluster"),
        Spec::new("name", Kind::Str, "default", "Human-readable name for this member"),
        Spec::new("skip-hash-check", Kind::Bool, "false", "Ignore snapshot integrity hash value (required if copied from data directory)"),
    ]),
    cmd("snapshot status", "status <filename>", "Gets backend snapshot status of a given file", Id::SnapshotStatus),
    cmd("make-mirror", "make-mirror [options] <destination>", "Makes a mirror at the destination etcd cluster", Id::MakeMirror).flags(&[
        Spec::new("dest-cacert", Kind::Str, "", "Verify certificates of TLS enabled secure servers using this CA bundle"),
        Spec::new("dest-cert", Kind::Str, "", "Identify secure client using this TLS certificate file for the destination cluster"),
        Spec::new("dest-insecure-transport", Kind::Bool, "true", "Disable transport security for client connections"),
        Spec::new("dest-key", Kind::Str, "", "Identify secure client using this TLS key file"),
        Spec::new("dest-prefix", Kind::Str, "", "destination prefix to mirror a prefix to a different prefix in the destination cluster"),
        Spec::new("no-dest-prefix", Kind::Bool, "false", "mirror key-values to the root of the destination cluster"),
        Spec::new("prefix", Kind::Str, "", "Key-value prefix to mirror"),
    ]),
    cmd("migrate", "migrate", "Migrates keys in a v2 store to a mvcc store", Id::Migrate),
    cmd("lock", "lock <lockname> [exec-command arg1 arg2 ...]", "Acquires a named lock", Id::Lock)
        .flags(&[Spec::new("ttl", Kind::Int, "10", "timeout for session")]),
    cmd("elect", "elect <election-name> [proposal]", "Observes and participates in leader election", Id::Elect)
        .flags(&[Spec::new("listen", Kind::Bool, "false", "observation mode").short('l')]),
    group("auth", "auth <enable or disable>", "Enable or disable authentication"),
    cmd("auth enable", "enable", "Enables authentication", Id::AuthEnable),
    cmd("auth disable", "disable", "Disables authentication", Id::AuthDisable),
    cmd("auth status", "status", "Returns authentication status", Id::AuthStatus),
    group("user", "user <subcommand>", "User related commands"),
    cmd("user add", "add <user name or user:password> [options]", "Adds a new user", Id::UserAdd).flags(&[
        Spec::new("interactive", Kind::Bool, "true", "Read password from stdin instead of interactive terminal"),
        Spec::new("new-user-password", Kind::Str, "", "Supply password from the command line flag"),
        Spec::new("no-password", Kind::Bool, "false", "Create a user without password (CN based auth only)"),
    ]),
    cmd("user delete", "delete <user name>", "Deletes a user", Id::UserDelete),
    cmd("user get", "get <user name> [options]", "Gets detailed information of a user", Id::UserGet)
        .flags(&[Spec::new("detail", Kind::Bool, "false", "Show permissions of roles granted to the user")]),
    cmd("user list", "list", "Lists all users", Id::UserList),
    cmd("user passwd", "passwd <user name> [options]", "Changes password of user", Id::UserPasswd)
        .flags(&[Spec::new("interactive", Kind::Bool, "true", "If true, read password from stdin instead of interactive terminal")]),
    cmd("user grant-role", "grant-role <user name> <role name>", "Grants a role to a user", Id::UserGrantRole),
    cmd("user revoke-role", "revoke-role <user name> <role name>", "Revokes a role from a user", Id::UserRevokeRole),
    group("role", "role <subcommand>", "Role related commands"),
    cmd("role add", "add <role name>", "Adds a new role", Id::RoleAdd),
    cmd("role delete", "delete <role name>", "Deletes a role", Id::RoleDelete),
    cmd("role get", "get <role name>", "Gets detailed information of a role", Id::RoleGet),
    cmd("role list", "list", "Lists all roles", Id::RoleList),
    cmd("role grant-permission", "grant-permission [options] <role name> <permission type> <key> [endkey]", "Grants a key to a role", Id::RoleGrantPermission)
        .flags(PERM_FLAGS_GRANT),
    cmd("role revoke-permission", "revoke-permission <role name> <key> [endkey]", "Revokes a key from a role", Id::RoleRevokePermission)
        .flags(PERM_FLAGS_REVOKE),
    group("check", "check <subcommand>", "commands for checking properties of the etcd cluster"),
    cmd("check perf", "perf [options]", "Check the performance of the etcd cluster", Id::CheckPerf).flags(&[
        Spec::new("load", Kind::Str, "s", "The performance check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)"),
        Spec::new("prefix", Kind::Str, "/etcdctl-check-perf/", "The prefix for writing the performance check's keys."),
        Spec::new("auto-compact", Kind::Bool, "false", "Compact storage with last revision after test is finished."),
        Spec::new("auto-defrag", Kind::Bool, "false", "Defragment storage after test is finished."),
    ]),
    cmd("check datascale", "datascale [options]", "Check the memory usage of holding data for different workloads on a given server endpoint.", Id::CheckDatascale).flags(&[
        Spec::new("load", Kind::Str, "s", "The datascale check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)"),
        Spec::new("prefix", Kind::Str, "/etcdctl-check-datascale/", "The prefix for writing the datascale check's keys."),
        Spec::new("auto-compact", Kind::Bool, "false", "Compact storage with last revision after test is finished."),
        Spec::new("auto-defrag", Kind::Bool, "false", "Defragment storage after test is finished."),
    ]),
    group("completion", "completion", "Generate the autocompletion script for the specified shell"),
    cmd("completion bash", "bash", "Generate the autocompletion script for bash", Id::Completion(Shell::Bash)),
    cmd("completion fish", "fish", "Generate the autocompletion script for fish", Id::Completion(Shell::Fish))
        .flags(&[NO_DESCRIPTIONS]),
    cmd("completion powershell", "powershell", "Generate the autocompletion script for powershell", Id::CompletionPowershell)
        .flags(&[NO_DESCRIPTIONS]),
    cmd("completion zsh", "zsh", "Generate the autocompletion script for zsh", Id::Completion(Shell::Zsh))
        .flags(&[NO_DESCRIPTIONS]),
];

/// The command `words` name: each word the exact name or the unique prefix of one
/// child of the command before it (cobra's prefix matching). Returns how many words
/// were used.
pub fn find(words: &[String]) -> Result<(Option<&'static Command>, usize), String> {
    let mut found: Option<&'static Command> = None;
    let mut used = 0;
    for word in words {
        let parent = found.map(|c| c.path);
        if let Some(c) = found
            && c.action != Action::Group
        {
            break;
        }
        let children: Vec<&'static Command> =
            COMMANDS.iter().filter(|c| c.parent() == parent).collect();
        let exact = children.iter().find(|c| c.name() == word.as_str());
        let by_prefix: Vec<&&'static Command> =
            children.iter().filter(|c| c.name().starts_with(word.as_str())).collect();
        let chosen = match (exact, by_prefix.as_slice()) {
            (Some(c), _) => *c,
            (None, [only]) => **only,
            _ => {
                if found.is_none() {
                    return Err(format!(
                        "unknown command {} for \"etcdctl\"",
                        crate::go::quote(word)
                    ));
                }
                break;
            }
        };
        found = Some(chosen);
        used += 1;
    }
    Ok((found, used))
}

/// Every flag that can take a value, to tell flag values from command words.
pub fn all_specs() -> Vec<Spec> {
    let mut specs = GLOBAL_FLAGS.to_vec();
    for c in COMMANDS {
        specs.extend_from_slice(c.flags);
        specs.extend_from_slice(c.persistent);
    }
    specs
}

/// The flags a command inherits: the globals, and its ancestors' persistent flags.
pub fn inherited(command: &Command) -> Vec<Spec> {
    let mut specs = GLOBAL_FLAGS.to_vec();
    let mut parent = command.parent();
    while let Some(path) = parent {
        if let Some(p) = COMMANDS.iter().find(|c| c.path == path) {
            specs.extend_from_slice(p.persistent);
        }
        parent = path.rsplit_once(' ').map(|(p, _)| p);
    }
    specs
}

/// The flags a command defines itself (its own and its own persistent ones).
pub fn local(command: &Command) -> Vec<Spec> {
    let mut specs = command.flags.to_vec();
    specs.extend_from_slice(command.persistent);
    specs.push(HELP);
    specs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn commands_resolve_by_unique_prefix() {
        let (c, used) = find(&words(&["mem", "li"])).unwrap();
        assert_eq!(c.unwrap().path, "member list");
        assert_eq!(used, 2);
        let (c, used) = find(&words(&["get", "foo"])).unwrap();
        assert_eq!(c.unwrap().path, "get");
        assert_eq!(used, 1);
        assert!(find(&words(&["bogus"])).is_err());
        // Ambiguous prefixes ("e": elect, endpoint) name no command.
        assert!(find(&words(&["e"])).is_err());
    }

    #[test]
    fn endpoint_subcommands_inherit_cluster() {
        let status = COMMANDS.iter().find(|c| c.path == "endpoint status").unwrap();
        assert!(inherited(status).iter().any(|s| s.name == "cluster"));
    }
}
