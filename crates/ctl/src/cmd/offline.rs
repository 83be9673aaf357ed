//! The commands etcdctl 3.4 runs on files rather than against a server (`snapshot
//! status`, `snapshot restore`, `defrag --data-dir`): done by the utility's code
//! (`oxetcd-utl`, etcd's etcdutl), as etcdctl 3.5 hands them to etcdutl.

use std::path::PathBuf;

use oxetcd_utl::print::{self, Format as UtlFormat};
use oxetcd_utl::progress::Progress;
use oxetcd_utl::restore::{self, RestoreConfig};
use oxetcd_utl::{defrag, status};

use crate::error::{CtlError, CtlResult, exit};
use crate::global::Ctx;
use crate::output::{self, Format};

pub fn snapshot_status(ctx: &Ctx) -> CtlResult {
    let [file] = ctx.flags.args.as_slice() else {
        return Err(CtlError::bad_args("snapshot status requires exactly one argument"));
    };
    let format = match ctx.printer.format {
        Format::Simple => UtlFormat::Simple,
        Format::Json => UtlFormat::Json,
        Format::Fields => UtlFormat::Fields,
        Format::Table => UtlFormat::Table,
        Format::Protobuf => {
            return Err(CtlError::new(
                exit::BAD_FEATURE,
                "protobuf not supported as output format",
            ));
        }
    };
    let status = status::status(&PathBuf::from(file), &Progress::hidden())
        .map_err(|e| CtlError::error(e.to_string()))?;
    output::stdout(&print::status(&status, format));
    Ok(())
}

pub fn snapshot_restore(ctx: &Ctx) -> CtlResult {
    let [file] = ctx.flags.args.as_slice() else {
        return Err(CtlError::bad_args("snapshot restore requires exactly one argument"));
    };
    let flags = &ctx.flags;
    let optional = |name: &str| {
        let value = flags.str(name);
        if value.is_empty() { None } else { Some(PathBuf::from(value)) }
    };
    let cfg = RestoreConfig {
        snapshot: PathBuf::from(file),
        name: flags.str("name"),
        initial_cluster: flags.str("initial-cluster"),
        initial_cluster_token: flags.str("initial-cluster-token"),
        initial_advertise_peer_urls: flags.str("initial-advertise-peer-urls"),
        data_dir: optional("data-dir"),
        wal_dir: optional("wal-dir"),
        skip_hash_check: flags.bool("skip-hash-check"),
    };
    // etcdctl draws no progress bar: its output stays what scripts expect.
    let restored =
        restore::restore(&cfg, &Progress::hidden()).map_err(|e| CtlError::error(e.to_string()))?;
    // etcdctl's restore logs each member it adds to the new cluster's membership.
    let cluster = &restored.member;
    for member in &cluster.members {
        let urls: Vec<String> =
            member.peer_ur_ls.iter().map(|u| crate::go::json_string(u)).collect();
        oxetcd_utl::log::info(
            "added member",
            &[
                ("cluster-id", format!("{:x}", cluster.cluster_id)),
                ("local-member-id", "0".to_string()),
                ("added-peer-id", format!("{:x}", member.id)),
                ("added-peer-peer-urls", format!("[{}]", urls.join(","))),
            ],
        );
    }
    Ok(())
}

pub fn defrag_data_dir(ctx: &Ctx) -> CtlResult {
    let data_dir = PathBuf::from(ctx.flags.str("data-dir"));
    match defrag::defrag(&data_dir, Progress::on_tty("defragmenting")) {
        Ok(_) => Ok(()),
        Err(e) => {
            output::stderr(&format!(
                "Failed to defragment etcd data[{}] ({e})\n",
                data_dir.display()
            ));
            Err(CtlError::silent(exit::ERROR))
        }
    }
}
