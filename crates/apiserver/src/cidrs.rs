//! Dual-stack range flags: a comma-separated list of at most one CIDR per
//! family, primary first, checked as kube-apiserver checks
//! `--service-cluster-ip-range` (with its messages, under our flag names).

use ipnet::IpNet;

/// Why a range flag was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// An entry is not a CIDR.
    #[error("{flag}[{index}] is not a valid cidr")]
    NotCidr {
        /// The flag.
        flag: String,
        /// Position in the list.
        index: usize,
    },
    /// Nothing given.
    #[error("{flag} must contain at least one valid cidr")]
    Empty {
        /// The flag.
        flag: String,
    },
    /// More than two entries.
    #[error("{flag} must not contain more than two entries")]
    TooMany {
        /// The flag.
        flag: String,
    },
    /// Two entries of one family.
    #[error("{flag}[0] and {flag}[1] must be of different IP family")]
    SameFamily {
        /// The flag.
        flag: String,
    },
    /// A range wider than the allocator handles.
    #[error("specified {field} is too large; for {bits}-bit addresses, the mask must be >= {min}")]
    TooLarge {
        /// The flag (with `[1]` for the secondary range).
        field: String,
        /// Address width.
        bits: u8,
        /// Smallest allowed prefix length.
        min: u8,
    },
}

/// Parses `value` (e.g. `10.96.0.0/12,fd00:10:96::/112`); with
/// `max_host_bits`, a range with more host bits is refused (kube-apiserver
/// allows 20 for Service ranges).
pub fn parse_dual_stack(flag: &str, value: &str, max_host_bits: Option<u8>) -> Result<Vec<IpNet>, CidrError> {
    let entries: Vec<&str> = value.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    if entries.is_empty() {
        return Err(CidrError::Empty { flag: flag.to_owned() });
    }
    if entries.len() > 2 {
        return Err(CidrError::TooMany { flag: flag.to_owned() });
    }
    let mut out = Vec::new();
    for (index, e) in entries.iter().enumerate() {
        let net: IpNet = e.parse().map_err(|_| CidrError::NotCidr { flag: flag.to_owned(), index })?;
        if let Some(max) = max_host_bits {
            let bits = net.max_prefix_len();
            if bits - net.prefix_len() > max {
                let field = if index == 0 { flag.to_owned() } else { format!("{flag}[{index}]") };
                return Err(CidrError::TooLarge { field, bits, min: bits - max });
            }
        }
        out.push(net.trunc());
    }
    if let [a, b] = out.as_slice()
        && a.addr().is_ipv4() == b.addr().is_ipv4()
    {
        return Err(CidrError::SameFamily { flag: flag.to_owned() });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(v: &str) -> String {
        parse_dual_stack("--service-cidr", v, Some(20)).expect_err(v).to_string()
    }

    #[test]
    fn one_or_two_families_primary_first() {
        let two = parse_dual_stack("--service-cidr", "fd00:10:96::/112, 10.96.0.0/12", Some(20)).expect("dual");
        assert_eq!(two.iter().map(ToString::to_string).collect::<Vec<_>>(), ["fd00:10:96::/112", "10.96.0.0/12"]);
        assert_eq!(parse_dual_stack("--service-cidr", "10.96.0.0/12", Some(20)).expect("single").len(), 1);
    }

    #[test]
    fn refusals_use_kube_apiserver_wording() {
        assert_eq!(err("10.96.0.0/12,10.100.0.0/16"), "--service-cidr[0] and --service-cidr[1] must be of different IP family");
        assert_eq!(err("10.96.0.0/12,fd00::/112,fd01::/112"), "--service-cidr must not contain more than two entries");
        assert_eq!(err("10.96.0.0/12,nope"), "--service-cidr[1] is not a valid cidr");
        assert_eq!(err(""), "--service-cidr must contain at least one valid cidr");
        assert_eq!(err("10.0.0.0/8"), "specified --service-cidr is too large; for 32-bit addresses, the mask must be >= 12");
        assert_eq!(err("10.96.0.0/12,fd00::/64"), "specified --service-cidr[1] is too large; for 128-bit addresses, the mask must be >= 108");
    }
}
