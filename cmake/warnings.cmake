# Warnings for our own targets (third-party headers are included as SYSTEM).
add_library(deepnet_warnings INTERFACE)
target_compile_options(deepnet_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wno-unused-parameter -Wnon-virtual-dtor>
  $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall --expt-relaxed-constexpr>)
