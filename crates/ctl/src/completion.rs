//! `completion bash|zsh|fish`: shell scripts that complete oxetcdctl's command words and
//! flags, written from the command table itself (so they cannot drift from it).
//!
//! etcdctl's (cobra's) scripts call back into the binary (`etcdctl __complete …`) on every
//! key press; these are static instead: everything oxetcdctl completes (command words
//! and flag names) is known when the script is written, and a static script neither
//! starts a process per key press nor depends on a hidden command.

use crate::commands::{Action, COMMANDS, Command, GLOBAL_FLAGS, HELP, inherited, local};
use crate::flags::{Kind, Spec};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// The completion script for `shell`, completing the program called `program` (the name
/// oxetcdctl was run as: `etcdctl` where it stands in for etcdctl).
pub fn script(shell: Shell, program: &str, with_descriptions: bool) -> String {
    match shell {
        Shell::Bash => bash(program),
        Shell::Zsh => zsh(program),
        Shell::Fish => fish(program, with_descriptions),
    }
}

/// The command paths below `parent` (`None`: the top level), by name.
fn children(parent: Option<&str>) -> Vec<&'static Command> {
    let mut list: Vec<&'static Command> =
        COMMANDS.iter().filter(|c| c.path.rsplit_once(' ').map(|(p, _)| p) == parent).collect();
    list.sort_by_key(|c| c.name());
    list
}

/// Every flag a command takes (its own, its ancestors' persistent ones, the globals).
fn flags_of(command: Option<&Command>) -> Vec<Spec> {
    let mut specs = match command {
        Some(c) => {
            let mut specs = local(c);
            specs.extend(inherited(c));
            specs
        }
        None => {
            let mut specs = GLOBAL_FLAGS.to_vec();
            specs.push(HELP);
            specs
        }
    };
    specs.sort_by_key(|s| s.name);
    specs.dedup_by_key(|s| s.name);
    specs
}

fn flag_words(specs: &[Spec]) -> String {
    let mut words: Vec<String> = specs.iter().map(|s| format!("--{}", s.name)).collect();
    words.extend(specs.iter().filter_map(|s| s.short).map(|c| format!("-{c}")));
    words.join(" ")
}

/// A shell function name made of `program` (which may hold dashes or dots).
fn function_name(program: &str) -> String {
    program.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

/// Quoted for a shell's single quotes (bash, zsh and fish alike accept `'\''`… except
/// fish, which takes `\'` inside them; see [`fish_quote`]).
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

fn bash(program: &str) -> String {
    let name = function_name(program);
    let mut children_cases = String::new();
    let mut flag_cases = String::new();
    flag_cases
        .push_str(&format!("        '') echo {} ;;\n", sh_quote(&flag_words(&flags_of(None)))));
    children_cases.push_str(&format!("        '') echo {} ;;\n", sh_quote(&names(None))));
    for command in COMMANDS {
        if command.action == Action::Group {
            children_cases.push_str(&format!(
                "        {}) echo {} ;;\n",
                sh_quote(command.path),
                sh_quote(&names(Some(command.path)))
            ));
        }
        flag_cases.push_str(&format!(
            "        {}) echo {} ;;\n",
            sh_quote(command.path),
            sh_quote(&flag_words(&flags_of(Some(command))))
        ));
    }
    let value_flags: Vec<String> = flags_of_all()
        .iter()
        .filter(|s| s.kind != Kind::Bool)
        .flat_map(|s| {
            let mut forms = vec![format!("--{}", s.name)];
            forms.extend(s.short.map(|c| format!("-{c}")));
            forms
        })
        .collect();
    format!(
        r#"# bash completion for {program} (oxetcdctl: etcdctl's commands and flags)
# Load it with: source <({program} completion bash)

__{name}_children()
{{
    case "$1" in
{children_cases}    esac
}}

__{name}_flags()
{{
    case "$1" in
{flag_cases}    esac
}}

_{name}()
{{
    local cur="${{COMP_WORDS[COMP_CWORD]}}"
    local path="" word i skip_value=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${{COMP_WORDS[i]}}"
        if [[ -n $skip_value ]]; then
            skip_value=""
            continue
        fi
        case "$word" in
            --) break ;;
            {value_flags}) skip_value=1 ;;
            -*) ;;
            *)
                if [[ " $(__{name}_children "$path") " == *" $word "* ]]; then
                    path="${{path:+$path }}$word"
                fi
                ;;
        esac
    done
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(__{name}_flags "$path")" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$(__{name}_children "$path")" -- "$cur"))
    fi
}}

complete -o default -F _{name} {program}
"#,
        value_flags = value_flags.join("|"),
    )
}

/// Every flag any command takes.
fn flags_of_all() -> Vec<Spec> {
    let mut specs = crate::commands::all_specs();
    specs.sort_by_key(|s| s.name);
    specs.dedup_by_key(|s| s.name);
    specs
}

/// The names of `parent`'s subcommands, space-separated.
fn names(parent: Option<&str>) -> String {
    let names: Vec<&str> = children(parent).iter().map(|c| c.name()).collect();
    names.join(" ")
}

/// zsh runs the bash script through its bash-completion emulation.
fn zsh(program: &str) -> String {
    format!(
        "#compdef {program}\n# zsh completion for {program}: the bash script, through zsh's bashcompinit.\n# Load it with: source <({program} completion zsh)\n\nautoload -U +X bashcompinit && bashcompinit\n\n{}",
        bash(program)
    )
}

/// Quoted for fish's single quotes.
fn fish_quote(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn fish(program: &str, with_descriptions: bool) -> String {
    let describe = |text: &str| {
        if with_descriptions { format!(" -d {}", fish_quote(text)) } else { String::new() }
    };
    let mut text = format!(
        "# fish completion for {program} (oxetcdctl: etcdctl's commands and flags)\n# Load it with: {program} completion fish | source\n\ncomplete -c {program} -f\n"
    );
    let top = names(None);
    for command in children(None) {
        text.push_str(&format!(
            "complete -c {program} -n {} -a {}{}\n",
            fish_quote(&format!("not __fish_seen_subcommand_from {top}")),
            command.name(),
            describe(command.short)
        ));
    }
    for group in COMMANDS.iter().filter(|c| c.action == Action::Group) {
        let subs = names(Some(group.path));
        for command in children(Some(group.path)) {
            text.push_str(&format!(
                "complete -c {program} -n {} -a {}{}\n",
                fish_quote(&format!(
                    "__fish_seen_subcommand_from {}; and not __fish_seen_subcommand_from {subs}",
                    group.name()
                )),
                command.name(),
                describe(command.short)
            ));
        }
    }
    let flag_line = |condition: Option<String>, spec: &Spec| {
        let mut line = format!("complete -c {program}");
        if let Some(condition) = condition {
            line.push_str(&format!(" -n {}", fish_quote(&condition)));
        }
        line.push_str(&format!(" -l {}", spec.name));
        if let Some(c) = spec.short {
            line.push_str(&format!(" -s {c}"));
        }
        if spec.kind != Kind::Bool {
            line.push_str(" -r");
        }
        line.push_str(&describe(spec.usage));
        line.push('\n');
        line
    };
    for spec in GLOBAL_FLAGS {
        text.push_str(&flag_line(None, spec));
    }
    for command in COMMANDS {
        let condition = format!("__fish_seen_subcommand_from {}", command.name());
        for spec in command.flags.iter().chain(command.persistent) {
            text.push_str(&flag_line(Some(condition.clone()), spec));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command as Process;

    /// What bash completes for the words of `line` (the last one being completed), with
    /// the script loaded; `None` where bash is not installed.
    fn bash_completes(script: &str, line: &[&str]) -> Option<String> {
        let words: Vec<String> = line.iter().map(|w| sh_quote(w)).collect();
        let program = format!(
            "{script}\nCOMP_WORDS=({})\nCOMP_CWORD={}\n_etcdctl\necho \"${{COMPREPLY[*]}}\"\n",
            words.join(" "),
            line.len() - 1
        );
        let output = Process::new("bash").arg("-c").arg(program).output().ok()?;
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        Some(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    #[test]
    fn the_bash_script_parses_and_completes_commands_and_flags() {
        let script = script(Shell::Bash, "etcdctl", true);
        let Ok(check) = Process::new("bash").arg("-n").arg("-c").arg(&script).output() else {
            eprintln!("no bash here: skipped");
            return;
        };
        assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
        let complete = |line: &[&str]| bash_completes(&script, line).unwrap_or_default();
        assert_eq!(complete(&["etcdctl", "mem"]), "member");
        assert_eq!(complete(&["etcdctl", "member", "l"]), "list");
        assert_eq!(complete(&["etcdctl", "-w", "json", "check", ""]), "datascale perf");
        assert_eq!(complete(&["etcdctl", "--endpoints", "snapshot", "sna"]), "snapshot");
        assert_eq!(complete(&["etcdctl", "get", "--pre"]), "--prefix");
        assert_eq!(complete(&["etcdctl", "put", "--pre"]), "--prev-kv");
        assert_eq!(complete(&["etcdctl", "endpoint", "status", "--clu"]), "--cluster");
    }

    #[test]
    fn the_zsh_and_fish_scripts_name_every_command() {
        let zsh = script(Shell::Zsh, "oxetcdctl", true);
        assert!(zsh.starts_with("#compdef oxetcdctl\n"));
        assert!(zsh.contains("complete -o default -F _oxetcdctl oxetcdctl"));
        let fish = script(Shell::Fish, "oxetcdctl", true);
        for command in COMMANDS {
            assert!(fish.contains(&format!(" -a {}", command.name())), "{}", command.path);
        }
        assert!(fish.contains("-l endpoints -r -d 'gRPC endpoints'"));
        assert!(!script(Shell::Fish, "oxetcdctl", false).contains(" -d "));
    }

    #[test]
    fn function_names_are_identifiers() {
        assert_eq!(function_name("oxetcd-ctl.v2"), "oxetcd_ctl_v2");
    }
}
