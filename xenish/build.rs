//! Links the bare-metal hypervisor image with its own layout.

fn main() {
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "none" {
        let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
        // Position-independent code, linked at fixed addresses: GRUB loads an
        // ET_EXEC image where the linker put it, with no relocation pass.
        println!("cargo:rustc-link-arg-bins=--no-pie");
        // The trampoline lives in the library: keep it in the link.
        println!("cargo:rustc-link-arg-bins=--undefined=_start32");
        println!("cargo:rustc-link-arg-bins=-zmax-page-size=0x1000");
        // A build ID note, which XENVER_build_id reports (as Xen's own).
        println!("cargo:rustc-link-arg-bins=--build-id=sha1");
        println!("cargo:rerun-if-changed={dir}/linker.ld");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
