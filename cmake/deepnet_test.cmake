# deepnet_add_test(NAME name SOURCES a.cc ... LIBS lib ...): a GoogleTest binary, every case in ctest.
# deepnet_add_cli_test(NAME name SOURCES ... LIBS ... [TIMEOUT s]): a deepnet_add_test that runs the
# `deepnet` binary (DEEPNET_BINARY, built first) from the source tree (DEEPNET_SOURCE_DIR).
# deepnet_add_mpi_test(NAME name SOURCES ... LIBS ... RANKS 2 4): the same binary under mpirun,
# one ctest entry per rank count.
function(deepnet_add_test)
  cmake_parse_arguments(T "" "NAME;TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main deepnet_warnings)
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  if(NOT T_LABELS)
    set(T_LABELS unit)
  endif()
  gtest_discover_tests(${T_NAME} DISCOVERY_TIMEOUT 60
                       PROPERTIES TIMEOUT ${T_TIMEOUT} LABELS "${T_LABELS}"
                       ENVIRONMENT "GLOG_logtostderr=1\\;OMP_NUM_THREADS=2\\;OMP_WAIT_POLICY=passive")
endfunction()

function(deepnet_add_cli_test)
  cmake_parse_arguments(T "" "NAME;TIMEOUT" "SOURCES;LIBS" ${ARGN})
  deepnet_add_test(NAME ${T_NAME} SOURCES ${T_SOURCES} LIBS ${T_LIBS} TIMEOUT ${T_TIMEOUT})
  target_compile_definitions(${T_NAME} PRIVATE DEEPNET_BINARY="$<TARGET_FILE:deepnet>"
                                               DEEPNET_SOURCE_DIR="${DEEPNET_ROOT}")
  add_dependencies(${T_NAME} deepnet)
endfunction()

function(deepnet_add_mpi_test)
  cmake_parse_arguments(T "" "NAME;TIMEOUT" "SOURCES;LIBS;RANKS" ${ARGN})
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} GTest::gtest deepnet_warnings)
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  foreach(n ${T_RANKS})
    add_test(NAME ${T_NAME}.np${n}
             COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${n} --allow-run-as-root
                     --oversubscribe --bind-to none $<TARGET_FILE:${T_NAME}>)
    set_tests_properties(${T_NAME}.np${n} PROPERTIES TIMEOUT ${T_TIMEOUT} LABELS mpi
                         PROCESSORS ${n}
                         ENVIRONMENT "GLOG_logtostderr=1;OMP_NUM_THREADS=1;OMP_WAIT_POLICY=passive")
  endforeach()
endfunction()
