//! espeak-ng (under piper-rs, via espeak-rs-sys) calls into libsonic for
//! speed changes but its build does not link it; Debian's libsonic-dev ships
//! the static archive, so link it here.
fn main() {
    println!("cargo:rustc-link-search=native=/usr/lib/x86_64-linux-gnu");
    println!("cargo:rustc-link-lib=static=sonic");
    println!("cargo:rerun-if-changed=build.rs");
}
