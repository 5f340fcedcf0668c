#!/usr/bin/env bash
# Install each extra set ALONE in a fresh venv, import the package and run the demo.
#
# The dev venv has every extra, so an optional package imported at module level (argon2 once
# broke `make demo` on a fresh clone) passes the suite and fails a user. This catches that
# class: `embedded` is what `make demo` installs; `embedded,fastapi` and `embedded,security`
# each add one feature and must import and run without the others.
#
# Usage: .ci/extras_smoke.sh [extra-set ...]   (default: the three sets above)
# Env: PYTHON (default python3); pip's own cache makes the repeated installs cheap.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"
DEMO_TIMEOUT_S="${DEMO_TIMEOUT_S:-300}"
if [ "$#" -gt 0 ]; then
    SETS=("$@")
else
    SETS=(embedded embedded,fastapi embedded,security)
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/caas-extras-smoke.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# What must import (and what must fail with the extra's name) for each feature.
CHECK_BASE='import caas_data, caas_data.testing'
CHECK_FASTAPI='import caas_data.fastapi'
CHECK_SECURITY='from caas_data.repositories.platform import PlatformAdminRepository as R
assert R.password_hasher.verify(R.password_hasher.hash("x" * 12), "x" * 12)'
# Without the extra, the feature must raise MissingDependencyError naming it.
expect_missing() {  # python, extra, code
    "$1" - "$2" "$3" <<'EOF'
import sys
import caas_data
extra, code = sys.argv[1], sys.argv[2]
try:
    exec(code)
except caas_data.MissingDependencyError as exc:
    assert f"caas-data[{extra}]" in str(exc), str(exc)
    print(f"  without [{extra}]: {exc}")
else:
    sys.exit(f"expected MissingDependencyError naming [{extra}]")
EOF
}

total_start=$SECONDS
for extras in "${SETS[@]}"; do
    start=$SECONDS
    venv="$work/venv-${extras//,/-}"
    echo "== extras [$extras]: fresh venv"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[$extras]"
    installed=$((SECONDS - start))
    py="$venv/bin/python"

    "$py" -c "$CHECK_BASE"
    case ",$extras," in
        *,fastapi,*) "$py" -c "$CHECK_FASTAPI" ;;
        *) expect_missing "$py" fastapi "$CHECK_FASTAPI" ;;
    esac
    case ",$extras," in
        *,security,*) "$py" -c "$CHECK_SECURITY" ;;
        *) expect_missing "$py" security "$CHECK_SECURITY" ;;
    esac

    # The demo, as `make demo` runs it (it starts its own server and must stop it).
    timeout --kill-after=10 "$DEMO_TIMEOUT_S" "$py" examples/quickstart.py > "$work/demo.log" 2>&1 || {
        echo "examples/quickstart.py failed with [$extras]:"
        cat "$work/demo.log"
        exit 1
    }
    if pgrep -f "$venv/bin/(secantusd-py|python -I .*_watchdog.py)" > /dev/null; then
        echo "the demo left its embedded server (or its watchdog) running with [$extras]:"
        pgrep -af "$venv/bin/(secantusd-py|python -I .*_watchdog.py)"
        exit 1
    fi
    echo "   ok: install ${installed}s, total $((SECONDS - start))s"
done
echo "extras smoke: ${#SETS[@]} sets passed in $((SECONDS - total_start))s"
