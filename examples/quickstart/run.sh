#!/usr/bin/env bash
# modelsync offline quickstart: the whole loop on your machine in about a minute.
#
#   bash examples/quickstart/run.sh
#
# What it does (nothing leaves this machine; only the first run needs the Python package index):
#   1. builds two tiny but real models into a "seed" cache and serves them with
#      `reconcile serve`, a local stand-in for the Hugging Face Hub;
#   2. writes a manifest declaring which models this machine must have;
#   3. validates it, plans (a download is pending), applies (downloads and verifies),
#      shows the status, and plans again (nothing left to do);
#   4. loads the model exactly as an application would, offline, from the Hugging Face cache;
#   5. damages one byte of the downloaded weights and lets `reconcile --apply` find and repair it;
#   6. locks the models (`reconcile lock`), stops the hub and plans from the lock (`--locked`).
#
# Environment:
#   VENV=/path/to/venv        use this virtualenv (must already have modelsync installed);
#                             default: create .venv at the repo root and install into it
#   QUICKSTART_WORK=/path     where everything is written; default examples/quickstart/work/.
#                             It is wiped at the start of every run.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

# ---------------------------------------------------------------------------- output helpers

bold=""; reset=""
if [[ -t 1 ]]; then bold=$'\033[1m'; reset=$'\033[0m'; fi

# step "title": a numbered heading for each part of the walk-through.
STEP=0
step() {
  STEP=$((STEP + 1))
  printf '\n%s== %d. %s ==%s\n' "$bold" "$STEP" "$1" "$reset"
}

# note "text": one line of explanation.
note() { printf '   %s\n' "$*"; }

# show EXPECTED_EXIT COMMAND...: print the command, run it, and check its exit code.
# `reconcile --plan --detailed-exitcode` exits 2 when changes are pending, so 2 can be success.
show() {
  local expected="$1"; shift
  printf '\n$ %s\n' "$*"
  local code=0
  "$@" || code=$?
  if [[ "$code" != "$expected" ]]; then
    printf '\nquickstart: `%s` exited %d, expected %d\n' "$*" "$code" "$expected" >&2
    exit 1
  fi
  if [[ "$expected" != 0 ]]; then
    note "(exit code $code, as expected)"
  fi
}

die() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------- 0. a Python environment

if [[ -n "${VENV:-}" ]]; then
  # A ready-made environment (the tests use this): install nothing.
  VENV="$(cd "$VENV" && pwd)"
  [[ -x "$VENV/bin/reconcile" ]] || die "VENV=$VENV has no bin/reconcile; pip install -e '$ROOT[test]' into it"
else
  VENV="$ROOT/.venv"
  if [[ ! -x "$VENV/bin/reconcile" ]]; then
    command -v python3 >/dev/null || die "python3 not found; install Python 3.10 or newer"
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
      || die "modelsync needs Python 3.10 or newer; python3 is $(python3 -V 2>&1)"
    printf 'Creating %s and installing modelsync into it (first run only, about a minute)...\n' "$VENV"
    python3 -m venv "$VENV" \
      || die "python3 -m venv failed (on Debian/Ubuntu: apt install python3-venv)"
    # pip's chatter goes to a log, shown only if something fails.
    LOG="$VENV/quickstart-install.log"
    if ! { "$VENV/bin/python" -m pip install --upgrade pip \
           && (cd "$ROOT" && "$VENV/bin/python" -m pip install -e '.[test]'); } >"$LOG" 2>&1; then
      tail -n 40 "$LOG" >&2
      die "installing modelsync failed; full log: $LOG"
    fi
  fi
fi
PY="$VENV/bin/python"
# Shown commands read `reconcile ...`; this is the one they run.
reconcile() { "$VENV/bin/reconcile" "$@"; }

# ---------------------------------------------------------------------------- the work directory

WORK="${QUICKSTART_WORK:-$HERE/work}"
MARKER=".modelsync-quickstart"
# Wipe only what a previous run created: never a directory someone pointed us at by mistake.
if [[ -d "$WORK" && -n "$(ls -A "$WORK")" && ! -e "$WORK/$MARKER" ]]; then
  die "$WORK exists, is not empty and was not made by this script; refusing to wipe it"
fi
rm -rf "$WORK"
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
touch "$WORK/$MARKER"

SEED="$WORK/seed"          # what the local hub serves (the "upstream")
CACHE="$WORK/cache"        # this machine's Hugging Face cache, which modelsync fills
STATE="$WORK/state"        # modelsync's SQLite state and status.yaml
MANIFEST="manifests/quickstart.yaml"   # relative to $WORK, where the commands run

# Keep huggingface_hub away from your real Hugging Face home, token and cache, send no telemetry,
# and ignore any endpoint or offline setting in your shell: the manifest says where to go.
export HF_HOME="$WORK/hf-home"
export HF_HUB_DISABLE_TELEMETRY=1
export HF_HUB_DISABLE_IMPLICIT_TOKEN=1
export HF_HUB_DISABLE_PROGRESS_BARS=1
unset HF_TOKEN HUGGING_FACE_HUB_TOKEN HF_HUB_OFFLINE TRANSFORMERS_OFFLINE HF_ENDPOINT \
      HF_HUB_CACHE HUGGINGFACE_HUB_CACHE

cd "$WORK"

# ---------------------------------------------------------------------------- 1. a local hub

step "Build two small models and serve them on a local hub"
note "Writing demo/tiny-t2v and demo/tiny-text-encoder into $SEED"
"$PY" "$HERE/build_seed.py" "$SEED"

# Ask the OS for a free port: bind port 0 and read back what it chose.
PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
ENDPOINT="http://127.0.0.1:$PORT"

# The binary itself, not the `reconcile` shell function: a backgrounded function would run in a
# subshell, and killing $! would then leave the server behind.
"$VENV/bin/reconcile" serve "$SEED" --host 127.0.0.1 --port "$PORT" >"$WORK/serve.log" 2>&1 &
SERVER_PID=$!
stop_server() {
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
}
trap stop_server EXIT
trap 'exit 130' INT TERM   # Ctrl-C: exit, which runs stop_server

# Wait (at most 20 s) until the hub answers; stop early if the server died.
if ! "$PY" - "$ENDPOINT/api/models/demo/tiny-t2v" "$SERVER_PID" <<'PY'; then
import os, sys, time, urllib.request

url, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                sys.exit(0)
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("the server exited")
    time.sleep(0.1)
sys.exit("the server did not answer within 20 s")
PY
  cat "$WORK/serve.log" >&2
  die "could not start the local hub on port $PORT"
fi
note "Local hub: $ENDPOINT (reconcile serve, pid $SERVER_PID; log: $WORK/serve.log)"
# The manifest below names this port: keep the command that serves it, so the hub can be
# brought back on the same address after the walkthrough has stopped it.
cat >"$WORK/serve.sh" <<SERVE
#!/usr/bin/env bash
# The quickstart's local hub, on the port its manifest names; Ctrl-C stops it.
exec "$VENV/bin/reconcile" serve "$SEED" --host 127.0.0.1 --port $PORT
SERVE
chmod +x "$WORK/serve.sh"

# ---------------------------------------------------------------------------- 2. the manifest

step "Declare the models this machine needs"
mkdir -p manifests
cat >"$MANIFEST" <<YAML
# The desired state of this machine: the only file a person edits (normally kept in git).
# Every field is described by \`reconcile schema\`.
apiVersion: modelsync/v1
kind: ModelSet
metadata:
  name: quickstart
spec:
  cache: ../cache                 # the Hugging Face cache to fill (relative to this file)
  state: ../state                 # modelsync's database and status.yaml
  endpoint: $ENDPOINT   # the local hub; leave out to use https://huggingface.co
  models:
    # Must always be present, and is fetched first.  No include patterns: every file.
    - name: t2v
      repo: demo/tiny-t2v
      revision: main
      priority: critical
      policy: always
    # Only the files matching these patterns (so README.md is skipped).
    - name: text-encoder
      repo: demo/tiny-text-encoder
      include: ["*.safetensors", "*.json"]
      priority: high
      policy: always
YAML
note "Wrote $WORK/$MANIFEST:"
sed 's/^/     | /' "$MANIFEST"

# ---------------------------------------------------------------------------- 3. the loop

step "Validate the manifest"
note "Every problem would be listed as file:line: path: message, and nothing would change."
show 0 reconcile validate -f "$MANIFEST"

step "Plan: what would change (nothing is changed yet)"
note "--detailed-exitcode: 0 = in sync, 2 = changes pending, 1 = error.  Expect 2."
show 2 reconcile --plan -f "$MANIFEST" --detailed-exitcode

step "Apply: download, verify every file's size and checksum, write the status"
show 0 reconcile --apply -f "$MANIFEST"

step "Status: what the controller last observed"
show 0 reconcile status -f "$MANIFEST"

step "Plan again: converged, so nothing to do (expect exit 0)"
show 0 reconcile --plan -f "$MANIFEST" --detailed-exitcode

# ---------------------------------------------------------------------------- 4. use the model

step "Load the model as an application would: offline, from the Hugging Face cache"
note "HF_HUB_OFFLINE=1 and local_files_only=True: no network, just the standard cache layout."
printf '\n$ HF_HUB_OFFLINE=1 python load_model.py\n'
cat >"$WORK/load_model.py" <<'PY'
import sys

from huggingface_hub import hf_hub_download, snapshot_download
from safetensors.numpy import load_file

cache = sys.argv[1]
weights = hf_hub_download("demo/tiny-t2v", "model.safetensors", cache_dir=cache,
                          local_files_only=True)
folder = snapshot_download("demo/tiny-t2v", cache_dir=cache, local_files_only=True)
print(f"weights:  {weights}")
print(f"snapshot: {folder}")
tensors = load_file(weights)
for name, tensor in tensors.items():
    print(f"  {name:28s} {str(tuple(tensor.shape)):18s} {tensor.dtype}")
total = sum(t.size for t in tensors.values())
print(f"loaded {len(tensors)} tensors, {total:,} parameters")
PY
HF_HUB_OFFLINE=1 "$PY" "$WORK/load_model.py" "$CACHE"

# ---------------------------------------------------------------------------- 5. integrity

step "Damage one byte of the downloaded weights, then let modelsync find and repair it"
BLOB="$(HF_HUB_OFFLINE=1 "$PY" - "$CACHE" <<'PY'
import os, sys
from huggingface_hub import hf_hub_download

path = os.path.realpath(hf_hub_download("demo/tiny-t2v", "model.safetensors",
                                        cache_dir=sys.argv[1], local_files_only=True))
with open(path, "r+b") as blob:  # flip every bit of one byte in the middle
    blob.seek(os.path.getsize(path) // 2)
    byte = blob.read(1)
    blob.seek(-1, os.SEEK_CUR)
    blob.write(bytes([byte[0] ^ 0xFF]))
print(path)
PY
)"
note "Flipped one byte in the middle of ${BLOB#"$WORK/"}"

note "reconcile verify re-hashes files that changed since their last check (--full: all of"
note "them) and records any damage; it exits 1 when it finds some."
show 1 reconcile verify -f "$MANIFEST"
show 0 reconcile status -f "$MANIFEST"
printf '\n'; note "The plan now has a repair (-/+) of just the damaged file."
show 2 reconcile --plan -f "$MANIFEST" --detailed-exitcode
printf '\n'; note "Applying moves the bad bytes aside and downloads that one file again."
show 0 reconcile --apply -f "$MANIFEST"

# In the cache a weights file is stored as blobs/<its sha256>: check it independently.
printf '\n'
"$PY" - "$BLOB" <<'PY'
import hashlib, os, sys

path = sys.argv[1]
digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
verdict = "matches" if digest == os.path.basename(path) else "does NOT match"
print(f"   sha256 of the weights blob = {digest[:16]}..., which {verdict} its name")
PY

# ---------------------------------------------------------------------------- 6. lock, plan offline

step "Lock the models, stop the hub, and plan from the lock (what CI does)"
note "reconcile lock resolves each model to a commit and records every file's size and hash in"
note "manifests/quickstart.lock.yaml; committed beside the manifest, a model update is its diff."
show 0 reconcile lock -f "$MANIFEST"
sed 's/^/     | /' manifests/quickstart.lock.yaml
stop_server
printf '\n'; note "The local hub is stopped.  With the lock, a plan needs no hub; --locked fails"
note "(exit 1) if the manifest and the lock disagree.  The machine is in sync: expect 0."
show 0 reconcile --plan -f "$MANIFEST" --locked --detailed-exitcode

# ---------------------------------------------------------------------------- what next

step "What next"
cat <<EOF
   Everything is in $WORK:
     manifests/quickstart.yaml   the desired state: edit it (add a model, change include
                                 patterns, set a priority) and run the plan/apply again
     cache/                      the Hugging Face cache that applications load from
     state/status.yaml           the status file: a phase, reason and message per model
     manifests/quickstart.lock.yaml   its lock: each model's commit and file hashes
     serve.sh                    starts the local hub again on $ENDPOINT, the address the
                                 manifest names (Ctrl-C stops it)
   Try (the local hub has stopped; the lock, or --offline, plans without it):
     source $VENV/bin/activate && cd $WORK
     reconcile --plan --locked -f $MANIFEST --json    # the plan as JSON, for CI and tools
     reconcile schema                                  # every manifest field, as JSON Schema
   With the hub back (./serve.sh in another terminal), everything that asks it works again:
     reconcile --apply -f $MANIFEST                    # or --watch, the long-running controller
   Then point a manifest at real models: see manifests/wan2.2.yaml in the repository.
   Rerun this script to start over from scratch.
EOF
