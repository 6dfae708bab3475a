//! Match rules of the built-in program: [`Rule`], its validation and encoding into the shared
//! [`RuleSet`] layout, the two rule sets swapped atomically (`Steering`), and the
//! [`XdpProgram`] methods that set them and read their counters.

use std::fmt;

use afxdp_ebpf_common::{MATCH_DST_PORT, MATCH_ETHERTYPE, MATCH_IP_PROTO, RuleSet};
use aya::maps::{Array, MapData, MapError, PerCpuArray, PerCpuValues};

use super::XdpProgram;
use super::errors::{BpfError, map_error};
use crate::error::Result;
use crate::sys;

/// The most rules the built-in program takes ([`super::XdpProgram::set_rules`]).
pub const MAX_RULES: usize = afxdp_ebpf_common::MAX_RULES;

/// A match rule of the built-in program: every condition that is `Some` must hold.
///
/// * `ethertype`: the ethertype after at most one 802.1Q or 802.1ad VLAN tag (so `0x0800`
///   matches IPv4 whether or not it is tagged once).
/// * `ip_proto`: the IPv4 protocol, or the IPv6 next header after up to four hop-by-hop,
///   routing, fragment and destination-options extension headers (AH and ESP are not walked:
///   their own number is the protocol). Only IPv4 and IPv6 packets match.
/// * `dst_port`: the destination port of TCP, UDP, UDP-Lite, SCTP or DCCP. Never matches a
///   non-first IP fragment (it has no transport header), an IPv4 header shorter than 20 bytes
///   (malformed) or another protocol.
///
/// The default rule (all `None`) matches every packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Rule {
    /// Ethertype, `>= 0x0600`.
    pub ethertype: Option<u16>,
    /// IP protocol number (6 TCP, 17 UDP, 58 ICMPv6, ...).
    pub ip_proto: Option<u8>,
    /// Transport destination port.
    pub dst_port: Option<u16>,
}

impl Rule {
    /// The smallest ethertype: values below are IEEE 802.3 lengths.
    pub const MIN_ETHERTYPE: u16 = 0x0600;

    fn to_raw(self) -> afxdp_ebpf_common::Rule {
        let mut raw = afxdp_ebpf_common::Rule::default();
        if let Some(ethertype) = self.ethertype {
            raw.ethertype = ethertype;
            raw.flags |= MATCH_ETHERTYPE;
        }
        if let Some(proto) = self.ip_proto {
            raw.ip_proto = proto;
            raw.flags |= MATCH_IP_PROTO;
        }
        if let Some(port) = self.dst_port {
            raw.dst_port = port;
            raw.flags |= MATCH_DST_PORT;
        }
        raw
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ethertype = self.ethertype.map(|e| format!("0x{e:04x}"));
        let field = |v: Option<String>| v.unwrap_or_else(|| "None".to_owned());
        write!(
            f,
            "Rule(ethertype={}, ip_proto={}, dst_port={})",
            field(ethertype),
            field(self.ip_proto.map(|p| p.to_string())),
            field(self.dst_port.map(|p| p.to_string())),
        )
    }
}

/// Checks what [`Rule`] alone cannot: the count and the ethertype range.
pub(crate) fn validate_rules(rules: &[Rule]) -> Result<(), BpfError> {
    if rules.len() > MAX_RULES {
        return Err(BpfError::TooManyRules { count: rules.len(), max: MAX_RULES });
    }
    for rule in rules {
        if rule.ethertype.is_some_and(|e| e < Rule::MIN_ETHERTYPE) {
            return Err(BpfError::InvalidRule {
                rule: *rule,
                reason: "ethertypes start at 0x0600; smaller values are IEEE 802.3 lengths",
            });
        }
    }
    Ok(())
}

/// A [`RuleSet`] as an aya map value.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PodRuleSet(RuleSet);

// SAFETY: `RuleSet` is `#[repr(C)]` plain integers with explicit padding fields (no padding
// the compiler owns, asserted in afxdp-ebpf-common); any bit pattern is valid.
unsafe impl aya::Pod for PodRuleSet {}

/// The `HITS` index of rule `rule` of set `set`; `rule == MAX_RULES` is the set's counter of
/// packets no rule matched.
pub(crate) fn hit_index(set: u32, rule: usize) -> u32 {
    if rule == MAX_RULES {
        (2 * MAX_RULES) as u32 + set
    } else {
        set * MAX_RULES as u32 + rule as u32
    }
}

/// Hit counters of the active rule set, summed over CPUs ([`super::XdpProgram::rule_stats`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleStats {
    /// Packets whose first matching rule was `rules[i]`, for each rule in force. They left
    /// the stack when their queue had a registered socket, else they were passed.
    pub hits: Vec<u64>,
    /// Packets no rule matched, passed to the kernel stack.
    pub unmatched: u64,
}

/// Rules written to the inactive slot by [`XdpProgram::stage_rules`], not in force until
/// [`XdpProgram::activate_rules`].
///
/// [`XdpProgram::stage_rules`]: super::XdpProgram::stage_rules
/// [`XdpProgram::activate_rules`]: super::XdpProgram::activate_rules
#[derive(Debug)]
#[must_use = "staged rules are not in force until activate_rules"]
pub struct StagedRules {
    /// The slot written: 0 or 1.
    pub(crate) set: u32,
    pub(crate) rules: Vec<Rule>,
}

/// The built-in program's rule maps and the rules in force.
pub(crate) struct Steering {
    pub(crate) rules: Array<MapData, PodRuleSet>,
    pub(crate) active: Array<MapData, u32>,
    pub(crate) hits: PerCpuArray<MapData, u64>,
    /// Per rx queue: packets for the XSKMAP that found no socket registered there.
    pub(crate) no_socket: PerCpuArray<MapData, u64>,
    /// The set `active` points at: 0 or 1.
    pub(crate) active_set: u32,
    /// The rules of the active set.
    pub(crate) current: Vec<Rule>,
}

impl Steering {
    /// Writes `rules` into rule set `set`.
    pub(crate) fn write_set(&mut self, set: u32, rules: &[Rule]) -> Result<()> {
        let mut raw = RuleSet { count: rules.len() as u32, ..RuleSet::default() };
        for (slot, rule) in raw.rules.iter_mut().zip(rules) {
            *slot = rule.to_raw();
        }
        self.rules.set(set, PodRuleSet(raw), 0).map_err(|e| map_error("update", set, e))
    }

    /// Zeroes the hit counters of rule set `set`.
    pub(crate) fn zero_hits(&mut self, set: u32) -> Result<()> {
        let cpus = aya::util::nr_cpus().map_err(|(what, e)| BpfError::Load {
            errno: e.raw_os_error(),
            message: format!("{what}: {e}"),
        })?;
        for rule in 0..=MAX_RULES {
            let index = hit_index(set, rule);
            let zeros = PerCpuValues::try_from(vec![0u64; cpus])
                .map_err(|e| map_error("update", index, MapError::from(e)))?;
            self.hits.set(index, zeros, 0).map_err(|e| map_error("update", index, e))?;
        }
        Ok(())
    }

    /// `NO_SOCKET[queue]` summed over CPUs, for queues `0..queues` (the last counter of the
    /// map also counts every queue above it).
    pub(crate) fn no_socket_counts(&self, queues: u32) -> Result<Vec<u64>> {
        (0..queues.min(afxdp_ebpf_common::NO_SOCKET_QUEUES))
            .map(|q| {
                let values = self.no_socket.get(&q, 0).map_err(|e| map_error("lookup", q, e))?;
                Ok(values.iter().sum())
            })
            .collect()
    }

    /// `HITS[index]` summed over CPUs.
    pub(crate) fn hit_count(&self, index: u32) -> Result<u64> {
        let values = self.hits.get(&index, 0).map_err(|e| map_error("lookup", index, e))?;
        Ok(values.iter().sum())
    }
}

/// The match rules of the built-in program, as [`XdpProgram`] methods.
impl XdpProgram {
    /// Replaces the match rules of the built-in program, atomically for the data path: each
    /// packet is judged by the complete old set or the complete new set, never a mix, and
    /// none is lost on the way (the program stays attached). An empty slice matches every
    /// packet. The new set's hit counters start at zero.
    ///
    /// Takes two RCU grace periods (about 10–30 ms): the new set is written to the inactive
    /// slot, published, and the old slot is only reused once no program run can still read
    /// it (see [`crate::sys::synchronize_rcu`]). [`stage_rules`](Self::stage_rules) and
    /// [`activate_rules`](Self::activate_rules) are the same steps for a caller that must not
    /// hold the program borrowed while it waits.
    ///
    /// # Errors
    ///
    /// [`BpfError::TooManyRules`], [`BpfError::InvalidRule`], [`BpfError::Detached`],
    /// [`BpfError::NoRules`] (a custom program), [`BpfError::Map`], [`Error::ForkedChild`](crate::Error::ForkedChild).
    pub fn set_rules(&mut self, rules: &[Rule]) -> Result<()> {
        let staged = self.stage_rules(rules)?;
        // Every run that starts from now on sees the new set once it reads `next`.
        sys::synchronize_rcu();
        self.activate_rules(staged)?;
        // No run still reads the old set: the next call may overwrite it.
        sys::synchronize_rcu();
        Ok(())
    }

    /// The first step of [`set_rules`](Self::set_rules): validates `rules` and writes them,
    /// with zeroed hit counters, to the inactive slot, which no program run reads. Then wait
    /// one grace period ([`crate::sys::synchronize_rcu`]) and call
    /// [`activate_rules`](Self::activate_rules), and wait another before the next
    /// `stage_rules`: the slot staged next is the one program runs read until then. Stage and
    /// activate in pairs, one pair at a time (a second `stage_rules` overwrites the first).
    ///
    /// # Errors
    ///
    /// As [`set_rules`](Self::set_rules).
    pub fn stage_rules(&mut self, rules: &[Rule]) -> Result<StagedRules> {
        validate_rules(rules)?;
        let steering = self.steering_for("match rules")?;
        let next = steering.active_set ^ 1;
        steering.zero_hits(next)?;
        steering.write_set(next, rules)?;
        Ok(StagedRules { set: next, rules: rules.to_vec() })
    }

    /// The second step of [`set_rules`](Self::set_rules): puts the rules of
    /// [`stage_rules`](Self::stage_rules) in force; [`rules`](Self::rules) and the hit
    /// counters are theirs from now on.
    ///
    /// # Errors
    ///
    /// [`BpfError::Detached`], [`BpfError::NoRules`], [`BpfError::Map`], [`Error::ForkedChild`](crate::Error::ForkedChild).
    pub fn activate_rules(&mut self, staged: StagedRules) -> Result<()> {
        let steering = self.steering_for("match rules")?;
        steering.active.set(0, staged.set, 0).map_err(|e| map_error("update", 0, e))?;
        steering.active_set = staged.set;
        steering.current = staged.rules;
        Ok(())
    }

    /// The rules in force (empty: every packet matches). Empty for a custom program.
    pub fn rules(&self) -> &[Rule] {
        match self.attached.as_ref().and_then(|a| a.steering.as_ref()) {
            Some(steering) => &steering.current,
            None => &[],
        }
    }

    /// Whether this is the built-in program (which takes rules).
    pub fn has_rules(&self) -> bool {
        self.attached.as_ref().is_some_and(|a| a.steering.is_some())
    }

    /// The hit counters of the rules in force, counted since they were set.
    ///
    /// # Errors
    ///
    /// [`BpfError::Detached`], [`BpfError::NoRules`], [`BpfError::Map`],
    /// [`Error::ForkedChild`](crate::Error::ForkedChild).
    pub fn rule_stats(&mut self) -> Result<RuleStats> {
        Ok(RuleStats { hits: self.rule_hits()?, unmatched: self.unmatched()? })
    }

    /// [`RuleStats::hits`] alone.
    ///
    /// # Errors
    ///
    /// As [`rule_stats`](Self::rule_stats).
    pub fn rule_hits(&mut self) -> Result<Vec<u64>> {
        let steering = self.steering_for("match rules")?;
        let set = steering.active_set;
        (0..steering.current.len()).map(|rule| steering.hit_count(hit_index(set, rule))).collect()
    }

    /// [`RuleStats::unmatched`] alone (one map lookup).
    ///
    /// # Errors
    ///
    /// As [`rule_stats`](Self::rule_stats).
    pub fn unmatched(&mut self) -> Result<u64> {
        let steering = self.steering_for("match rules")?;
        steering.hit_count(hit_index(steering.active_set, MAX_RULES))
    }

    /// Per rx queue (`0..map_size()`), packets the built-in program meant for an AF_XDP socket
    /// (its rules matched) that found none registered for their queue, and so went to the kernel
    /// stack: traffic on a queue nobody listens to. Counted since the program was attached.
    ///
    /// # Errors
    ///
    /// [`BpfError::Detached`], [`BpfError::NoRules`] (a custom program has no such counters),
    /// [`BpfError::Map`], [`Error::ForkedChild`](crate::Error::ForkedChild).
    pub fn no_socket_counts(&mut self) -> Result<Vec<u64>> {
        let queues = self.map_size;
        self.steering_for("the no-socket counters")?.no_socket_counts(queues)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_encode_their_conditions_as_flags() {
        let any = Rule::default().to_raw();
        assert_eq!(any.flags, 0);
        let rule = Rule { ethertype: Some(0x86dd), ip_proto: Some(17), dst_port: Some(53) };
        let raw = rule.to_raw();
        assert_eq!(
            (raw.ethertype, raw.ip_proto, raw.dst_port, raw.flags),
            (0x86dd, 17, 53, MATCH_ETHERTYPE | MATCH_IP_PROTO | MATCH_DST_PORT)
        );
        let port_only = Rule { dst_port: Some(0), ..Rule::default() };
        assert_eq!(port_only.to_raw().flags, MATCH_DST_PORT, "port 0 is a condition too");
        assert_eq!(rule.to_string(), "Rule(ethertype=0x86dd, ip_proto=17, dst_port=53)");
    }

    #[test]
    fn rule_validation() {
        assert!(validate_rules(&[Rule::default(); MAX_RULES]).is_ok());
        match validate_rules(&[Rule::default(); MAX_RULES + 1]) {
            Err(BpfError::TooManyRules { count, max }) => assert_eq!((count, max), (17, 16)),
            other => panic!("{other:?}"),
        }
        let short = Rule { ethertype: Some(0x05ff), ..Rule::default() };
        let error = validate_rules(&[Rule::default(), short]).unwrap_err();
        assert!(error.to_string().contains("ethertype=0x05ff"), "{error}");
    }

    #[test]
    fn hit_counters_do_not_overlap() {
        let mut seen = std::collections::HashSet::new();
        for set in 0..2 {
            for rule in 0..=MAX_RULES {
                assert!(seen.insert(hit_index(set, rule)));
            }
        }
        assert_eq!(seen.len(), 2 * MAX_RULES + 2);
        assert_eq!(*seen.iter().max().unwrap() as usize, 2 * MAX_RULES + 1);
    }
}
