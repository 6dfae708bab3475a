//! Packet templates: where a template's UDP header is, and the incremental UDP checksum update
//! the generator's program applies when it rewrites the source port (the same arithmetic, so
//! the tests here check the program's rule against checksums computed from scratch).

/// UDP over the IP protocol numbers.
const IPPROTO_UDP: u8 = 17;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;

/// Where the UDP header of a template is, for rewriting its source port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpTemplate {
    /// Offset of the UDP header in the frame.
    pub udp_offset: usize,
    /// The template's UDP source port.
    pub src_port: u16,
    /// The template's UDP checksum (0: none, IPv4 only).
    pub checksum: u16,
}

/// Finds the UDP header of `packet`: Ethernet, at most one 802.1Q/802.1ad tag, IPv4 (not a
/// non-first fragment) or IPv6 (no extension headers), then UDP. The error says what differs.
pub fn parse_udp_template(packet: &[u8]) -> Result<UdpTemplate, String> {
    let be16 = |at: usize| u16::from_be_bytes([packet[at], packet[at + 1]]);
    if packet.len() < 14 {
        return Err(format!("{} bytes is shorter than an Ethernet header", packet.len()));
    }
    let mut ethertype = be16(12);
    let mut l3 = 14;
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        if packet.len() < 18 {
            return Err("the packet ends inside the VLAN tag".to_owned());
        }
        ethertype = be16(16);
        l3 = 18;
        if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
            return Err("more than one VLAN tag".to_owned());
        }
    }
    let udp_offset = match ethertype {
        ETH_P_IP => {
            if packet.len() < l3 + 20 {
                return Err("the packet ends inside the IPv4 header".to_owned());
            }
            let version = packet[l3] >> 4;
            if version != 4 {
                return Err(format!("ethertype 0x0800 with IP version {version}"));
            }
            let ihl = usize::from(packet[l3] & 0x0f) * 4;
            if ihl < 20 {
                return Err(format!("IPv4 header length {ihl} is below 20"));
            }
            let proto = packet[l3 + 9];
            if proto != IPPROTO_UDP {
                return Err(format!("IPv4 protocol {proto} is not UDP (17)"));
            }
            if be16(l3 + 6) & 0x1fff != 0 {
                return Err("a non-first IPv4 fragment carries no UDP header".to_owned());
            }
            l3 + ihl
        }
        ETH_P_IPV6 => {
            if packet.len() < l3 + 40 {
                return Err("the packet ends inside the IPv6 header".to_owned());
            }
            let version = packet[l3] >> 4;
            if version != 6 {
                return Err(format!("ethertype 0x86dd with IP version {version}"));
            }
            let next = packet[l3 + 6];
            if next != IPPROTO_UDP {
                return Err(format!(
                    "IPv6 next header {next} is not UDP (17); extension headers are not supported"
                ));
            }
            l3 + 40
        }
        other => {
            return Err(format!(
                "ethertype 0x{other:04x} is neither IPv4 (0x0800) nor IPv6 (0x86dd)"
            ));
        }
    };
    if packet.len() < udp_offset + 8 {
        return Err(format!(
            "the packet ends at byte {}, inside the UDP header at bytes {udp_offset}..{}",
            packet.len(),
            udp_offset + 8
        ));
    }
    Ok(UdpTemplate { udp_offset, src_port: be16(udp_offset), checksum: be16(udp_offset + 6) })
}

/// The one's complement update of a 16-bit checksum when one 16-bit word of the data changes
/// from `old` to `new` (RFC 1624, eqn. 3: `~(~check + ~old + new)`), as the XDP program does it
/// (`xdp-ebpf/src/gen.rs`, `csum_replace`), including its UDP rule that a result of 0 is sent as
/// 0xffff and that a zero checksum ("none") is left alone.
pub fn udp_checksum_replace(check: u16, old: u16, new: u16) -> u16 {
    if check == 0 {
        return 0;
    }
    let mut sum = u32::from(!check) + u32::from(!old) + u32::from(new);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    match !(sum as u16) {
        0 => 0xffff,
        check => check,
    }
}

/// Frames and checksums for the tests (here and in the generator's privileged tests).
#[cfg(test)]
pub(crate) mod test_frames {
    use super::*;

    /// RFC 1071 checksum of `chunks` concatenated (an odd chunk is padded, so only the last
    /// one may be odd).
    pub(crate) fn internet_checksum(chunks: &[&[u8]]) -> u16 {
        let mut sum: u64 = 0;
        for chunk in chunks {
            for pair in chunk.chunks(2) {
                let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
                sum += u64::from(word);
            }
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    /// The UDP checksum of the UDP datagram in `frame` from scratch (0 sent as 0xffff).
    pub(crate) fn udp_checksum_from_scratch(frame: &[u8]) -> u16 {
        let t = parse_udp_template(frame).unwrap();
        let udp = &frame[t.udp_offset..];
        let mut zeroed = udp.to_vec();
        zeroed[6] = 0;
        zeroed[7] = 0;
        let len = (udp.len() as u32).to_be_bytes();
        let ethertype_at = if frame[12..14] == [0x81, 0x00] { 16 } else { 12 };
        let l3 = ethertype_at + 2;
        let pseudo: Vec<u8> = if frame[ethertype_at..ethertype_at + 2] == [0x08, 0x00] {
            [&frame[l3 + 12..l3 + 20], &[0, 17], &len[2..]].concat()
        } else {
            [&frame[l3 + 8..l3 + 40], &len[..], &[0, 0, 0, 17]].concat()
        };
        match internet_checksum(&[&pseudo, &zeroed]) {
            0 => 0xffff,
            c => c,
        }
    }

    /// An Ethernet/IPv4/UDP frame (checksums filled in) with an optional VLAN tag.
    pub(crate) fn ipv4_udp(src_port: u16, payload: &[u8], vlan: bool) -> Vec<u8> {
        let mut frame = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        if vlan {
            frame.extend_from_slice(&[0x81, 0x00, 0x00, 0x07]);
        }
        frame.extend_from_slice(&[0x08, 0x00]);
        let udp_len = 8 + payload.len() as u16;
        let total = 20 + udp_len;
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 11, 0, 1, 10, 11, 0, 2];
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        let check = internet_checksum(&[&ip]);
        ip[10..12].copy_from_slice(&check.to_be_bytes());
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&src_port.to_be_bytes());
        frame.extend_from_slice(&4791u16.to_be_bytes());
        frame.extend_from_slice(&udp_len.to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.extend_from_slice(payload);
        let check = udp_checksum_from_scratch(&frame);
        let at = frame.len() - payload.len() - 2;
        frame[at..at + 2].copy_from_slice(&check.to_be_bytes());
        frame
    }

    /// An Ethernet/IPv6/UDP frame with its checksum filled in.
    pub(crate) fn ipv6_udp(src_port: u16, payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd];
        let udp_len = 8 + payload.len() as u16;
        let mut ip = vec![0x60, 0, 0, 0];
        ip.extend_from_slice(&udp_len.to_be_bytes());
        ip.extend_from_slice(&[17, 64]);
        ip.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        ip.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&src_port.to_be_bytes());
        frame.extend_from_slice(&53u16.to_be_bytes());
        frame.extend_from_slice(&udp_len.to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.extend_from_slice(payload);
        let check = udp_checksum_from_scratch(&frame);
        frame[54 + 6..54 + 8].copy_from_slice(&check.to_be_bytes());
        frame
    }

    /// A small deterministic generator (xorshift64*), so failures reproduce.
    pub(crate) struct Rng(pub(crate) u64);
    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    pub(crate) fn set_port(frame: &mut [u8], port: u16) {
        let t = parse_udp_template(frame).unwrap();
        let new = udp_checksum_replace(t.checksum, t.src_port, port);
        frame[t.udp_offset..t.udp_offset + 2].copy_from_slice(&port.to_be_bytes());
        frame[t.udp_offset + 6..t.udp_offset + 8].copy_from_slice(&new.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::test_frames::*;
    use super::*;

    #[test]
    fn incremental_update_matches_a_checksum_from_scratch() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..2000 {
            let len = (rng.next() % 64) as usize;
            let payload: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let mut frame = match round % 3 {
                0 => ipv4_udp(rng.next() as u16, &payload, false),
                1 => ipv4_udp(rng.next() as u16, &payload, true),
                _ => ipv6_udp(rng.next() as u16, &payload),
            };
            // Several rewrites in a row, as a recycled page sees them.
            for _ in 0..4 {
                set_port(&mut frame, rng.next() as u16);
                let t = parse_udp_template(&frame).unwrap();
                assert_eq!(t.checksum, udp_checksum_from_scratch(&frame), "round {round}");
            }
        }
    }

    #[test]
    fn checksum_edge_values() {
        // A zero checksum (none) stays zero.
        assert_eq!(udp_checksum_replace(0, 1000, 1001), 0);
        // Same port: unchanged, whatever the representation of zero.
        for check in [1, 0x1234, 0xfffe, 0xffff] {
            let same = udp_checksum_replace(check, 53, 53);
            assert!(same == check || (check == 0xffff && same == 0xffff), "{check:#x}");
        }
        // Every (old, new) pair that makes the sum wrap: result is never 0.
        for old in (0..=u16::MAX).step_by(257) {
            for new in (0..=u16::MAX).step_by(263) {
                assert_ne!(udp_checksum_replace(0x8000, old, new), 0);
            }
        }
        // A payload whose checksum is 0xffff (computed 0) before and after.
        let mut rng = Rng(7);
        let mut found = 0;
        for _ in 0..200_000 {
            let frame = ipv4_udp(rng.next() as u16, &[rng.next() as u8, rng.next() as u8], false);
            if parse_udp_template(&frame).unwrap().checksum == 0xffff {
                let mut frame = frame;
                set_port(&mut frame, 4000);
                assert_eq!(
                    parse_udp_template(&frame).unwrap().checksum,
                    udp_checksum_from_scratch(&frame)
                );
                found += 1;
            }
        }
        assert!(found > 0, "no frame with checksum 0xffff among the samples");
    }

    #[test]
    fn template_parsing() {
        let v4 = ipv4_udp(1234, b"hello", false);
        let t = parse_udp_template(&v4).unwrap();
        assert_eq!((t.udp_offset, t.src_port), (34, 1234));
        let tagged = ipv4_udp(1234, b"hello", true);
        assert_eq!(parse_udp_template(&tagged).unwrap().udp_offset, 38);
        let v6 = ipv6_udp(99, b"x");
        assert_eq!(parse_udp_template(&v6).unwrap().udp_offset, 54);

        let mut options_v4 = v4.clone();
        options_v4[14] = 0x46; // IHL 6: 4 bytes of options
        options_v4.splice(34..34, [1, 1, 1, 1]);
        assert_eq!(parse_udp_template(&options_v4).unwrap().udp_offset, 38);

        let mut tcp = v4.clone();
        tcp[23] = 6;
        assert!(parse_udp_template(&tcp).unwrap_err().contains("protocol 6"));
        let mut arp = v4.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(parse_udp_template(&arp).unwrap_err().contains("0x0806"));
        let mut fragment = v4.clone();
        fragment[20] = 0x00;
        fragment[21] = 0x10;
        assert!(parse_udp_template(&fragment).unwrap_err().contains("fragment"));
        let mut qinq = tagged.clone();
        qinq[16..18].copy_from_slice(&[0x81, 0x00]);
        assert!(parse_udp_template(&qinq).unwrap_err().contains("VLAN"));
        let mut ext = v6.clone();
        ext[20] = 0; // hop-by-hop
        assert!(parse_udp_template(&ext).unwrap_err().contains("next header 0"));
        assert!(parse_udp_template(&v4[..40]).unwrap_err().contains("UDP header"));
        assert!(parse_udp_template(&v4[..10]).is_err());
        assert!(parse_udp_template(&v6[..30]).unwrap_err().contains("IPv6"));
    }
}
