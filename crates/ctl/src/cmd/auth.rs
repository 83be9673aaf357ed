//! `auth enable|disable|status`, `user …` and `role …`.

use oxetcd_client::auth::{Permission, PermissionType};
use oxetcd_client::proto::etcdserverpb::AuthRoleGetResponse;
use oxetcd_client::{EtcdErrorKind, prefix_range_end};

use crate::error::{CtlError, CtlResult, describe};
use crate::global::Ctx;
use crate::go;
use crate::json::{self, Obj};
use crate::output::{Format, Printer};

fn failed(err: oxetcd_client::Error) -> CtlError {
    CtlError::error(describe(&err))
}

fn no_args(ctx: &Ctx, message: &str) -> CtlResult {
    if ctx.flags.args.is_empty() { Ok(()) } else { Err(CtlError::bad_args(message)) }
}

fn one_arg(ctx: &Ctx, message: &str) -> CtlResult<String> {
    match ctx.flags.args.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(CtlError::bad_args(message)),
    }
}

pub async fn auth_enable(ctx: &Ctx) -> CtlResult {
    no_args(ctx, "auth enable command does not accept any arguments")?;
    let client = ctx.client().await?;
    let auth = client.auth();
    let enable = async {
        loop {
            match auth.auth_enable().await {
                Ok(_) => return Ok(()),
                // etcdctl makes the root role it needs, then tries again.
                Err(e) if e.etcd_kind() == Some(EtcdErrorKind::RootRoleNotExist) => {
                    auth.role_add("root").await?;
                    auth.user_grant_role("root", "root").await?;
                }
                Err(e) => return Err(e),
            }
        }
    };
    ctx.timed(enable).await.map_err(failed)?;
    crate::output::stdout("Authentication Enabled\n");
    Ok(())
}

pub async fn auth_disable(ctx: &Ctx) -> CtlResult {
    no_args(ctx, "auth disable command does not accept any arguments")?;
    let client = ctx.client().await?;
    ctx.timed(client.auth().auth_disable()).await.map_err(failed)?;
    crate::output::stdout("Authentication Disabled\n");
    Ok(())
}

/// etcdctl 3.5's `auth status`.
pub async fn auth_status(ctx: &Ctx) -> CtlResult {
    no_args(ctx, "auth status command does not accept any arguments")?;
    let client = ctx.client().await?;
    let r = ctx.timed(client.auth().auth_status()).await.map_err(failed)?;
    ctx.printer.with_fields(
        format!("Authentication Status: {}\nAuthRevision: {}\n", r.enabled, r.auth_revision),
        format!(
            "{}\"Enabled\" : {}\n\"AuthRevision\" : {}\n",
            Printer::fields_header(r.header.as_ref()),
            r.enabled,
            r.auth_revision
        ),
        || {
            Obj::new()
                .obj("header", json::header(r.header.as_ref()))
                .flag("enabled", r.enabled)
                .num("authRevision", r.auth_revision)
                .finish()
        },
        &r,
    )
}

/// Asks for a new user's password twice (etcdctl's `readPasswordInteractive`).
fn read_password_interactive(name: &str) -> CtlResult<String> {
    let ask = |prompt: &str| {
        crate::prompt::password(prompt)
            .map_err(|e| CtlError::bad_args(format!("failed to ask password: {e}")))
    };
    let first = ask(&format!("Password of {name}: "))?;
    if first.is_empty() {
        return Err(CtlError::bad_args("empty password"));
    }
    let second = ask(&format!("Type password of {name} again for confirmation: "))?;
    if first != second {
        return Err(CtlError::bad_args("given passwords are different"));
    }
    Ok(first)
}

pub async fn user_add(ctx: &Ctx) -> CtlResult {
    let arg = one_arg(ctx, "user add command requires user name as its argument")?;
    let no_password = ctx.flags.bool("no-password");
    let (user, password) = if no_password {
        (arg.clone(), String::new())
    } else if !ctx.flags.str("new-user-password").is_empty() {
        (arg.clone(), ctx.flags.str("new-user-password"))
    } else {
        match arg.split_once(':') {
            Some((user, password)) => {
                if user.is_empty() {
                    return Err(CtlError::bad_args("empty user name is not allowed"));
                }
                (user.to_string(), password.to_string())
            }
            None if !ctx.flags.bool("interactive") => (arg.clone(), crate::prompt::scan_word()),
            None => (arg.clone(), read_password_interactive(&arg)?),
        }
    };
    let client = ctx.client().await?;
    let r =
        ctx.logged(client.auth().user_add(&user, &password, no_password)).await.map_err(failed)?;
    ctx.printer.auth_change(format!("User {user} created\n"), r.header.as_ref(), &r)
}

pub async fn user_delete(ctx: &Ctx) -> CtlResult {
    let user = one_arg(ctx, "user delete command requires user name as its argument")?;
    let client = ctx.client().await?;
    let r = ctx.logged(client.auth().user_delete(&user)).await.map_err(failed)?;
    ctx.printer.auth_change(format!("User {user} deleted\n"), r.header.as_ref(), &r)
}

pub async fn user_get(ctx: &Ctx) -> CtlResult {
    let user = one_arg(ctx, "user get command requires user name as its argument")?;
    let client = ctx.client().await?;
    let r = ctx.logged(client.auth().user_get(&user)).await.map_err(failed)?;
    if ctx.flags.bool("detail") {
        crate::output::stdout(&format!("User: {user}\n"));
        for role in &r.roles {
            crate::output::stdout("\n");
            let role_response = ctx.logged(client.auth().role_get(role)).await.map_err(failed)?;
            print_role(&ctx.printer, role, &role_response)?;
        }
        return Ok(());
    }
    match ctx.printer.format {
        Format::Simple => {
            let mut text = format!("User: {user}\nRoles:");
            for role in &r.roles {
                text.push(' ');
                text.push_str(role);
            }
            text.push('\n');
            crate::output::stdout(&text);
            Ok(())
        }
        _ => ctx.printer.other(
            String::new(),
            || {
                Obj::new()
                    .obj("header", json::header(r.header.as_ref()))
                    .list("roles", &json::strings(&r.roles))
                    .finish()
            },
            &r,
        ),
    }
}

pub async fn user_list(ctx: &Ctx) -> CtlResult {
    no_args(ctx, "user list command requires no arguments")?;
    let client = ctx.client().await?;
    let r = ctx.logged(client.auth().user_list()).await.map_err(failed)?;
    ctx.printer.other(
        r.users.iter().map(|u| format!("{u}\n")).collect(),
        || {
            Obj::new()
                .obj("header", json::header(r.header.as_ref()))
                .list("users", &json::strings(&r.users))
                .finish()
        },
        &r,
    )
}

pub async fn user_passwd(ctx: &Ctx) -> CtlResult {
    let user = one_arg(ctx, "user passwd command requires user name as its argument")?;
    let password = if ctx.flags.bool("interactive") {
        read_password_interactive(&user)?
    } else {
        crate::prompt::scan_word()
    };
    let client = ctx.client().await?;
    let r =
        ctx.logged(client.auth().user_change_password(&user, &password)).await.map_err(failed)?;
    ctx.printer.auth_change("Password updated\n".to_string(), r.header.as_ref(), &r)
}

pub async fn user_grant_role(ctx: &Ctx) -> CtlResult {
    let [user, role] = ctx.flags.args.as_slice() else {
        return Err(CtlError::bad_args(
            "user grant command requires user name and role name as its argument",
        ));
    };
    let client = ctx.client().await?;
    let r = ctx.logged(client.auth().user_grant_role(user, role)).await.map_err(failed)?;
    ctx.printer.auth_change(
        format!("Role {role} is granted to user {user}\n"),
        r.header.as_ref(),
        &r,
    )
}

pub async fn user_revoke_role(ctx: &Ctx) -> CtlResult {
    let [user, role] = ctx.flags.args.as_slice() else {
        return Err(CtlError::bad_args(
            "user revoke-role requires user name and role name as its argument",
        ));
    };
    let client = ctx.client().await?;
    let r = ctx.logged(client.auth().user_revoke_role(user, role)).await.map_err(failed)?;
    ctx.printer.auth_change(
        format!("Role {role} is revoked from user {user}\n"),
        r.header.as_ref(),
        &r,
    )
}

pub async fn role_add(ctx: &Ctx) -> CtlResult {
    let role = one_arg(ctx, "role add command requires role name as its argument")?;
    let client = ctx.client().await?;
    let r = ctx.logged(client.auth().role_add(&role)).await.map_err(failed)?;
    ctx.printer.auth_change(format!("Role {role} created\n"), r.header.as_ref(), &r)
}

pub async fn role_delete(ctx: &Ctx) -> CtlResult {
    let role = one_arg(ctx, "role delete command requires role name as its argument")?;
    let client = ctx.client().await?;
    let r = ctx.logged(client.auth().role_delete(&role)).await.map_err(failed)?;
    ctx.printer.auth_change(format!("Role {role} deleted\n"), r.header.as_ref(), &r)
}

/// A role's permissions as etcdctl prints them.
fn print_role(printer: &Printer, role: &str, r: &AuthRoleGetResponse) -> CtlResult {
    let range = |key: &[u8], end: &[u8]| {
        let key_text = String::from_utf8_lossy(key);
        let mut text = if end != b"\0" {
            format!("\t[{key_text}, {})", String::from_utf8_lossy(end))
        } else {
            format!("\t[{key_text}, <open ended>")
        };
        if prefix_range_end(key).as_ref() == end {
            text.push_str(&format!(" (prefix {key_text})"));
        }
        text.push('\n');
        text
    };
    let section = |wanted: i32| {
        let mut text = String::new();
        for perm in &r.perm {
            // READ 0, WRITE 1, READWRITE 2.
            if perm.perm_type == wanted || perm.perm_type == 2 {
                if perm.range_end.is_empty() {
                    text.push_str(&format!("\t{}\n", String::from_utf8_lossy(&perm.key)));
                } else {
                    text.push_str(&range(&perm.key, &perm.range_end));
                }
            }
        }
        text
    };
    let simple = format!("Role {role}\nKV Read:\n{}KV Write:\n{}", section(0), section(1));
    let perm_name = |t: i32| match t {
        0 => "READ",
        1 => "WRITE",
        _ => "READWRITE",
    };
    let mut fields = Printer::fields_header(r.header.as_ref());
    for p in &r.perm {
        fields.push_str(&format!("\"PermType\" :  {}\n", perm_name(p.perm_type)));
        fields.push_str(&format!("\"Key\" : {}\n", go::quote(&p.key)));
        fields.push_str(&format!("\"RangeEnd\" : {}\n", go::quote(&p.range_end)));
    }
    printer.with_fields(
        simple,
        fields,
        || {
            let perms: Vec<String> = r.perm.iter().map(json::permission).collect();
            Obj::new().obj("header", json::header(r.header.as_ref())).list("perm", &perms).finish()
        },
        r,
    )
}

pub async fn role_get(ctx: &Ctx) -> CtlResult {
    let role = one_arg(ctx, "role get command requires role name as its argument")?;
    let client = ctx.client().await?;
    let r = ctx.logged(client.auth().role_get(&role)).await.map_err(failed)?;
    print_role(&ctx.printer, &role, &r)
}

pub async fn role_list(ctx: &Ctx) -> CtlResult {
    no_args(ctx, "role list command requires no arguments")?;
    let client = ctx.client().await?;
    let r = ctx.logged(client.auth().role_list()).await.map_err(failed)?;
    let mut fields = Printer::fields_header(r.header.as_ref());
    fields.push_str("\"Roles\" :");
    for role in &r.roles {
        fields.push_str(&format!(" {}", go::quote(role)));
    }
    fields.push('\n');
    ctx.printer.with_fields(
        r.roles.iter().map(|role| format!("{role}\n")).collect(),
        fields,
        || {
            Obj::new()
                .obj("header", json::header(r.header.as_ref()))
                .list("roles", &json::strings(&r.roles))
                .finish()
        },
        &r,
    )
}

/// The key and range end a permission covers (etcdctl's `permRange`).
fn permission_range(ctx: &Ctx, args: &[String]) -> CtlResult<(Vec<u8>, Vec<u8>)> {
    let (prefix, from_key) = (ctx.flags.bool("prefix"), ctx.flags.bool("from-key"));
    let key = args[0].clone().into_bytes();
    if key.is_empty() {
        if prefix && from_key {
            return Err(CtlError::bad_args("--from-key and --prefix flags are mutually exclusive"));
        }
        let end = if prefix || from_key { b"\0".to_vec() } else { Vec::new() };
        return Ok((b"\0".to_vec(), end));
    }
    let end = if args.len() == 1 {
        if prefix {
            if from_key {
                return Err(CtlError::bad_args(
                    "--from-key and --prefix flags are mutually exclusive",
                ));
            }
            prefix_range_end(&key).to_vec()
        } else if from_key {
            b"\0".to_vec()
        } else {
            Vec::new()
        }
    } else {
        if prefix {
            return Err(CtlError::bad_args("unexpected endkey argument with --prefix flag"));
        }
        if from_key {
            return Err(CtlError::bad_args("unexpected endkey argument with --from-key flag"));
        }
        args[1].clone().into_bytes()
    };
    Ok((key, end))
}

pub async fn role_grant_permission(ctx: &Ctx) -> CtlResult {
    let args = &ctx.flags.args;
    if args.len() < 3 {
        return Err(CtlError::bad_args(
            "role grant command requires role name, permission type, and key [endkey] as its argument",
        ));
    }
    let kind = match args[1].to_uppercase().as_str() {
        "READ" => PermissionType::Read,
        "WRITE" => PermissionType::Write,
        "READWRITE" => PermissionType::ReadWrite,
        _ => return Err(CtlError::bad_args(format!("invalid permission type: {}", args[1]))),
    };
    let (key, end) = permission_range(ctx, &args[2..])?;
    let mut permission = Permission::new(kind, key);
    if !end.is_empty() {
        permission = permission.with_range(end);
    }
    let client = ctx.client().await?;
    let r = ctx
        .logged(client.auth().role_grant_permission(&args[0], permission))
        .await
        .map_err(failed)?;
    ctx.printer.auth_change(format!("Role {} updated\n", args[0]), r.header.as_ref(), &r)
}

pub async fn role_revoke_permission(ctx: &Ctx) -> CtlResult {
    let args = &ctx.flags.args;
    if args.len() < 2 {
        return Err(CtlError::bad_args(
            "role revoke-permission command requires role name and key [endkey] as its argument",
        ));
    }
    let (key, end) = permission_range(ctx, &args[1..])?;
    let client = ctx.client().await?;
    let r = ctx
        .logged(client.auth().role_revoke_permission(&args[0], key.into(), end.clone().into()))
        .await
        .map_err(failed)?;
    let (role, key) = (&args[0], &args[1]);
    let simple = if end.is_empty() {
        format!("Permission of key {key} is revoked from role {role}\n")
    } else if end != b"\0" {
        format!(
            "Permission of range [{key}, {}) is revoked from role {role}\n",
            String::from_utf8_lossy(&end)
        )
    } else {
        format!("Permission of range [{key}, <open ended> is revoked from role {role}\n")
    };
    ctx.printer.auth_change(simple, r.header.as_ref(), &r)
}
