#!/usr/bin/env bash
# Runs the lxc_container binary module under real ansible-core.
#
#   tests/ansible/run.sh [CHECK ...]     (as root; `make ansible-test` runs it; CHECK: a name
#                                        such as states, or a playbook path; none = all)
#
# Creates (or reuses) a virtualenv with ansible-core at <repo>/.venv, builds the release binary,
# installs it with its documentation lxc_container.yml into a temporary library directory, and
# runs every playbook here against it with the inventory's local hosts and forks > 1. It also
# checks ansible-doc, idempotence (a second run of a play reports changed=0), --check --diff
# from the command line, and the other two ways of installing the module (a playbook's
# library/ directory, a collection's plugins/modules/). Ends with "N passed, M failed" and
# exits non-zero when anything failed.
#
# LXCFORM_VENV=DIR uses another virtualenv; KEEP=1 keeps the work dir (logs) under /tmp.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
venv="${LXCFORM_VENV:-$repo/.venv}"
forks=3

die() { echo "run.sh: $*" >&2; exit 2; }
books=(examples examples_clone examples_clone_archive states config_command check_diff failures arguments fanout)
checks=(ansible-doc "${books[@]}" idempotence check-cli install)
# What to run: names of checks, or playbook paths (tests/ansible/states.yml); none = all. A
# name that is no check is an error, not a run that checks nothing and passes.
only=()
for a in "$@"; do
    a=$(basename "$a" .yml)
    [[ " ${checks[*]} " == *" $a "* ]] || die "no check named $a (checks: ${checks[*]})"
    only+=("$a")
done
wanted() { [ ${#only[@]} = 0 ] || [[ " ${only[*]} " == *" $1 "* ]]; }

[ "$(id -u)" = 0 ] || die "needs root (it creates LXC containers)"
command -v lxc-create >/dev/null || die "LXC is not installed (scripts/setup-host.sh installs it)"
[ -x /usr/share/lxc/templates/lxc-busybox ] || die "the busybox LXC template is missing"
command -v busybox >/dev/null || die "busybox is missing (apt-get install busybox-static)"

# --- ansible-core in a virtualenv ------------------------------------------------------------
if [ ! -x "$venv/bin/ansible-playbook" ]; then
    if ! python3 -m venv "$venv" >/dev/null 2>&1 || [ ! -x "$venv/bin/pip" ]; then
        # Debian's python3 has venv without ensurepip until python3-venv is installed.
        echo "run.sh: python3 -m venv failed; installing python3-venv"
        rm -rf "$venv"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq python3-venv >/dev/null 2>&1 ||
            { apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null; } ||
            die "cannot install python3-venv"
        python3 -m venv "$venv" || die "python3 -m venv failed"
    fi
    echo "run.sh: installing ansible-core into $venv"
    "$venv/bin/pip" install -q --disable-pip-version-check ansible-core ||
        die "pip install ansible-core failed"
fi
export PATH="$venv/bin:$PATH"

# --- the bridge LXC's default config attaches containers to ------------------------------------
if ! ip link show lxcbr0 >/dev/null 2>&1; then
    echo "run.sh: creating bridge lxcbr0 (10.0.3.1/24)"
    ip link add lxcbr0 type bridge && ip addr add 10.0.3.1/24 dev lxcbr0 &&
        ip link set lxcbr0 up || die "cannot create lxcbr0"
fi

# --- the binary -------------------------------------------------------------------------------
if ! command -v cargo >/dev/null; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
(cd "$repo" && cargo build --release -q -p lxcform-ansible) || die "cargo build failed"
bin="$repo/target/release/lxc_container"
doc="$repo/crates/lxcform-ansible/lxc_container.yml"

run=$(mktemp -d /tmp/lxcform-ansible.XXXXXX)
lib="$run/library"
mkdir -p "$lib" "$run/logs" "$run/ansible-tmp"
cp "$bin" "$doc" "$lib/"
echo "run.sh: module $(stat -c %s "$lib/lxc_container") bytes, ansible-core $("$venv/bin/python" -c 'from ansible.release import __version__ as v; print(v)'), work dir $run"

cleanup() {
    # Safety net: playbooks clean up after themselves; this catches an interrupted run.
    local lp
    for lp in $(find "$run" -name config -path '*/*/config' -printf '%h\n' 2>/dev/null | xargs -r -n1 dirname | sort -u); do
        for c in $(lxc-ls -P "$lp" -1 2>/dev/null); do
            lxc-stop -k -P "$lp" -n "$c" >/dev/null 2>&1
            lxc-destroy -f -P "$lp" -n "$c" >/dev/null 2>&1
        done
    done
    [ -n "${KEEP:-}" ] || rm -rf "$run"
}
trap cleanup EXIT

export ANSIBLE_LIBRARY="$lib"
export ANSIBLE_FORKS=$forks
export ANSIBLE_NOCOLOR=1
export ANSIBLE_RETRY_FILES_ENABLED=False
export ANSIBLE_LOCAL_TEMP="$run/ansible-tmp"
export ANSIBLE_REMOTE_TMP="$run/ansible-tmp"
export ANSIBLE_DEPRECATION_WARNINGS=False
export ANSIBLE_STDOUT_CALLBACK=default
# Our settings only: no ansible.cfg from the current directory or the user's home.
printf '[defaults]\n' >"$run/ansible.cfg"
export ANSIBLE_CONFIG="$run/ansible.cfg"

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "PASS  $1"; }
fail() {
    failed=$((failed + 1)); echo "FAIL  $1"
    [ -n "${2:-}" ] && [ -f "$2" ] && sed 's/^/      | /' "$2" | tail -n 60
}

# play NAME PLAYBOOK [ansible-playbook args...]: runs it, logs to $run/logs/NAME.log.
play() {
    local name=$1 book=$2; shift 2
    ansible-playbook -i "$here/inventory.ini" -e "run_dir=$run" -e "module_bin=$lib/lxc_container" \
        "$@" "$book" >"$run/logs/$name.log" 2>&1
}

# recap_changed LOG: "host=changed" for each host of the last PLAY RECAP.
recap_changed() { sed -n '/^PLAY RECAP/,$p' "$1" | grep -o '^[a-z0-9_.-]* *: ok=[0-9]* *changed=[0-9]*' | sed 's/ *: ok=[0-9]* *changed=/=/'; }

# Junk on the module's stdout would make Ansible warn; the module must print only JSON.
no_junk() { ! grep -qiE 'junk after the JSON|Module invocation had junk|MODULE FAILURE' "$1"; }


# --- ansible-doc --------------------------------------------------------------------------------
if wanted ansible-doc; then
    log="$run/logs/ansible-doc.log"
    if ansible-doc -M "$lib" lxc_container >"$log" 2>&1 && grep -q 'OPTIONS' "$log" &&
        ansible-doc -M "$lib" --json lxc_container >"$run/doc.json" 2>>"$log" &&
        echo '{"name": "x", "_unknown_option_": 1}' >"$run/args.json" &&
        { "$bin" "$run/args.json" >"$run/unknown.json"; true; } &&
        python3 - "$run/doc.json" "$run/unknown.json" >>"$log" 2>&1 <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))["lxc_container"]["doc"]["options"]
msg = json.load(open(sys.argv[2]))["msg"]
parser = msg.split("Supported parameters include: ")[1].rstrip(".").split(", ")
assert sorted(doc) == parser, (sorted(doc), parser)
print("documented options match the parser:", len(parser))
EOF
    then pass "ansible-doc shows the module; its options match the parser"
    else fail "ansible-doc" "$log"; fi
fi

# --- the playbooks ------------------------------------------------------------------------------
for b in "${books[@]}"; do
    wanted "$b" || continue
    if play "$b" "$here/$b.yml" && no_junk "$run/logs/$b.log"; then
        pass "$b.yml"
    else
        fail "$b.yml" "$run/logs/$b.log"
    fi
done

# --- idempotence: the second run of a play changes nothing, on every host -----------------------
if wanted idempotence; then
    if play idem-1 "$here/idempotent.yml" && play idem-2 "$here/idempotent.yml"; then
        first=$(recap_changed "$run/logs/idem-1.log" | tr '\n' ' ')
        second=$(recap_changed "$run/logs/idem-2.log" | tr '\n' ' ')
        if [[ "$first" == *h1=[1-9]*h2=[1-9]*h3=[1-9]* ]] &&
            [ "$second" = "h1=0 h2=0 h3=0 " ]; then
            pass "idempotence: first run $first; second run $second"
        else
            fail "idempotence: first run $first; second run $second" "$run/logs/idem-2.log"
        fi
    else
        fail "idempotence" "$run/logs/idem-1.log"; tail -n 30 "$run/logs/idem-2.log" 2>/dev/null
    fi
    play idem-clean "$here/idempotent.yml" -e idem_state=absent ||
        fail "idempotence cleanup" "$run/logs/idem-clean.log"
fi

# --- --check --diff from the command line: reports changes, the hosts stay unchanged ------------
if wanted check-cli; then
    log="$run/logs/check-cli.log"
    if play check-cli "$here/idempotent.yml" --check --diff &&
        [ "$(recap_changed "$log" | tr '\n' ' ')" = "h1=3 h2=3 h3=3 " ] &&
        grep -q '^+state = running' "$log" && grep -q '^-state = absent' "$log" &&
        [ -z "$(for h in h1 h2 h3; do lxc-ls -P "$run/hosts/$h/idem" -1 2>/dev/null; done)" ] &&
        [ ! -e "$run/hosts/h1/idem/web" ]; then
        pass "--check --diff: 3 changes reported per host, diff shown, nothing created"
    else
        fail "--check --diff" "$log"
    fi
fi

# --- other ways to install the module: a playbook's library/, a collection ----------------------
if wanted install; then
    adj="$run/adjacent"
    mkdir -p "$adj/library"
    cp "$bin" "$doc" "$adj/library/"
    cp -r "$here/install_check.yml" "$here/tasks" "$adj/"
    if ANSIBLE_LIBRARY= play adjacent "$adj/install_check.yml" -e sub=adjacent; then
        pass "module in the playbook's library/ directory"
    else fail "module in library/" "$run/logs/adjacent.log"; fi

    coll="$run/collections/ansible_collections/lxcform/lxc"
    mkdir -p "$coll/plugins/modules"
    cp "$bin" "$doc" "$coll/plugins/modules/"
    printf 'namespace: lxcform\nname: lxc\nversion: 0.1.0\n' >"$coll/galaxy.yml"
    # The same playbook with the fully qualified name.
    mkdir -p "$run/fqcn" && cp -r "$here/tasks" "$run/fqcn/"
    sed 's/^\( *\)lxc_container:/\1lxcform.lxc.lxc_container:/' "$here/install_check.yml" >"$run/fqcn/fqcn.yml"
    if ANSIBLE_LIBRARY= ANSIBLE_COLLECTIONS_PATH="$run/collections" \
        play collection "$run/fqcn/fqcn.yml" -e sub=collection; then
        pass "module in a collection's plugins/modules/ (lxcform.lxc.lxc_container)"
    else fail "module in a collection" "$run/logs/collection.log"; fi
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
