# Third-party libraries, all from Debian packages (scripts/setup.sh installs them).

find_package(Threads REQUIRED)
find_package(OpenMP REQUIRED)
find_package(MPI REQUIRED COMPONENTS CXX)
find_package(Protobuf REQUIRED)
find_package(glog CONFIG REQUIRED)
find_package(gflags CONFIG REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(SPM REQUIRED IMPORTED_TARGET sentencepiece)

# zlib's crc32: the checksums of safetensors files and token shards (runtime/checksum.h).
find_package(ZLIB QUIET)
if(NOT ZLIB_FOUND)
  message(FATAL_ERROR "zlib was not found: install the Debian package zlib1g-dev "
                      "(scripts/setup.sh installs every package deepnet needs)")
endif()

# deepnet runs its own OpenMP threads, so it links the OpenMP build of OpenBLAS, not Debian's
# default pthread build (both share one soname; FindBLAS would pick the pthread one).
set(DEEPNET_OPENBLAS_DIR /usr/lib/x86_64-linux-gnu/openblas-openmp)
find_library(OPENBLAS_OPENMP_LIBRARY openblas PATHS ${DEEPNET_OPENBLAS_DIR} NO_DEFAULT_PATH REQUIRED)
find_path(OPENBLAS_OPENMP_INCLUDE_DIR cblas.h
          PATHS /usr/include/x86_64-linux-gnu/openblas-openmp NO_DEFAULT_PATH REQUIRED)
add_library(deepnet_openblas INTERFACE)
target_link_libraries(deepnet_openblas INTERFACE ${OPENBLAS_OPENMP_LIBRARY} OpenMP::OpenMP_CXX)
target_include_directories(deepnet_openblas INTERFACE ${OPENBLAS_OPENMP_INCLUDE_DIR})

if(DEEPNET_BUILD_TESTS)
  find_package(GTest CONFIG REQUIRED)
endif()
if(DEEPNET_BUILD_BENCH)
  find_package(benchmark CONFIG REQUIRED)
endif()

if(DEEPNET_CUDA)
  find_package(CUDAToolkit REQUIRED)
  find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} $ENV{NCCL_HOME}/include)
  find_library(NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} $ENV{NCCL_HOME}/lib)
  if(NOT NCCL_INCLUDE_DIR OR NOT NCCL_LIBRARY)
    message(FATAL_ERROR "DEEPNET_CUDA=ON but NCCL was not found (set NCCL_HOME)")
  endif()
  add_library(deepnet_nccl INTERFACE)
  target_include_directories(deepnet_nccl INTERFACE ${NCCL_INCLUDE_DIR})
  target_link_libraries(deepnet_nccl INTERFACE ${NCCL_LIBRARY})
endif()

# Python with PyTorch serves only as an independent reference in tests and benchmarks.
find_program(DEEPNET_TORCH_PYTHON NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)

# Debian's libsentencepiece bundles protobuf 3.14 and exports those symbols; with the shared
# libprotobuf 3.21 in the same process one binds to the other's code and a program crashes at
# start-up or at the first tokenizer load. Executables that use both configs and the tokenizer
# therefore carry all of libprotobuf.a with its symbols kept out of the dynamic table (the shared
# library, left unreferenced, is dropped by --as-needed), so sentencepiece keeps its own copy.
find_library(DEEPNET_PROTOBUF_STATIC NAMES libprotobuf.a)
function(deepnet_link_protobuf_privately target)
  if(DEEPNET_PROTOBUF_STATIC)
    # libprotobuf.a's gzip streams also need zlib (ZLIB::ZLIB, found above).
    target_link_libraries(${target} PRIVATE
                          "$<LINK_LIBRARY:WHOLE_ARCHIVE,${DEEPNET_PROTOBUF_STATIC}>" ZLIB::ZLIB)
    target_link_options(${target} PRIVATE -Wl,--as-needed -Wl,--exclude-libs,libprotobuf.a)
  endif()
endfunction()
