# nhiguard_bpf_skeleton(<name> <source.bpf.c> [INCLUDES dir...])
#
# Compiles one BPF program with clang (-target bpf, CO-RE, BTF), turns the object into a libbpf
# skeleton with `bpftool gen skeleton`, and exposes an INTERFACE target `<name>_skel` whose include
# directory holds `<name>.skel.h`. Header dependencies come from clang's depfile, so editing a
# shared header rebuilds the programs that include it.
include_guard(GLOBAL)

find_program(BPF_CLANG NAMES clang clang-16 clang-15 clang-14 REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)

# libbpf's __TARGET_ARCH_* names differ from CMAKE_SYSTEM_PROCESSOR.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  set(NHIGUARD_BPF_ARCH x86)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
  set(NHIGUARD_BPF_ARCH arm64)
else()
  message(FATAL_ERROR "nhiguard: no BPF target arch for ${CMAKE_SYSTEM_PROCESSOR}")
endif()

set(NHIGUARD_VMLINUX_DIR ${CMAKE_BINARY_DIR}/vmlinux/${NHIGUARD_BPF_ARCH})
if(NHIGUARD_VMLINUX_FROM_HOST)
  add_custom_command(
    OUTPUT ${NHIGUARD_VMLINUX_DIR}/vmlinux.h
    COMMAND ${CMAKE_COMMAND} -E make_directory ${NHIGUARD_VMLINUX_DIR}
    COMMAND sh -c "${BPFTOOL} btf dump file /sys/kernel/btf/vmlinux format c > ${NHIGUARD_VMLINUX_DIR}/vmlinux.h"
    COMMENT "Generating vmlinux.h from the host kernel's BTF")
else()
  set(_pinned ${PROJECT_SOURCE_DIR}/bpf/vmlinux/${NHIGUARD_BPF_ARCH}/vmlinux.h)
  if(NOT EXISTS ${_pinned})
    message(FATAL_ERROR "nhiguard: no pinned vmlinux.h for ${NHIGUARD_BPF_ARCH}; "
                        "configure with -DNHIGUARD_VMLINUX_FROM_HOST=ON")
  endif()
  add_custom_command(
    OUTPUT ${NHIGUARD_VMLINUX_DIR}/vmlinux.h
    COMMAND ${CMAKE_COMMAND} -E copy_if_different ${_pinned} ${NHIGUARD_VMLINUX_DIR}/vmlinux.h
    DEPENDS ${_pinned})
endif()
add_custom_target(nhiguard_vmlinux DEPENDS ${NHIGUARD_VMLINUX_DIR}/vmlinux.h)

function(nhiguard_bpf_skeleton name source)
  cmake_parse_arguments(ARG "" "" "INCLUDES" ${ARGN})
  get_filename_component(src_abs ${source} ABSOLUTE)
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/bpf_out)
  set(obj ${out_dir}/${name}.bpf.o)
  set(skel ${out_dir}/${name}.skel.h)
  set(dep ${out_dir}/${name}.bpf.d)
  set(include_flags -I${NHIGUARD_VMLINUX_DIR} -I${PROJECT_SOURCE_DIR}/bpf)
  foreach(dir IN LISTS ARG_INCLUDES)
    list(APPEND include_flags -I${dir})
  endforeach()

  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${out_dir}
    COMMAND ${BPF_CLANG} -g -O2 -target bpf -D__TARGET_ARCH_${NHIGUARD_BPF_ARCH}
            -Wall -Werror -Wno-unused-function ${include_flags}
            -MD -MF ${dep} -c ${src_abs} -o ${obj}
    DEPFILE ${dep}
    DEPENDS ${src_abs} nhiguard_vmlinux ${NHIGUARD_VMLINUX_DIR}/vmlinux.h
    COMMENT "BPF ${name}.bpf.c"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND sh -c "${BPFTOOL} gen skeleton ${obj} name ${name} > ${skel}.tmp && mv ${skel}.tmp ${skel}"
    DEPENDS ${obj}
    COMMENT "Skeleton ${name}.skel.h"
    VERBATIM)
  add_custom_target(${name}_skel_gen DEPENDS ${skel})
  add_library(${name}_skel INTERFACE)
  add_dependencies(${name}_skel ${name}_skel_gen)
  target_include_directories(${name}_skel INTERFACE ${out_dir})
  target_link_libraries(${name}_skel INTERFACE PkgConfig::LIBBPF)
endfunction()
