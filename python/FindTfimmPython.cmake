# Finds what the Python package (python/) needs: pybind11's CMake package and
# an interpreter with its development headers. Sets TFIMM_PYTHON_FOUND,
# TFIMM_PYTHON_WHY (when not found) and Python_EXECUTABLE, and
# TFIMM_PYTHON_HAS_PYTEST.
#
# The python3 first on PATH may be a separate interpreter (pyenv, conda) that
# does not see Debian's packages. Given -DPython_EXECUTABLE (scikit-build
# passes it), that one is used; otherwise the first of python3 on PATH and
# /usr/bin/python3 that has its headers and pytest, else the first with
# headers (the tests are then not registered).
set(TFIMM_PYTHON_FOUND OFF)
set(TFIMM_PYTHON_HAS_PYTEST OFF)
if(TFIMM_SANITIZE)
  # An instrumented module cannot be loaded by an uninstrumented interpreter.
  set(TFIMM_PYTHON_WHY "not with TFIMM_SANITIZE (${TFIMM_SANITIZE})")
  return()
endif()

function(tfimm_probe_python exe headers_var pytest_var)
  execute_process(
    COMMAND ${exe} -c "import os, sysconfig; print(os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))"
    OUTPUT_VARIABLE out RESULT_VARIABLE rc ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
  set(${headers_var} OFF PARENT_SCOPE)
  set(${pytest_var} OFF PARENT_SCOPE)
  if(rc EQUAL 0 AND out STREQUAL "True")
    set(${headers_var} ON PARENT_SCOPE)
    execute_process(COMMAND ${exe} -c "import pytest" RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
    if(rc EQUAL 0)
      set(${pytest_var} ON PARENT_SCOPE)
    endif()
  endif()
endfunction()

if(Python_EXECUTABLE)
  set(candidates ${Python_EXECUTABLE})
else()
  find_program(TFIMM_PATH_PYTHON3 python3)
  set(candidates)
  if(TFIMM_PATH_PYTHON3)
    list(APPEND candidates ${TFIMM_PATH_PYTHON3})
  endif()
  if(EXISTS /usr/bin/python3)
    list(APPEND candidates /usr/bin/python3)
  endif()
endif()

set(chosen "")
set(chosen_pytest OFF)
foreach(exe IN LISTS candidates)
  tfimm_probe_python(${exe} headers pytest)
  if(headers AND pytest)
    set(chosen ${exe})
    set(chosen_pytest ON)
    break()
  elseif(headers AND NOT chosen)
    set(chosen ${exe})
  endif()
endforeach()
if(NOT chosen)
  string(REPLACE ";" ", " tried "${candidates}")
  set(TFIMM_PYTHON_WHY "no Python interpreter with its headers (tried: ${tried}; Debian: python3-dev)")
  return()
endif()
set(Python_EXECUTABLE ${chosen} CACHE FILEPATH "Interpreter the tfimm_cache module is built for" FORCE)
# pybind11's FindPython mode, on the interpreter chosen above (its default
# mode would ask the python3 on PATH).
set(PYBIND11_FINDPYTHON ON)
find_package(pybind11 CONFIG QUIET)
if(NOT pybind11_FOUND)
  set(TFIMM_PYTHON_WHY "pybind11's CMake package not found (Debian: pybind11-dev)")
  return()
endif()
set(TFIMM_PYTHON_FOUND ON)
set(TFIMM_PYTHON_HAS_PYTEST ${chosen_pytest})
