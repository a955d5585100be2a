# Found only when the shared ggml prefix (./.ggml, see .cargo/config.toml) is
# missing: stop with a message instead of CMake's generic "not found".
message(FATAL_ERROR
  "The shared ggml build is missing (expected at ${CMAKE_PREFIX_PATH}). "
  "Run scripts/setup.sh (or scripts/build_ggml.sh) once, then cargo again.")
