# Sourced by bench/apply and bench/noop: what both need to measure lxcform against
# community.general's Python lxc_container module.
#
# community.general's module ignores lxc_path when it opens a container (lxc.Container(name)
# without config_path): it only works in liblxc's default lxc_path, /var/lib/lxc. So the
# benches run in a private mount namespace (unshare -m) with a temporary directory
# bind-mounted over /var/lib/lxc: every tool uses that default path, and the host's
# /var/lib/lxc is never touched.
#
# The caller sets BENCH (its name, for messages) and ROOT (the checkout) before sourcing.
# Environment: VENV (default /tmp/lxcform-bench-venv: made with Debian's /usr/bin/python3
# --system-site-packages so python3-lxc imports, and `pip install ansible` for ansible-core
# and community.general), LXCFORM / MODULE (default target/release/{lxcform,lxc_container},
# built if missing; MODULE= leaves ours out). Needs root; installs python3-lxc with apt when
# missing.

VENV=${VENV:-/tmp/lxcform-bench-venv}
LXC_PATH=/var/lib/lxc

die() { echo "bench/$BENCH: $*" >&2; exit 1; }

# Re-executes the calling script in a private mount namespace, once.
enter_private_namespace() {
    [ "$(id -u)" = 0 ] || die "needs root"
    command -v lxc-info >/dev/null || die "needs lxc-info (package lxc)"
    if [ -z "${LXCFORM_BENCH_NS:-}" ]; then
        exec env LXCFORM_BENCH_NS=1 unshare -m --propagation private "$0" "$@"
    fi
}

# Sets PY, PYMOD, ANSIBLE_CORE_VERSION, COMMUNITY_GENERAL_VERSION, LXCFORM and MODULE.
setup_peers() {
    if ! /usr/bin/python3 -c 'import lxc' 2>/dev/null; then
        echo "installing python3-lxc ..." >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-lxc >/dev/null ||
            die "cannot install python3-lxc"
    fi
    if [ ! -x "$VENV/bin/ansible-playbook" ]; then
        echo "creating $VENV with ansible (community.general) ..." >&2
        /usr/bin/python3 -m venv --system-site-packages "$VENV" || die "venv failed"
        "$VENV/bin/pip" install -q --disable-pip-version-check ansible || die "pip failed"
    fi
    PY=$VENV/bin/python
    "$PY" -c 'import lxc' 2>/dev/null || die "python3-lxc does not import in $VENV"
    local site
    site=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    PYMOD=$site/ansible_collections/community/general/plugins/modules/lxc_container.py
    [ -f "$PYMOD" ] || die "no community.general lxc_container in $VENV"
    ANSIBLE_CORE_VERSION=$("$PY" -c 'import ansible.release as r; print(r.__version__)')
    COMMUNITY_GENERAL_VERSION=$("$PY" -c "import json; print(json.load(open('$site/ansible_collections/community/general/MANIFEST.json'))['collection_info']['version'])")
    if [ -z "${LXCFORM:-}" ]; then
        LXCFORM=$ROOT/target/release/lxcform
        [ -x "$LXCFORM" ] || (cd "$ROOT" && cargo build --release -q -p lxcform-cli) ||
            die "cannot build lxcform"
    fi
    if [ -z "${MODULE+set}" ]; then
        MODULE=$ROOT/target/release/lxc_container
        if [ ! -x "$MODULE" ] && ! (cd "$ROOT" && cargo build --release -q -p lxcform-ansible); then
            echo "bench/$BENCH: the lxc_container binary module does not build; left out" >&2
            MODULE=
        fi
    fi
}

# Makes WORK (a temporary directory named after the bench) and bind-mounts WORK/lxc over
# LXC_PATH inside the namespace.
make_workdir() {
    WORK=$(mktemp -d "/tmp/lxcform-bench-$BENCH.XXXXXX")
    mkdir "$WORK/lxc"
    mount --bind "$WORK/lxc" "$LXC_PATH" || die "cannot bind-mount over $LXC_PATH in the namespace"
}

# Prints "A / B" with the given printf format.
ratio() { awk -v a="$1" -v b="$2" -v f="${3:-%.1fx}" 'BEGIN {printf f, a / b}'; }
