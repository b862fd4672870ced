/* support_units: what the systemd unit tests share (test_units.c for the
 * worker's units, test_http_unit.c for avatarq-http's): the tools they
 * need, `systemd-analyze verify` and `security`, and the unit's sandbox
 * emulated where no systemd runs as PID 1: in a mount namespace of its own
 * / is read-only but for the data directory (ProtectSystem=strict +
 * StateDirectory=), the program runs as nobody without capabilities and
 * with no_new_privs (User=, CapabilityBoundingSet=, NoNewPrivileges=)
 * under strace, and the trace is checked against the unit's filters. */
#ifndef AQ_SUPPORT_UNITS_H
#define AQ_SUPPORT_UNITS_H

#include <stdbool.h>
#include <sys/types.h>

#include "buf.h"

/* True when the shell finds the program name. */
bool un_have_tool(const char *name);
/* True, after a note on stderr ("note: TOOL not installed; WHAT
 * skipped"), when the program tool is not there: the caller skips the
 * check named what. */
bool un_missing(const char *tool, const char *what);
/* Copies the man pages of root/man into dir/man/man1 and dir/man/man8, so
 * that verify's Documentation= check (MANPATH=dir/man) reads ours and not
 * an installed copy. Fails the test when it cannot. */
void un_man_dir(const char *dir, const char *root);
/* A unit test's fixture: bindir (PATH_MAX bytes) gets the absolute
 * directory of the programs under test ($AQ_BIN_DIR, else ./bin), tmp
 * (PATH_MAX bytes) a fresh temp dir holding the man pages of root
 * (un_man_dir). Fails the test when the programs' directory is missing. */
void un_fixture(char *bindir, char *tmp, const char *root);
/* `systemd-analyze verify` of the unit file at path, with MANPATH=dir/man;
 * the output into out. True when it exits 0 without a word: verify exits 0
 * on unknown keys or unparsable values ("ignoring"), so any output at all
 * is a failure. */
bool un_verify(const char *dir, const char *path, buf *out);
/* The verify check is not vacuous: a copy of the unit at path with key
 * misspelt (its last letter dropped) is reported. Fails the test when not. */
void un_verify_catches(const char *dir, const char *path, const char *key);
/* The "Overall exposure level" of `systemd-analyze security --offline=yes`
 * for the unit file at path, or -1 (then the output is printed). */
double un_exposure(const char *path);

/* False, with a note on stderr, where the sandbox cannot be emulated: a
 * sanitizer build (its runtime makes calls the production build does not),
 * no systemd-analyze, strace, setpriv or unshare, not root, or no ptrace or
 * mount namespaces here. */
bool un_sandbox_possible(void);
/* Starts argv (argv[0] an absolute path) in the sandbox, dir its only
 * writable directory and its trace dir/trace; output appended to log.
 * Returns the pid of the namespace's first process (the program is
 * strace's child). */
pid_t un_sandbox_spawn(const char *dir, const char *trace, char *const argv[], const char *log);
/* Writes to path the system calls the units allow
 * (SystemCallFilter=@system-service ~@privileged @resources), one a line;
 * fails the test when the list cannot be made. */
void un_allowed_syscalls(const char *path);
/* Checks the trace of what against the unit's limits, allowed being the
 * list of un_allowed_syscalls: only allowed system calls, at least
 * min_work write-like calls (the check is not vacuous), sockets of
 * AF_UNIX, AF_INET and AF_INET6 only (RestrictAddressFamilies=), no
 * writable and executable mapping (MemoryDenyWriteExecute=), no write
 * refused by the read-only system, and only per-process files of /proc
 * (ProcSubset=pid). Fails the test naming what broke the limits. */
void un_audit_trace(const char *what, const char *trace, const char *allowed, int min_work);

#endif
