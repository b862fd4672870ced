#!/usr/bin/env bash
# make install / make uninstall for avatarq.
#
#   bash systemd/install.sh install   DESTDIR PREFIX VERSION
#   bash systemd/install.sh uninstall DESTDIR PREFIX VERSION
#
# Installs (paths below DESTDIR):
#   PREFIX/bin/avatarq, PREFIX/bin/avatarq-worker, PREFIX/bin/avatarq-http
#   PREFIX/lib/libavatarq.a, PREFIX/lib/libavatarq.so.VERSION (+ the
#   libavatarq.so.0 and libavatarq.so links), PREFIX/include/avatarq.h
#   (the library as `make dist` builds it: only avatarq_* global)
#   PREFIX/lib/pkgconfig/avatarq.pc
#   PREFIX/share/man/man1/avatarq.1, PREFIX/share/man/man8/avatarq-worker.8,
#   PREFIX/share/man/man8/avatarq-http.8
#   SYSCONFDIR/avatarq/config.ini            (never over an admin's changes)
#   UNITDIR/avatarq-worker.service, UNITDIR/avatarq-worker@.service,
#   UNITDIR/avatarq-http.service
#   SYSUSERSDIR/avatarq.conf, TMPFILESDIR/avatarq.conf
#   PREFIX/share/avatarq/emoji/*.svg         (the emoji artwork, @twemoji/svg)
#   PREFIX/share/avatarq/install-manifest    (what uninstall removes)
#
# SYSCONFDIR is /etc. systemd reads units, sysusers.d and tmpfiles.d from
# both /usr/lib and /usr/local/lib, so they go below PREFIX/lib when PREFIX is
# /usr or /usr/local (a /usr/local install never writes into the package
# manager's /usr), and below /usr/local/lib for any other PREFIX (where
# systemd would not look). The environment can override each of SYSCONFDIR,
# UNITDIR, SYSUSERSDIR, TMPFILESDIR.
#
# The programs come from the build `make` just made: $O/ when make ran with
# O=DIR, build-asan/ with SAN=1, else bin/; the libraries from its dist/.
#
# The manifest records every file and directory an install created, with the
# SHA-256 of each file as installed. Uninstall removes exactly those, except
# a config.ini whose content no longer matches (the admin changed it), and
# directories that are not empty. It never removes the avatarq user or
# /var/lib/avatarq (data).
#
# With an empty DESTDIR, run as root, install also does what a package's
# post-install would: creates the user (systemd-sysusers), the state
# directory (systemd-tmpfiles) and reloads systemd if it is running.
set -euo pipefail

usage() {
    echo "usage: $0 install|uninstall DESTDIR PREFIX VERSION" >&2
    exit 2
}
(($# == 4)) || usage
action=$1 destdir=${2%/} prefix=${3%/} version=$4
[ -n "$prefix" ] || prefix=/usr/local

# Paths end up in sed expressions (fill), unit files and shell commands: a
# '#', '&', '\', quote, space or newline in one could run a command or
# rewrite a file. Only plain absolute paths are taken.
check_path() { # NAME VALUE [empty-ok]
    local name=$1 value=$2
    if [ -z "$value" ] && [ -n "${3:-}" ]; then return 0; fi
    if [[ ! "$value" =~ ^/[A-Za-z0-9._/+-]*$ ]] || [[ "$value" == *..* ]]; then
        printf 'install.sh: %s must be an absolute path of A-Z a-z 0-9 . _ / + - only (no ..)\n' \
            "$name" >&2
        exit 2
    fi
}
check_path PREFIX "$prefix"
check_path DESTDIR "$destdir" empty-ok
[[ "$version" =~ ^[0-9A-Za-z.+~-]+$ ]] || { echo "install.sh: bad VERSION" >&2; exit 2; }

cd "$(dirname "$0")/.."
src=$PWD

sysconfdir=${SYSCONFDIR:-/etc}
case "$prefix" in
/usr | /usr/local) syslib=$prefix/lib ;;
*) syslib=/usr/local/lib ;;
esac
unitdir=${UNITDIR:-$syslib/systemd/system}
sysusersdir=${SYSUSERSDIR:-$syslib/sysusers.d}
tmpfilesdir=${TMPFILESDIR:-$syslib/tmpfiles.d}
manifest=$prefix/share/avatarq/install-manifest
check_path SYSCONFDIR "$sysconfdir"
check_path UNITDIR "$unitdir"
check_path SYSUSERSDIR "$sysusersdir"
check_path TMPFILESDIR "$tmpfilesdir"

# Where the build put the programs and the library (see the Makefile's O= and SAN=).
if [ -n "${O:-}" ]; then
    build_bin=$O/bin build_dist=$O/dist
elif [ "${SAN:-}" = 1 ]; then
    build_bin=build-asan/bin build_dist=build-asan/dist
else
    build_bin=bin build_dist=build/dist
fi

# ---- the manifest: lines "KIND SHA256 PATH", PATH without DESTDIR ----
# KIND: f a file, c a config file (kept when changed), d a directory we made.
declare -A rec_kind=() rec_sum=()
rec_order=()

record() { # KIND SUM PATH
    [ -n "${rec_kind[$3]+x}" ] || rec_order+=("$3")
    rec_kind[$3]=$1 rec_sum[$3]=$2
}

load_manifest() {
    local kind sum path
    [ -f "$destdir$manifest" ] || return 0
    while read -r kind sum path; do
        [ -n "$path" ] && record "$kind" "$sum" "$path"
    done <"$destdir$manifest"
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

# Creates DIR with MODE (missing parents 0755), recording each one it made.
make_dir() { # MODE DIR
    local mode=$1 dir=$2 missing=() d
    d=$dir
    while [ -n "$d" ] && [ "$d" != / ] && [ ! -d "$destdir$d" ]; do
        missing=("$d" "${missing[@]}")
        d=$(dirname "$d")
    done
    for d in "${missing[@]}"; do
        if [ "$d" = "$dir" ]; then
            install -d -m "$mode" "$destdir$d"
        else
            install -d -m 0755 "$destdir$d"
        fi
        record d - "$d"
    done
}

# Installs SRC as PATH with MODE (parents 0755), recording it as KIND.
put() { # KIND MODE SRC PATH
    local kind=$1 mode=$2 from=$3 path=$4
    [ -f "$from" ] || { echo "install.sh: missing $from (build first: make)" >&2; exit 1; }
    make_dir 0755 "$(dirname "$path")"
    install -D -m "$mode" "$from" "$destdir$path"
    record "$kind" "$(sha "$destdir$path")" "$path"
    echo "  $destdir$path"
}

# Makes PATH a symbolic link to TARGET (a name in the same directory),
# recorded as a file so uninstall removes it.
put_link() { # TARGET PATH
    ln -sfn "$1" "$destdir$2"
    record f - "$2"
    echo "  $destdir$2 -> $1"
}

# Installs every file of directory SRC matching GLOB into DIR (mode 0644),
# recording each: one copy and one sha256sum for thousands of files.
put_tree() { # SRC GLOB DIR
    local from=$1 glob=$2 dir=$3 n=0 sum path
    make_dir 0755 "$dir"
    (cd "$from" && find . -maxdepth 1 -type f -name "$glob" -printf '%P\0' | sort -z |
        xargs -0 -r install -m 0644 -t "$destdir$dir")
    while read -r sum path; do
        record f "$sum" "$dir/${path##*/}"
        n=$((n + 1))
    done < <(cd "$destdir$dir" && find . -maxdepth 1 -type f -name "$glob" -printf '%P\0' | sort -z |
        xargs -0 -r sha256sum)
    echo "  $destdir$dir/ ($n files)"
}

# The emoji style's artwork (tests/deps.sh or `npm ci` in data/emoji/ fetches
# it, pinned); without it the emoji style fails with a message saying so.
put_emoji() {
    local art=data/emoji/node_modules/@twemoji/svg
    if [ ! -d "$art" ]; then
        echo "install.sh: no emoji artwork in $art (run: bash tests/deps.sh); the emoji style will not render" >&2
        return 0
    fi
    put_tree "$art" '*.svg' "$prefix/share/avatarq/emoji"
    put f 0644 "$art/license" "$prefix/share/avatarq/emoji/LICENSE"
}

# Generated files are staged in one scratch directory, removed on exit
# (fill and installed_config run in $(...) subshells: a path list kept in a
# variable there would never reach the trap).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Fills the @VARIABLES@ of a template into the scratch directory; prints the
# file's name.
fill() { # TEMPLATE
    local out=$work/${1##*/}
    sed -e "s#@PREFIX@#$prefix#g" -e "s#@BINDIR@#$prefix/bin#g" \
        -e "s#@SYSCONFDIR@#$sysconfdir#g" -e "s#@VERSION@#$version#g" "$1" >"$out"
    echo "$out"
}

# The shipped config.ini keeps its data in ./var/ (relative to where the
# program runs); the installed one points at the state directory instead, so
# the service and an operator running `avatarq` anywhere see the same files.
installed_config() {
    local out=$work/config.ini
    {
        echo "; Installed by \`make install\`: the data paths below point at the state"
        echo "; directory /var/lib/avatarq instead of ./var (avatarq-worker(8))."
        sed -E 's#^([[:space:]]*(root|path)[[:space:]]*=[[:space:]]*)\./var/#\1/var/lib/avatarq/#' \
            config.ini
    } >"$out"
    echo "$out"
}

# config.ini: install it when absent; replace it when it is still exactly what
# an earlier install put there (an upgrade); otherwise leave the admin's file
# alone and put the new one beside it as config.ini.new.
put_config() {
    local new path=$sysconfdir/avatarq/config.ini cur
    [ -f config.ini ] || { echo "install.sh: missing $src/config.ini" >&2; exit 1; }
    new=$(installed_config)
    make_dir 0750 "$sysconfdir/avatarq"
    if [ ! -e "$destdir$path" ]; then
        put c 0640 "$new" "$path"
        return
    fi
    cur=$(sha "$destdir$path")
    if [ "$cur" = "$(sha "$new")" ]; then
        record c "$cur" "$path"
        echo "  $destdir$path (unchanged)"
    elif [ "${rec_kind[$path]:-}" = c ] && [ "${rec_sum[$path]}" = "$cur" ]; then
        put c 0640 "$new" "$path"
    else
        put f 0640 "$new" "$path.new"
        echo "install.sh: kept your $destdir$path; the new default is $path.new" >&2
    fi
}

# What a package's post-install does; only for a live install by root.
post_install() {
    [ -z "$destdir" ] && [ "$(id -u)" = 0 ] || return 0
    # the new libavatarq.so.0 must be found by the dynamic linker
    if command -v ldconfig >/dev/null 2>&1; then
        ldconfig || true
    fi
    if command -v systemd-sysusers >/dev/null 2>&1; then
        systemd-sysusers "$sysusersdir/avatarq.conf" || true
    fi
    if command -v systemd-tmpfiles >/dev/null 2>&1; then
        systemd-tmpfiles --create "$tmpfilesdir/avatarq.conf" || true
    fi
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        systemctl daemon-reload || true
    fi
}

write_manifest() {
    local tmp p
    make_dir 0755 "$(dirname "$manifest")"
    tmp=$(mktemp "$destdir$manifest.XXXXXX")
    for p in "${rec_order[@]}"; do
        printf '%s %s %s\n' "${rec_kind[$p]}" "${rec_sum[$p]}" "$p"
    done >"$tmp"
    chmod 0644 "$tmp"
    mv "$tmp" "$destdir$manifest"
}

do_install() {
    load_manifest
    echo "installing avatarq $version into ${destdir:-/} (prefix $prefix)"
    put f 0755 "$build_bin/avatarq" "$prefix/bin/avatarq"
    put f 0755 "$build_bin/avatarq-worker" "$prefix/bin/avatarq-worker"
    put f 0755 "$build_bin/avatarq-http" "$prefix/bin/avatarq-http"
    put f 0644 "$build_dist/libavatarq.a" "$prefix/lib/libavatarq.a"
    put f 0755 "$build_dist/libavatarq.so.$version" "$prefix/lib/libavatarq.so.$version"
    put_link "libavatarq.so.$version" "$prefix/lib/libavatarq.so.0"
    put_link "libavatarq.so.0" "$prefix/lib/libavatarq.so"
    put f 0644 include/avatarq.h "$prefix/include/avatarq.h"
    put f 0644 "$(fill systemd/avatarq.pc.in)" "$prefix/lib/pkgconfig/avatarq.pc"
    put f 0644 man/avatarq.1 "$prefix/share/man/man1/avatarq.1"
    put f 0644 man/avatarq-worker.8 "$prefix/share/man/man8/avatarq-worker.8"
    put f 0644 man/avatarq-http.8 "$prefix/share/man/man8/avatarq-http.8"
    put_emoji
    put f 0644 "$(fill systemd/avatarq-worker.service)" "$unitdir/avatarq-worker.service"
    put f 0644 "$(fill systemd/avatarq-worker@.service)" "$unitdir/avatarq-worker@.service"
    put f 0644 "$(fill systemd/avatarq-http.service)" "$unitdir/avatarq-http.service"
    put f 0644 "$(fill systemd/avatarq.sysusers)" "$sysusersdir/avatarq.conf"
    put f 0644 "$(fill systemd/avatarq.tmpfiles)" "$tmpfilesdir/avatarq.conf"
    put_config
    record f - "$manifest"
    write_manifest
    post_install
    if [ "$syslib" != "$prefix/lib" ] && [ -z "${UNITDIR:-}" ]; then
        echo "note: PREFIX $prefix is not searched by systemd; units went to $unitdir"
    fi
}

do_uninstall() {
    local p path kind dirs=()
    if [ ! -f "$destdir$manifest" ]; then
        echo "avatarq is not installed in ${destdir:-/} (no $destdir$manifest)"
        return 0
    fi
    load_manifest
    echo "removing avatarq from ${destdir:-/} (prefix $prefix)"
    for path in "${rec_order[@]}"; do
        kind=${rec_kind[$path]}
        p=$destdir$path
        case "$kind" in
        d) dirs+=("$path") ;;
        c)
            if [ -f "$p" ] && [ "$(sha "$p")" != "${rec_sum[$path]}" ]; then
                echo "install.sh: kept $p: it was changed after install" >&2
            elif [ -e "$p" ]; then
                rm -f "$p" && echo "  $p"
            fi
            ;;
        f)
            if [ -e "$p" ] || [ -L "$p" ]; then
                rm -f "$p" && echo "  $p"
            fi
            ;;
        esac
    done
    # Deepest directories first; one that still holds something stays.
    if ((${#dirs[@]})); then
        while read -r path; do
            if rmdir "$destdir$path" 2>/dev/null; then
                echo "  $destdir$path/"
            fi
        done < <(printf '%s\n' "${dirs[@]}" | awk '{ print length($0) " " $0 }' |
            sort -rn | cut -d' ' -f2-)
    fi
    echo "note: the avatarq user and /var/lib/avatarq (data) are left in place"
}

case "$action" in
install) do_install ;;
uninstall) do_uninstall ;;
*) usage ;;
esac
