# Sourced by the scripts: the environment they share. Bash only.
#
# - rustup's cargo (~/.cargo/bin) first on PATH when there is one; otherwise install-deps.sh
#   installs Debian's rustc-web/cargo-web (bookworm-security, /usr/bin/cargo).
# - pip may install into a Debian-managed Python (PEP 668): these scripts set up a machine for
#   afxdp, as root, on purpose.
export PATH="$HOME/.cargo/bin:$PATH"
export PIP_BREAK_SYSTEM_PACKAGES=1
export PIP_ROOT_USER_ACTION=ignore

# Re-run the calling script as root: go on when already root, else through sudo when there is one.
# Usage: as_root "$@"   (from the top of a script)
as_root() {
    [[ $(id -u) == 0 ]] && return 0
    if command -v sudo >/dev/null; then
        exec sudo --preserve-env=AFXDP_REQUIRE_PRIVILEGED,SKIP_APT,CI "$0" "$@"
    fi
    echo "$(basename "$0"): needs root (run it as root, or install sudo)" >&2
    exit 1
}
