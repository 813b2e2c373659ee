# The one way every GoogleTest suite is registered with ctest.
include(GoogleTest)

# add_gtest(name SOURCES ... [LIBS ...] LABELS ... TIMEOUT seconds): a
# GoogleTest executable whose tests ctest discovers, each carrying every label.
function(add_gtest name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LABELS;LIBS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main)
  gtest_discover_tests(${name}
    DISCOVERY_TIMEOUT 60
    TEST_LIST ${name}_TESTS
    PROPERTIES TIMEOUT ${T_TIMEOUT})
  # gtest_discover_tests flattens a list-valued property ("integration;threaded"),
  # so the labels are set by a script ctest runs after loading the discovered tests.
  set(script ${CMAKE_CURRENT_BINARY_DIR}/${name}_labels.cmake)
  file(WRITE ${script}
    "if(DEFINED ${name}_TESTS)\n"
    "  set_tests_properties(\${${name}_TESTS} PROPERTIES LABELS \"${T_LABELS}\")\n"
    "endif()\n")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${script})
endfunction()
