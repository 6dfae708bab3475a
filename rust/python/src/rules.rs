//! `Rule`: a match rule of the built-in XDP program.

use afxdp::bpf::{BpfError, MAX_RULES, Rule};
use pyo3::prelude::*;

use crate::convert::{Int, opt_int_arg};
use crate::errors::{Error, Result};

/// A match rule of the built-in program; every condition that is not None must hold.
///
/// ethertype: after at most one 802.1Q/802.1ad VLAN tag (0x0800 IPv4, 0x86DD IPv6, ...).
/// ip_proto: the IPv4 protocol or IPv6 next header, after up to four hop-by-hop, routing,
/// fragment and destination-options extension headers (17 UDP, 6 TCP, 1 ICMP, 58 ICMPv6);
/// in a non-first fragment, the fragment header's next header (what follows is data).
/// dst_port: the TCP/UDP/UDP-Lite/SCTP/DCCP destination port; never matches a non-first
/// fragment or an IPv4 header shorter than 20 bytes (IHL < 5). Rule() matches every packet.
#[pyclass(name = "Rule", module = "afxdp._native", frozen, eq, hash)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PyRule {
    pub(crate) rule: Rule,
}

#[pymethods]
impl PyRule {
    #[new]
    #[pyo3(signature = (ethertype = None, ip_proto = None, dst_port = None))]
    fn new(ethertype: Option<Int>, ip_proto: Option<Int>, dst_port: Option<Int>) -> Result<Self> {
        Ok(PyRule {
            rule: Rule {
                ethertype: opt_int_arg(
                    "ethertype",
                    ethertype,
                    i64::from(Rule::MIN_ETHERTYPE),
                    0xffff,
                )?,
                ip_proto: opt_int_arg("ip_proto", ip_proto, 0, 255)?,
                dst_port: opt_int_arg("dst_port", dst_port, 0, 65535)?,
            },
        })
    }

    #[getter]
    fn ethertype(&self) -> Option<u16> {
        self.rule.ethertype
    }

    #[getter]
    fn ip_proto(&self) -> Option<u8> {
        self.rule.ip_proto
    }

    #[getter]
    fn dst_port(&self) -> Option<u16> {
        self.rule.dst_port
    }

    fn __repr__(&self) -> String {
        self.rule.to_string()
    }
}

/// The rules of an iterable of `Rule` (None: no rules). Iterates Python objects: call it before
/// taking any lock.
pub fn rules_arg(rules: Option<&Bound<'_, PyAny>>) -> Result<Vec<Rule>> {
    let Some(rules) = rules else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for (i, item) in rules.try_iter()?.enumerate() {
        let item = item?;
        let rule = item.cast::<PyRule>().map_err(|_| {
            Error::type_(format!(
                "rules[{i}] is {}, not an afxdp.Rule",
                item.repr().map(|r| r.to_string()).unwrap_or_else(|_| "?".into())
            ))
        })?;
        out.push(rule.get().rule);
        if out.len() > MAX_RULES {
            return Err(BpfError::TooManyRules {
                count: rules.len().unwrap_or(out.len()),
                max: MAX_RULES,
            }
            .into());
        }
    }
    Ok(out)
}
