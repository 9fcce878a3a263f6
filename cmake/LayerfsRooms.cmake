# Rooms: each folder of layerstore/ and fs/ is one static library of every .cc in it, and links
# only the rooms below it (docs/architecture.md). The include check (tests/layering_check.py,
# ctest `layering`) holds every #include of a room to the rooms it links, directly or not, so
# an arrow pointing up fails the build's tests, not just a review.
#
#   layerfs_room(NAME ROOMS <rooms below> LIBS <third-party targets>)
function(layerfs_room name)
  cmake_parse_arguments(ROOM "" "" "ROOMS;LIBS" ${ARGN})
  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cc)
  add_library(${name} STATIC ${sources})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PUBLIC ${ROOM_ROOMS} ${ROOM_LIBS})
  file(RELATIVE_PATH dir ${PROJECT_SOURCE_DIR} ${CMAKE_CURRENT_SOURCE_DIR})
  set_property(GLOBAL APPEND PROPERTY LAYERFS_ROOMS ${name})
  set_property(GLOBAL PROPERTY LAYERFS_ROOM_DIR_${name} ${dir})
  set_property(GLOBAL PROPERTY LAYERFS_ROOM_DEPS_${name} ${ROOM_ROOMS})
endfunction()

# Writes <build>/rooms.txt, one line per room: "dir: dirs of the rooms it links directly".
function(layerfs_write_room_map)
  get_property(rooms GLOBAL PROPERTY LAYERFS_ROOMS)
  set(text "")
  foreach(room ${rooms})
    get_property(dir GLOBAL PROPERTY LAYERFS_ROOM_DIR_${room})
    get_property(deps GLOBAL PROPERTY LAYERFS_ROOM_DEPS_${room})
    set(dep_dirs "")
    foreach(dep ${deps})
      get_property(dep_dir GLOBAL PROPERTY LAYERFS_ROOM_DIR_${dep})
      if(NOT dep_dir)
        message(FATAL_ERROR "room ${room} links ${dep}, which is not a room defined before it")
      endif()
      list(APPEND dep_dirs ${dep_dir})
    endforeach()
    list(JOIN dep_dirs " " dep_text)
    string(APPEND text "${dir}: ${dep_text}\n")
  endforeach()
  file(WRITE ${PROJECT_BINARY_DIR}/rooms.txt "${text}")
endfunction()
