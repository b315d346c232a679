# Sourced by bench/clone and bench/archive/run.sh: they make a Debian container once with
# `-t debian`, a template from Debian's lxc-templates (which scripts/setup-host.sh does not
# install: the tests need only busybox) that runs debootstrap against the Debian mirror.
need_debian_template() {
    [ -x /usr/share/lxc/templates/lxc-debian ] && command -v debootstrap >/dev/null && return 0
    echo "installing lxc-templates and debootstrap (for -t debian) ..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq lxc-templates debootstrap >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get install -y -qq lxc-templates debootstrap >/dev/null; } ||
        { echo "cannot install lxc-templates" >&2; exit 1; }
}
