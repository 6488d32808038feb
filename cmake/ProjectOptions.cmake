# Warnings and sanitizers for the project's own targets. Third-party headers
# come in as SYSTEM includes (imported targets), so their warnings never count.
add_library(pipeline_options INTERFACE)
add_library(pipeline::options ALIAS pipeline_options)

target_compile_options(pipeline_options INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast
  -Wcast-align -Woverloaded-virtual -Wnull-dereference -Wformat=2
  -Wimplicit-fallthrough)
if(PIPELINE_WARNINGS_AS_ERRORS)
  target_compile_options(pipeline_options INTERFACE -Werror)
endif()

if(SANITIZE)
  target_compile_options(pipeline_options INTERFACE
    -fsanitize=${SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(pipeline_options INTERFACE -fsanitize=${SANITIZE})
endif()

option(PIPELINE_COVERAGE "Instrument the project's code for line coverage (gcov)" OFF)
if(PIPELINE_COVERAGE)
  # Atomic counters: the services count from several threads at once.
  target_compile_options(pipeline_options INTERFACE --coverage -O0 -fno-inline
                         -fprofile-update=atomic)
  target_link_options(pipeline_options INTERFACE --coverage)
endif()
