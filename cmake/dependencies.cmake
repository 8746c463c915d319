# Third-party libraries, all from Debian packages (scripts/setup.sh installs them). Every one is
# required: a missing one stops the configure step naming its package, never drops targets.

# Stops the configure step unless `found` is true: `what` was not found, install `packages`.
function(deepnet_require found what packages)
  if(NOT ${found})
    message(FATAL_ERROR "${what} was not found: install the Debian package(s) ${packages} "
                        "(scripts/setup.sh installs every package deepnet needs)")
  endif()
endfunction()

find_package(Threads QUIET)
deepnet_require(Threads_FOUND "POSIX threads" build-essential)
find_package(OpenMP QUIET)
deepnet_require(OpenMP_CXX_FOUND "OpenMP for C++" build-essential)
find_package(MPI QUIET COMPONENTS CXX)
deepnet_require(MPI_CXX_FOUND "MPI for C++" "libopenmpi-dev")
find_package(Protobuf QUIET)
deepnet_require(Protobuf_FOUND "Protocol Buffers" libprotobuf-dev)
deepnet_require(Protobuf_PROTOC_EXECUTABLE "protoc" protobuf-compiler)
find_package(glog CONFIG QUIET)
deepnet_require(glog_FOUND glog libgoogle-glog-dev)
find_package(gflags CONFIG QUIET)
deepnet_require(gflags_FOUND gflags libgflags-dev)
find_package(PkgConfig QUIET)
deepnet_require(PKG_CONFIG_FOUND pkg-config pkg-config)
pkg_check_modules(SPM QUIET IMPORTED_TARGET sentencepiece)
deepnet_require(SPM_FOUND sentencepiece libsentencepiece-dev)
# .xz corpora (text/).
pkg_check_modules(LZMA QUIET IMPORTED_TARGET liblzma)
deepnet_require(LZMA_FOUND liblzma liblzma-dev)

# zlib's crc32: the checksums of safetensors files and token shards (runtime/checksum.h).
find_package(ZLIB QUIET)
deepnet_require(ZLIB_FOUND zlib zlib1g-dev)

# deepnet runs its own OpenMP threads, so it links the OpenMP build of OpenBLAS, not Debian's
# default pthread build (both share one soname; FindBLAS would pick the pthread one).
set(DEEPNET_OPENBLAS_DIR /usr/lib/x86_64-linux-gnu/openblas-openmp)
find_library(OPENBLAS_OPENMP_LIBRARY openblas PATHS ${DEEPNET_OPENBLAS_DIR} NO_DEFAULT_PATH)
find_path(OPENBLAS_OPENMP_INCLUDE_DIR cblas.h
          PATHS /usr/include/x86_64-linux-gnu/openblas-openmp NO_DEFAULT_PATH)
deepnet_require(OPENBLAS_OPENMP_LIBRARY "OpenBLAS (OpenMP build)" libopenblas-openmp-dev)
deepnet_require(OPENBLAS_OPENMP_INCLUDE_DIR "OpenBLAS's cblas.h (OpenMP build)"
                libopenblas-openmp-dev)
add_library(deepnet_openblas INTERFACE)
target_link_libraries(deepnet_openblas INTERFACE ${OPENBLAS_OPENMP_LIBRARY} OpenMP::OpenMP_CXX)
target_include_directories(deepnet_openblas INTERFACE ${OPENBLAS_OPENMP_INCLUDE_DIR})

if(DEEPNET_BUILD_TESTS)
  find_package(GTest CONFIG QUIET)
  deepnet_require(GTest_FOUND GoogleTest "libgtest-dev and libgmock-dev")
  # Tests drive the command line from Python (tests/profile) and parse its JSON output.
  find_package(Python3 QUIET COMPONENTS Interpreter)
  deepnet_require(Python3_Interpreter_FOUND "Python 3 (for tests)" python3)
endif()
if(DEEPNET_BUILD_BENCH)
  find_package(benchmark CONFIG QUIET)
  deepnet_require(benchmark_FOUND "Google Benchmark" libbenchmark-dev)
endif()

if(DEEPNET_CUDA)
  # DEEPNET_CUDA=ON asks for these: the CUDA toolkit and NCCL come from NVIDIA's packages.
  find_package(CUDAToolkit QUIET)
  if(NOT CUDAToolkit_FOUND)
    message(FATAL_ERROR "DEEPNET_CUDA=ON but the CUDA toolkit was not found: install NVIDIA's "
                        "cuda-toolkit, or configure with -DDEEPNET_CUDA=OFF")
  endif()
  find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} $ENV{NCCL_HOME}/include)
  find_library(NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} $ENV{NCCL_HOME}/lib)
  if(NOT NCCL_INCLUDE_DIR OR NOT NCCL_LIBRARY)
    message(FATAL_ERROR "DEEPNET_CUDA=ON but NCCL was not found: install NVIDIA's libnccl-dev "
                        "(or set NCCL_HOME), or configure with -DDEEPNET_CUDA=OFF")
  endif()
  add_library(deepnet_nccl INTERFACE)
  target_include_directories(deepnet_nccl INTERFACE ${NCCL_INCLUDE_DIR})
  target_link_libraries(deepnet_nccl INTERFACE ${NCCL_LIBRARY})
endif()

# Debian's libsentencepiece bundles protobuf 3.14 and exports those symbols; with the shared
# libprotobuf 3.21 in the same process one binds to the other's code and a program crashes at
# start-up or at the first tokenizer load. Executables that use both configs and the tokenizer
# therefore carry all of libprotobuf.a with its symbols kept out of the dynamic table (the shared
# library, left unreferenced, is dropped by --as-needed), so sentencepiece keeps its own copy.
find_library(DEEPNET_PROTOBUF_STATIC NAMES libprotobuf.a)
deepnet_require(DEEPNET_PROTOBUF_STATIC "libprotobuf.a" libprotobuf-dev)
function(deepnet_link_protobuf_privately target)
  # libprotobuf.a's gzip streams also need zlib (ZLIB::ZLIB, found above).
  target_link_libraries(${target} PRIVATE
                        "$<LINK_LIBRARY:WHOLE_ARCHIVE,${DEEPNET_PROTOBUF_STATIC}>" ZLIB::ZLIB)
  target_link_options(${target} PRIVATE -Wl,--as-needed -Wl,--exclude-libs,libprotobuf.a)
endfunction()
