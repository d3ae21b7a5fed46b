//! The local CA's name constraints: what it may vouch for (this computer's names, its private
//! network addresses and the names given to `certs init`), and reading them back from any CA.

use std::net::IpAddr;

use rcgen::{CidrSubnet, GeneralSubtree, NameConstraints};

use super::default_server_names;

/// The address ranges the local CA vouches for besides the names it was made with: this computer
/// and private networks (so a new LAN address needs no new CA), never a public address.
const PRIVATE_RANGES: &[(IpAddr, u8)] = &[
    (IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 0)), 8),
    (IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 0)), 8),
    (IpAddr::V4(std::net::Ipv4Addr::new(172, 16, 0, 0)), 12),
    (IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 0, 0)), 16),
    (IpAddr::V4(std::net::Ipv4Addr::new(169, 254, 0, 0)), 16),
    (IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), 128),
    (
        IpAddr::V6(std::net::Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0)),
        7,
    ),
    (
        IpAddr::V6(std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0)),
        10,
    ),
];

/// The name constraints of a new local CA: whoever takes its key can then mint certificates for
/// this computer's names and private addresses only, not for any site its owner visits.
pub(super) fn authority_constraints(names: &[String]) -> NameConstraints {
    let mut permitted: Vec<GeneralSubtree> = PRIVATE_RANGES
        .iter()
        .map(|(address, prefix)| GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(*address, *prefix)))
        .collect();
    let mut dns: Vec<String> = Vec::new();
    // This computer's own network address too, when it is not a private one.
    let here = crate::net::network_address().map(|a| a.to_string());
    for name in default_server_names(names).into_iter().chain(here) {
        match name.parse::<IpAddr>() {
            Ok(address) if !in_private_range(address) => permitted.push(GeneralSubtree::IpAddress(
                CidrSubnet::from_addr_prefix(address, if address.is_ipv4() { 32 } else { 128 }),
            )),
            Ok(_) => {}
            Err(_) => {
                let name = name.to_ascii_lowercase();
                if !name.contains('.') && name != "localhost" {
                    dns.push(format!("{name}.local"));
                }
                dns.push(name);
            }
        }
    }
    dns.sort();
    dns.dedup();
    permitted.extend(dns.into_iter().map(GeneralSubtree::DnsName));
    NameConstraints {
        permitted_subtrees: permitted,
        excluded_subtrees: Vec::new(),
    }
}

fn in_private_range(address: IpAddr) -> bool {
    PRIVATE_RANGES
        .iter()
        .any(|(range, prefix)| within(address, *range, u32::from(*prefix)))
}

fn within(address: IpAddr, range: IpAddr, prefix: u32) -> bool {
    let bits = |a: IpAddr| match a {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    };
    let ((a, a_len), (r, r_len)) = (bits(address.to_canonical()), bits(range));
    if a_len != r_len {
        return false;
    }
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    a & mask == r & mask
}

/// What a CA certificate's name constraints permit: `None` when it has none (it can vouch for
/// any name), else its DNS names and address ranges.
pub struct Permitted {
    dns: Vec<String>,
    ranges: Vec<(IpAddr, u32)>,
}

/// Reads the name constraints of the CA in `pem`.
pub fn authority_permits(pem: &[u8]) -> Result<Option<Permitted>, String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| format!("not PEM: {e}"))?;
    authority_permits_der(&pem.contents)
}

/// [`authority_permits`] for a DER certificate.
pub fn authority_permits_der(der: &[u8]) -> Result<Option<Permitted>, String> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let Some(constraints) = cert.name_constraints().map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let mut permitted = Permitted {
        dns: Vec::new(),
        ranges: Vec::new(),
    };
    for subtree in constraints.value.permitted_subtrees.iter().flatten() {
        match &subtree.base {
            x509_parser::extensions::GeneralName::DNSName(name) => permitted
                .dns
                .push(name.trim_start_matches('.').to_ascii_lowercase()),
            x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                let half = bytes.len() / 2;
                let address = match half {
                    4 => <[u8; 4]>::try_from(&bytes[..4]).ok().map(IpAddr::from),
                    16 => <[u8; 16]>::try_from(&bytes[..16]).ok().map(IpAddr::from),
                    _ => None,
                };
                let prefix = bytes[half..].iter().map(|b| b.count_ones()).sum();
                if let Some(address) = address {
                    permitted.ranges.push((address, prefix));
                }
            }
            _ => {}
        }
    }
    Ok(Some(permitted))
}

impl Permitted {
    /// The names among `names` this CA may not vouch for.
    pub fn outside(&self, names: &[String]) -> Vec<String> {
        names
            .iter()
            .filter(|name| match name.parse::<IpAddr>() {
                Ok(address) => !self
                    .ranges
                    .iter()
                    .any(|(range, prefix)| within(address, *range, *prefix)),
                Err(_) => {
                    let name = name.to_ascii_lowercase();
                    !self
                        .dns
                        .iter()
                        .any(|allowed| name == *allowed || name.ends_with(&format!(".{allowed}")))
                }
            })
            .cloned()
            .collect()
    }
}
