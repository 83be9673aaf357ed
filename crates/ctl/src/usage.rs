//! Usage text in etcdctl's own template (NAME, USAGE, COMMANDS, DESCRIPTION, OPTIONS,
//! GLOBAL OPTIONS), aligned by Go's tabwriter with tabs as etcdctl does.

use crate::commands::{self, Action, COMMANDS, Command};
use crate::flags::{Kind, Spec};
use crate::go;

const ROOT_SHORT: &str = "A simple command line client for etcd3.";

/// Commands of etcdctl 3.5 that 3.4's usage does not list: left out of the usage text so
/// that it stays 3.4's.
const HIDDEN: &[&str] = &["auth status"];

/// The `Long` descriptions etcdctl's commands carry.
fn long(path: &str) -> Option<&'static str> {
    Some(match path {
        "put" => {
            "Puts the given key into the store.\n\nWhen <value> begins with '-', <value> is interpreted as a flag.\nInsert '--' for workaround:\n\n$ put <key> -- <value>\n$ put -- <key> <value>\n\nIf <value> isn't given as a command line argument and '--ignore-value' is not specified,\nthis command tries to read the value from standard input.\n\nIf <lease> isn't given as a command line argument and '--ignore-lease' is not specified,\nthis command tries to read the value from standard input.\n\nFor example,\n$ cat file | put <key>\nwill store the content of the file to <key>."
        }
        "member list" => {
            "When --write-out is set to simple, this command prints out comma-separated member lists for each endpoint.\nThe items in the lists are ID, Status, Name, Peer Addrs, Client Addrs, Is Learner."
        }
        "member promote" => "Promotes a non-voting learner member to a voting one in the cluster.",
        "endpoint status" => {
            "When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.\nThe items in the lists are endpoint, ID, version, db size, is leader, is learner, raft term, raft index, raft applied index, errors."
        }
        "check datascale" => {
            "If no endpoint is provided, localhost will be used. If multiple endpoints are provided, first endpoint will be used."
        }
        "completion" => {
            "Generate the autocompletion script for etcdctl for the specified shell.\nSee each sub-command's help for details on how to use the generated script."
        }
        "completion bash" => {
            "Generate the autocompletion script for the bash shell.\n\nLoad it in the current shell with:\n\n\tsource <(etcdctl completion bash)\n\nor, for every new shell, save it in bash-completion's directory:\n\n\tetcdctl completion bash > /etc/bash_completion.d/etcdctl"
        }
        "completion zsh" => {
            "Generate the autocompletion script for the zsh shell (bash's, through zsh's bashcompinit).\n\nLoad it in the current shell with:\n\n\tsource <(etcdctl completion zsh)"
        }
        "completion fish" => {
            "Generate the autocompletion script for the fish shell.\n\nLoad it in the current shell with:\n\n\tetcdctl completion fish | source\n\nor, for every new shell, save it as ~/.config/fish/completions/etcdctl.fish"
        }
        "snapshot status" => {
            "When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.\nThe items in the lists are hash, revision, total keys, total size."
        }
        _ => return None,
    })
}

/// etcdctl's `etcdFlagUsages`, flags sorted by name as pflag visits them.
fn flag_lines(specs: &[Spec], help_for: &str) -> String {
    let mut specs: Vec<Spec> = specs.to_vec();
    specs.sort_by_key(|s| s.name);
    let mut text = String::new();
    for spec in specs {
        let mut line = match spec.short {
            Some(c) => format!("  -{c}, --{}", spec.name),
            None => format!("      --{}", spec.name),
        };
        let default = match spec.kind {
            Kind::Str => go::quote(spec.default),
            Kind::StrSlice => format!("[{}]", spec.default),
            _ => spec.default.to_string(),
        };
        if spec.kind == Kind::Bool {
            line.push_str(&format!("[={default}]"));
        } else {
            line.push_str(&format!("={default}"));
        }
        let usage = if spec.name == "help" {
            format!("help for {help_for}")
        } else {
            spec.usage.to_string()
        };
        text.push_str(&format!("{line}\t{usage}\n"));
    }
    text
}

fn children(path: Option<&str>) -> Vec<&'static Command> {
    let mut list: Vec<&'static Command> = COMMANDS
        .iter()
        .filter(|c| {
            c.path.rsplit_once(' ').map(|(p, _)| p) == path
                && !(path.is_none() && c.path.contains(' '))
        })
        .collect();
    list.sort_by_key(|c| c.name());
    list
}

/// Every command below `path`, depth first, in name order (etcdctl's `getSubCommands`).
fn descendants(path: Option<&str>) -> Vec<&'static Command> {
    let mut out = Vec::new();
    for c in children(path) {
        out.push(c);
        out.extend(descendants(Some(c.path)));
    }
    out
}

/// What one usage page shows.
struct Page<'a> {
    name: &'a str,
    short: &'a str,
    use_line: &'a str,
    root: bool,
    subcommands: &'a [(String, &'a str)],
    long: Option<&'a str>,
    local_flags: &'a str,
    global_flags: &'a str,
}

fn render(page: Page<'_>) -> String {
    let Page { name, short, use_line, root, subcommands, long, local_flags, global_flags } = page;
    let mut text = format!("NAME:\n\t{name} - {short}\n\nUSAGE:\n\t{use_line}\n");
    if root {
        text.push_str(&format!("\nVERSION:\n\t{}\n", crate::VERSION));
    }
    if !subcommands.is_empty() {
        text.push_str(&format!("\nAPI VERSION:\n\t{}\n", crate::API_VERSION));
        text.push_str("\n\nCOMMANDS:\n");
        for (sub, short) in subcommands {
            text.push_str(&format!("\t{sub}\t{short}\n"));
        }
    }
    if let Some(long) = long {
        text.push_str("\nDESCRIPTION:\n");
        for line in long.trim_matches(['\n', '\t', ' ']).split('\n') {
            text.push_str(&format!("\t{line}\n"));
        }
    }
    if !local_flags.is_empty() {
        text.push_str(&format!("\nOPTIONS:\n{local_flags}"));
    }
    if !global_flags.is_empty() {
        text.push_str(&format!("\nGLOBAL OPTIONS:\n{global_flags}"));
    }
    text.push('\n');
    tabwriter(&text)
}

pub fn root() -> String {
    let mut subs: Vec<(String, &str)> = descendants(None)
        .into_iter()
        .filter(|c| matches!(c.action, Action::Run(_)) && !HIDDEN.contains(&c.path))
        .map(|c| (c.path.to_string(), c.short))
        .collect();
    // cobra's own command, listed among etcdctl's.
    subs.push(("help".to_string(), "Help about any command"));
    subs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut flags = commands::GLOBAL_FLAGS.to_vec();
    flags.push(Spec::new("help", Kind::Bool, "false", "").short('h'));
    render(Page {
        name: "etcdctl",
        short: ROOT_SHORT,
        use_line: "etcdctl [flags]",
        root: true,
        subcommands: &subs,
        long: None,
        local_flags: &flag_lines(&flags, "etcdctl"),
        global_flags: "",
    })
}

pub fn command(command: &Command) -> String {
    let use_line = format!("etcdctl {}{} [flags]", parent_words(command), command.usage);
    let subs: Vec<(String, &str)> = descendants(Some(command.path))
        .into_iter()
        .filter(|c| matches!(c.action, Action::Run(_)) && !HIDDEN.contains(&c.path))
        .map(|c| {
            let relative = c.path.strip_prefix(command.path).unwrap_or(c.path).trim_start();
            (relative.to_string(), c.short)
        })
        .collect();
    render(Page {
        name: command.path,
        short: command.short,
        use_line: &use_line,
        root: false,
        subcommands: &subs,
        long: long(command.path),
        local_flags: &flag_lines(&commands::local(command), command.name()),
        global_flags: &flag_lines(&commands::inherited(command), command.name()),
    })
}

fn parent_words(command: &Command) -> String {
    match command.path.rsplit_once(' ') {
        Some((parent, _)) => format!("{parent} "),
        None => String::new(),
    }
}

/// Go's `tabwriter.NewWriter(w, 0, 8, 1, '\t', 0)`: each tab-terminated cell padded with
/// tabs to its column's width (the widest cell of the column's block of consecutive lines,
/// plus one, rounded up to a multiple of 8).
pub fn tabwriter(text: &str) -> String {
    const TAB_WIDTH: usize = 8;
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    // widths[line][column] for the tab-terminated cells.
    let mut widths: Vec<Vec<usize>> = lines.iter().map(|cells| vec![0; cells.len() - 1]).collect();
    fn fill(
        lines: &[Vec<&str>],
        widths: &mut [Vec<usize>],
        column: usize,
        start: usize,
        end: usize,
    ) {
        let mut i = start;
        while i < end {
            if lines[i].len() - 1 <= column {
                i += 1;
                continue;
            }
            let block_start = i;
            while i < end && lines[i].len() - 1 > column {
                i += 1;
            }
            let width = lines[block_start..i]
                .iter()
                .map(|cells| cells[column].chars().count() + 1)
                .max()
                .unwrap_or(0);
            let width = width.div_ceil(TAB_WIDTH) * TAB_WIDTH;
            for w in &mut widths[block_start..i] {
                w[column] = width;
            }
            fill(lines, widths, column + 1, block_start, i);
        }
    }
    fill(&lines, &mut widths, 0, 0, lines.len());
    let mut out = String::new();
    for (n, (cells, widths)) in lines.iter().zip(&widths).enumerate() {
        for (cell, width) in cells.iter().zip(widths) {
            out.push_str(cell);
            let tabs = (width - cell.chars().count()).div_ceil(TAB_WIDTH);
            out.push_str(&"\t".repeat(tabs.max(1)));
        }
        out.push_str(cells[cells.len() - 1]);
        if n + 1 < lines.len() {
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabwriter_pads_columns_with_tabs() {
        let text = "      --consistency=\"l\"\tx\n  -h, --help[=false]\ty\n      --print-value-only[=false]\tz\n";
        let out = tabwriter(text);
        assert_eq!(
            out,
            "      --consistency=\"l\"\t\t\tx\n  -h, --help[=false]\t\t\ty\n      --print-value-only[=false]\tz\n"
        );
    }

    #[test]
    fn get_usage_reads_like_etcdctl() {
        let get = COMMANDS.iter().find(|c| c.path == "get").unwrap();
        let text = command(get);
        assert!(text.starts_with("NAME:\n\tget - Gets the key or a range of keys\n\nUSAGE:\n\tetcdctl get [options] <key> [range_end] [flags]\n\nOPTIONS:\n"));
        assert!(text.contains("  -w, --write-out=\"simple\"\t\t\tset the output format"));
    }
}
