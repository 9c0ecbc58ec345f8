# Programs that answer one question and exit should not wait for the dynamic
# loader: the C++ runtime is linked in (a fifth of a whole tfimm-cache run
# here otherwise), and unused sections are dropped (2.9 MB -> 2.1 MB, fewer
# pages to map). Not under the sanitizers, which bring their own runtime.
function(tfimm_link_runtime_statically target)
  if(NOT TFIMM_SANITIZE)
    target_link_options(${target} PRIVATE -static-libstdc++ -static-libgcc -Wl,--gc-sections)
  endif()
endfunction()
