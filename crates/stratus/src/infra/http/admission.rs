//! Which connections the listener takes: at most `max` open at once, and at most `per_client`
//! from one client. A client is an IPv4 address or an IPv6 /64 (what one IPv6 host can
//! usually pick its addresses from).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::gauge::ConstGauge;

use super::metrics::Refusal;

/// A client for connection limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Client(IpAddr);

impl From<IpAddr> for Client {
    fn from(address: IpAddr) -> Self {
        match address {
            IpAddr::V4(_) => Self(address),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    Self(IpAddr::V6(Ipv6Addr::from(prefix)))
                }
            },
        }
    }
}

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

#[derive(Debug)]
struct Open {
    count: usize,
    /// When a refusal of this client was last logged; one line a minute is enough.
    warned: Option<Instant>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    clients: HashMap<Client, Open>,
}

#[derive(Debug)]
pub(crate) struct Admission {
    max: usize,
    per_client: usize,
    counts: Mutex<Counts>,
}

/// An admitted connection; dropping it frees its place.
#[derive(Debug)]
pub(crate) struct Admitted {
    admission: Arc<Admission>,
    client: Client,
}

const WARN_EVERY: Duration = Duration::from_secs(60);

impl Admission {
    pub(crate) fn new(max: usize, per_client: usize) -> Arc<Self> {
        Arc::new(Self { max, per_client, counts: Mutex::new(Counts::default()) })
    }

    /// Takes a place for a connection from `address`, or says which limit it would pass.
    pub(crate) fn admit(self: &Arc<Self>, address: IpAddr) -> Result<Admitted, Refusal> {
        let client = Client::from(address);
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.total >= self.max {
            return Err(Refusal::Total);
        }
        let open = counts.clients.entry(client).or_insert(Open { count: 0, warned: None });
        if open.count >= self.per_client {
            let now = Instant::now();
            let warn = open.warned.is_none_or(|warned| now.duration_since(warned) >= WARN_EVERY);
            if warn {
                open.warned = Some(now);
            }
            drop(counts);
            if warn {
                tracing::warn!(%client, limit = self.per_client, "connections refused: too many from one client");
            }
            return Err(Refusal::PerAddress);
        }
        open.count += 1;
        counts.total += 1;
        Ok(Admitted { admission: Arc::clone(self), client })
    }

    fn release(&self, client: Client) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        if let Some(open) = counts.clients.get_mut(&client) {
            open.count = open.count.saturating_sub(1);
            if open.count == 0 {
                counts.clients.remove(&client);
            }
        }
    }

    /// Connections open now: in all, from the busiest client, and how many clients are at
    /// their limit.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let busiest = counts.clients.values().map(|open| open.count).max().unwrap_or(0);
        let at_limit = counts.clients.values().filter(|open| open.count >= self.per_client).count();
        Snapshot { open: counts.total, clients: counts.clients.len(), busiest, at_limit }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.admission.release(self.client);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub open: usize,
    pub clients: usize,
    pub busiest: usize,
    pub at_limit: usize,
}

/// Gauges read from the live counts at each scrape.
impl Collector for Admission {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let snapshot = self.snapshot();
        let gauges = [
            ("http_connections", "Client connections open", snapshot.open),
            ("http_clients", "Clients (IPv4 addresses, IPv6 /64s) with connections open", snapshot.clients),
            ("http_busiest_client_connections", "Connections open from the busiest client", snapshot.busiest),
            ("http_clients_at_limit", "Clients at server.max_connections_per_address", snapshot.at_limit),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_share_and_the_total_caps_everyone() {
        let admission = Admission::new(3, 2);
        let (one, two) = (IpAddr::from([192, 0, 2, 1]), IpAddr::from([192, 0, 2, 2]));
        let first = admission.admit(one).expect("first");
        let _second = admission.admit(one).expect("second");
        assert_eq!(admission.admit(one).unwrap_err(), Refusal::PerAddress);
        let _third = admission.admit(two).expect("another client");
        assert_eq!(admission.admit(two).unwrap_err(), Refusal::Total);
        drop(first);
        let again = admission.admit(one);
        assert!(again.is_ok(), "a closed connection frees its place");
        assert_eq!(admission.snapshot(), Snapshot { open: 3, clients: 2, busiest: 2, at_limit: 1 });
        drop(again);
        assert_eq!(admission.snapshot(), Snapshot { open: 2, clients: 2, busiest: 1, at_limit: 0 });
    }

    #[test]
    fn an_ipv6_client_is_its_64_prefix_and_mapped_ipv4_is_ipv4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("v6");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("v6");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("v6");
        assert_eq!(Client::from(a), Client::from(b));
        assert_ne!(Client::from(a), Client::from(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("mapped");
        assert_eq!(Client::from(mapped), Client::from(IpAddr::from([192, 0, 2, 1])));
        assert_eq!(Client::from(a).to_string(), "2001:db8:1:2::/64");
    }
}
