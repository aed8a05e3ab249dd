# The folders depend one way: dist/cli (the command line) on bench/ and dist/serve (the server) on
# the rest of dist/ on model/ and comm/;
# model/ and comm/ on nothing of the project's but themselves. Fails (exit non-zero) naming every
# file that includes against that direction. Run: cmake -DROOT=<source dir> -P include_direction.cmake
set(rules
  "comm,model/,dist/,bench/,CLI/"
  "model,comm/,dist/,bench/,mpi.h,CLI/"
  "dist,dist/cli/,bench/,CLI/"
  "bench,dist/cli/,dist/serve/,CLI/")
set(bad "")
set(checked 0)
foreach(rule ${rules})
  string(REPLACE "," ";" parts "${rule}")
  list(GET parts 0 folder)
  list(SUBLIST parts 1 -1 forbidden)
  file(GLOB_RECURSE files "${ROOT}/${folder}/*.h" "${ROOT}/${folder}/*.cpp")
  foreach(f ${files})
    if(folder STREQUAL "dist" AND f MATCHES "/dist/cli/")
      continue()  # the command line sits on top and may include anything
    endif()
    set(forbidden_here ${forbidden})
    if(folder STREQUAL "dist" AND NOT f MATCHES "/dist/serve/")
      list(APPEND forbidden_here "dist/serve/")  # only the command line starts the server
    endif()
    math(EXPR checked "${checked} + 1")
    file(STRINGS "${f}" includes REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"]")
    foreach(line ${includes})
      foreach(prefix ${forbidden_here})
        if(line MATCHES "[<\"]${prefix}")
          file(RELATIVE_PATH rel "${ROOT}" "${f}")
          string(APPEND bad "  ${rel}: ${line} (${folder}/ must not include ${prefix})\n")
        endif()
      endforeach()
    endforeach()
  endforeach()
endforeach()
if(NOT bad STREQUAL "")
  message(FATAL_ERROR "includes against the layering:\n${bad}")
endif()
message(STATUS "include direction: ${checked} files, none includes against the layering")
