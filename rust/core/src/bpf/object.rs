//! ELF objects: the embedded built-in program, a user's object (aligned copy, picking the
//! program and XSKMAP by name or as the only candidate), and the typed maps taken out of them.

use std::sync::{Mutex, TryLockError};

use aya::maps::{MapData, MapError, XskMap};
use aya::{Ebpf, EbpfLoader};

use super::BuiltinOptions;
use super::errors::{BpfError, load_error, missing_in_object};
use crate::error::Result;

/// The compiled XDP program (ELF object), built from `xdp-ebpf/` by `scripts/build-ebpf.sh`.
pub(crate) static PROGRAM_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("CARGO_MANIFEST_DIR"), "/bpf/afxdp.bpf.o"));

/// A cached loader for one of the embedded objects (no CO-RE relocations, so no kernel BTF):
/// `slot` keeps one per process, made on first use and reused by every load of that object.
///
/// aya 0.14's `EbpfLoader::new` parses the kernel's BTF (`/sys/kernel/btf/vmlinux`) even when
/// `.btf(None)` follows (aya-rs/aya#1172; aya 0.15 parses it lazily but needs Rust 1.98): a
/// loader made per load paid that (about 25 ms) on every `Program.attach` and `generate()`.
/// One slot per object, because a global set with `must_exist` for one object would refuse
/// the other; `load` sets every option a load depends on, so nothing carries over from the
/// load before. Never waits: while the cached loader is in use (another thread's load, or, in
/// a child forked during one, forever) `load` gets a loader of its own, as before the cache.
pub(crate) fn with_loader<R>(
    slot: &'static Mutex<Option<EbpfLoader<'static>>>,
    load: impl FnOnce(&mut EbpfLoader<'static>) -> R,
) -> R {
    fn new_loader() -> EbpfLoader<'static> {
        let mut loader = EbpfLoader::new();
        // Drops the kernel BTF it just parsed: the object's own BTF is still loaded.
        loader.btf(None);
        loader
    }
    let mut cached = match slot.try_lock() {
        Ok(guard) => guard,
        Err(TryLockError::Poisoned(e)) => e.into_inner(),
        Err(TryLockError::WouldBlock) => return load(&mut new_loader()),
    };
    load(cached.get_or_insert_with(new_loader))
}

/// The values of the built-in object's on/off globals (`override_global` keeps a reference).
static OFF: u32 = 0;
static ON: u32 = 1;

/// Loads the built-in object with its XSKMAP sized for `queues` queues and its switches set
/// from `options` (not into the kernel's program list yet: that is
/// [`aya::programs::Xdp::load`]).
pub(crate) fn load_builtin(queues: u32, options: &BuiltinOptions) -> Result<Ebpf> {
    static LOADER: Mutex<Option<EbpfLoader<'static>>> = Mutex::new(None);
    let switch = |on: bool| if on { &ON } else { &OFF };
    let loaded = with_loader(&LOADER, |loader| {
        loader
            .map_max_entries(afxdp_ebpf_common::names::XSKS, queues)
            // A `.rodata` global: frozen before verification, so the verifier prunes what it
            // turns off.
            .override_global(
                afxdp_ebpf_common::names::RX_META_ON,
                switch(options.writes_rx_meta()),
                true,
            )
            .override_global(
                afxdp_ebpf_common::names::RX_DEVICE_META_ON,
                switch(options.device_metadata),
                true,
            )
            .load(PROGRAM_OBJECT)
    });
    Ok(loaded.map_err(|e| load_error(&e))?)
}

/// The map `name` of the built-in object, typed.
pub(crate) fn builtin_map<M>(ebpf: &mut Ebpf, name: &str) -> Result<M>
where
    M: TryFrom<aya::maps::Map, Error = MapError>,
{
    let map = ebpf.take_map(name).ok_or_else(|| missing_in_object("map", name))?;
    Ok(M::try_from(map).map_err(|e| load_error(&e))?)
}

/// A user's object loaded (maps created, programs not loaded yet), with the XDP program and the
/// XSKMAP to use: `program` and `xsk_map` when given, else the only candidate of each.
pub(crate) fn load_custom(
    object: &[u8],
    program: Option<&str>,
    xsk_map: Option<&str>,
) -> Result<(Ebpf, String, XskMap<MapData>)> {
    // The ELF parser wants the object 8-byte aligned.
    let mut aligned = vec![0u64; object.len().div_ceil(8)];
    // SAFETY: `aligned` has at least `object.len()` bytes; u64 has no invalid bit patterns.
    let aligned_bytes =
        unsafe { std::slice::from_raw_parts_mut(aligned.as_mut_ptr().cast::<u8>(), object.len()) };
    aligned_bytes.copy_from_slice(object);
    let mut ebpf = EbpfLoader::new().load(aligned_bytes).map_err(|e| load_error(&e))?;

    let program = pick_name(
        "program",
        program,
        ebpf.programs().map(|(name, p)| (name, matches!(p, aya::programs::Program::Xdp(_)))),
        "XDP program",
    )?;
    match ebpf.program(&program) {
        Some(aya::programs::Program::Xdp(_)) => {}
        Some(other) => {
            return Err(BpfError::WrongType {
                kind: "program",
                name: program,
                expected: "an XDP program",
                found: format!("a {:?} program", other.prog_type()),
            }
            .into());
        }
        None => return Err(missing_in_object("program", &program).into()),
    }
    let map_name = pick_name(
        "map",
        xsk_map,
        ebpf.maps().map(|(name, m)| (name, matches!(m, aya::maps::Map::XskMap(_)))),
        "XSKMAP",
    )?;
    let map = ebpf.take_map(&map_name).ok_or_else(|| missing_in_object("map", &map_name))?;
    let found = map_kind(&map);
    let xsks = XskMap::try_from(map).map_err(|_| BpfError::WrongType {
        kind: "map",
        name: map_name.clone(),
        expected: "an XSKMAP (BPF_MAP_TYPE_XSKMAP)",
        found,
    })?;
    Ok((ebpf, program, xsks))
}

/// The name of the `kind` ("program" or "map") to use: `wanted` if the object has it, else,
/// when `wanted` is `None`, the only candidate (`(name, is_candidate)` pairs).
fn pick_name<'a>(
    kind: &'static str,
    wanted: Option<&str>,
    names: impl Iterator<Item = (&'a str, bool)>,
    candidate: &str,
) -> Result<String, BpfError> {
    let mut all: Vec<(&str, bool)> = names.collect();
    all.sort_unstable();
    let list = |only_candidates: bool| {
        let names: Vec<&str> =
            all.iter().filter(|(_, c)| *c || !only_candidates).map(|(n, _)| *n).collect();
        if names.is_empty() { "none".to_owned() } else { names.join(", ") }
    };
    match wanted {
        Some(name) if all.iter().any(|(n, _)| *n == name) => Ok(name.to_owned()),
        Some(name) => Err(BpfError::NotInObject {
            kind,
            name: Some(name.to_owned()),
            message: format!(
                "the object has no {kind} named {name:?} (its {kind}s: {})",
                list(false)
            ),
        }),
        None => {
            let candidates: Vec<&str> = all.iter().filter(|(_, c)| *c).map(|(n, _)| *n).collect();
            match candidates[..] {
                [only] => Ok(only.to_owned()),
                _ => Err(BpfError::NotInObject {
                    kind,
                    name: None,
                    message: format!(
                        "the object has {} {candidate}s ({}): name the one to use",
                        candidates.len(),
                        list(true)
                    ),
                }),
            }
        }
    }
}

/// The kernel type of a map, for error messages.
fn map_kind(map: &aya::maps::Map) -> String {
    use aya::maps::Map;
    let kind = match map {
        Map::Array(_) => "an array map (BPF_MAP_TYPE_ARRAY)",
        Map::PerCpuArray(_) => "a per-CPU array map (BPF_MAP_TYPE_PERCPU_ARRAY)",
        Map::HashMap(_) => "a hash map (BPF_MAP_TYPE_HASH)",
        Map::PerCpuHashMap(_) => "a per-CPU hash map (BPF_MAP_TYPE_PERCPU_HASH)",
        Map::LruHashMap(_) => "an LRU hash map (BPF_MAP_TYPE_LRU_HASH)",
        Map::DevMap(_) => "a device map (BPF_MAP_TYPE_DEVMAP)",
        Map::DevMapHash(_) => "a device hash map (BPF_MAP_TYPE_DEVMAP_HASH)",
        Map::CpuMap(_) => "a CPU map (BPF_MAP_TYPE_CPUMAP)",
        Map::ProgramArray(_) => "a program array (BPF_MAP_TYPE_PROG_ARRAY)",
        Map::RingBuf(_) => "a ring buffer (BPF_MAP_TYPE_RINGBUF)",
        Map::PerfEventArray(_) => "a perf event array (BPF_MAP_TYPE_PERF_EVENT_ARRAY)",
        Map::XskMap(_) => "an XSKMAP",
        _ => return "a map of another type".to_owned(),
    };
    kind.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_names_from_an_object() {
        let names = || [("b_prog", true), ("a_prog", true), ("tc_prog", false)].into_iter();
        assert_eq!(
            pick_name("program", Some("tc_prog"), names(), "XDP program").unwrap(),
            "tc_prog"
        );
        let missing = pick_name("program", Some("nope"), names(), "XDP program").unwrap_err();
        assert_eq!(
            missing.to_string(),
            "the object has no program named \"nope\" (its programs: a_prog, b_prog, tc_prog)"
        );
        let ambiguous = pick_name("program", None, names(), "XDP program").unwrap_err();
        assert_eq!(
            ambiguous.to_string(),
            "the object has 2 XDP programs (a_prog, b_prog): name the one to use"
        );
        let one = [("only", true), ("other", false)].into_iter();
        assert_eq!(pick_name("map", None, one, "XSKMAP").unwrap(), "only");
        let none = pick_name("map", None, std::iter::empty(), "XSKMAP").unwrap_err();
        assert_eq!(none.to_string(), "the object has 0 XSKMAPs (none): name the one to use");
    }

    #[test]
    fn embedded_object_is_an_ebpf_elf() {
        assert_eq!(&PROGRAM_OBJECT[..4], b"\x7fELF");
        assert_eq!(PROGRAM_OBJECT[4], 2, "ELFCLASS64");
        assert_eq!(u16::from_ne_bytes([PROGRAM_OBJECT[18], PROGRAM_OBJECT[19]]), 247, "EM_BPF");
        assert_eq!(PROGRAM_OBJECT.as_ptr() as usize % 8, 0, "include_bytes_aligned");
    }

    #[test]
    fn a_busy_cached_loader_is_not_waited_for() {
        static SLOT: Mutex<Option<EbpfLoader<'static>>> = Mutex::new(None);
        // Free: the loader is made and kept for the next load.
        assert!(with_loader(&SLOT, |_| true));
        assert!(SLOT.lock().unwrap().is_some());
        // Held, as by another thread's load (or forever, in a child forked during one): the
        // load gets a loader of its own at once instead of waiting.
        let held = SLOT.lock().unwrap();
        assert!(with_loader(&SLOT, |_| true));
        drop(held);
    }

    #[test]
    #[ignore = "needs root: creates the object's maps"]
    fn the_reused_loader_sizes_every_load_anew() {
        use afxdp_ebpf_common::names;
        // The loader is made once and reused: each load gets its own XSKMAP size, and loads
        // with other switches in between still work.
        for (queues, device_metadata) in [(3, false), (1, true), (5, false)] {
            let options = BuiltinOptions { device_metadata, ..BuiltinOptions::default() };
            let mut ebpf = load_builtin(queues, &options).unwrap();
            let xsks: XskMap<MapData> = builtin_map(&mut ebpf, names::XSKS).unwrap();
            assert_eq!(xsks.len(), queues);
        }
    }

    #[test]
    #[ignore = "needs root: creates the object's maps"]
    fn embedded_object_has_the_shared_names() {
        use afxdp_ebpf_common::names;
        let mut ebpf = load_builtin(1, &BuiltinOptions::default()).unwrap();
        assert!(ebpf.program(names::PROGRAM).is_some());
        for name in [names::XSKS, names::RULES, names::ACTIVE, names::HITS, names::NO_SOCKET] {
            assert!(ebpf.take_map(name).is_some(), "no map {name}");
        }
    }
}
