//! Native link settings for the pipeline's C/C++ dependencies.
//!
//! espeak-ng (under piper-rs, via espeak-rs-sys) calls into libsonic for
//! speed changes but its build does not link it; Debian's libsonic-dev ships
//! the static archive, so link it here.
//!
//! llama.cpp (llama-cpp-2) and whisper.cpp (whisper-rs) share one static
//! ggml, built by `scripts/build_ggml.sh` into the prefix `.cargo/config.toml`
//! names in `CMAKE_PREFIX_PATH`. Check it is there (with a message saying how
//! to make it) and put its `lib` on the link path.
use std::path::PathBuf;

fn main() {
    println!("cargo:rustc-link-search=native=/usr/lib/x86_64-linux-gnu");
    println!("cargo:rustc-link-lib=static=sonic");
    println!("cargo:rerun-if-changed=build.rs");

    println!("cargo:rerun-if-env-changed=CMAKE_PREFIX_PATH");
    let prefix = std::env::var_os("CMAKE_PREFIX_PATH").map(PathBuf::from);
    let lib = prefix.as_ref().map(|p| p.join("lib"));
    match lib {
        Some(lib) if lib.join("libggml.a").is_file() => {
            println!("cargo:rerun-if-changed={}", lib.join("libggml.a").display());
            println!("cargo:rustc-link-search=native={}", lib.display());
        }
        _ => panic!(
            "the shared ggml build is missing (CMAKE_PREFIX_PATH={prefix:?}, set by .cargo/config.toml): \
             run scripts/setup.sh (or scripts/build_ggml.sh) once, then cargo again"
        ),
    }
}
