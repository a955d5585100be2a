# Runs at the end of whisper.cpp's project() (CMAKE_PROJECT_whisper.cpp_INCLUDE,
# set in .cargo/config.toml). With WHISPER_USE_SYSTEM_GGML whisper.cpp links
# the shared ggml from CMAKE_PREFIX_PATH, but whisper-rs-sys tells rustc to
# link static ggml, ggml-base and ggml-cpu and only looks for them in its own
# CMake build tree: put copies of the shared archives there.
foreach(prefix IN LISTS CMAKE_PREFIX_PATH)
  file(GLOB shared_ggml_libs "${prefix}/lib/libggml*.a")
  if(shared_ggml_libs)
    file(COPY ${shared_ggml_libs} DESTINATION "${CMAKE_BINARY_DIR}/shared-ggml")
    message(STATUS "whisper.cpp: shared ggml from ${prefix}")
    break()
  endif()
endforeach()
