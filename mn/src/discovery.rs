//! Home agent address discovery through DNS (RFC 5555 §2.1): by name (A and AAAA records
//! of the configured home agent name) and by service (the SRV record of RFC 5026,
//! `_mip6._ipv6.<domain>`, then A and AAAA of each target). Uses hickory-resolver on tokio;
//! the only IO in this crate, kept apart from the engine.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{ResolveError, TokioResolver};

use crate::engine::HomeAgentAddrs;
use crate::error::{MnError, Result};

/// One home agent named by an SRV record, with its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeAgentCandidate {
    /// The SRV target, fully qualified.
    pub name: String,
    pub priority: u16,
    pub weight: u16,
    pub addrs: HomeAgentAddrs,
}

/// A DNS client for home agent discovery.
#[derive(Clone)]
pub struct Discovery {
    resolver: TokioResolver,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery").finish_non_exhaustive()
    }
}

fn dns_err(query: &str, e: &ResolveError) -> MnError {
    MnError::Dns {
        query: query.to_owned(),
        reason: e.to_string(),
    }
}

/// The SRV owner name for a domain (RFC 5555 §2.1, RFC 5026 §4.2).
pub fn service_name(domain: &str) -> String {
    format!("_mip6._ipv6.{}", domain.trim_end_matches('.'))
}

impl Discovery {
    /// Ask the given name servers (UDP, falling back to TCP for truncated answers); no hosts
    /// file, no search list.
    pub fn with_name_servers(servers: &[SocketAddr], timeout: Duration) -> Self {
        let mut config = ResolverConfig::new();
        for s in servers {
            config.add_name_server(NameServerConfig::new(*s, Protocol::Udp));
            config.add_name_server(NameServerConfig::new(*s, Protocol::Tcp));
        }
        let mut opts = ResolverOpts::default();
        opts.timeout = timeout;
        opts.attempts = 2;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.ndots = 0;
        let resolver =
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
                .with_options(opts)
                .build();
        Discovery { resolver }
    }

    /// A and AAAA of `name`. Either family may be missing; both missing is an error.
    pub async fn by_name(&self, name: &str) -> Result<HomeAgentAddrs> {
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        let v4 = self.resolver.ipv4_lookup(fqdn.as_str()).await;
        let v6 = self.resolver.ipv6_lookup(fqdn.as_str()).await;
        let ipv4 = v4.as_ref().ok().and_then(|l| l.iter().next().map(|a| a.0));
        let ipv6 = v6.as_ref().ok().and_then(|l| l.iter().next().map(|a| a.0));
        if ipv4.is_none() && ipv6.is_none() {
            let e = v6.err().or(v4.err());
            return Err(match e {
                Some(e) => dns_err(&fqdn, &e),
                None => MnError::Dns {
                    query: fqdn,
                    reason: "no A or AAAA record".into(),
                },
            });
        }
        Ok(HomeAgentAddrs { ipv6, ipv4 })
    }

    /// The home agents of `domain` from SRV `_mip6._ipv6.<domain>`, lowest priority first,
    /// then highest weight, each with its addresses. Targets without any address are left
    /// out; an empty answer is an error.
    pub async fn by_service(&self, domain: &str) -> Result<Vec<HomeAgentCandidate>> {
        let q = format!("{}.", service_name(domain));
        let srv = self
            .resolver
            .srv_lookup(q.as_str())
            .await
            .map_err(|e| dns_err(&q, &e))?;
        let mut out = Vec::new();
        for r in srv.iter() {
            let name = r.target().to_ascii();
            if let Ok(addrs) = self.by_name(&name).await {
                out.push(HomeAgentCandidate {
                    name,
                    priority: r.priority(),
                    weight: r.weight(),
                    addrs,
                });
            }
        }
        if out.is_empty() {
            return Err(MnError::Dns {
                query: q,
                reason: "no SRV target with an address".into(),
            });
        }
        out.sort_by(|a, b| a.priority.cmp(&b.priority).then(b.weight.cmp(&a.weight)));
        Ok(out)
    }
}
