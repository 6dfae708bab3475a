//! The built-in program bound to its device, for the device's receive metadata.
//!
//! The `bpf_xdp_metadata_rx_timestamp`/`_rx_hash` kfuncs (Linux 6.3) ask the driver for the
//! packet's hardware timestamp and RSS hash. The kernel lets only a *device-bound* program call
//! them: one loaded with `prog_ifindex` set and `BPF_F_XDP_DEV_BOUND_ONLY`, which the verifier
//! then links to that driver's implementations. A device-bound program attaches to that device
//! alone, in driver (native) mode only.
//!
//! aya 0.14 can do neither part (no `prog_ifindex`, no kfunc calls), so this module loads the
//! program itself, from what aya prepared:
//!
//! 1. aya's loader ([`super::object::load_builtin`]) creates the maps and sets the read-only
//!    switches (`RX_META_ON`, `RX_DEVICE_META_ON`), as for every load;
//! 2. the embedded object is parsed again with aya-obj and its map references relocated to the
//!    descriptors of aya's maps, and its function calls linked;
//! 3. each stand-in `call KFUNC_*` (see `afxdp_ebpf_common::kfunc`) becomes a kfunc call:
//!    `src_reg = BPF_PSEUDO_KFUNC_CALL`, `imm` = the function's id in the kernel's BTF;
//! 4. `BPF_PROG_LOAD` with the device and `BPF_F_XDP_DEV_BOUND_ONLY | BPF_F_XDP_HAS_FRAGS`
//!    ([`crate::sys::bpf::load_xdp_program`]); the caller then attaches it with a BPF link in
//!    driver mode ([`crate::sys::bpf::xdp_link_create`]).
//!
//! The program is loaded without its BTF (no function or line info): the verifier needs none
//! for this program, and its log then shows instructions rather than source lines.

use std::collections::HashSet;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use afxdp_ebpf_common::{kfunc, names};
use aya::Ebpf;
use aya::maps::{Map, MapData};
use aya_obj::Object;
use aya_obj::btf::{Btf, BtfKind};
use aya_obj::generated::bpf_insn;

use super::errors::{BpfError, load_error, missing_in_object, refused_load_error};
use super::object::PROGRAM_OBJECT;
use crate::error::Result;
use crate::sys::bpf::{
    BPF_F_XDP_DEV_BOUND_ONLY, BPF_F_XDP_HAS_FRAGS, XdpProgramLoad, load_xdp_program,
};
use crate::sys::{Interface, errno};

/// `BPF_PSEUDO_KFUNC_CALL` (`linux/bpf.h`): a call's `src_reg` for a kernel function, whose
/// `imm` is a BTF id (of vmlinux when `off` is 0).
const BPF_PSEUDO_KFUNC_CALL: u8 = 2;
/// `BPF_JMP | BPF_CALL`: the opcode of a call.
const BPF_CALL_OPCODE: u8 = 0x85;

/// The built-in program of `ebpf` (loaded by aya: maps created, program not loaded yet),
/// relocated against `ebpf`'s maps and with its kfunc calls linked to the running kernel, ready
/// for [`load`]. The instructions hold the maps' descriptors: load them while the maps are
/// open.
pub(crate) fn prepare(ebpf: &Ebpf, iface: &Interface) -> Result<Vec<u64>> {
    let insns = relocated_program(ebpf)?;
    let kernel_btf = Btf::from_sys_fs().map_err(|e| BpfError::DeviceMetadata {
        ifname: iface.name().to_owned(),
        reason: format!("the kernel's BTF (/sys/kernel/btf/vmlinux) is not readable: {e}"),
    })?;
    let insns =
        link_kfuncs(insns, |name| kernel_btf.id_by_type_name_kind(name, BtfKind::Func).ok())
            .map_err(|name| BpfError::DeviceMetadata {
                ifname: iface.name().to_owned(),
                reason: format!(
                    "this kernel has no `{name}` (the device metadata kfuncs are in Linux 6.3 \
                     and later)"
                ),
            })?;
    Ok(insns)
}

/// Loads `insns` (from [`prepare`]) bound to `iface`; attach the result with
/// [`crate::sys::bpf::xdp_link_create`] in driver mode.
pub(crate) fn load(insns: &[u64], iface: &Interface) -> Result<OwnedFd> {
    Ok(load_xdp_program(&XdpProgramLoad {
        insns,
        // The object's own; kfunc calls need a GPL-compatible license.
        license: c"Dual MIT/GPL",
        name: names::PROGRAM,
        flags: BPF_F_XDP_DEV_BOUND_ONLY | BPF_F_XDP_HAS_FRAGS,
        ifindex: iface.index(),
    })
    .map_err(|refused| match refused.error.raw_os_error() {
        // Refused before any verification (no log): the driver has no device-bound programs.
        Some(errno::EOPNOTSUPP) if refused.log.trim().is_empty() => BpfError::DeviceMetadata {
            ifname: iface.name().to_owned(),
            reason: "the kernel refused a program bound to it (EOPNOTSUPP): its driver has no \
                     native XDP with device metadata"
                .into(),
        },
        _ => refused_load_error(names::PROGRAM, refused.error, refused.log),
    })?)
}

/// The built-in program's instructions with its maps relocated to `ebpf`'s maps and its calls
/// linked, as native-endian u64s.
fn relocated_program(ebpf: &Ebpf) -> Result<Vec<bpf_insn>> {
    let mut object = Object::parse(PROGRAM_OBJECT).map_err(|e| load_error(&e))?;
    // aya's descriptor of each map, with the parsed object's view of it (section, symbol).
    let maps: Vec<(&str, RawFd, aya_obj::Map)> = ebpf
        .maps()
        .map(|(name, map)| {
            let fd = map_data(name, map)?.fd().as_fd().as_raw_fd();
            let parsed =
                object.maps.get(name).cloned().ok_or_else(|| missing_in_object("map", name))?;
            Ok((name, fd, parsed))
        })
        .collect::<Result<_>>()?;
    let text_sections: HashSet<usize> =
        object.functions.keys().map(|(section, _)| *section).collect();
    object
        .relocate_maps(maps.iter().map(|(name, fd, map)| (*name, *fd, map)), &text_sections)
        .map_err(|e| load_error(&e))?;
    object.relocate_calls(&text_sections).map_err(|e| load_error(&e))?;
    let program = object
        .programs
        .get(names::PROGRAM)
        .ok_or_else(|| missing_in_object("program", names::PROGRAM))?;
    let function = object
        .functions
        .get(&program.function_key())
        .ok_or_else(|| missing_in_object("function", names::PROGRAM))?;
    Ok(function.instructions.clone())
}

/// The descriptor holder of a map of the built-in program (arrays, per-CPU arrays, the XSKMAP).
fn map_data<'a>(name: &str, map: &'a Map) -> Result<&'a MapData> {
    match map {
        Map::Array(data) | Map::PerCpuArray(data) | Map::XskMap(data) => Ok(data),
        _ => Err(missing_in_object("array or XSKMAP map", name).into()),
    }
}

/// `insns` with every stand-in kfunc call turned into a call of the kernel function `btf_id`
/// names (its id in the kernel's BTF), as u64s for `BPF_PROG_LOAD`. `Err(name)` when the kernel
/// has no function `name`.
fn link_kfuncs(
    mut insns: Vec<bpf_insn>,
    btf_id: impl Fn(&str) -> Option<u32>,
) -> std::result::Result<Vec<u64>, &'static str> {
    for insn in &mut insns {
        if insn.code != BPF_CALL_OPCODE || insn.src_reg() != 0 {
            continue;
        }
        if let Some((_, name)) = kfunc::ALL.iter().find(|(id, _)| *id == insn.imm) {
            let id = btf_id(name).ok_or(*name)?;
            insn.set_src_reg(BPF_PSEUDO_KFUNC_CALL);
            insn.imm = id as i32;
            insn.off = 0;
        }
    }
    Ok(insns.iter().map(insn_bits).collect())
}

/// `insn` as the 8 bytes the kernel reads, in a u64.
fn insn_bits(insn: &bpf_insn) -> u64 {
    const _: () = assert!(size_of::<bpf_insn>() == 8);
    // SAFETY: `bpf_insn` is a `repr(C)` plain-data struct of exactly 8 bytes, all initialised
    // (u8, a one-byte bitfield unit, i16, i32: no padding).
    u64::from_ne_bytes(unsafe { std::mem::transmute::<bpf_insn, [u8; 8]>(*insn) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(imm: i32) -> bpf_insn {
        // SAFETY: plain integers (and a bitfield byte): all zeroes is a valid instruction.
        let mut insn: bpf_insn = unsafe { std::mem::zeroed() };
        insn.code = BPF_CALL_OPCODE;
        insn.imm = imm;
        insn
    }

    #[test]
    fn stand_in_calls_become_kfunc_calls() {
        let insns = vec![call(1), call(kfunc::RX_HASH), call(kfunc::RX_TIMESTAMP)];
        let ids = |name: &str| match name {
            "bpf_xdp_metadata_rx_hash" => Some(1000),
            "bpf_xdp_metadata_rx_timestamp" => Some(2000),
            _ => None,
        };
        let out = link_kfuncs(insns, ids).unwrap();
        // A helper call stays one: src_reg 0, imm 1.
        assert_eq!(out[0], u64::from(BPF_CALL_OPCODE) | (1 << 32));
        // Byte 1: dst_reg in the low nibble, src_reg in the high one; imm in the top 32 bits.
        assert_eq!(out[1], u64::from(BPF_CALL_OPCODE) | (0x20 << 8) | (1000 << 32));
        assert_eq!(out[2], u64::from(BPF_CALL_OPCODE) | (0x20 << 8) | (2000 << 32));
    }

    #[test]
    fn a_missing_kernel_function_is_named() {
        let insns = vec![call(kfunc::RX_HASH)];
        assert_eq!(link_kfuncs(insns, |_| None), Err("bpf_xdp_metadata_rx_hash"));
    }

    #[test]
    fn the_embedded_program_has_both_stand_ins() {
        let object = Object::parse(PROGRAM_OBJECT).unwrap();
        let calls: HashSet<i32> = object
            .functions
            .values()
            .flat_map(|f| f.instructions.iter())
            .filter(|i| i.code == BPF_CALL_OPCODE && i.src_reg() == 0)
            .map(|i| i.imm)
            .collect();
        for (id, name) in kfunc::ALL {
            assert!(calls.contains(&id), "no stand-in call for {name}");
        }
    }
}
