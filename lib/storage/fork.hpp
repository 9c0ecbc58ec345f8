// Which fork() generation this process is in, and its pid, without a
// system call per use: a connection opened in a parent must never be used in
// a child, whatever the backend.
#pragma once

#include <sys/types.h>

namespace tfimm::detail {

// How many fork() children this process descends from, counted by an atfork
// handler installed on first use; a connection remembers the generation
// that opened it.
unsigned long fork_generation();

// getpid(), cached and refreshed in each child.
pid_t current_pid();

}  // namespace tfimm::detail
