//! What every command shares: the global flags, read into settings, the printer, and the
//! connection to the cluster made as etcdctl's `mustClientFromCmd` makes it.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use oxetcd_client::{Client, ClientOptions, TlsFiles};

use crate::commands::Command;
use crate::error::{CtlError, CtlResult, describe, exit};
use crate::flags::Parsed;
use crate::output::{self, Format, Printer};

/// The global flags, read.
#[derive(Debug, Clone)]
pub struct Global {
    pub endpoints: Vec<String>,
    pub dial_timeout: Duration,
    pub command_timeout: Duration,
    pub keepalive_time: Duration,
    pub keepalive_timeout: Duration,
    pub insecure_transport: bool,
    pub insecure_skip_verify: bool,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub cacert: Option<PathBuf>,
    pub user: String,
    pub password: String,
}

/// A command's context: its parsed flags, the global settings and the printer.
pub struct Ctx {
    pub flags: Parsed,
    pub global: Global,
    pub printer: Printer,
}

impl Ctx {
    pub fn new(command: &'static Command, flags: Parsed) -> CtlResult<Ctx> {
        let format = Format::parse(&flags.str("write-out"))
            .ok_or_else(|| CtlError::new(exit::BAD_FEATURE, "unsupported output format"))?;
        let printer = Printer { format, hex: flags.bool("hex"), value_only: false };
        let file = |name: &str| -> CtlResult<Option<PathBuf>> {
            let value = flags.str(name);
            if value.is_empty() && flags.changed(name) {
                return Err(CtlError::bad_args(format!(
                    "empty string is passed to --{name} option"
                )));
            }
            Ok(if value.is_empty() { None } else { Some(PathBuf::from(value)) })
        };
        let global = Global {
            endpoints: flags.slice("endpoints").into_iter().map(|e| e.trim().to_string()).collect(),
            dial_timeout: flags.duration("dial-timeout"),
            command_timeout: flags.duration("command-timeout"),
            keepalive_time: flags.duration("keepalive-time"),
            keepalive_timeout: flags.duration("keepalive-timeout"),
            insecure_transport: flags.bool("insecure-transport"),
            insecure_skip_verify: flags.bool("insecure-skip-tls-verify"),
            cert: file("cert")?,
            key: file("key")?,
            cacert: file("cacert")?,
            user: flags.str("user"),
            password: flags.str("password"),
        };
        if flags.bool("debug") {
            let mut specs = crate::commands::inherited(command);
            specs.sort_by_key(|s| s.name);
            let mut text = String::new();
            for spec in specs {
                text.push_str(&format!(
                    "ETCDCTL_{}={}\n",
                    spec.name.to_uppercase().replace('-', "_"),
                    flags.display(&spec)
                ));
            }
            output::stderr(&text);
        }
        Ok(Ctx { flags, global, printer })
    }

    /// The user and password etcdctl would authenticate with (`--user name:password`, or
    /// `--user name --password p`; a missing password is asked for).
    fn credentials(&self) -> CtlResult<Option<(String, String)>> {
        let g = &self.global;
        if g.user.is_empty() {
            return Ok(None);
        }
        if !g.password.is_empty() {
            return Ok(Some((g.user.clone(), g.password.clone())));
        }
        match g.user.split_once(':') {
            Some((name, password)) => Ok(Some((name.to_string(), password.to_string()))),
            None => {
                let password = crate::prompt::password("Password: ")
                    .map_err(|e| CtlError::error(e.to_string()))?;
                Ok(Some((g.user.clone(), password)))
            }
        }
    }

    pub fn client_options(&self) -> CtlResult<ClientOptions> {
        let mut options = self.client_options_without_user()?;
        if let Some((user, password)) = self.credentials()? {
            options = options.with_user(user, password);
        }
        Ok(options)
    }

    /// The connection settings without credentials (`--cluster` asks for the member
    /// list so, as etcdctl does).
    pub fn client_options_without_user(&self) -> CtlResult<ClientOptions> {
        let g = &self.global;
        // A zero dial timeout is Go's "no limit": connecting is then bounded by the
        // command's own time.
        let dial_timeout =
            if g.dial_timeout.is_zero() { g.command_timeout } else { g.dial_timeout };
        let mut options = ClientOptions::default()
            .with_dial_timeout(dial_timeout)
            .with_keep_alive(g.keepalive_time, g.keepalive_timeout);
        if self.uses_tls() {
            let files = TlsFiles {
                cert: g.cert.clone(),
                key: g.key.clone(),
                trusted_ca: g.cacert.clone(),
                insecure_skip_verify: g.insecure_skip_verify,
            };
            options =
                options.with_tls_files(&files).map_err(|e| CtlError::bad_args(e.to_string()))?;
        }
        Ok(options)
    }

    /// Whether the client speaks TLS (etcdctl: any TLS file given, or
    /// `--insecure-transport=false`).
    fn uses_tls(&self) -> bool {
        let g = &self.global;
        g.cert.is_some() || g.key.is_some() || g.cacert.is_some() || !g.insecure_transport
    }

    /// Keeps `err`, from a call to `endpoints`, for the hint written on a terminal if
    /// the command fails.
    pub fn note_for_hint(&self, err: &oxetcd_client::Error, endpoints: &[String]) {
        crate::hint::record(err, self.uses_tls(), endpoints);
    }

    /// A client of the `--endpoints` (etcdctl exits 2 when it cannot make one).
    pub async fn client(&self) -> CtlResult<Client> {
        self.client_for(&self.global.endpoints).await
    }

    pub async fn client_for(&self, endpoints: &[String]) -> CtlResult<Client> {
        self.client_with(endpoints, self.client_options()?).await
    }

    /// A client of `endpoints` with `options` made before (so that a password is asked
    /// for once however many clients a command makes).
    pub async fn client_with(
        &self,
        endpoints: &[String],
        options: ClientOptions,
    ) -> CtlResult<Client> {
        let with_user = !self.global.user.is_empty();
        let connected = Client::connect(endpoints, options).await;
        // A client given a user authenticates first; with auth disabled the server
        // refuses that, clientv3 logs the refusal and goes on without a token.
        if let Ok(client) = &connected
            && with_user
            && client.auth_token().is_none()
        {
            let refused = oxetcd_client::Error::from(tonic::Status::failed_precondition(
                "etcdserver: authentication is not enabled",
            ));
            crate::clientlog::failed_call(endpoints, &refused);
        }
        if let Err(err @ oxetcd_client::Error::Etcd { .. }) = &connected {
            crate::clientlog::failed_call(endpoints, err);
        }
        if let Err(err) = &connected {
            self.note_for_hint(err, endpoints);
        }
        match connected {
            Ok(client) => Ok(client),
            // etcdctl's client does not wait for a connection: the command's first call
            // runs out of time instead, and that is what it reports.
            Err(oxetcd_client::Error::Unreachable { .. }) => {
                Err(CtlError::error("context deadline exceeded"))
            }
            Err(err) => Err(CtlError::new(exit::BAD_CONNECTION, describe(&err))),
        }
    }

    /// Runs `call` within `--command-timeout` (etcdctl's `commandCtx`).
    pub async fn timed<T, F>(&self, call: F) -> Result<T, oxetcd_client::Error>
    where
        F: Future<Output = Result<T, oxetcd_client::Error>>,
    {
        let result = match tokio::time::timeout(self.global.command_timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(oxetcd_client::Error::Timeout),
        };
        self.log_failure(result)
    }

    /// Runs `call` without a time limit (etcdctl's `context.TODO()` calls).
    pub async fn logged<T, F>(&self, call: F) -> Result<T, oxetcd_client::Error>
    where
        F: Future<Output = Result<T, oxetcd_client::Error>>,
    {
        self.log_failure(call.await)
    }

    fn log_failure<T>(
        &self,
        result: Result<T, oxetcd_client::Error>,
    ) -> Result<T, oxetcd_client::Error> {
        if let Err(err) = &result {
            crate::clientlog::failed_call(&self.global.endpoints, err);
            self.note_for_hint(err, &self.global.endpoints);
        }
        result
    }
}
