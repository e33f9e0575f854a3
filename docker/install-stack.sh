#!/usr/bin/env bash
# Install the native pgweave stack on Debian 12: PostgreSQL 15 with plpython3u,
# pg_cron and pgvector 0.8.0 (built from Debian trixie's source package), and the document
# parsers the in-database Python uses (pypdf, Beautiful Soup, python-docx).
# The same script runs in `make setup` and in docker/Dockerfile.postgres.
# Idempotent: every step checks first, so a second run takes a second.
set -euo pipefail

PG_MAJOR="${PG_MAJOR:-15}"
PGVECTOR_VERSION="${PGVECTOR_VERSION:-0.8.0}"
PG_CONFIG="/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config"
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

log() { printf '\033[1m[install-stack]\033[0m %s\n' "$*"; }

APT_UPDATED=""
apt_update_once() {
    if [ -z "$APT_UPDATED" ]; then
        log "apt-get update"
        $SUDO apt-get update -qq
        APT_UPDATED=1
    fi
}

missing_packages() {
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
            echo "$pkg"
        fi
    done
}

PACKAGES=(
    "postgresql-${PG_MAJOR}" "postgresql-server-dev-${PG_MAJOR}" "postgresql-plpython3-${PG_MAJOR}"
    "postgresql-${PG_MAJOR}-cron" python3-urllib3 python3-pypdf python3-bs4 python3-docx python3-venv postgresql-doc-${PG_MAJOR} build-essential dpkg-dev ca-certificates
)
mapfile -t MISSING < <(missing_packages "${PACKAGES[@]}")
if [ "${#MISSING[@]}" -gt 0 ]; then
    apt_update_once
    log "apt-get install ${MISSING[*]}"
    $SUDO apt-get install -y -qq --no-install-recommends "${MISSING[@]}" >/dev/null
else
    log "Debian packages present"
fi

EXT_DIR="$("$PG_CONFIG" --sharedir)/extension"
if [ -f "$EXT_DIR/vector--${PGVECTOR_VERSION}.sql" ] && [ -f "$("$PG_CONFIG" --pkglibdir)/vector.so" ]; then
    log "pgvector ${PGVECTOR_VERSION} present"
else
    SRC_LIST=/etc/apt/sources.list.d/pgweave-trixie-src.sources
    if [ ! -f "$SRC_LIST" ]; then
        log "adding deb-src for Debian trixie (source packages only)"
        $SUDO tee "$SRC_LIST" >/dev/null <<SOURCES
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
        APT_UPDATED=""
    fi
    apt_update_once
    BUILD_DIR="$(mktemp -d)"
    trap 'rm -rf "$BUILD_DIR"' EXIT
    log "building pgvector ${PGVECTOR_VERSION} from trixie source in $BUILD_DIR"
    (cd "$BUILD_DIR" && apt-get source -qq "pgvector=${PGVECTOR_VERSION}-*" 2>/dev/null \
        || apt-get source -qq pgvector)
    SRC="$(find "$BUILD_DIR" -maxdepth 1 -type d -name 'pgvector-*' | head -1)"
    # OPTFLAGS="" drops -march=native so the library runs on any x86-64 CPU.
    make -C "$SRC" -s PG_CONFIG="$PG_CONFIG" OPTFLAGS=""
    $SUDO make -C "$SRC" -s PG_CONFIG="$PG_CONFIG" OPTFLAGS="" install
    if [ ! -f "$EXT_DIR/vector--${PGVECTOR_VERSION}.sql" ]; then
        echo "pgvector ${PGVECTOR_VERSION} was not installed (trixie ships $(basename "$SRC")); set PGVECTOR_VERSION" >&2
        exit 1
    fi
fi

# initdb/pg_ctl of the chosen major, for the project-local cluster.
if ! command -v initdb >/dev/null 2>&1; then
    log "note: initdb is not on PATH; pgweave finds it in /usr/lib/postgresql/${PG_MAJOR}/bin"
fi
log "stack ready: PostgreSQL ${PG_MAJOR}, plpython3u, pg_cron, pgvector ${PGVECTOR_VERSION}"
