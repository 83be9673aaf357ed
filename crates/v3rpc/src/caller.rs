//! Who a gRPC request comes from: the credentials it carries, resolved by the server
//! into the [`Requester`] its permissions are checked as.

use oxetcd_etcdserver::{ClientCredentials, EtcdServer, Requester, ServerError};
use tonic::{Request, Status};

use crate::deadline::client_deadline;
use crate::status;

/// The metadata key clients send their token under (etcd's `TokenFieldNameGRPC`).
pub(crate) const TOKEN_KEY: &str = "token";
/// The key the JSON gateway's `Authorization` header arrives under (etcd's
/// `TokenFieldNameSwagger`).
const AUTHORIZATION_KEY: &str = "authorization";

/// What `request` carries to say who sends it: its token, else the common name of its
/// verified client certificate.
pub(crate) fn credentials<T>(request: &Request<T>) -> ClientCredentials<'_> {
    let metadata = request.metadata();
    let token = metadata
        .get(TOKEN_KEY)
        .or_else(|| metadata.get(AUTHORIZATION_KEY))
        .and_then(|v| v.to_str().ok());
    let cert_common_name = request
        .extensions()
        .get::<oxetcd_tls::ConnInfo>()
        .and_then(|conn| conn.identity.as_ref())
        .and_then(|identity| identity.common_name.as_deref());
    ClientCredentials { token, cert_common_name }
}

/// Who `request` is for, as the server's auth state resolves its credentials.
pub(crate) async fn requester<T>(
    server: &EtcdServer,
    request: &Request<T>,
) -> Result<Requester, Status> {
    server.requester(credentials(request), client_deadline(request)).await.map_err(status)
}

/// Refuses `request` unless it comes from an administrator (a user with role `root`)
/// or auth is disabled (etcd's `IsAdminPermitted`, for maintenance and membership).
pub(crate) async fn require_admin<T>(
    server: &EtcdServer,
    request: &Request<T>,
) -> Result<Requester, Status> {
    let from = requester(server, request).await?;
    server.authorize_local(&from, |store, info| store.is_admin_permitted(info)).map_err(status)?;
    Ok(from)
}

/// A stream's credentials, kept for the requests it carries later (a Watch stream's
/// creates are checked one by one, as the auth state then is).
#[derive(Debug, Clone, Default)]
pub(crate) struct StreamCredentials {
    token: Option<String>,
    cert_common_name: Option<String>,
}

impl StreamCredentials {
    pub(crate) fn of<T>(request: &Request<T>) -> StreamCredentials {
        let credentials = credentials(request);
        StreamCredentials {
            token: credentials.token.map(str::to_owned),
            cert_common_name: credentials.cert_common_name.map(str::to_owned),
        }
    }

    /// Who the stream's requests are for, as of now.
    pub(crate) async fn requester(&self, server: &EtcdServer) -> Result<Requester, ServerError> {
        let credentials = ClientCredentials {
            token: self.token.as_deref(),
            cert_common_name: self.cert_common_name.as_deref(),
        };
        server.requester(credentials, None).await
    }
}
